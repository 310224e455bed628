"""docker/change.py: a changing run's lock, and its end (stops joined, pruning, the last repair, the wait and the
result), with the workload and its engine stood in for."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.change import ChangeRun
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.engine import EngineNotFound
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.lock import LockOwner, lock_name
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import Replica
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    ActionResult,
    RolloutFailed,
    RolloutStatus,
    WorkloadRef,
)

from tests.support.fake_module import FakeModule


def container(cid, rev, running, finished="", health=None):
    labels = {"zerodown.workload": "w", "zerodown.revision": str(rev), "zerodown.image": f"app:{rev}"}
    return Replica.from_attrs({"Id": cid, "Name": f"/w-r{rev}-{cid}", "Image": f"sha:{rev}",
                               "Config": {"Labels": labels},
                               "State": {"Status": running if isinstance(running, str) else
                                         ("running" if running else "exited"),
                                         "StartedAt": f"2024-01-0{rev}T00:00:00Z", "FinishedAt": finished,
                                         **({"Health": {"Status": health}} if health else {})}})


class Engine:
    """What a changing run asks of DockerEngine: the lock container's calls and removals."""

    def __init__(self, log, locks=None):
        self.log = log
        self.locks = dict(locks or {})  # name -> (id, labels)

    def create_unless_taken(self, config, name, what):
        if name in self.locks:
            return None
        self.locks[name] = ("lock1", config["Labels"])
        self.log.append(("lock", name))
        return "lock1"

    def inspect_container(self, ref, what=""):
        if ref not in self.locks:
            raise EngineNotFound(f"the Docker engine found nothing to {what}")
        cid, labels = self.locks[ref]
        return {"Id": cid, "Config": {"Labels": labels}}

    def remove(self, cid, volumes=True, what=""):
        self.log.append(("removed", cid))
        self.locks = {n: v for n, v in self.locks.items() if v[0] != cid}


class Workload:
    """Stands for workload.py's DockerWorkload: ``histories`` are what each load returns in turn (the last one
    again once they run out); records what the run asks."""

    def __init__(self, *histories, locks=None):
        self.ref = WorkloadRef("docker", "w")
        self.log = []
        self.engine = Engine(self.log, locks)
        self.histories = list(histories)
        self.fixes = []
        self.bound = False
        self.waited = []
        self.repair_waits = []  # each repair's wait: whether it waits for a member it adds or moves until up

    def host(self):
        return "the default Docker engine"

    def engine_label(self):
        return "unix:///var/run/docker.sock"

    def load(self):
        return self.histories.pop(0) if len(self.histories) > 1 else self.histories[0]

    def begin_changes(self, history):
        self.bound = True
        self.log.append(("begin", sorted(r.name for r in history.replicas)))

    def repair(self, last=False, history=None, wait=True):
        self.log.append(("repair", last))
        self.repair_waits.append(wait)

    def divergence(self, history, members=None):
        return []

    def joining(self, history):
        return []

    def admit_joining(self, history, warn):
        self.log.append(("admit_joining", sorted(r.name for r in self.joining(history))))
        return history

    def status(self, history, target=None):
        return RolloutStatus(desired=1, updated=1, ready=0, available=0, revision=2, state="progressing",
                             message="waiting")

    def wait(self, revision, timeout, progress=None):
        self.waited.append((revision, timeout))
        return self.status(None, revision)


def run_on(workload, check_mode=False, **params):
    return ChangeRun(workload, FakeModule(params, check_mode), params)


# -- the lock ---------------------------------------------------------------------------------------------------
def test_under_the_lock_half_made_containers_go_first_and_the_lock_is_released_at_the_end():
    with_half = History([container("a", 1, True), container("h", 2, "created")])
    workload = Workload(with_half, History([container("a", 1, True)]))
    run = run_on(workload)

    def action():
        assert run.holding_lock and workload.bound
        return ActionResult(changed=True, workload=workload.ref, message="done")

    assert run.locked("image_upgrade", "app:2", ["sha:1"], action).message == "done"
    assert workload.log == [("lock", lock_name("w")), ("removed", "h"), ("begin", ["w-r1-a"]), ("removed", "lock1")]
    assert run.half_made_removed == ["w-r2-h"] and not run.holding_lock and not workload.bound


