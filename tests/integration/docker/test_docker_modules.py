"""The four modules on a Docker workload, as users run them (ansible-playbook, connection local):
check/real/idempotent triplets, diff, bad inputs that change nothing, HAProxy reloads, two hosts."""
from __future__ import annotations

import json
import pathlib
import urllib.request

import pytest
import yaml

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
from tests.support.docker_harness import IMAGE_V1, IMAGE_V2, Haproxy, container_of, container_spec, module_args, run_playbook

pytestmark = pytest.mark.docker


def _snapshot(containers, client=None):
    return sorted((c.id, c.status, c.labels["zerodown.revision"]) for c in containers(client))


def _create(tmp_path, name, haproxy, replicas=2):
    out = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": module_args(
        name, haproxy, image=IMAGE_V1, replicas=replicas, docker_container=container_spec())}])["localhost"]["r0"]
    assert out["changed"] and not out.get("failed"), out
    return out


def test_triplets_check_mode_and_diff(engine, haproxy, workload_name, containers, tmp_path):
    _create(tmp_path, workload_name, haproxy)
    info_args = {"platform": "docker", "name": workload_name, "load_balancer": haproxy.lb_options()}
    upgrade = {"zerodown.rollout.image_upgrade": module_args(workload_name, haproxy, image=IMAGE_V2)}

    before, lb_before = _snapshot(containers), haproxy.servers()
    check = run_playbook(tmp_path, [upgrade], check=True, diff=True)["localhost"]["r0"]
    assert check["changed"] and check["revision"] == 2 and check["previous_revision"] == 1, check
    assert check["diff"] == {"before": {"revision": 1, "image": IMAGE_V1, "replicas": 2},
                             "after": {"revision": 2, "image": IMAGE_V2, "replicas": 2}}
    assert _snapshot(containers) == before and haproxy.servers() == lb_before  # check mode changed nothing

    res = run_playbook(tmp_path, [
        upgrade,                                                            # r0 real
        dict(upgrade, check_mode=True),                                     # r1 check again
        upgrade,                                                            # r2 real again
        {"zerodown.rollout.rollout_wait": dict(info_args, revision=2, timeout=30), "check_mode": True},  # r3
        {"zerodown.rollout.rollout_wait": dict(info_args, timeout=30)},     # r4
        {"zerodown.rollout.rollout_info": info_args, "check_mode": True},   # r5
        {"zerodown.rollout.rollback": module_args(workload_name, haproxy, to_revision=1), "check_mode": True,
         "diff": True},                                                     # r6
    ])["localhost"]
    assert res["r0"]["changed"] and res["r0"]["revision"] == 2
    assert not res["r1"]["changed"] and not res["r2"]["changed"], (res["r1"], res["r2"])
    assert res["r2"]["revision"] == 2 and "already runs" in res["r2"]["msg"]
    for key in ("r3", "r4"):
        assert not res[key]["changed"] and res[key]["status"]["done"] and res[key]["revision"] == 2, res[key]
        assert res[key]["status"]["desired"] == res[key]["status"]["available"] == 2
    info = res["r5"]
    assert not info["changed"] and info["revision"] == 2
    assert [(r["revision"], r["current"], r["replicas"]) for r in info["revisions"]] == [(1, False, 0), (2, True, 2)]
    assert info["revisions"][0]["images"] == {workload_name: IMAGE_V1}
    assert res["r6"]["changed"] and res["r6"]["diff"]["after"]["revision"] == 1
    after_upgrade = _snapshot(containers)

    res = run_playbook(tmp_path, [
        {"zerodown.rollout.rollback": module_args(workload_name, haproxy, to_revision=1)},                       # r0
        {"zerodown.rollout.rollback": module_args(workload_name, haproxy, to_revision=1), "check_mode": True},   # r1
        {"zerodown.rollout.rollback": module_args(workload_name, haproxy, to_revision=1)},                       # r2
        {"zerodown.rollout.rollback": module_args(workload_name, haproxy), "check_mode": True},                  # r3
        {"zerodown.rollout.rollout_wait": dict(info_args, revision=2, timeout=5)},                         # r4
    ])["localhost"]
    assert res["r0"]["changed"] and (res["r0"]["previous_revision"], res["r0"]["revision"]) == (2, 1), res["r0"]
    assert not res["r1"]["changed"] and not res["r2"]["changed"]
    # without to_revision, "previous" is the revision that ran before the current one: 2 again
    assert res["r3"]["changed"] and res["r3"]["revision"] == 2
    assert res["r4"]["failed"] and "runs revision 1, not revision 2" in res["r4"]["msg"], res["r4"]
    # the rollback restarted revision 1's retained containers: same ids, nothing created
    assert {c[0] for c in _snapshot(containers)} == {c[0] for c in after_upgrade}


