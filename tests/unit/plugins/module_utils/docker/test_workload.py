"""docker/workload.py: the workload as found on a (stand-in) engine: reading, the engine's tag in member names,
the null driver without a load balancer, the status and the wait."""
from __future__ import annotations

import time

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Balancer, Member, engine_tag
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.engine import EngineNotFound
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.workload import DockerWorkload
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    RolloutFailed,
    WorkloadNotFound,
    WorkloadRef,
)


def attrs(cid, rev, status="running", started="2024-01-01T00:00:00Z"):
    return {"Id": cid, "Name": f"/w-r{rev}-{cid}", "Image": f"sha:{rev}",
            "Config": {"Labels": {"zerodown.workload": "w", "zerodown.revision": str(rev),
                                  "zerodown.image": f"app:{rev}"}},
            "State": {"Status": status, "StartedAt": started, "Health": {"Status": "healthy"}}}


class Engine:
    """Stands for DockerEngine: the workload's containers by id; ``gone`` are listed but removed before their
    inspect."""

    def __init__(self, *containers, gone=(), info=None):
        self.by_id = {c["Id"]: c for c in containers}
        self.gone = list(gone)
        self._info = info if info is not None else {"ID": "ABCD", "Name": "host-1", "DockerRootDir": "/var/lib/docker"}
        self.asked = []

    def containers(self, label):
        self.asked.append(("containers", label))
        return [{"Id": cid} for cid in list(self.by_id) + self.gone]

    def inspect_container(self, ref, what=""):
        if ref not in self.by_id:
            raise EngineNotFound(f"the Docker engine found nothing to inspect container {ref}")
        return self.by_id[ref]

    def info(self):
        self.asked.append(("info",))
        return self._info


def workload_on(engine, **params):
    docker = DockerWorkload(WorkloadRef("docker", "w"), params, lambda argv: (0, "", ""))
    docker._engine = engine
    return docker


def test_load_reads_the_labelled_containers_and_skips_one_removed_meanwhile():
    engine = Engine(attrs("a", 1), gone=["b"])
    history = workload_on(engine).load()
    assert [r.name for r in history.replicas] == ["w-r1-a"]
    assert engine.asked == [("containers", "zerodown.workload=w")]


def test_a_workload_that_must_exist_and_does_not_says_how_to_create_it():
    with pytest.raises(WorkloadNotFound) as err:
        workload_on(Engine()).existing()
    assert "does not exist on the default Docker engine" in err.value.msg and "image_upgrade" in err.value.msg


@pytest.mark.parametrize("spec", [None, {"type": "none"}, {"type": "none", "socket": "/run/haproxy.sock"}])
def test_without_a_load_balancer_the_null_driver_is_driven(spec):
    docker = workload_on(Engine(), load_balancer=spec)
    assert docker.balancer.kind == "none" and not docker.balancer.routes


def test_without_a_load_balancer_no_member_is_named_so_the_engine_identity_is_never_read():
    engine = Engine(attrs("a", 1))
    docker = workload_on(engine)
    history = docker.load()
    docker.begin_changes(history)
    docker.repair(last=True)
    status = docker.status(history)
    assert status.state == "complete" and status.available == 1
    assert docker.divergence(history) == [] and docker.fixes == []
    assert ("info",) not in engine.asked


def test_members_are_named_with_the_engine_tag_read_once():
    engine = Engine()
    docker = workload_on(engine)
    history = docker.load()
    tag = engine_tag("ABCD|host-1|/var/lib/docker")
    assert docker.scope(history).name("w-r1-a") == f"w-r1-a.{tag}"
    docker.scope(history)
    assert engine.asked.count(("info",)) == 1
    # an engine that tells nothing of itself: the tag comes from its address as written
    silent = workload_on(Engine(info={}), docker_host="tcp://10.0.0.1:2376")
    assert silent.scope(history).tag == engine_tag("tcp://10.0.0.1:2376")


def test_the_wait_fails_at_once_when_another_revision_runs():
    engine = Engine(attrs("a", 1, status="exited"), attrs("b", 2))
    with pytest.raises(RolloutFailed, match="runs revision 2, not revision 1: it was rolled back or upgraded again"):
        workload_on(engine).wait(1, 30)
    assert workload_on(engine).wait(2, 0).state == "complete"


