"""Containers started by hand (docker run through the SDK, published ports), adopted by label and by name behind a
real HAProxy: upgraded under load with no failed request, rolled back to them, state checked; and the bad inputs,
each refused with nothing changed."""
from __future__ import annotations

import functools
import os
import shutil
import time
import uuid

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
from tests.support.docker_harness import (
    IMAGE_V1,
    IMAGE_V2,
    RUN_ID,
    TEST_LABEL,
    WrkLoad,
    free_port,
    module_args,
    run_playbook,
)

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.docker

_base = functools.partial(module_args, drain_timeout=3)


def _read(name, balancer, **extra):
    """Arguments of a reading module (rollout_info, preflight): no swap options."""
    return {"platform": "docker", "name": name, "load_balancer": balancer.lb_options(), **extra}


@pytest.fixture(autouse=True)
def _wrk_available():
    if shutil.which("wrk") is None:
        message = "wrk is not installed; run `make services`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def by_hand(engine):
    """Starts containers as a user would (docker run), labelled app=<tag>; removes them and their copies after."""
    tag = f"zdt-hand-{uuid.uuid4().hex[:6]}"

    def start(count, image=IMAGE_V1, fixed_port=False, labels=None):
        out = []
        for i in range(count):
            host_port = free_port() if fixed_port and i == 0 else None
            out.append(engine.containers.run(
                image, detach=True, name=f"{tag}-{len(out) + 1}-{uuid.uuid4().hex[:4]}",
                labels={TEST_LABEL: RUN_ID, "app": tag, **(labels or {})},
                ports={"8080/tcp": ("127.0.0.1", host_port)}, restart_policy={"Name": "unless-stopped"},
                environment={"GREETING": "hello"}))
        return out
    start.tag = tag
    yield start
    for container in engine.containers.list(all=True, filters={"label": f"app={tag}"}):
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass


def _recorder(haproxy):
    return TrafficRecorder(SamplerConfig(url=f"{haproxy.url}/version", concurrency=4, timeout=5),
                           rate=60, max_duration=300).start()


def _assert_no_failure(load, timeline):
    summary = timeline["summary"]
    assert summary["errors"] == 0, (summary["error_kinds"], summary["error_examples"])
    assert load["socket_errors"] == 0 and load["non_2xx_3xx"] == 0, load["text"]
    assert load["requests_per_s"] >= 100, load["text"]


def _revisions(info):
    return {r["revision"]: (r["current"], r["replicas"]) for r in info["revisions"]}


@pytest.mark.exclusive
def test_adopted_by_label_upgraded_and_rolled_back_under_load(engine, haproxy, workload_name, containers,
                                                              by_hand, tmp_path):
    hand = by_hand(3, fixed_port=True)
    hand_ids = sorted(c.id for c in hand)
    adopt = {"labels": {"app": by_hand.tag}}
    # the same image: nothing to swap, but the run makes the adopted containers members (they were not)
    first = run_playbook(tmp_path, [
        {"zerodown.rollout.preflight": _read(workload_name, haproxy, adopt=adopt)},
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, adopt=adopt)},
    ])["localhost"]
    adoption = [f for f in first["r0"]["findings"] if f["check"] == "adoption"]
    assert adoption and adoption[0]["severity"] == "warning" and "revision 1" in adoption[0]["message"], first["r0"]
    assert first["r1"]["changed"] and first["r1"]["revision"] == 1, first["r1"]
    assert sorted(haproxy.servers()) == sorted(c.name for c in hand)
    assert sorted(haproxy.servers().values()) == ["UP"] * 3

    load = WrkLoad(f"{haproxy.url}/version", delay_ms=60)
    recorder = _recorder(haproxy)
    try:
        time.sleep(1.5)
        upgrade = run_playbook(tmp_path, [
            {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, adopt=adopt)},
            {"zerodown.rollout.rollout_info": _read(workload_name, haproxy)},
        ])["localhost"]
        time.sleep(1.0)
        # a container started by hand later with the same label is not adopted: the record decides, not the selector
        late = by_hand(1)[0]
        rollback = run_playbook(tmp_path, [
            {"zerodown.rollout.rollback": _base(workload_name, haproxy)},  # without adopt: the record is enough
            {"zerodown.rollout.rollout_info": _read(workload_name, haproxy, adopt=adopt)},
        ])["localhost"]
        time.sleep(1.0)
    finally:
        timeline = recorder.stop()
        load = load.stop()
    up, info = upgrade["r0"], upgrade["r1"]
    assert not up.get("failed") and (up["previous_revision"], up["revision"]) == (1, 2), up
    assert _revisions(info) == {1: (False, 0), 2: (True, 3)}, info["revisions"]
    back, info = rollback["r0"], rollback["r1"]
    assert not back.get("failed") and (back["previous_revision"], back["revision"]) == (2, 1), back
    assert _revisions(info) == {1: (True, 3), 2: (False, 0)}, info["revisions"]
    assert late.name not in info["revisions"][0]["source"]
    _assert_no_failure(load, timeline)
    assert set(timeline["summary"]["versions"]) == {"1.0", "2.0"}

    # the very containers started by hand serve again, unchanged (not relabelled); the copies are stopped, kept
    running = {c.id for c in engine.containers.list(filters={"label": f"app={by_hand.tag}"})}
    assert running == set(hand_ids) | {late.id}
    for c in hand:
        c.reload()
        assert "zerodown.workload" not in c.labels and c.status == "running"
    copies = containers()
    assert len(copies) == 3 and all(c.status == "exited" for c in copies)
    for c in copies:
        attrs = c.attrs
        assert attrs["Config"]["Image"] == IMAGE_V2 and "GREETING=hello" in attrs["Config"]["Env"]
        assert c.labels["app"] == by_hand.tag and sorted(c.labels["zerodown.adopted"].split(",")) == hand_ids
        assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert attrs["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostPort"] == ""  # the fixed port is not copied
    assert sorted(haproxy.servers()) == sorted(c.name for c in hand)
    assert sorted(haproxy.servers().values()) == ["UP"] * 3