def test_bad_inputs_change_nothing(engine, haproxy, workload_name, containers, tmp_path):
    _create(tmp_path, workload_name, haproxy)
    before, lb_before = _snapshot(containers), haproxy.servers()
    good = module_args(workload_name, haproxy, image=IMAGE_V2)
    missing_socket = dict(haproxy.lb_options(), socket=str(tmp_path / "nope.sock"))
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.rollback": module_args("zdt-no-such-workload", haproxy)},
        {"zerodown.rollout.rollout_info": {"platform": "docker", "name": "zdt-no-such-workload"}},
        {"zerodown.rollout.image_upgrade": dict(good, image="Zerodown/Demo App:2.0")},
        {"zerodown.rollout.image_upgrade": dict(good, docker_host="unix:///nonexistent/docker.sock")},
        {"zerodown.rollout.image_upgrade": dict(good, load_balancer=missing_socket)},
        {"zerodown.rollout.image_upgrade": dict(good, batch_size=0)},
        {"zerodown.rollout.image_upgrade": dict(good, drain_timeout=-1)},
        {"zerodown.rollout.rollback": module_args(workload_name, haproxy, health_timeout=-5)},
        {"zerodown.rollout.rollout_wait": {"platform": "docker", "name": workload_name, "timeout": -1}},
        {"zerodown.rollout.rollback": module_args(workload_name, haproxy, to_revision=99)},
        {"zerodown.rollout.image_upgrade": dict(good, load_balancer=dict(haproxy.lb_options(), backend="nope"))},
        {"zerodown.rollout.image_upgrade": dict(good, image="zerodown/demo-app:9.9", pull="never")},
    ])["localhost"]
    expected = [
        "does not exist", "does not exist", "not a valid image reference", "cannot reach the Docker engine",
        "cannot talk to HAProxy", "batch_size must be 1 or more", "drain_timeout must be zero or more",
        "health_timeout must be zero or more", "timeout must be zero or more", "has no revision 99",
        "has no backend 'nope'", "pull=never",
    ]
    for i, text in enumerate(expected):
        result = res[f"r{i}"]
        assert result.get("failed") and not result.get("changed"), (i, result)
        assert text in result["msg"], (i, result["msg"])
        # a clean failure: the module's own message, no Python traceback
        assert "Traceback" not in result.get("module_stderr", "") + str(result.get("exception", "")), (i, result)
    assert _snapshot(containers) == before and haproxy.servers() == lb_before


def test_haproxy_membership_survives_reload(engine, haproxy, workload_name, containers, tmp_path):
    _create(tmp_path, workload_name, haproxy)
    upgrade = module_args(workload_name, haproxy, image=IMAGE_V2, batch_size=2)
    run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": upgrade}])
    names = {c.name for c in containers(all=False)}
    assert set(haproxy.servers()) == names
    assert _file_members(haproxy) == names, pathlib.Path(haproxy.servers_file).read_text()
    haproxy.reload()
    assert set(haproxy.servers()) == names
    with urllib.request.urlopen(f"{haproxy.url}/version", timeout=5) as resp:
        assert json.load(resp)["version"] == "2.0"