class Pool(Balancer):
    """Stands for a balancer driver: the members it has, what it was bound to (Balancer.bind), each reconcile's
    intent."""
    kind = "haproxy"

    def __init__(self, members=()):
        super().__init__()
        self._members = {name: Member(name, "127.0.0.1:1") for name in members}
        self.reconciled = []
        self.waited = []  # each reconcile's wait: whether the driver waits for a member it adds until up

    def members(self):
        return dict(self._members)

    def default_weight(self):
        return None

    def reconcile(self, settle=False, wait=True):
        self.reconciled.append(dict(self.intent))
        self.waited.append(wait)
        return [f"moved {n} to {a}" for n, a in self.intent.items() if n in self._members and self._members[n].address != a]


def _published(container, port):
    container["NetworkSettings"] = {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}}
    return container


class Starting(Engine):
    """Replica ``b`` reports its HEALTHCHECK ``health`` (``starting``) for its first ``checks`` inspects, then
    ``healthy``."""

    def __init__(self, checks, *containers, health="starting"):
        super().__init__(*containers)
        self.checks, self.health = checks, health

    def inspect_container(self, ref, what=""):
        found = super().inspect_container(ref, what)
        if ref == "b":
            self.checks -= 1
            found["State"]["Health"]["Status"] = self.health if self.checks >= 0 else "healthy"
            found["State"]["Health"]["Log"] = [{"ExitCode": 1, "Output": "wget: download timed out"}]
        return found


def test_a_replica_still_starting_is_waited_for_then_made_a_member(monkeypatch):
    """Containers started just before the run (adopted, Compose's, by hand): one whose HEALTHCHECK is still
    starting joins the pool in this run once healthy, instead of being left out of it."""
    monkeypatch.setattr("ansible_collections.zerodown.rollout.plugins.module_utils.docker.workload.WAIT_POLL", 0.01)
    engine = Starting(3, _published(attrs("a", 1), 32001), _published(attrs("b", 1), 32002))
    docker = workload_on(engine, health_timeout=5)
    pool = docker._balancer = Pool()
    tag = docker.scope(docker.load()).tag
    history = docker.load()
    assert [r.health for r in history.replicas] == ["healthy", "starting"]
    assert [r.name for r in docker.joining(history)] == ["w-r1-b"]
    docker.begin_changes(history)  # every locked run's start: no wait (a swap would replace them)
    assert pool.intent == {f"w-r1-a.{tag}": "127.0.0.1:32001"}
    warned = []
    docker.admit_joining(history, warned.append)  # a run that keeps the revision: waits, then they are members
    assert pool.intent == {f"w-r1-a.{tag}": "127.0.0.1:32001", f"w-r1-b.{tag}": "127.0.0.1:32002"} and not warned


def test_a_replica_that_keeps_starting_is_left_out_with_a_warning(monkeypatch):
    monkeypatch.setattr("ansible_collections.zerodown.rollout.plugins.module_utils.docker.workload.WAIT_POLL", 0.01)
    engine = Starting(10 ** 6, _published(attrs("a", 1), 32001), _published(attrs("b", 1), 32002))
    docker = workload_on(engine, health_timeout=0.2)
    pool = docker._balancer = Pool()
    warned = []
    docker.begin_changes(docker.load())
    docker.admit_joining(docker.load(), warned.append)
    assert list(pool.intent) == [docker.scope(docker.load()).name("w-r1-a")]
    assert warned == ["container(s) w-r1-b: HEALTHCHECK still 'starting' after health_timeout=0.2s; not added to the "
                      "load balancer in this run (a later run adds them once healthy)"]