def test_a_lock_held_from_another_host_fails_naming_it_and_changes_nothing():
    holder = LockOwner(host="elsewhere", pid=7, operation="rollback", target="revision 1 (app:1)")
    workload = Workload(History([container("a", 1, True)]),
                        locks={lock_name("w"): ("other", holder.to_labels("w"))})
    run = run_on(workload, lock_timeout=0)
    with pytest.raises(RolloutFailed) as err:
        run.locked("image_upgrade", "app:2", ["sha:1"], lambda: pytest.fail("acted without the lock"))
    assert "is locked by another run: rollback to revision 1 (app:1) by pid 7 on host elsewhere" in err.value.msg
    assert "gave up after lock_timeout=0s and changed nothing" in err.value.msg
    assert err.value.details["lock"]["host"] == "elsewhere" and workload.log == []


def test_a_failure_under_the_lock_still_releases_it():
    workload = Workload(History([container("a", 1, True)]))
    run = run_on(workload)

    def action():
        raise RolloutFailed("the gate failed")

    with pytest.raises(RolloutFailed, match="the gate failed"):
        run.locked("rollback", "revision 1", ["sha:1"], action)
    assert workload.log[-1] == ("removed", "lock1") and not run.holding_lock


# -- the end of a run -------------------------------------------------------------------------------------------
def test_progress_has_each_batch_then_the_final_wait():
    workload = Workload(History([container("c", 2, True)]))
    run = run_on(workload, retain=5)
    run.progress.note("batch 1: 1 of 1 new replica(s) healthy, 0 old one(s) left")

    def wait(revision, timeout, progress=None):  # the final wait reports its statuses through progress
        progress(workload.status(None))
        progress(workload.status(None))  # the same message again: kept once
        return workload.status(None)
    workload.wait = wait
    result = run.finish(2, 1, {"image": "app:1"}, "upgraded")
    assert [e["message"] for e in result.extra["progress"]] == [
        "batch 1: 1 of 1 new replica(s) healthy, 0 old one(s) left", "waiting"]


@pytest.mark.parametrize("given, waited", [(0, 0.0), (7, 7.0), (None, 300.0)])
def test_wait_timeout_is_honoured_zero_included(given, waited):
    workload = Workload(History([container("c", 2, True)]))
    run_on(workload, wait_timeout=given, retain=5).finish(2, 1, {"image": "app:1"}, "upgraded")
    assert workload.waited == [(2, waited)]


@pytest.mark.parametrize("params, waits_in_repair, final_wait", [
    ({}, False, True),  # the final wait waits for a member the last repair moved, up to wait_timeout
    ({"wait": False}, True, False),  # no final wait: the repair itself waits (up to health_timeout)
    ({"max_batches": 1}, True, False),  # stopped with the old revision still serving on purpose: no final wait
])
def test_the_last_repair_leaves_waiting_to_the_final_wait_when_there_is_one(params, waits_in_repair, final_wait):
    workload = Workload(History([container("c", 2, True), container("b", 1, True)]))
    run_on(workload, retain=5, **params).finish(2, 1, {"image": "app:1"}, "upgraded")
    assert workload.repair_waits == [waits_in_repair] and bool(workload.waited) == final_wait


def test_the_end_prunes_beyond_retain_then_repairs_the_pool_a_last_time():
    history = History([container("c", 3, True), container("b", 2, False, "2024-01-03T00:00:00Z"),
                       container("a", 1, False, "2024-01-02T00:00:00Z")])
    workload = Workload(history, History([container("c", 3, True), container("b", 2, False)]))
    result = run_on(workload, retain=1, wait=False).finish(3, 2, {"image": "app:2"}, "upgraded")
    assert workload.log == [("removed", "a"), ("repair", True)]
    assert result.extra["pruned"] == ["w-r1-a"] and result.after == {"revision": 3, "image": "app:3", "replicas": 1}
    assert "partial" not in result.extra and workload.waited == []