def test_reload_without_servers_file_loses_members(engine, workload_name, containers, tmp_path):
    """The control for the test above: runtime-only servers are gone after a reload."""
    proxy = Haproxy(workload_name)
    try:
        lb = dict(proxy.lb_options())
        lb.pop("servers_file")
        run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": {
            "platform": "docker", "name": workload_name, "image": IMAGE_V1, "replicas": 1,
            "docker_container": container_spec(), "load_balancer": lb, "health_timeout": 20}}])
        assert len(proxy.servers()) == 1
        proxy.reload()
        assert proxy.servers() == {}
    finally:
        proxy.stop()


def test_two_hosts_upgraded_through_inventory(engine, second_engine, workload_name, containers, tmp_path):
    first, second = Haproxy(workload_name), Haproxy(workload_name)
    try:
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {
            "host1": {"zd_docker_host": "unix:///var/run/docker.sock", "zd_lb": first.lb_options()},
            "host2": {"zd_docker_host": second_engine.host, "zd_lb": second.lb_options()},
        }}}))
        common = {"platform": "docker", "name": workload_name, "docker_host": "{{ zd_docker_host }}",
                  "load_balancer": "{{ zd_lb }}", "health_timeout": 20, "drain_timeout": 2}
        res = run_playbook(tmp_path, [
            {"zerodown.rollout.image_upgrade": dict(common, image=IMAGE_V1, replicas=2,
                                                    docker_container=container_spec())},
            {"zerodown.rollout.image_upgrade": dict(common, image=IMAGE_V2)},
            {"zerodown.rollout.rollout_info": {k: common[k] for k in ("platform", "name", "docker_host", "load_balancer")}},
        ], inventory=str(inventory))
        assert set(res) == {"host1", "host2"}
        for host, out in res.items():
            assert out["r0"]["changed"] and out["r1"]["changed"], (host, out)
            assert out["r2"]["revision"] == 2 and out["r2"]["status"]["done"], (host, out["r2"])
        import docker
        client2 = docker.DockerClient(base_url=second_engine.host, version="auto")
        try:
            for client, proxy in ((engine, first), (client2, second)):
                running = containers(client, all=False)
                assert sorted(c.labels["zerodown.image"] for c in running) == [IMAGE_V2, IMAGE_V2]
                assert set(proxy.servers()) == {c.name for c in running}
                with urllib.request.urlopen(f"{proxy.url}/version", timeout=5) as resp:
                    assert json.load(resp)["version"] == "2.0"
            # each engine only holds its own host's containers
            ids1 = {c.id for c in containers(engine)}
            ids2 = {c.id for c in containers(client2)}
            assert len(ids1) == len(ids2) == 4 and not ids1 & ids2
        finally:
            client2.close()
    finally:
        first.stop()
        second.stop()


def _file_members(haproxy) -> set[str]:
    return {container_of(line.split()[1]) for line in pathlib.Path(haproxy.servers_file).read_text().splitlines()
            if line.split()[:1] == ["server"]}