@pytest.mark.exclusive
def test_adopted_by_name_upgrade_rollback_and_upgrade_again_under_load(engine, haproxy, workload_name, containers,
                                                                       by_hand, tmp_path):
    hand = by_hand(3)
    names = [c.name for c in hand[:2]]  # the third one is left alone
    adopt = {"names": names}
    admit = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, adopt=adopt)},
    ])["localhost"]["r0"]
    # what the run said, as one string: pytest cuts the repr of a long tuple in the middle, where the cause of a
    # missing member is
    assert admit["changed"] and sorted(haproxy.servers()) == sorted(names), (
        "\n".join(map(str, (admit.get("msg"), admit.get("warnings"), admit.get("lb_repaired"), haproxy.servers(), admit))))
    load = WrkLoad(f"{haproxy.url}/version", delay_ms=60)
    recorder = _recorder(haproxy)
    try:
        time.sleep(1.5)
        res = run_playbook(tmp_path, [
            {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, adopt=adopt)},
            {"zerodown.rollout.rollback": _base(workload_name, haproxy, adopt=adopt)},
            {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, adopt=adopt)},
            {"zerodown.rollout.rollout_info": _read(workload_name, haproxy)},
        ])["localhost"]
        time.sleep(1.0)
    finally:
        timeline = recorder.stop()
        load = load.stop()
    assert [(res[k].get("failed", False), res[k]["revision"]) for k in ("r0", "r1", "r2")] == \
        [(False, 2), (False, 1), (False, 3)], res
    assert _revisions(res["r3"]) == {1: (False, 0), 2: (False, 0), 3: (True, 2)}, res["r3"]["revisions"]
    _assert_no_failure(load, timeline)
    running = list(containers(all=False))
    assert len(running) == 2 and all(c.labels["zerodown.revision"] == "3" for c in running)
    assert sorted(haproxy.servers()) == sorted(c.name for c in running)
    for c in hand:
        c.reload()
    assert [c.status for c in hand] == ["exited", "exited", "running"]


def test_bad_adoption_inputs_are_refused_and_change_nothing(engine, haproxy, workload_name, containers, by_hand,
                                                            tmp_path):
    hand = by_hand(2)
    odd = by_hand(1, image=IMAGE_V2)[0]
    before = {c.id: c.status for c in engine.containers.list(all=True, filters={"label": f"app={by_hand.tag}"})}
    nowhere = f"nothing-{uuid.uuid4().hex[:6]}"
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2,
                                                 adopt={"labels": {"app": nowhere}})},
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2,
                                                 adopt={"labels": {"app": by_hand.tag}})},
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2,
                                                 adopt={"names": [hand[0].name]}, compose_project="p",
                                                 compose_service="s")},
        {"zerodown.rollout.image_upgrade": {"platform": "docker", "name": workload_name, "image": IMAGE_V2,
                                            "adopt": {"names": [hand[0].name, hand[1].name]}}},
        {"zerodown.rollout.rollout_info": _read(workload_name, haproxy, compose_project=nowhere, compose_service="web")},
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2,
                                                 adopt={"names": [hand[0].name, f"{nowhere}-x"]})},
    ])["localhost"]
    expect = {
        "r0": "matches no running container",
        "r1": "matches containers of 2 different images",
        "r2": "give one of them",
        "r3": "needs a load_balancer",
        "r4": "does not exist",
        "r5": f"no container is named {nowhere}-x",
    }
    for key, says in expect.items():
        assert res[key].get("failed") and not res[key].get("changed"), res[key]
        assert says in res[key]["msg"], res[key]["msg"]
        assert "Traceback" not in res[key].get("module_stderr", ""), res[key]
    assert odd.name in res["r1"]["msg"]
    after = {c.id: c.status for c in engine.containers.list(all=True, filters={"label": f"app={by_hand.tag}"})}
    assert after == before and containers() == [] and haproxy.servers() == {}
