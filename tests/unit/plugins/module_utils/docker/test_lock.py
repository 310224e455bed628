"""The Docker workload lock: owner records, staleness, the acquire loop against a fake engine, and its calls on a
Docker engine."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker import lock as lk
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.lock import (
    LockHeld,
    LockOwner,
    WorkloadLock,
    judge,
    process_start,
    this_process,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.engine import EngineNotFound
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import LABEL_WORKLOAD, creation_config
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutFailed, WorkloadRef

ME = LockOwner(host="ctl-1", pid=100, pid_start="5000", boot_id="b1", machine="m1", pid_ns="4026531836",
               operation="image_upgrade", target="shop:2.0", since="2024-06-11T10:00:00Z")


def owner(**changes):
    fields = ME.to_dict()
    fields.update(pid=200, pid_start="6000", operation="rollback", target="revision 1 (shop:1.0)")
    fields.update(changes)
    return LockOwner(**fields)


# -- owner record ----------------------------------------------------------------------------------
def test_labels_round_trip_and_never_look_like_a_replica():
    labels = ME.to_labels("shop")
    assert LockOwner.from_labels(labels) == ME
    assert labels[lk.LABEL_LOCK] == "shop"
    assert LABEL_WORKLOAD not in labels and not any(k in labels for k in ("zerodown.revision", "zerodown.image"))
    assert all(isinstance(v, str) for v in labels.values())  # the engine takes string labels only


def test_a_replica_or_a_foreign_container_is_not_a_lock_owner():
    replica_labels = creation_config("shop:1.0", "shop", 1, "c", {"port": 8080}, {})[0]["Labels"]
    assert LockOwner.from_labels(replica_labels) is None
    assert LockOwner.from_labels({lk.LABEL_LOCK: "shop", lk.LABEL_PID: "not-a-pid"}) is None
    assert LockOwner.from_labels(None) is None


def test_describe_names_operation_target_pid_host_and_time():
    text = owner().describe()
    assert text == "rollback to revision 1 (shop:1.0) by pid 200 on host ctl-1 since 2024-06-11T10:00:00Z"


def test_lock_name_is_fixed_per_workload():
    assert lk.lock_name("shop") == "zerodown-lock-shop"


# -- /proc -----------------------------------------------------------------------------------------
def _fake_proc(tmp_path, pid, comm, state, start):
    (tmp_path / "self").mkdir(exist_ok=True)
    (tmp_path / "self" / "stat").write_text("1 (x) S 0")
    (tmp_path / str(pid)).mkdir()
    rest = [state] + ["0"] * 18 + [start, "0", "0"]
    (tmp_path / str(pid) / "stat").write_text(f"{pid} ({comm}) {' '.join(rest)}\n")


def test_process_start_reads_field_22_even_with_a_tricky_command_name(tmp_path):
    _fake_proc(tmp_path, 4242, "py) S 1 (x", "S", "987654")
    assert process_start(4242, str(tmp_path)) == "987654"


def test_a_zombie_or_a_missing_pid_counts_as_gone(tmp_path):
    _fake_proc(tmp_path, 4242, "python3", "Z", "987654")
    assert process_start(4242, str(tmp_path)) is None
    assert process_start(4343, str(tmp_path)) is None
    assert process_start(0, str(tmp_path)) is None


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_this_process_and_a_finished_child_on_the_real_proc():
    me = this_process("image_upgrade", "shop:2.0")
    assert me.pid == os.getpid() and me.pid_start and me.pid_start == process_start(os.getpid())
    assert judge(me, me, process_start) == (False, f"process {me.pid} is still running")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_start(child.pid) is None
    gone = LockOwner(**dict(me.to_dict(), pid=child.pid))
    assert judge(gone, me, process_start) == (True, f"process {child.pid} is gone")


# -- staleness -------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, alive, stale, why", [
    ({}, None, True, "process 200 is gone"),
    ({}, "6001", True, "pid 200 now belongs to another process"),
    ({}, "6000", False, "process 200 is still running"),
    ({}, "", False, "process 200 is still running"),                   # alive, start unknown: never guess
    ({"pid_start": ""}, "7000", False, "process 200 is still running"),  # the owner recorded no start
    ({"host": "ctl-2"}, None, False, "it is held from host ctl-2"),
    ({"host": ""}, None, False, "it is held from host (unknown)"),
    ({"machine": "m2"}, None, False, "it is held from another machine named ctl-1"),
    ({"boot_id": "b0"}, "6000", True, "host ctl-1 has rebooted since it was taken"),
    ({"boot_id": "b0", "machine": ""}, None, False,
     "it is held from host ctl-1 in another boot or another machine of that name"),
    ({"pid_ns": "4026532000"}, None, False, "it is held from another pid namespace (container) on host ctl-1"),
])
def test_judge(changes, alive, stale, why):
    asked = []

    def probe(pid):
        asked.append(pid)
        return alive

    assert judge(owner(**changes), ME, probe) == (stale, why)
    assert asked in ([], [200])


# -- the acquire loop ------------------------------------------------------------------------------
class FakeEngine:
    """Containers by name; ``holders`` are handed out in turn whenever the lock is found taken."""

    def __init__(self, existing=None):
        self.containers = dict(existing or {})  # name -> (id, labels)
        self.removed = []
        self.created = 0
        self.now = 0.0
        self.sleeps = []
        self.warnings = []
        self.on_sleep = None

    def create(self, name, labels):
        if name in self.containers:
            return None
        self.created += 1
        cid = f"id{self.created}"
        self.containers[name] = (cid, labels)
        return cid

    def inspect(self, name):
        return self.containers.get(name)

    def remove(self, cid):
        self.removed.append(cid)
        for name, (other, _labels) in list(self.containers.items()):
            if other == cid:
                del self.containers[name]

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self)

    def lock(self, alive):
        return WorkloadLock("shop", self.create, self.inspect, self.remove, self.warnings.append,
                            probe=alive.get, sleep=self.sleep, clock=lambda: self.now)


def test_a_free_lock_is_taken_and_released_by_id():
    fake = FakeEngine()
    lock = fake.lock({})
    assert lock.acquire(ME, 300) == "id1"
    assert LockOwner.from_labels(fake.containers["zerodown-lock-shop"][1]) == ME
    lock.release()
    lock.release()  # a second release does nothing
    assert fake.removed == ["id1"] and fake.containers == {} and fake.sleeps == []


def test_a_live_foreign_owner_fails_after_the_timeout_naming_it():
    held = owner(host="ctl-2")
    fake = FakeEngine({"zerodown-lock-shop": ("old", held.to_labels("shop"))})
    with pytest.raises(LockHeld) as info:
        fake.lock({}).acquire(ME, 5)
    assert info.value.owner == held and info.value.why == "it is held from host ctl-2"
    assert fake.removed == [] and fake.created == 0
    assert 5 <= fake.now <= 5 + 1e-9 and max(fake.sleeps) <= lk.POLL_MAX and len(fake.sleeps) <= 6


def test_timeout_zero_tries_once():
    fake = FakeEngine({"zerodown-lock-shop": ("old", owner(host="ctl-2").to_labels("shop"))})
    with pytest.raises(LockHeld):
        fake.lock({}).acquire(ME, 0)
    assert fake.sleeps == []


def test_a_stale_owner_is_removed_by_id_with_a_warning_and_the_lock_taken():
    gone = owner()
    fake = FakeEngine({"zerodown-lock-shop": ("old", gone.to_labels("shop"))})
    assert fake.lock({}).acquire(ME, 0) == "id1"
    assert fake.removed == ["old"] and fake.sleeps == []
    assert fake.warnings == ["took over the stale lock of Docker workload 'shop' left by rollback to revision 1 "
                             "(shop:1.0) by pid 200 on host ctl-1 since 2024-06-11T10:00:00Z: process 200 is gone"]


def test_a_live_local_owner_is_waited_for_then_the_lock_is_taken():
    fake = FakeEngine({"zerodown-lock-shop": ("old", owner().to_labels("shop"))})

    def release_after_3s(engine):
        if engine.now >= 3:
            engine.containers.pop("zerodown-lock-shop", None)

    fake.on_sleep = release_after_3s
    assert fake.lock({200: "6000"}).acquire(ME, 300) == "id1"
    assert fake.removed == [] and fake.warnings == [] and 3 <= fake.now < 3 + lk.POLL_MAX


def test_a_container_at_the_lock_name_that_is_no_lock_is_never_removed():
    fake = FakeEngine({"zerodown-lock-shop": ("other", {"app": "x"})})
    with pytest.raises(LockHeld) as info:
        fake.lock({}).acquire(ME, 1)
    assert info.value.owner is None and "is not a zerodown lock" in info.value.why and fake.removed == []


# -- on a Docker engine ----------------------------------------------------------------------------
class DockerEngine:
    """What engine_lock asks of docker/engine.py's DockerEngine: images it has, containers by name."""

    def __init__(self, images=(), containers=None):
        self.images = set(images)
        self.containers = dict(containers or {})  # name -> (id, labels)
        self.calls = []

    def create_unless_taken(self, config, name, what):
        self.calls.append(("create", config["Image"], what))
        if config["Image"] not in self.images:
            raise EngineNotFound(f"the Docker engine found nothing to {what}: no such image")
        if name in self.containers:
            return None
        self.containers[name] = ("lock-id", config["Labels"])
        return "lock-id"

    def inspect_container(self, ref, what=""):
        self.calls.append(("inspect", ref, what))
        if ref not in self.containers:
            raise EngineNotFound(f"the Docker engine found nothing to {what}")
        cid, labels = self.containers[ref]
        return {"Id": cid, "Config": {"Labels": labels}}

    def remove(self, cid, volumes=True, what=""):
        self.calls.append(("remove", cid, volumes, what))
        self.containers = {n: v for n, v in self.containers.items() if v[0] != cid}