def test_two_hosts_behind_one_haproxy_host_by_host_under_load(engine, second_engine, workload_name, containers, tmp_path):
    """The classic topology: one HAProxy backend in front of two Docker hosts, each publishing on its own address.
    Each run owns only its own engine's members (the workload name is the same on both hosts)."""
    import docker

    shared = Haproxy(workload_name)
    client2 = docker.DockerClient(base_url=second_engine.host, version="auto")
    recorder = None
    try:
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {
            "host1": {"zd_docker_host": "unix:///var/run/docker.sock", "zd_publish": "127.0.0.1"},
            "host2": {"zd_docker_host": second_engine.host, "zd_publish": second_engine.publish_address},
        }}}))
        common = {"platform": "docker", "name": workload_name, "docker_host": "{{ zd_docker_host }}",
                  "load_balancer": shared.lb_options(), "health_timeout": 20, "drain_timeout": 2}
        spec = dict(container_spec(), publish_address="{{ zd_publish }}")

        def members_match() -> None:
            running = {c.name for client in (engine, client2) for c in containers(client, all=False)}
            assert len(running) == 4
            assert shared.servers() == {name: "UP" for name in running}, (shared.members(), running)
            assert _file_members(shared) == running, pathlib.Path(shared.servers_file).read_text()
            tags = {member.rsplit(".", 1)[1] for member in shared.members()}
            assert len(tags) == 2, shared.members()  # one engine tag per host

        created = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": dict(
            common, image=IMAGE_V1, replicas=2, docker_container=spec)}], inventory=str(inventory), serial=1)
        assert all(out["r0"]["changed"] for out in created.values()), created
        members_match()
        recorder = TrafficRecorder(SamplerConfig(url=f"{shared.url}/version", concurrency=4, timeout=5), rate=100,
                                   max_duration=300).start()
        upgraded = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": dict(common, image=IMAGE_V2)}],
                                inventory=str(inventory), serial=1)
        for host, out in upgraded.items():
            assert out["r0"]["changed"] and out["r0"]["revision"] == 2 and out["r0"]["lb_repaired"] == [], (host, out)
        members_match()
        rolled = run_playbook(tmp_path, [{"zerodown.rollout.rollback": common}], inventory=str(inventory), serial=1)
        for host, out in rolled.items():
            assert out["r0"]["changed"] and out["r0"]["revision"] == 1, (host, out)
        members_match()
        timeline = recorder.stop()
        recorder = None
        summary = timeline["summary"]
        assert summary["errors"] == 0, (summary["error_kinds"], summary["error_examples"])
        assert set(summary["versions"]) >= {"1.0", "2.0"}, summary
        for client in (engine, client2):
            assert sorted(c.labels["zerodown.image"] for c in containers(client, all=False)) == [IMAGE_V1] * 2
    finally:
        if recorder is not None:
            recorder.stop()
        client2.close()
        shared.stop()


def test_a_run_with_nothing_to_change_repairs_the_load_balancer(engine, haproxy, workload_name, containers, tmp_path):
    """A member lost (deleted by hand) and a stale one (a stopped container's) are reported by rollout_info and
    rollout_wait, predicted by check mode, and repaired by image_upgrade and rollback with nothing else to do."""
    from tests.support.docker_harness import haproxy_command

    _create(tmp_path, workload_name, haproxy, replicas=2)
    members = haproxy.members()
    tag = next(iter(members)).rsplit(".", 1)[1]
    lost = sorted(members)[0]
    for command in ("set server {} state maint", "del server {}"):
        haproxy_command(command.format(f"{haproxy.backend}/{lost}"), haproxy.socket)
    stale = f"{workload_name}-r1-dead00.{tag}"  # what a reload of an older servers file leaves
    haproxy_command(f"add server {haproxy.backend}/{stale} 127.0.0.1:9", haproxy.socket)
    haproxy_command(f"set server {haproxy.backend}/{stale} state ready", haproxy.socket)
    info_args = {"platform": "docker", "name": workload_name, "load_balancer": haproxy.lb_options()}
    upgrade = {"zerodown.rollout.image_upgrade": module_args(workload_name, haproxy, image=IMAGE_V1)}
    lb_before = haproxy.members()
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.rollout_info": info_args},                        # r0
        {"zerodown.rollout.rollout_wait": dict(info_args, timeout=2)},       # r1
        dict(upgrade, check_mode=True),                                      # r2
    ])["localhost"]
    status = res["r0"]["status"]
    assert status["state"] == "progressing" and status["reason"] == "LoadBalancerOutOfStep", status
    assert any(stale in d for d in status["lb_divergence"]) and any(lost in d for d in status["lb_divergence"])
    assert res["r1"]["failed"] and "does not hold what the workload runs" in res["r1"]["msg"], res["r1"]
    assert res["r2"]["changed"] and "would repair the load balancer" in res["r2"]["msg"], res["r2"]
    assert haproxy.members() == lb_before  # reading and check mode changed nothing
    res = run_playbook(tmp_path, [upgrade, upgrade])["localhost"]
    res = {"r3": res["r0"], "r4": res["r1"]}
    assert res["r3"]["changed"] and res["r3"]["revision"] == 1, res["r3"]
    repaired = " ".join(res["r3"]["lb_repaired"])
    assert stale in repaired and lost in repaired, res["r3"]
    assert not res["r4"]["changed"] and res["r4"]["lb_repaired"] == [], res["r4"]
    running = {c.name for c in containers(all=False)}
    assert haproxy.servers() == {name: "UP" for name in running}
    assert _file_members(haproxy) == running

    # the same through rollback with nothing to roll back to change: to the revision it runs
    haproxy_command(f"set server {haproxy.backend}/{lost} state maint", haproxy.socket)
    haproxy_command(f"del server {haproxy.backend}/{lost}", haproxy.socket)
    rollback = {"zerodown.rollout.rollback": module_args(workload_name, haproxy, to_revision=1)}
    again = run_playbook(tmp_path, [rollback])["localhost"]["r0"]
    assert again["changed"] and any(lost in f for f in again["lb_repaired"]), again
    assert haproxy.servers() == {name: "UP" for name in running}


