"""The per-workload lock on a real engine behind HAProxy: two runs started together change the workload one
after the other; a lock held by a live owner elsewhere fails clearly and changes nothing; a lock left by a
dead process of this host is taken over; check mode and the reading modules never take it nor see it.
And a run with nothing else to do still prunes the revisions beyond ``retain`` (what a run killed between
its last swap and its pruning leaves), under the lock like any change."""
from __future__ import annotations

import functools
import concurrent.futures
import subprocess
import sys

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.lock import LockOwner, lock_name, this_process
from tests.support.docker_harness import IMAGE_SLOW_V1, IMAGE_V1, IMAGE_V2, container_spec, module_args, run_playbook

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.docker


_base = functools.partial(module_args, stop_timeout=2)


def _create(tmp_path, name, haproxy, replicas=2):
    out = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": _base(
        name, haproxy, image=IMAGE_V1, replicas=replicas, docker_container=container_spec())}])["localhost"]["r0"]
    assert out["changed"] and not out.get("failed"), out


def _snapshot(containers, haproxy):
    return sorted((c.id, c.status, c.labels["zerodown.revision"]) for c in containers()), haproxy.servers()


def _lock_container(engine, name):
    try:
        return engine.containers.get(lock_name(name))
    except docker.errors.NotFound:
        return None


@pytest.fixture
def hand_made_lock(engine, workload_name):
    """Creates a lock container as another run would have left it; removes it after the test."""
    def make(holder: LockOwner):
        return engine.api.create_container(IMAGE_V1, name=lock_name(workload_name), labels=holder.to_labels(workload_name),
                                           entrypoint=["/zerodown-lock"])["Id"]
    yield make
    leftover = _lock_container(engine, workload_name)
    if leftover is not None:
        leftover.remove(force=True)


def test_two_runs_started_together_change_the_workload_one_after_the_other(
        engine, haproxy, workload_name, containers, tmp_path):
    _create(tmp_path, workload_name, haproxy, replicas=2)
    task = [{"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2)}]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(run_playbook, tmp_path, task) for _index in range(2)]
        results = [run.result()["localhost"]["r0"] for run in runs]
    assert not any(r.get("failed") for r in results), results
    # one did the upgrade; the other waited for the lock, read the workload again and found nothing to do
    assert sorted(r["changed"] for r in results) == [False, True], results
    assert all(r["revision"] == 2 for r in results), results
    running = [c for c in containers() if c.status == "running"]
    assert len(running) == 2 and {c.labels["zerodown.image"] for c in running} == {IMAGE_V2}, running
    assert {c.labels["zerodown.revision"] for c in containers()} == {"1", "2"}  # one new revision, not two
    servers = haproxy.servers()
    assert set(servers) == {c.name for c in running} and all(s.startswith("UP") for s in servers.values()), servers
    assert _lock_container(engine, workload_name) is None


def test_a_live_owner_elsewhere_fails_clearly_and_nothing_changes(engine, haproxy, workload_name, containers,
                                                                  hand_made_lock, tmp_path):
    _create(tmp_path, workload_name, haproxy, replicas=2)
    holder = LockOwner(host="ctl-elsewhere", pid=4242, pid_start="123", operation="image_upgrade",
                       target="zerodown/demo-app:9.9", since="2024-06-11T10:00:00Z")
    lock_id = hand_made_lock(holder)
    before = _snapshot(containers, haproxy)
    info_args = {"platform": "docker", "name": workload_name, "load_balancer": haproxy.lb_options()}
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, lock_timeout=1)},  # r0
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, replicas=3,       # r1
                                                 lock_timeout=0)},
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, lock_timeout=0),  # r2
         "check_mode": True},
        {"zerodown.rollout.rollout_info": info_args},                                                      # r3
        {"zerodown.rollout.rollout_wait": dict(info_args, timeout=5)},                                     # r4
    ])["localhost"]
    up, scale, check, info, wait = (res[f"r{i}"] for i in range(5))
    assert up.get("failed") and scale.get("failed"), (up, scale)
    for out in (up, scale):
        msg = out["msg"]
        assert "locked by another run" in msg and "image_upgrade to zerodown/demo-app:9.9 by pid 4242 on host " \
            "ctl-elsewhere since 2024-06-11T10:00:00Z" in msg, msg
        assert f"docker rm {lock_name(workload_name)}" in msg and "changed nothing" in msg, msg
        assert out["lock"]["host"] == "ctl-elsewhere" and out["lock"]["pid"] == 4242, out
        assert "Traceback" not in str(out)
    assert "lock_timeout=1s" in up["msg"] and "lock_timeout=0s" in scale["msg"]
    # check mode does not need the lock: it predicts, and leaves the lock as it was
    assert check["changed"] and not check.get("failed") and "would upgrade" in check["msg"], check
    # the reading modules neither wait for the lock nor count its container as a replica or a revision;
    # rollout_info says who holds it
    assert not info.get("failed") and not wait.get("failed"), (info, wait)
    listed = str(info["revisions"]) + str(info["status"]["replicas"]) + str(wait["status"])
    assert lock_name(workload_name) not in listed, listed
    assert info["status"]["state"] == "complete" and info["status"]["lock"]["host"] == "ctl-elsewhere", info["status"]
    assert "locked by image_upgrade to zerodown/demo-app:9.9 by pid 4242" in info["status"]["message"], info["status"]
    assert [(r["revision"], r["replicas"]) for r in info["revisions"]] == [(1, 2)]
    assert _snapshot(containers, haproxy) == before
    assert _lock_container(engine, workload_name).id == lock_id  # a live owner's lock is never removed