def test_a_replica_unhealthy_for_a_moment_is_waited_for_then_made_a_member(monkeypatch):
    """A check that timed out on a busy host flips a container that just started to unhealthy until its next check
    passes: within UNHEALTHY_GRACE it is waited for, as the swap's gate forgives it, not silently left out."""
    module = "ansible_collections.zerodown.rollout.plugins.module_utils.docker.workload"
    monkeypatch.setattr(f"{module}.WAIT_POLL", 0.01)
    monkeypatch.setattr(f"{module}.UNHEALTHY_GRACE", 0.5)
    engine = Starting(5, _published(attrs("a", 1), 32001), _published(attrs("b", 1), 32002), health="unhealthy")
    docker = workload_on(engine, health_timeout=5)
    pool = docker._balancer = Pool()
    history = docker.load()
    assert [r.name for r in docker.joining(history)] == ["w-r1-b"]
    docker.begin_changes(history)
    warned = []
    docker.admit_joining(history, warned.append)
    name = docker.scope(history).name
    assert pool.intent == {name("w-r1-a"): "127.0.0.1:32001", name("w-r1-b"): "127.0.0.1:32002"} and not warned


def test_a_replica_that_stays_unhealthy_is_left_out_and_named(monkeypatch):
    module = "ansible_collections.zerodown.rollout.plugins.module_utils.docker.workload"
    monkeypatch.setattr(f"{module}.WAIT_POLL", 0.01)
    monkeypatch.setattr(f"{module}.UNHEALTHY_GRACE", 0.2)
    engine = Starting(10 ** 6, _published(attrs("a", 1), 32001), _published(attrs("b", 1), 32002), health="unhealthy")
    docker = workload_on(engine, health_timeout=30)
    pool = docker._balancer = Pool()
    docker.begin_changes(docker.load())
    warned = []
    docker.admit_joining(docker.load(), warned.append)  # after the grace, not after health_timeout
    assert list(pool.intent) == [docker.scope(docker.load()).name("w-r1-a")]
    assert warned == ["container w-r1-b is unhealthy (its HEALTHCHECK failed: exit 1: wget: download timed out); "
                      "not added to the load balancer in this run (a later run adds it once healthy)"]


def test_no_wait_mid_rollout_nor_for_a_member():
    """Mid-rollout the run that goes on admits the new replicas as its strategy does; a member is one already."""
    engine = Starting(10 ** 6, _published(attrs("a", 1), 32001), _published(attrs("b", 2), 32002))
    docker = workload_on(engine, health_timeout=30)
    docker._balancer = Pool()
    assert docker.joining(docker.load()) == []
    engine = Starting(10 ** 6, _published(attrs("a", 1), 32001), _published(attrs("b", 1), 32002))
    docker = workload_on(engine, health_timeout=30)
    tag = docker.scope(docker.load()).tag
    docker._balancer = Pool([f"w-r1-b.{tag}"])
    assert docker.joining(docker.load()) == []


def test_a_repair_moves_intended_members_to_where_their_containers_publish_now():
    """A dockerd restarted mid-run brings its containers back (restart policy) on other host ports: the run's repair
    keeps the members it decided on, at their containers' new addresses; a container not running keeps its
    member's address, and no member is added for a replica the run did not intend."""
    engine = Engine(_published(attrs("a", 1), 32001), _published(attrs("b", 1), 32002), attrs("c", 1, status="exited"))
    docker = workload_on(engine, health_timeout=5)
    pool = docker._balancer = Pool()
    history = docker.load()
    name = docker.scope(history).name
    pool._members = {name(f"w-r1-{c}"): Member(name(f"w-r1-{c}"), f"127.0.0.1:3200{i}") for i, c in ((1, "a"), (2, "b"))}
    docker.begin_changes(history)
    assert pool.intent == {name("w-r1-a"): "127.0.0.1:32001", name("w-r1-b"): "127.0.0.1:32002"}
    _published(engine.by_id["a"], 32011)
    engine.by_id["b"]["State"]["Status"] = "restarting"
    engine.by_id["b"]["NetworkSettings"] = {"Ports": {}}
    engine.by_id["c"]["State"]["Status"] = "running"
    _published(engine.by_id["c"], 32013)
    docker.repair()
    assert pool.reconciled[-1] == {name("w-r1-a"): "127.0.0.1:32011", name("w-r1-b"): "127.0.0.1:32002"}