def test_interrupted_upgrade_is_reported_and_finished(engine, haproxy, workload_name, containers, tmp_path):
    """A run killed mid-swap leaves two revisions running: status says so, re-running finishes the job."""
    _create(tmp_path, workload_name, haproxy)
    from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import clone_config

    # what a killed upgrade leaves behind: one new container of revision 2 running next to revision 1
    old = containers(all=False)[0]
    config, _later = clone_config(old.attrs, engine.api.inspect_image(old.attrs["Image"])["Config"], IMAGE_V2, 2, "x")
    created = engine.api.create_container_from_config(config, f"{workload_name}-r2-manual")
    engine.api.start(created["Id"])
    info_args = {"platform": "docker", "name": workload_name, "load_balancer": haproxy.lb_options()}
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.rollout_info": info_args},
        {"zerodown.rollout.rollout_wait": dict(info_args, timeout=2)},
        {"zerodown.rollout.image_upgrade": module_args(workload_name, haproxy, image=IMAGE_V2), "check_mode": True},
        {"zerodown.rollout.image_upgrade": module_args(workload_name, haproxy, image=IMAGE_V2)},
    ])["localhost"]
    assert res["r0"]["status"]["state"] == "progressing" and "still run revision" in res["r0"]["status"]["message"]
    assert res["r1"]["failed"] and "timed out" in res["r1"]["msg"], res["r1"]
    assert res["r2"]["changed"] and "would" in res["r2"]["msg"]
    assert res["r3"]["changed"] and res["r3"]["status"]["done"], res["r3"]
    running = containers(all=False)
    assert sorted(c.labels["zerodown.revision"] for c in running) == ["2", "2"]
    assert set(haproxy.servers()) == {c.name for c in running}


def test_a_container_created_and_never_started_is_removed(engine, haproxy, workload_name, containers, tmp_path):
    """What a run cut off between create and start (a kill, an engine restart) leaves: check mode names it, the
    next run removes it (changed, in pruned), the one after changes nothing."""
    _create(tmp_path, workload_name, haproxy)
    from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import clone_config

    old = containers(all=False)[0]
    config, _later = clone_config(old.attrs, engine.api.inspect_image(old.attrs["Image"])["Config"], IMAGE_V2, 2, "x")
    half = engine.api.create_container_from_config(config, f"{workload_name}-r2-halfmade")["Id"]
    upgrade = {"zerodown.rollout.image_upgrade": module_args(workload_name, haproxy, image=IMAGE_V1)}
    res = run_playbook(tmp_path, [dict(upgrade, check_mode=True)])["localhost"]
    assert res["r0"]["changed"] and "never started" in res["r0"]["msg"], res["r0"]
    assert half in {c.id for c in containers()}  # check mode removed nothing
    res = run_playbook(tmp_path, [upgrade, upgrade])["localhost"]
    assert res["r0"]["changed"] and res["r0"]["pruned"] == [f"{workload_name}-r2-halfmade"], res["r0"]
    assert not res["r1"]["changed"], res["r1"]
    assert half not in {c.id for c in containers()}
    assert sorted(c.labels["zerodown.revision"] for c in containers()) == ["1", "1"]
