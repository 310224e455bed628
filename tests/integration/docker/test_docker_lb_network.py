"""Replicas reached by their address on a Docker network (docker_container.lb_network), no port published: an
HAProxy on the host reaches them on a user-defined bridge, through an upgrade and a rollback under load, and the bad
inputs are refused before anything changes. Driven through ansible-playbook against the real engine."""
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
    container_of,
    container_spec,
    haproxy_command,
    module_args,
    run_playbook,
)

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.docker

_base = functools.partial(module_args, drain_timeout=3)


@pytest.fixture
def bridge(engine, workload_name):
    """A user-defined bridge of a unique name, removed at the end with the workload's containers on it."""
    name = f"zdt-net-{uuid.uuid4().hex[:6]}"
    network = engine.networks.create(name, driver="bridge", labels={TEST_LABEL: RUN_ID})
    yield name
    for container in engine.containers.list(all=True, filters={"label": f"zerodown.workload={workload_name}"}):
        try:
            container.remove(force=True, v=True)
        except docker.errors.APIError:
            pass
    network.remove()


def _lb_members(haproxy):
    """The backend's servers as HAProxy holds them: container name -> address (``show stat``'s addr)."""
    rows = haproxy_command("show stat", haproxy.socket).splitlines()
    header = rows[0].lstrip("# ").split(",")
    out = {}
    for line in rows[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == haproxy.backend and row.get("svname") not in ("BACKEND", "FRONTEND", None):
            out[container_of(row["svname"])] = row["addr"]
    return out


def _network_addresses(containers, network):
    """The running containers' addresses on ``network`` with the app port: container name -> ip:8080."""
    out = {}
    for c in containers(all=False):
        c.reload()
        out[c.name] = f"{c.attrs['NetworkSettings']['Networks'][network]['IPAddress']}:8080"
    return out


def _assert_nothing_published(containers):
    for c in containers():
        assert not c.attrs["HostConfig"].get("PortBindings"), (c.name, c.attrs["HostConfig"].get("PortBindings"))
        published = {k: v for k, v in (c.attrs["NetworkSettings"].get("Ports") or {}).items() if v}
        assert published == {}, (c.name, published)


def _versions(samples):
    out = {}
    for sample in samples:
        out[sample.version] = out.get(sample.version, 0) + 1
    return out


@pytest.mark.exclusive  # it must hold 200 requests/s: not beside another stream of tests (scripts/test.sh)
def test_upgrade_and_rollback_on_a_bridge_under_load(engine, haproxy, workload_name, bridge, containers, tmp_path):
    if shutil.which("wrk") is None:
        message = "wrk is not installed; run `make services`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    spec = container_spec(lb_network=bridge)
    created = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, replicas=4,
                                                 docker_container=spec)},
        # the same options again: nothing to do
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, replicas=4,
                                                 docker_container=spec)},
    ])["localhost"]
    assert created["r0"]["changed"] and created["r0"]["revision"] == 1, created["r0"]
    assert not created["r1"].get("failed") and not created["r1"]["changed"], created["r1"]
    _assert_nothing_published(containers)
    assert all(c.labels["zerodown.lb-network"] == bridge for c in containers())
    v1 = _network_addresses(containers, bridge)
    assert len(v1) == 4 and all(not a.startswith("127.") for a in v1.values()), v1
    assert _lb_members(haproxy) == v1
    assert sorted(haproxy.servers().values()) == ["UP"] * 4
    # what the status reports is the address the load balancer uses
    assert sorted(r["address"] for r in created["r1"]["status"]["replicas"]) == sorted(v1.values())

    load = WrkLoad(f"{haproxy.url}/version")
    recorder = TrafficRecorder(SamplerConfig(url=f"{haproxy.url}/version", concurrency=4, timeout=5), rate=60,
                               max_duration=300).start()
    try:
        time.sleep(1.5)
        upgrade = run_playbook(tmp_path, [
            {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, batch_size=2,
                                                     health_check={"path": "/healthz"})},
        ])["localhost"]["r0"]
        members_after_upgrade = _lb_members(haproxy)
        v2 = _network_addresses(containers, bridge)
        mark_upgraded = len(recorder.snapshot())
        time.sleep(1.5)
        mark_rollback = len(recorder.snapshot())
        rollback = run_playbook(tmp_path, [
            {"zerodown.rollout.rollback": _base(workload_name, haproxy, batch_size=2,
                                                health_check={"path": "/healthz"})},
        ])["localhost"]["r0"]
        time.sleep(1.5)
    finally:
        clients_stopped_at = time.time()
        timeline = recorder.stop()
        load = load.stop()
    assert not upgrade.get("failed") and (upgrade["previous_revision"], upgrade["revision"]) == (1, 2), upgrade
    assert not rollback.get("failed") and (rollback["previous_revision"], rollback["revision"]) == (2, 1), rollback

    summary = timeline["summary"]
    assert summary["errors"] == 0, (summary["error_kinds"], summary["error_examples"])
    assert load["socket_errors"] == 0 and load["non_2xx_3xx"] == 0, load["text"]
    assert load["requests_per_s"] >= 200, load["text"]
    # and none in HAProxy's log either, but for what the clients themselves dropped when the test stopped them (wrk
    # drops the responses it has in flight), and a connection closed before it sent any request (no server, request
    # time -1, state CR): no request at all
    failed = [line for line in haproxy.failed_requests(clients_stopped_at=clients_stopped_at)
              if not (line.split()[3] == "<NOSRV>" and line.split()[4].startswith("-1/") and line.split()[6].startswith("CR"))]
    assert failed == [], failed[-20:]
    snap = recorder.snapshot()
    assert set(_versions(snap[:mark_upgraded])) == {"1.0", "2.0"}
    assert set(_versions(snap[mark_upgraded + 10:mark_rollback])) == {"2.0"}
    assert set(_versions(snap[-20:])) == {"1.0"}

    # after each step the members are exactly the running containers, at their addresses on the bridge
    assert len(v2) == 4 and set(v2).isdisjoint(v1) and members_after_upgrade == v2
    back = _network_addresses(containers, bridge)
    assert sorted(back) == sorted(v1)  # the retained revision 1 containers, restarted
    assert _lb_members(haproxy) == back  # at the addresses they have now (a restart may give another one)
    assert sorted(haproxy.servers().values()) == ["UP"] * 4
    _assert_nothing_published(containers)