def test_a_replica_that_became_healthy_after_the_lock_bound_the_intent_joins():
    """The lock's start bound the intent while b was still starting; b is healthy by the time the run looks again:
    nothing is pending, and admit_joining still binds again from a fresh read, so b is not left out."""
    engine = Starting(2, _published(attrs("a", 1), 32001), _published(attrs("b", 1), 32002))
    docker = workload_on(engine, health_timeout=5)
    pool = docker._balancer = Pool()
    name = docker.scope(docker.load()).name
    docker.begin_changes(docker.load())  # b reads starting here (its last starting answer)
    assert pool.intent == {name("w-r1-a"): "127.0.0.1:32001"}
    history = docker.load()
    assert docker.joining(history) == []
    warned = []
    docker.admit_joining(history, warned.append)
    assert pool.intent == {name("w-r1-a"): "127.0.0.1:32001", name("w-r1-b"): "127.0.0.1:32002"} and not warned


def _a_member_moves_under_the_lock(monkeypatch, health_timeout):
    """Replica ``a`` of revision 1 in the pool at port 32001 when the run takes the lock, then published on 32011
    (a restarted dockerd): the workload, its pool and the scope's member naming."""
    monkeypatch.setattr("ansible_collections.zerodown.rollout.plugins.module_utils.docker.workload.WAIT_POLL", 0.01)
    engine = Engine(_published(attrs("a", 1), 32001))
    docker = workload_on(engine, health_timeout=health_timeout)
    pool = docker._balancer = Pool()
    name = docker.scope(docker.load()).name
    pool._members = {name("w-r1-a"): Member(name("w-r1-a"), "127.0.0.1:32001")}
    docker.begin_changes(docker.load())
    _published(engine.by_id["a"], 32011)
    return docker, pool, name


def test_the_runs_own_wait_follows_a_member_whose_container_moved(monkeypatch):
    """Under the lock, the final wait repairs at each look: a member whose container came back on another port
    (a restarted dockerd) is moved, instead of waiting for it at the old address until wait_timeout."""
    docker, pool, name = _a_member_moves_under_the_lock(monkeypatch, health_timeout=5)
    settled = []
    pool.settle = lambda: settled.append(True)
    looks = []

    def progress(status):
        looks.append(status.state)
        pool._members = {n: Member(n, a) for n, a in pool.intent.items()}  # the driver applied the reconcile

    status = docker.wait(1, 5, progress=progress)
    assert status.state == "complete" and pool.intent == {name("w-r1-a"): "127.0.0.1:32011"}
    assert pool.reconciled[-1] == {name("w-r1-a"): "127.0.0.1:32011"} and settled == [True]


def test_the_runs_own_wait_waits_for_a_moved_member_up_to_its_own_timeout(monkeypatch):
    """The final wait's repairs do not wait for a moved member up to health_timeout (and fail the run with "did not
    mark UP" while wait_timeout still runs): the wait itself waits, up to its own timeout, for the member to be up,
    then settles."""
    docker, pool, name = _a_member_moves_under_the_lock(monkeypatch, health_timeout=0.1)
    # the container came back elsewhere, and answers checks 0.5 s later
    up_at = time.monotonic() + 0.5
    reconcile = pool.reconcile

    def applied(settle=False, wait=True):  # as the HAProxy driver: moves the member, waits for it only when asked
        fixes = reconcile(settle, wait)
        state = "UP" if time.monotonic() >= up_at else "DOWN"
        pool._members = {n: Member(n, a, state) for n, a in pool.intent.items()}
        if wait and state != "UP":
            raise RolloutFailed(f"HAProxy did not mark server {name('w-r1-a')} UP within 0.1s")
        return fixes

    pool.reconcile = applied
    settled = []
    pool.settle = lambda: settled.append(time.monotonic())
    looks = []
    status = docker.wait(1, 5, progress=lambda status: looks.append(status.state))
    assert status.state == "complete" and pool.intent == {name("w-r1-a"): "127.0.0.1:32011"}
    assert looks[0] == "progressing" and looks[-1] == "complete" and len(settled) == 1 and settled[0] >= up_at
    assert pool.waited[1:] == [False] * (len(pool.waited) - 1)  # begin_changes waited; the wait's repairs do not
