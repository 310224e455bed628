"""The upgrade role's canary on a Docker host (local engine, HAProxy on loopback): the first replica is
swapped alone and gated on live traffic before the rest; a broken canary ends with the old revision on
every replica. A light recorded load must see no failed request."""
from __future__ import annotations

import uuid

import pytest


from tests.support.docker_harness import (IMAGE_BROKEN, IMAGE_V1, IMAGE_V2, Haproxy, container_spec,
                                          run_playbook as run_tasks)
from tests.support.roles_harness import recording, run_role

pytestmark = pytest.mark.docker
ROLLOUT = {"batch_size": 2, "health_timeout": 20, "drain_timeout": 2, "stop_timeout": 1}


@pytest.fixture
def workload(docker_engine, tmp_path):
    """Three replicas of 1.0 behind their own HAProxy; yields (name, haproxy); removes both after."""
    name = f"zdcan-{uuid.uuid4().hex[:6]}"
    proxy = Haproxy(name)
    try:
        out = run_tasks(tmp_path, [{"zerodown.rollout.image_upgrade": {
            "platform": "docker", "name": name, "image": IMAGE_V1, "replicas": 3,
            "load_balancer": proxy.lb_options(), "docker_container": container_spec(), **ROLLOUT}}])["localhost"]["r0"]
        assert out["changed"] and not out.get("failed"), out
        yield name, proxy
    finally:
        proxy.stop()
        for container in docker_engine.containers.list(all=True, filters={"label": f"zerodown.workload={name}"}):
            container.remove(force=True, v=True)


def _role_vars(name, proxy, image):
    return {"upgrade_platform": "docker", "upgrade_workload": name, "upgrade_image": image,
            "upgrade_canary": True,
            "upgrade_options": {"load_balancer": proxy.lb_options()}, "upgrade_rollout_options": dict(ROLLOUT),
            "upgrade_traffic_url": f"{proxy.url}/version", "upgrade_gate_requests": 60, "upgrade_preflight": False}


def _running(docker_engine, name) -> dict[str, int]:
    """Revision -> running containers of the workload."""
    out: dict[str, int] = {}
    for c in docker_engine.containers.list(filters={"label": f"zerodown.workload={name}"}):
        rev = c.labels["zerodown.revision"]
        out[rev] = out.get(rev, 0) + 1
    return out


def _assert_no_failed_requests(timeline) -> None:
    summary = timeline["summary"]
    assert summary["total"] >= 50, summary
    assert summary["errors"] == 0, (summary["error_kinds"], summary["error_examples"])


def test_docker_canary_then_full_upgrade(docker_engine, workload, tmp_path):
    name, proxy = workload
    with recording(f"{proxy.url}/version", rate=30) as timeline:
        run = run_role(tmp_path, "zerodown.rollout.upgrade", _role_vars(name, proxy, IMAGE_V2))
    assert run.rc == 0, run.output[-6000:]
    rec = run.records
    assert rec["ok"] is True and rec["rolled_back"] is False, rec
    assert (rec["previous_revision"], rec["revision"]) == (1, 2)
    assert rec["images_before"] == {name: IMAGE_V1} and rec["images_after"] == {name: IMAGE_V2}, rec
    # the canary gate ran while one replica of 2.0 served next to two of 1.0
    canary_line = next(line for line in run.output.splitlines() if "Traffic gate 'canary' passed" in line)
    assert "'1.0'" in canary_line and "'2.0'" in canary_line, canary_line
    assert _running(docker_engine, name) == {"2": 3}
    assert set(proxy.servers()) == {c.name for c in docker_engine.containers.list(
        filters={"label": f"zerodown.workload={name}"})}
    _assert_no_failed_requests(timeline)


def _assert_rolled_back(run, docker_engine, name, proxy, timeline, failed_at) -> None:
    """The role failed at ``failed_at``, its rescue rolled back, and 1.0 serves on every replica again."""
    assert run.rc != 0
    rec = run.records
    assert rec, run.output[-6000:]
    assert rec["ok"] is False and rec["rolled_back"] is True, rec
    assert failed_at in rec["failure"], rec["failure"]
    assert rec["traffic_after_rollback"] == "pass", rec
    assert _running(docker_engine, name) == {"1": 3}
    servers = proxy.servers()
    assert set(servers) == {c.name for c in docker_engine.containers.list(
        filters={"label": f"zerodown.workload={name}"})}
    assert len(servers) == 3 and all(s.startswith("UP") for s in servers.values()), servers
    _assert_no_failed_requests(timeline)


def test_broken_docker_canary_ends_on_the_old_revision(docker_engine, workload, tmp_path):
    name, proxy = workload
    with recording(f"{proxy.url}/version", rate=30) as timeline:
        run = run_role(tmp_path, "zerodown.rollout.upgrade", _role_vars(name, proxy, IMAGE_BROKEN))
    _assert_rolled_back(run, docker_engine, name, proxy, timeline, "Swap the first replica")
    assert set(timeline["summary"]["versions"]) == {"1.0"}  # the broken container never took traffic


def test_failed_canary_traffic_gate_rolls_back_from_the_partial_swap(docker_engine, workload, tmp_path):
    # 2.0 is healthy, so the canary swap succeeds; the gate then asks for a share of 2.0 answers that one
    # replica of three cannot give, and the rescue rolls back from the half-swapped workload
    name, proxy = workload
    role_vars = dict(_role_vars(name, proxy, IMAGE_V2), upgrade_canary_min_version_fraction=0.9)
    with recording(f"{proxy.url}/version", rate=30) as timeline:
        run = run_role(tmp_path, "zerodown.rollout.upgrade", role_vars)
    _assert_rolled_back(run, docker_engine, name, proxy, timeline, "Traffic gate 'canary'")
    # the canary did take its share before the gate judged it
    assert set(timeline["summary"]["versions"]) == {"1.0", "2.0"}
