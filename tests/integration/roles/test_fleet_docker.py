"""playbooks/fleet_upgrade.yml on a fleet of Docker hosts: four extra dockerds (own socket, data root, exec
root, pidfile, bridge and subnet), each with its own HAProxy, upgraded in waves [1, 2, 100%] with the broken
image injected for one host of wave 2. Every host must end on the old revision (checked on each engine and
in each HAProxy), the hosts under a light load must see no failed request, and the run record must name the
rolled-back and never-reached hosts."""
from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid

import pytest
import yaml


from tests.support.docker_harness import (IMAGE_BROKEN, IMAGE_V1, IMAGE_V2, Haproxy, container_spec,
                                          run_playbook as run_tasks, start_dockerds)
from tests.support.roles_harness import ROOT, recording, run_playbook
from tests.support.unavailable import skip_or_fail

pytestmark = [pytest.mark.docker, pytest.mark.slow]
FLEET = ROOT / "playbooks" / "fleet_upgrade.yml"
HOSTS = 4
REPLICAS = 2
WORKLOAD = f"zdfleet-{uuid.uuid4().hex[:6]}"
ROLLOUT = {"batch_size": 1, "health_timeout": 20, "drain_timeout": 1, "stop_timeout": 1}


@pytest.fixture(scope="module")
def docker_fleet(docker_engine):
    """Four extra dockerds, each with an HAProxy and the workload at revision 1 (2 replicas of 1.0) behind it.

    Yields (host name, dockerd, haproxy) triples; the finalizer removes the workload's containers with the
    daemons, their bridges and directories, and stops the HAProxies. No iptables rules are ever made.
    """
    try:
        daemons = start_dockerds(HOSTS, [IMAGE_V1, IMAGE_V2, IMAGE_BROKEN])
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        skip_or_fail(f"cannot start {HOSTS} extra dockerds ({exc}); they need root and the ip tool")
    proxies: list[Haproxy] = []
    try:
        for _daemon in daemons:
            proxies.append(Haproxy(WORKLOAD))
        yield [(f"docker{i}", daemon, proxy) for i, (daemon, proxy) in enumerate(zip(daemons, proxies))]
    finally:
        for proxy in proxies:
            proxy.stop()
        for daemon in daemons:
            daemon.stop()
        for daemon in daemons:  # the bridge must be gone, or the next run's dockerd would share it
            shown = subprocess.run(["ip", "link", "show", daemon.bridge], capture_output=True, check=False)
            assert shown.returncode != 0, f"bridge {daemon.bridge} survived the teardown"


def host_vars(daemon, proxy) -> dict:
    return {"ansible_connection": "local", "upgrade_docker_host": daemon.host, "zd_publish": daemon.publish_address,
            "upgrade_options": {"load_balancer": proxy.lb_options()},
            "upgrade_rollout_options": dict(ROLLOUT), "upgrade_traffic_url": f"{proxy.url}/version"}


def running_replicas(daemon) -> dict[str, dict[str, str]]:
    """Running containers of the workload on ``daemon``: name -> their zerodown labels."""
    import docker

    client = docker.DockerClient(base_url=daemon.host, timeout=30)
    try:
        return {c.name: {k: v for k, v in c.labels.items() if k.startswith("zerodown.")}
                for c in client.containers.list(filters={"label": f"zerodown.workload={WORKLOAD}"})}
    finally:
        client.close()