def test_nothing_to_swap_changes_nothing_or_says_what_it_would_prune():
    history = History([container("c", 3, True), container("b", 2, False, "2024-01-03T00:00:00Z"),
                       container("a", 1, False, "2024-01-02T00:00:00Z")])
    before = {"revision": 3, "image": "app:3", "replicas": 1}
    result = run_on(Workload(history), retain=2).nothing_to_swap(history, 3, before, "already there",
                                                                 lambda: pytest.fail("took the lock"))
    assert not result.changed and result.message == "already there"
    result = run_on(Workload(history), check_mode=True, retain=1).nothing_to_swap(
        history, 3, before, "already there", lambda: pytest.fail("took the lock in check mode"))
    assert result.changed and result.message == ("already there; would remove the 1 stopped container(s) of "
                                                 "revision(s) 1, beyond retain=1: w-r1-a")
    relocked = run_on(Workload(history), retain=1).nothing_to_swap(
        history, 3, before, "already there", lambda: ActionResult(changed=True, workload=None, message="relocked"))
    assert relocked.message == "relocked"


def test_nothing_to_swap_takes_the_lock_for_a_replica_that_joins_once_healthy():
    """A replica of the current revision started just before the run, HEALTHCHECK still starting: check mode says
    it would make it a member; a real run takes the lock, whose start waits for it (DockerWorkload.begin_changes)."""
    history = History([container("c", 3, True)])
    before = {"revision": 3, "image": "app:3", "replicas": 1}
    workload = Workload(history)
    workload.joining = lambda history: [container("d", 3, True, health="starting")]
    result = run_on(workload, check_mode=True, retain=2).nothing_to_swap(
        history, 3, before, "already there", lambda: pytest.fail("took the lock in check mode"))
    assert result.changed and result.message == ("already there; would wait for w-r3-d, whose HEALTHCHECK has not "
                                                 "passed yet (starting, or unhealthy for a moment), and make them load "
                                                 "balancer members once healthy")
    relocked = run_on(workload, retain=2).nothing_to_swap(
        history, 3, before, "already there", lambda: ActionResult(changed=True, workload=None, message="relocked"))
    assert relocked.message == "relocked"
    locked = run_on(workload, retain=2)
    locked.holding_lock = True  # the relocked run: waits for them, then repairs the pool to the new intent
    waited = locked.nothing_to_swap(history, 3, before, "already there", lambda: pytest.fail("took the lock again"))
    assert ("admit_joining", ["w-r3-d"]) in workload.log, workload.log
    # it did not become healthy (a warning names it): nothing changed, and a run that finds the same reports no change
    assert not waited.changed and waited.message == "already there" and ("repair", True) not in workload.log
    # it became healthy (before or after the lock's start bound the intent): admit_joining binds again, it joins
    workload.joining = lambda history: []
    workload.admit_joining = lambda history, warn: workload.fixes.append("added the missing w-r3-d") or history
    joined = locked.nothing_to_swap(history, 3, before, "already there", lambda: pytest.fail("took the lock again"))
    assert joined.changed and joined.message == "already there; repaired the load balancer (added the missing w-r3-d)"
    assert workload.log[-1] == ("repair", True)


def test_check_mode_does_not_count_a_replica_unhealthy_all_along_as_a_change():
    """A real run waits UNHEALTHY_GRACE for it, warns and changes nothing: check mode says it would wait, unchanged."""
    history = History([container("c", 3, True)])
    before = {"revision": 3, "image": "app:3", "replicas": 1}
    workload = Workload(history)
    workload.joining = lambda history: [container("d", 3, True, health="unhealthy")]
    result = run_on(workload, check_mode=True, retain=2).nothing_to_swap(
        history, 3, before, "already there", lambda: pytest.fail("took the lock in check mode"))
    assert not result.changed and "would wait for w-r3-d" in result.message
