"""The background traffic recorder and its per-second timeline, against real scripted servers on 127.0.0.1."""
from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig, TrafficError
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.timeline_svg import render_timeline_svg
from tests.support.traffic_servers import Reply, ScriptedServer


def test_recorder_timeline_and_svg():
    # An "upgrade" by request count: 30 answers from 1.0, 10 failures, then 2.0.
    def plan(i: int, path: str) -> Reply:
        if i < 30:
            return Reply(version="1.0")
        if i < 40:
            return Reply(status=503, version=None, where="none")
        return Reply(version="2.0", delay=0.02)

    with ScriptedServer(plan) as server:
        recorder = TrafficRecorder(SamplerConfig(url=server.url(), concurrency=1), rate=50).start()
        deadline = time.monotonic() + 10
        while len(recorder.snapshot()) < 90 and time.monotonic() < deadline:
            time.sleep(0.05)
        timeline = recorder.stop()
        served = server.count
    summary = timeline["summary"]
    assert summary["total"] == served >= 90
    assert summary["status_counts"]["503"] == 10
    assert summary["versions"]["1.0"] == 30 and summary["versions"]["unknown"] == 10
    assert summary["versions"]["2.0"] == served - 40
    seconds = timeline["seconds"]
    assert len(seconds) == int(-(-timeline["duration_s"] // 1))
    assert [b["t"] for b in seconds] == list(range(len(seconds)))
    assert sum(b["requests"] for b in seconds) == served
    assert sum(b["errors"] for b in seconds) == 10
    # one worker, so answers arrive in plan order: no 1.0 after the first 2.0
    first_new = min(b["t"] for b in seconds if b["versions"].get("2.0"))
    assert all(not b["versions"].get("1.0") for b in seconds if b["t"] > first_new)
    late = [b for b in seconds if b["versions"].get("2.0")]
    assert all(b["p95_ms"] is not None and b["p95_ms"] >= 20 for b in late)

    svg = render_timeline_svg(timeline)
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    fills = [r.get("fill") for r in root.iter(f"{ns}rect")]
    assert "#d62728" in fills  # the errors
    assert len(root.findall(f"{ns}polyline")) == 1  # the p95 line
    titles = [t.text for t in root.iter(f"{ns}title")]
    assert any("1.0: " in t for t in titles) and any("2.0: " in t for t in titles)
    json.dumps(timeline)  # the timeline is plain JSON data


def test_recorder_stops_by_itself_after_max_duration():
    with ScriptedServer(lambda i, p: Reply(version="1.0")) as server:
        recorder = TrafficRecorder(SamplerConfig(url=server.url()), rate=20, max_duration=0.5).start()
        assert recorder.wait(5)
        timeline = recorder.stop()
    assert 0.5 <= timeline["duration_s"] < 2
    assert 5 <= timeline["summary"]["total"] <= 12


@pytest.mark.parametrize("kwargs, option", [
    ({"rate": None}, "rate"),
    ({"rate": 0}, "rate"),
    ({"rate": 1e6}, "rate"),
    ({"max_duration": -1}, "max_duration"),
    ({"max_duration": 1e6}, "max_duration"),
])
def test_recorder_refuses_unbounded_settings(kwargs, option):
    with pytest.raises(TrafficError) as err:
        TrafficRecorder(SamplerConfig(url="http://127.0.0.1:9/"), **kwargs)
    assert err.value.option == option