SHOP = WorkloadRef("docker", "shop")


def test_the_lock_container_is_made_from_the_first_image_the_engine_has_and_never_started():
    engine = DockerEngine(images=["sha:2"])
    lock = lk.engine_lock(engine, SHOP, ["sha:1", "sha:2", "sha:1", ""], [].append, "the default Docker engine")
    assert lock.acquire(ME, 0) == "lock-id"
    assert [c[:2] for c in engine.calls] == [("create", "sha:1"), ("create", "sha:2")]
    assert engine.calls[0][2] == "create the lock container zerodown-lock-shop"
    lock.release()
    # with its anonymous volumes (one per VOLUME of the app image it was made from), or they would pile up
    assert engine.calls[-1] == ("remove", "lock-id", True, "remove the lock container lock-id")


def test_without_any_image_of_the_workload_the_lock_cannot_be_made():
    engine = DockerEngine(images=[])
    with pytest.raises(EngineNotFound):  # the last candidate's answer
        lk.engine_lock(engine, SHOP, ["sha:1"], [].append, "h").acquire(ME, 0)
    with pytest.raises(RolloutFailed, match="no image of Docker workload 'shop' is on h to create the lock container "
                                            "zerodown-lock-shop from"):
        lk.engine_lock(engine, SHOP, ["", ""], [].append, "h").acquire(ME, 0)


def test_the_lock_container_as_read_from_the_engine():
    labels = ME.to_labels("shop")
    engine = DockerEngine(containers={"zerodown-lock-shop": ("abc", labels)})
    assert lk.lock_container(engine, "zerodown-lock-shop") == ("abc", labels)
    assert engine.calls == [("inspect", "zerodown-lock-shop", "inspect the lock container zerodown-lock-shop")]
    assert lk.lock_container(engine, "zerodown-lock-other") is None
