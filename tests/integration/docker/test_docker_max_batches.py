"""image_upgrade's max_batches (the Docker canary step) on a real engine behind HAProxy: a partial swap
leaves both revisions serving, a re-run with the same cap changes nothing, a run without it finishes the
upgrade, and a rollback from the partial state brings every replica back to the old revision."""
from __future__ import annotations

import pytest

from tests.support.docker_harness import IMAGE_V1, IMAGE_V2, container_spec, module_args, run_playbook

pytestmark = pytest.mark.docker


def _create(tmp_path, name, haproxy, replicas):
    out = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": module_args(
        name, haproxy, image=IMAGE_V1, replicas=replicas, docker_container=container_spec())}])["localhost"]["r0"]
    assert out["changed"] and not out.get("failed"), out


def _running(containers):
    """Revision label -> names of the running containers."""
    out: dict[str, set[str]] = {}
    for c in containers():
        if c.status == "running":
            out.setdefault(c.labels["zerodown.revision"], set()).add(c.name)
    return out


def _snapshot(containers):
    return sorted((c.id, c.status, c.labels["zerodown.revision"]) for c in containers())


def test_partial_then_idempotent_then_finished(engine, haproxy, workload_name, containers, tmp_path):
    _create(tmp_path, workload_name, haproxy, replicas=3)
    canary = {"zerodown.rollout.image_upgrade": module_args(workload_name, haproxy, image=IMAGE_V2, batch_size=1,
                                                            max_batches=1)}
    before, lb_before = _snapshot(containers), haproxy.servers()
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": module_args(workload_name, haproxy, image=IMAGE_V2, max_batches=0)},  # r0
        dict(canary, check_mode=True),                                                                      # r1
    ])["localhost"]
    assert res["r0"].get("failed") and "max_batches must be 1 or more" in res["r0"]["msg"], res["r0"]
    assert res["r1"]["changed"] and res["r1"]["partial"] is True and res["r1"]["revision"] == 2, res["r1"]
    assert "1 of 3 replicas" in res["r1"]["msg"], res["r1"]["msg"]
    assert _snapshot(containers) == before and haproxy.servers() == lb_before  # bad value and check: no change

    res = run_playbook(tmp_path, [canary, canary])["localhost"]
    first, again = res["r0"], res["r1"]
    assert first["changed"] and first["partial"] is True and not first.get("failed"), first
    assert first["status"]["state"] == "progressing" and first["status"]["updated"] == 1, first["status"]
    running = _running(containers)
    assert {k: len(v) for k, v in running.items()} == {"1": 2, "2": 1}, running
    servers = haproxy.servers()
    # the new replica serves next to the two old ones that are left; the swapped old one is out
    assert set(servers) == running["1"] | running["2"] and all(s.startswith("UP") for s in servers.values()), servers
    stopped = [c for c in containers() if c.status != "running"]
    assert len(stopped) == 1 and stopped[0].labels["zerodown.revision"] == "1"  # stopped and kept for a rollback
    assert not again["changed"] and again["partial"] is True and not again.get("failed"), again
    assert _running(containers) == running

    res = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": module_args(workload_name, haproxy, image=IMAGE_V2)},  # r0 finish
        {"zerodown.rollout.image_upgrade": module_args(workload_name, haproxy, image=IMAGE_V2)},  # r1 nothing left
    ])["localhost"]
    assert res["r0"]["changed"] and res["r0"]["status"]["state"] == "complete", res["r0"]
    assert res["r0"]["partial"] is False and res["r0"]["revision"] == 2
    assert not res["r1"]["changed"], res["r1"]
    running = _running(containers)
    assert list(running) == ["2"] and len(running["2"]) == 3, running
    assert set(haproxy.servers()) == running["2"]


def test_rollback_from_a_partial_upgrade(engine, haproxy, workload_name, containers, tmp_path):
    _create(tmp_path, workload_name, haproxy, replicas=2)
    old_names = _running(containers)["1"]
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": module_args(workload_name, haproxy, image=IMAGE_V2, max_batches=1)},  # r0
        {"zerodown.rollout.rollback": module_args(workload_name, haproxy, to_revision=1)},                       # r1
    ])["localhost"]
    assert res["r0"]["changed"] and res["r0"]["partial"] is True, res["r0"]
    assert res["r1"]["changed"] and not res["r1"].get("failed") and res["r1"]["revision"] == 1, res["r1"]
    assert res["r1"]["status"]["state"] == "complete", res["r1"]["status"]
    running = _running(containers)
    assert running == {"1": old_names}, running  # the same old containers, none of the new revision
    servers = haproxy.servers()
    assert set(servers) == old_names and all(s.startswith("UP") for s in servers.values()), servers


def test_capped_rerun_stops_at_the_cap_and_finishing_goes_batch_by_batch(engine, haproxy, workload_name,
                                                                         containers, tmp_path):
    _create(tmp_path, workload_name, haproxy, replicas=4)

    def upgrade(**extra):
        return {"zerodown.rollout.image_upgrade": module_args(workload_name, haproxy, image=IMAGE_V2, **extra)}

    res = run_playbook(tmp_path, [
        upgrade(batch_size=1, max_batches=1),  # r0: one replica of 2.0
        upgrade(batch_size=3, max_batches=1),  # r1: up to 3 of 2.0: two more, not a whole batch of three
    ])["localhost"]
    assert res["r0"]["partial"] is True and res["r1"]["changed"] and res["r1"]["partial"] is True, res
    assert "3 of 4 replicas" in res["r1"]["msg"], res["r1"]["msg"]
    running = _running(containers)
    assert {k: len(v) for k, v in running.items()} == {"1": 1, "2": 3}, running

    res = run_playbook(tmp_path, [dict(upgrade(batch_size=1), check_mode=True), upgrade(batch_size=1)])["localhost"]
    assert res["r0"]["changed"] and "would finish the rollout" in res["r0"]["msg"], res["r0"]["msg"]
    finish = res["r1"]
    assert finish["changed"] and finish["status"]["state"] == "complete" and finish["partial"] is False, finish
    # the last old replica was swapped like any batch (one new started, then the old one drained), and the
    # workload ends at the replica count the upgrade aimed at, not one more
    assert "finished the rollout" in finish["msg"] and "1 more batch(es)" in finish["msg"], finish["msg"]
    running = _running(containers)
    assert list(running) == ["2"] and len(running["2"]) == 4, running
    assert set(haproxy.servers()) == running["2"]