def test_bad_addressing_is_refused_and_nothing_changes(engine, haproxy, workload_name, bridge, containers, tmp_path):
    missing = f"zdt-missing-{uuid.uuid4().hex[:6]}"
    refused = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, replicas=2,
                                                 docker_container=container_spec(lb_network=missing))},
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, replicas=2,
                                                 docker_container=container_spec(lb_network=missing)),
         "check_mode": True},
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, replicas=2,
                                                 docker_container=container_spec(lb_network=bridge,
                                                                                 publish_address="127.0.0.1"))},
    ])["localhost"]
    for key in ("r0", "r1"):
        assert refused[key].get("failed") and f"lb_network={missing}" in refused[key]["msg"], refused[key]
        assert "no such network" in refused[key]["msg"] and "Traceback" not in str(refused[key])
    assert refused["r2"].get("failed") and "exclude each other" in refused["r2"]["msg"], refused["r2"]
    assert containers() == [] and _lb_members(haproxy) == {}

    created = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, replicas=2,
                                                 docker_container=container_spec(lb_network=bridge))},
        {"zerodown.rollout.preflight": {"platform": "docker", "name": workload_name,
                                        "load_balancer": haproxy.lb_options(), "fail_on": "never"}},
    ])["localhost"]
    assert created["r0"]["changed"], created["r0"]
    checks = {f["check"] for f in created["r1"]["findings"]}
    assert "lb-network" not in checks and "published-port" not in checks, created["r1"]["findings"]
    before = sorted(c.id for c in containers())
    members = _lb_members(haproxy)

    # switching an existing workload to published ports is refused, an upgrade included
    switch = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2,
                                                 docker_container=container_spec())},
    ])["localhost"]["r0"]
    assert switch.get("failed") and "published ports" in switch["msg"] and bridge in switch["msg"], switch
    assert sorted(c.id for c in containers()) == before and _lb_members(haproxy) == members
