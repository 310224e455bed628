"""`playbooks/demo.yml` (what `make demo` runs) on Docker and on the Kubernetes test API server.

Every figure checked comes from the recorder's timeline JSON the demo wrote, not from the play's output.
"""
from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from tests.support.docker_harness import free_port
from tests.support.roles_harness import ROOT, run_playbook

DEMO = ROOT / "playbooks" / "demo.yml"


def demo(tmp_path, **extra):
    demo_dir = tmp_path / "demo"
    proc = run_playbook(DEMO, {"demo_dir": str(demo_dir), "demo_rate": 30, **extra}, tmp_path, timeout=400)
    output = proc.stdout + proc.stderr
    summary_file = demo_dir / "summary.json"
    assert summary_file.exists(), output[-6000:]
    summary = json.loads(summary_file.read_text())
    timeline = json.loads((demo_dir / "timeline.json").read_text())
    assert (demo_dir / "timeline.svg").read_text().lstrip().startswith(("<svg", "<?xml"))
    return proc.returncode, output, summary, timeline


def versions_over_time(timeline) -> list[str]:
    """The dominant version of each second, with repeats collapsed: the story the picture tells."""
    story: list[str] = []
    for second in timeline["seconds"]:
        if second["versions"]:
            top = max(second["versions"], key=second["versions"].get)
            if not story or story[-1] != top:
                story.append(top)
    return story


def process_alive(pid: int, grace: float = 5.0) -> bool:
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture
def docker_demo(docker_engine):
    name = f"zd-demo-{uuid.uuid4().hex[:6]}"
    yield {"demo_name": name, "demo_listen": f"127.0.0.1:{free_port()}"}
    for container in docker_engine.containers.list(all=True, filters={"label": f"zerodown.workload={name}"}):
        container.remove(force=True)


@pytest.mark.docker
def test_docker_demo_upgrade_and_rollback_lose_nothing(tmp_path, docker_demo, docker_engine):
    rc, output, summary, timeline = demo(tmp_path, **docker_demo)
    assert rc == 0, output[-6000:]
    assert timeline["summary"]["errors"] == 0 and timeline["summary"]["total"] >= 200, timeline["summary"]
    assert versions_over_time(timeline) == ["1.0", "2.0", "1.0"]
    assert summary["upgrade"]["ok"] and (summary["upgrade"]["previous_revision"], summary["upgrade"]["revision"]) == (1, 2)
    assert summary["rollback"]["revision"] == 1
    assert f"{timeline['summary']['total']} requests, 0 errors" in output
    assert str(tmp_path / "demo" / "timeline.svg") in output
    # torn down: no container left, HAProxy gone
    assert docker_engine.containers.list(all=True, filters={"label": f"zerodown.workload={docker_demo['demo_name']}"}) == []
    assert not (tmp_path / "demo" / "haproxy" / "admin.sock").exists() or not process_alive(
        int((tmp_path / "demo" / "haproxy" / "haproxy.pid").read_text()))


@pytest.mark.docker
def test_docker_demo_broken_image_is_rolled_back_automatically(tmp_path, docker_demo):
    rc, output, summary, timeline = demo(tmp_path, demo_new_image="zerodown/demo-app:broken", **docker_demo)
    assert rc != 0
    upgrade = summary["upgrade"]
    assert upgrade["ok"] is False and upgrade["rolled_back"] is True and upgrade["revision"] == 1
    assert "unhealthy" in upgrade["failure"]
    assert summary["rollback"] == {}
    assert timeline["summary"]["errors"] == 0 and timeline["summary"]["total"] >= 50, timeline["summary"]
    assert set(timeline["summary"]["versions"]) == {"1.0"}


@pytest.mark.k8s
def test_kubernetes_demo_on_a_test_server_it_starts(tmp_path):
    rc, output, summary, timeline = demo(tmp_path, demo_platform="kubernetes")
    assert rc == 0, output[-6000:]
    assert timeline["summary"]["errors"] == 0 and timeline["summary"]["total"] >= 200, timeline["summary"]
    assert versions_over_time(timeline) == ["1.0", "2.0", "1.0"]
    assert (summary["upgrade"]["previous_revision"], summary["upgrade"]["revision"]) == (1, 2)
    assert summary["rollback"]["revision"] == 3  # Kubernetes renumbers the revision rolled back to
    assert not process_alive(int((tmp_path / "demo" / "k8s-server.pid").read_text()))