def test_docker_fleet_failure_in_wave_two_rolls_back_every_host(docker_fleet, tmp_path):
    inventory = tmp_path / "fleet.yml"
    hosts = {name: host_vars(daemon, proxy) for name, daemon, proxy in docker_fleet}
    inventory.write_text(yaml.safe_dump({"all": {"children": {"docker_hosts": {
        "hosts": hosts, "vars": {"upgrade_platform": "docker", "upgrade_workload": WORKLOAD,
                                 "upgrade_image": IMAGE_V2}}}}}))
    # revision 1 on every host, created through the module itself (one run, the hosts in parallel)
    created = run_tasks(tmp_path, [{"zerodown.rollout.image_upgrade": {
        "platform": "docker", "name": WORKLOAD, "image": IMAGE_V1, "replicas": REPLICAS,
        "docker_host": "{{ upgrade_docker_host }}", "load_balancer": "{{ upgrade_options.load_balancer }}",
        "docker_container": container_spec(publish_address="{{ zd_publish }}"), **ROLLOUT}}], inventory=str(inventory))
    for name, _daemon, _proxy in docker_fleet:
        assert not created[name]["r0"].get("failed"), created[name]["r0"]
    before = {name: running_replicas(daemon) for name, daemon, _proxy in docker_fleet}
    for name, daemon, proxy in docker_fleet:
        assert len(before[name]) == REPLICAS and set(proxy.servers()) == set(before[name]), name

    # the failure injected in wave 2: a host var (extra vars would override it for every host)
    broken = yaml.safe_load(inventory.read_text())
    broken["all"]["children"]["docker_hosts"]["hosts"]["docker1"]["upgrade_image"] = IMAGE_BROKEN
    inventory.write_text(yaml.safe_dump(broken))
    record = tmp_path / "run.json"
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        timelines = {name: stack.enter_context(recording(f"{proxy.url}/version", rate=10.0))
                     for name, _daemon, proxy in docker_fleet}
        proc = run_playbook(FLEET, {
            "zerodown_hosts": "docker_hosts", "zerodown_waves": [1, 2, "100%"], "upgrade_gate_requests": 20,
            "upgrade_gate_concurrency": 2, "zerodown_wave_gate_requests": 10, "zerodown_run_record": str(record),
            "upgrade_wait_timeout": 60}, tmp_path, inventory=str(inventory), timeout=240)
        time.sleep(0.5)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-6000:]
    run = json.loads(record.read_text())
    print(f"fleet run took {time.monotonic() - started:.1f}s; record: {json.dumps(run, indent=1)[:3000]}")
    assert run["waves"] == [["docker0"], ["docker1", "docker2"]], run["waves"]
    assert run["failed_hosts"] == ["docker1"] and run["ok"] is False, run
    assert run["not_reached_hosts"] == ["docker3"], run
    # docker0 (wave 1) and docker2 (the wave-2 host that succeeded) were rolled back by the rollback play;
    # docker1 undid its own failed swap and its role rolled back to the recorded revision (a no-op)
    assert sorted(run["rolled_back_hosts"]) == ["docker0", "docker1", "docker2"], {
        name: {k: v for k, v in record.items() if k in ("ok", "failure", "rolled_back", "rollback_error", "wave_gate")}
        for name, record in run["hosts"].items()}
    for name in ("docker0", "docker2"):
        assert run["hosts"][name]["ok"] is True and int(run["hosts"][name]["previous_revision"]) == 1, run["hosts"][name]
    assert "docker1" in run["failed_hosts"] and "unhealthy" in run["hosts"]["docker1"]["failure"], run["hosts"]["docker1"]
    assert f"Fleet upgrade of {WORKLOAD} to {IMAGE_V2} failed on docker1" in output, output[-4000:]

    for name, daemon, proxy in docker_fleet:
        running = running_replicas(daemon)
        assert len(running) == REPLICAS, (name, running)
        assert {c["zerodown.image"] for c in running.values()} == {IMAGE_V1}, (name, running)
        assert {c["zerodown.revision"] for c in running.values()} == {"1"}, (name, running)
        members = proxy.servers()
        assert set(members) == set(running) and all(s == "UP" for s in members.values()), (name, members, running)
        if name == "docker3":  # never reached: the very same containers as before
            assert running == before[name]
    for name, timeline in timelines.items():
        summary = timeline["summary"]
        assert summary["errors"] == 0, (name, summary["error_kinds"], summary["error_examples"])
        assert summary["total"] >= 30, (name, summary)
    assert {"1.0", "2.0"} <= set(timelines["docker0"]["summary"]["versions"]), timelines["docker0"]["summary"]
    assert set(timelines["docker3"]["summary"]["versions"]) == {"1.0"}, timelines["docker3"]["summary"]