def test_a_lock_left_by_a_dead_process_of_this_host_is_taken_over(engine, haproxy, workload_name, containers,
                                                                  hand_made_lock, tmp_path):
    _create(tmp_path, workload_name, haproxy, replicas=2)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    # what a killed run on this machine (same host name, boot, pid namespace) leaves behind
    mine = this_process("rollback", "revision 1 (zerodown/demo-app:1.0)")
    dead = LockOwner(**dict(mine.to_dict(), pid=child.pid))
    hand_made_lock(dead)
    out = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": _base(
        workload_name, haproxy, image=IMAGE_V2, lock_timeout=0)}])["localhost"]["r0"]
    assert out["changed"] and not out.get("failed") and out["revision"] == 2, out
    warnings = " ".join(out.get("warnings", []))
    assert f"took over the stale lock of Docker workload {workload_name!r} left by rollback to revision 1 " \
        f"(zerodown/demo-app:1.0) by pid {child.pid} on host {mine.host}" in warnings, warnings
    assert f"process {child.pid} is gone" in warnings
    running = [c for c in containers() if c.status == "running"]
    assert {c.labels["zerodown.image"] for c in running} == {IMAGE_V2} and len(running) == 2
    assert set(haproxy.servers()) == {c.name for c in running}
    assert _lock_container(engine, workload_name) is None  # taken over, then released

    # the same for a rollback, from a lock whose pid now belongs to another process (this one)
    hand_made_lock(LockOwner(**dict(mine.to_dict(), pid_start=str(int(mine.pid_start) + 1))))
    out = run_playbook(tmp_path, [{"zerodown.rollout.rollback": _base(workload_name, haproxy, lock_timeout=0)}])
    out = out["localhost"]["r0"]
    assert out["changed"] and not out.get("failed") and out["revision"] == 1, out
    assert f"pid {mine.pid} now belongs to another process" in " ".join(out.get("warnings", [])), out
    assert _lock_container(engine, workload_name) is None


def test_a_run_with_nothing_else_to_do_prunes_revisions_beyond_retain(engine, haproxy, workload_name, containers,
                                                                      tmp_path):
    keep_all = {"retain": 5, "stop_timeout": 1}
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V1, replicas=1,
                                                 docker_container=container_spec(), **keep_all)},    # r0: rev 1
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_V2, **keep_all)},  # r1: rev 2
        # a third image: back to IMAGE_V1 would restart the retained revision 1 instead of creating one
        {"zerodown.rollout.image_upgrade": _base(workload_name, haproxy, image=IMAGE_SLOW_V1, **keep_all)},  # r2: rev 3
    ])["localhost"]
    assert all(res[k]["changed"] and not res[k].get("failed") for k in ("r0", "r1", "r2")), res
    assert res["r2"]["revision"] == 3 and res["r2"]["pruned"] == []
    by_revision = {}
    for c in containers():
        by_revision.setdefault(c.labels["zerodown.revision"], []).append(c)
    assert sorted(by_revision) == ["1", "2", "3"]
    rev1 = sorted(c.name for c in by_revision["1"])
    before = _snapshot(containers, haproxy)

    same = _base(workload_name, haproxy, image=IMAGE_SLOW_V1, retain=1)
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": same, "check_mode": True},  # r0
        {"zerodown.rollout.image_upgrade": same},                      # r1
        {"zerodown.rollout.image_upgrade": same},                      # r2
    ])["localhost"]
    check, prune, again = res["r0"], res["r1"], res["r2"]
    assert check["changed"] and not check.get("failed") and check["revision"] == 3, check
    assert f"would remove the 1 stopped container(s) of revision(s) 1, beyond retain=1: {rev1[0]}" in check["msg"], check
    assert prune["changed"] and not prune.get("failed") and prune["pruned"] == rev1, prune
    assert "already runs" in prune["msg"] and "removed the 1 stopped container(s) of revision(s) 1" in prune["msg"]
    assert prune["revision"] == prune["previous_revision"] == 3 and prune["status"]["state"] == "complete", prune
    assert not again["changed"] and "pruned" not in again, again
    # only revision 1's container went; what serves, and the load balancer, are as they were
    after = _snapshot(containers, haproxy)
    assert after[1] == before[1] and after[0] == [row for row in before[0] if row[2] != "1"], (before, after)
    assert _lock_container(engine, workload_name) is None

    # rollback with nothing to roll back (already on that revision) prunes the same way
    stay = _base(workload_name, haproxy, to_revision=3, retain=0)
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.rollback": stay, "check_mode": True},
        {"zerodown.rollout.rollback": stay},
        {"zerodown.rollout.rollout_info": {"platform": "docker", "name": workload_name}},
    ])["localhost"]
    assert res["r0"]["changed"] and "would remove" in res["r0"]["msg"] and "revision(s) 2" in res["r0"]["msg"], res["r0"]
    assert res["r1"]["changed"] and len(res["r1"]["pruned"]) == 1 and res["r1"]["revision"] == 3, res["r1"]
    assert [r["revision"] for r in res["r2"]["revisions"]] == [3], res["r2"]
