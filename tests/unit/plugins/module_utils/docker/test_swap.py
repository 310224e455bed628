"""docker/swap.py: the batch swap's order and failure handling, the background stops, the replica factory, and the
null balancer's path, with the engine (and a load balancer) recorded."""
from __future__ import annotations

import re
import threading

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Balancer, Member, Scope
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.none import NoBalancer
from ansible_collections.zerodown.rollout.plugins.module_utils.docker import swap as sw
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import Replica
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    PlatformUnreachable,
    ProgressLog,
    RolloutFailed,
)


def rep(cid, rev=1):
    return Replica(id=cid, name=f"w-r{rev}-{cid}", revision=rev, image=f"app:{rev}", image_id="", state="running",
                   health="healthy", started_at="", finished_at="", address="127.0.0.1:1", change_cause=None,
                   created=None)


class Engine:
    """Stands for docker/engine.py's DockerEngine: records each call in ``log``; every container it is asked
    about runs, healthy, as revision 2 (published on a port unless ``ports`` is false). ``gate``: each stop
    waits for it (an app that ignores SIGTERM); ``fail``: ids whose stop or start fails."""

    def __init__(self, log, ports=True, gate=None, fail=()):
        self.log = log
        self.ports = ports
        self.gate = gate
        self.fail = set(fail)
        self.stopping = set()
        self.created = 0

    def create(self, config, name):
        self.created += 1
        cid = f"new{self.created}"
        self.log.append(("create", cid, name.rsplit("-", 1)[0], config.get("Image")))
        return cid

    def connect(self, cid, network, aliases, what):
        self.log.append(("connect", cid, network, tuple(aliases)))

    def start(self, cid, what=""):
        if cid in self.fail:
            raise RolloutFailed(f"the Docker engine refused to {what}")
        # the random part of a new container's name left out
        self.log.append(("start", cid, "while its stop runs" if cid in self.stopping else re.sub(r"-[0-9a-f]{6}$", "", what)))

    def stop(self, cid, timeout, what=""):
        self.stopping.add(cid)
        if self.gate is not None:
            self.gate.wait(30)
        self.stopping.discard(cid)
        if cid in self.fail:
            raise RolloutFailed(f"the Docker engine refused to stop container {cid}")
        self.log.append(("stopped", cid, timeout))

    def remove(self, cid, volumes=True, what=""):
        self.log.append(("removed", cid))

    def inspect_container(self, cid, what=""):
        ports = {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "1000"}]} if self.ports else {}
        return {"Id": cid, "Name": f"/w-r2-{cid}", "Config": {"Labels": {"zerodown.revision": "2",
                                                                         "zerodown.port": "8080/tcp"}},
                "State": {"Status": "running", "Health": {"Status": "healthy"}}, "NetworkSettings": {"Ports": ports}}


class RecordingBalancer(Balancer):
    """A load balancer that routes, bound to workload w on engine tag aaaaaa: records each step in ``log``."""

    kind = "recording"

    def __init__(self, log, members=()):
        super().__init__()
        self.log = log
        self.bind(Scope("w", "aaaaaa"), {}, drain_timeout=1, up_timeout=1)
        self.pool = {n: Member(n, "127.0.0.1:1", "UP") for n in members}
        self.intent = {n: "127.0.0.1:1" for n in members}

    def members(self):
        return dict(self.pool)

    def add(self, name, address):
        self.intent[name] = address
        self.pool[name] = Member(name, address, "UP")
        self.log.append(("add", name))

    def wait_up(self, name, timeout, follow=None):
        self.log.append(("wait_up", name))

    def drain(self, name):
        self.intent.pop(name, None)
        self.log.append(("drain", name))

    def wait_drained(self, name, timeout):
        self.log.append(("wait_drained", name))
        return True

    def remove(self, name):
        self.pool.pop(name, None)
        self.log.append(("remove", name))

    def release(self, names, timeout=None):
        if names:
            self.log.append(("release", tuple(names)))
        return []


def batch_swap(engine, lb=None, **params):
    params.setdefault("batch_size", 1)
    warnings = []
    swap = sw.BatchSwap(engine, lb or NoBalancer(), params, warnings.append, lambda: engine.log.append(("sync",)),
                        ProgressLog(), sw.BackgroundStops())
    swap.warnings = warnings
    return swap


def factory(engine, revision=2, retained=(), later=()):
    return sw.ReplicaFactory(engine, lambda text: engine.log.append(("warn", text)), "w", revision,
                             lambda: ({"Image": f"app:{revision}"}, list(later)), retained)


# -- batches: order, caps, failures (the gate and the take-out recorded) -------------------------------------
class Recording(sw.BatchSwap):
    """take_in / take_out record what they are asked; ``fail_on`` makes that batch's gate fail."""

    def __init__(self, fail_on=None, lb=None, **params):
        params.setdefault("batch_size", 1)
        self.log = []
        super().__init__(Engine(self.log), lb or NoBalancer(), params, lambda text: None, lambda: None, ProgressLog(),
                         sw.BackgroundStops())
        self.fail_on = fail_on
        self.batches = 0

    def take_in(self, ids, fresh):
        self.batches += 1
        if self.fail_on == self.batches:
            self.log.append(("undo", tuple(ids)))
            raise RolloutFailed(f"new container {ids[0]} is unhealthy")
        self.log.append(("in", tuple(ids)))
        return [rep(i, 2) for i in ids]

    def take_out(self, reps, remove=False):
        self.log.append(("remove" if remove else "out", tuple(r.id for r in reps)))


def starter(prefix="n"):
    counter = iter(range(100))

    def start(k):
        ids = [f"{prefix}{next(counter)}" for _index in range(k)]
        return ids, ids
    return start


def test_start_first_batches_in_order():
    swap = Recording(batch_size=2)
    assert swap.run([rep("a"), rep("b"), rep("c")], 3, starter()) == 2
    assert swap.log == [("in", ("n0", "n1")), ("out", ("a", "b")), ("in", ("n2",)), ("out", ("c",))]


def test_scale_down_in_the_same_swap_takes_out_the_rest():
    swap = Recording(batch_size=1)
    swap.run([rep("a"), rep("b"), rep("c")], 1, starter())
    assert swap.log == [("in", ("n0",)), ("out", ("a", "b", "c"))]


def test_failed_first_batch_touches_no_old_replica():
    swap = Recording(fail_on=1, batch_size=2)
    with pytest.raises(RolloutFailed) as err:
        swap.run([rep("a"), rep("b")], 2, starter())
    assert swap.log == [("undo", ("n0", "n1"))]
    assert "swapped back" not in err.value.msg


def test_failed_later_batch_swaps_completed_batches_back():
    swap = Recording(fail_on=2, batch_size=1)
    with pytest.raises(RolloutFailed) as err:
        swap.run([rep("a"), rep("b")], 2, starter())
    assert swap.log == [
        ("in", ("n0",)), ("out", ("a",)),                        # batch 1 completed
        ("undo", ("n1",)),                                       # batch 2 failed its gate and was undone
        ("start", "a", "restart container w-r1-a"), ("in", ("a",)),  # the old replica comes back first, gated
        ("out", ()), ("remove", ("n0",)),                        # then batch 1's new container is drained and removed
    ]
    assert "swapped back" in err.value.msg


def test_a_cap_stops_the_swap_with_the_rest_of_the_old_replicas_serving():
    swap = Recording(batch_size=1)
    assert swap.run([rep("a"), rep("b"), rep("c")], 3, starter(), cap=1) == 1
    assert swap.log == [("in", ("n0",)), ("out", ("a",))]  # b and c are neither drained nor stopped


def test_a_cap_inside_a_batch_cuts_that_batch_short():
    # a re-run that must reach 3 new replicas with 1 already in: 2 more, not a whole batch of 3
    swap = Recording(batch_size=3)
    assert swap.run([rep("a"), rep("b"), rep("c")], 3, starter(), cap=2) == 1
    assert swap.log == [("in", ("n0", "n1")), ("out", ("a", "b"))]


def test_a_cap_beyond_the_replicas_needed_swaps_everything():
    swap = Recording(batch_size=2)
    assert swap.run([rep("a"), rep("b"), rep("c")], 3, starter(), cap=10) == 2
    assert swap.log == [("in", ("n0", "n1")), ("out", ("a", "b")), ("in", ("n2",)), ("out", ("c",))]


@pytest.mark.parametrize("routes, said", [(True, " and in the load balancer"), (False, "")])
def test_progress_has_a_line_per_batch(routes, said):
    swap = Recording(batch_size=2, lb=RecordingBalancer([]) if routes else None)
    swap.run([rep("a"), rep("b"), rep("c")], 3, starter())
    messages = [e["message"] for e in swap.progress.entries]
    assert messages == [f"batch 1: 2 of 3 new replica(s) healthy{said}, 1 old one(s) left",
                        f"batch 2: 3 of 3 new replica(s) healthy{said}, 0 old one(s) left"]
    times = [e["t"] for e in swap.progress.entries]
    assert times == sorted(times) and times[0] >= 0


def test_the_settings_the_swap_reads_and_their_defaults():
    assert sw.health_timeout({"health_timeout": 0.5}) == 0.5 and sw.health_timeout({"health_timeout": None}) == 60.0
    assert sw.drain_timeout({}) == 30.0 and sw.drain_timeout({"drain_timeout": 0}) == 0.0
    assert sw.stop_timeout({}) == 10 and sw.stop_timeout({"stop_timeout": 0}) == 0


# -- the order of the load balancer's steps and the stops -----------------------------------------------------
def test_a_batch_takes_in_then_drains_takes_out_releases_and_stops_the_old_in_that_order():
    log = []
    engine = Engine(log)
    lb = RecordingBalancer(log, members=["w-r1-a.aaaaaa"])
    swap = batch_swap(engine, lb)
    swap.run([rep("a")], 1, factory(engine))
    swap.stops.close()
    background = [("release", ("w-r1-a.aaaaaa",)), ("stopped", "a", 10)]
    assert [e for e in log if e not in background] == [
        ("create", "new1", "w-r2", "app:2"), ("start", "new1", "start container w-r2"),  # started
        ("add", "w-r2-new1.aaaaaa"), ("wait_up", "w-r2-new1.aaaaaa"),                    # gated, then UP
        ("drain", "w-r1-a.aaaaaa"), ("wait_drained", "w-r1-a.aaaaaa"), ("remove", "w-r1-a.aaaaaa"),
        ("sync",),                                                                       # the pool reconciled
    ], log
    # the old container stops in the background, once the load balancer no longer routes to it
    assert log.index(("remove", "w-r1-a.aaaaaa")) < log.index(background[0]) < log.index(background[1]), log


def test_a_container_without_a_published_port_cannot_join_a_load_balancer_and_is_removed():
    log = []
    engine = Engine(log, ports=False)
    swap = batch_swap(engine, RecordingBalancer(log, members=["w-r1-a.aaaaaa"]))
    with pytest.raises(RolloutFailed, match="w-r2-new1 publishes no port, so the load balancer cannot reach it"):
        swap.run([rep("a")], 1, factory(engine))
    assert ("removed", "new1") in log and not any(e[0] in ("add", "drain", "stopped") for e in log), log


def test_without_a_load_balancer_the_same_swap_needs_no_port_and_touches_no_pool():
    log = []
    engine = Engine(log, ports=False)
    swap = batch_swap(engine, batch_size=1)
    assert swap.run([rep("a"), rep("b")], 2, factory(engine)) == 2
    swap.stops.settle()
    started = [e[1] for e in log if e[0] == "start"]
    assert started == ["new1", "new2"] and sorted(e[1] for e in log if e[0] == "stopped") == ["a", "b"], log
    assert [e["message"] for e in swap.progress.entries][-1] == "batch 2: 2 of 2 new replica(s) healthy, 0 old one(s) left"
    swap.stops.close()


def test_take_in_missing_gates_only_the_replicas_the_pool_lacks_and_nothing_without_a_load_balancer():
    log = []
    engine = Engine(log)
    swap = batch_swap(engine, RecordingBalancer(log, members=["w-r2-in.aaaaaa"]))
    swap.take_in_missing([rep("in", 2), rep("out", 2)])
    assert log == [("add", "w-r2-out.aaaaaa"), ("wait_up", "w-r2-out.aaaaaa")]
    log.clear()
    batch_swap(engine).take_in_missing([rep("in", 2), rep("out", 2)])
    assert log == []


def test_scaling_down_removes_after_the_release_without_stopping():
    log = []
    engine = Engine(log)
    swap = batch_swap(engine, RecordingBalancer(log, members=["w-r1-a.aaaaaa"]))
    swap.take_out([rep("a")], remove=True)
    assert log == [("drain", "w-r1-a.aaaaaa"), ("wait_drained", "w-r1-a.aaaaaa"), ("remove", "w-r1-a.aaaaaa"),
                   ("release", ("w-r1-a.aaaaaa",)), ("removed", "a")]
    assert swap.stops.pending == []


# -- old containers stopped in the background ------------------------------------------------------------------
class Stopping(Recording):
    """The real take_out (no load balancer), so old replicas go through the background stops."""

    def __init__(self, gate, fail=(), fail_on=None, **params):
        super().__init__(fail_on=fail_on, **params)
        self.engine = Engine(self.log, gate=gate, fail=fail)

    take_out = sw.BatchSwap.take_out


def test_the_next_batch_starts_before_the_previous_stops_end_and_all_are_joined():
    gate = threading.Event()
    swap = Stopping(gate, batch_size=1)
    try:
        swap.run([rep("a"), rep("b"), rep("c")], 3, starter())
        # every batch went in while no stop had ended: the stops block until the gate opens
        assert swap.log == [("in", ("n0",)), ("in", ("n1",)), ("in", ("n2",))]
        assert [r.id for r, _future in swap.stops.pending] == ["a", "b", "c"]
    finally:
        gate.set()
    assert swap.stops.join() == []
    assert sorted(swap.log[3:]) == [("stopped", "a", 10), ("stopped", "b", 10), ("stopped", "c", 10)]
    assert swap.stops.pending == []
    swap.stops.close()


def test_stop_timeout_zero_is_honoured():
    gate = threading.Event()
    gate.set()
    swap = Stopping(gate, batch_size=2, stop_timeout=0)
    swap.run([rep("a")], 1, starter())
    swap.stops.settle()
    assert ("stopped", "a", 0) in swap.log
    swap.stops.close()


def test_a_failed_stop_is_reported_after_the_others_are_joined():
    gate = threading.Event()
    gate.set()
    swap = Stopping(gate, fail=("b",), batch_size=1)
    swap.run([rep("a"), rep("b"), rep("c")], 3, starter())
    with pytest.raises(RolloutFailed) as err:
        swap.stops.settle()
    assert "w-r1-b" in err.value.msg and "converges" in err.value.msg
    assert "w-r1-a" not in err.value.msg and err.value.details["containers"] == ["w-r1-b"]
    assert {e[1] for e in swap.log if e[0] == "stopped"} == {"a", "c"}
    swap.stops.close()


def test_a_failed_batch_waits_for_the_stops_before_restarting_the_old_replicas():
    gate = threading.Event()
    opener = threading.Timer(1.0, gate.set)  # the stop of "a" is still running when batch 2 fails
    swap = Stopping(gate, fail_on=2, batch_size=1)
    opener.start()
    try:
        with pytest.raises(RolloutFailed) as err:
            swap.run([rep("a"), rep("b")], 2, starter())
    finally:
        opener.cancel()
        gate.set()
    restart = ("start", "a", "restart container w-r1-a")
    assert restart in swap.log, swap.log
    assert swap.log.index(("stopped", "a", 10)) < swap.log.index(restart)
    assert "swapped back" in err.value.msg
    swap.stops.close()


# -- the replica factory ----------------------------------------------------------------------------------------
def test_the_factory_restarts_retained_containers_first_then_creates_copies():
    log = []
    engine = Engine(log)
    start = factory(engine, revision=1, retained=[rep("old1"), rep("old2")])
    assert start(1) == (["old1"], [])
    assert start(2) == (["old2", "new1"], ["new1"])
    assert start(1) == (["new2"], ["new2"])
    assert log == [("start", "old1", "start retained container w-r1-old1"),
                   ("start", "old2", "start retained container w-r1-old2"),
                   ("create", "new1", "w-r1", "app:1"), ("start", "new1", "start container w-r1"),
                   ("create", "new2", "w-r1", "app:1"), ("start", "new2", "start container w-r1")]


def test_the_factory_names_a_copy_as_its_name_hook_says_else_as_the_workloads():
    log = []
    engine = Engine(log)
    numbers = iter(["4", None])
    start = sw.ReplicaFactory(engine, lambda text: None, "w", 2, lambda: ({"Image": "app:2", "n": next(numbers)}, []),
                              name=lambda config: f"shop_web_{config['n']}" if config["n"] else None)
    start(2)
    assert [e[2] for e in log if e[0] == "create"] == ["shop_web_4", "w-r2"]


def test_the_factory_connects_the_other_networks_before_the_start():
    log = []
    engine = Engine(log)
    factory(engine, later=[("backend", ["api"])])(1)
    assert [e[0] for e in log] == ["create", "connect", "start"] and log[1] == ("connect", "new1", "backend", ("api",))


def test_a_created_container_that_does_not_start_is_removed_and_the_error_raised():
    log = []
    engine = Engine(log, fail=("new1",))
    with pytest.raises(RolloutFailed, match="refused to start container w-r2"):
        factory(engine)(1)
    assert log[-1] == ("removed", "new1")


def test_a_container_that_cannot_be_removed_warns_and_the_cleanup_goes_on():
    class Lost(Engine):
        def remove(self, cid, volumes=True, what=""):
            raise PlatformUnreachable(f"lost the connection to the Docker engine while trying to remove container {cid}")

    warnings = []
    sw.discard(Lost([]), "0123456789abcdef", warnings.append)
    assert warnings and "could not remove container 0123456789ab" in warnings[0]


# -- replicas reached on a network (docker_container.lb_network) -------------------------------------------------
class NetworkEngine(Engine):
    """Its containers are reached on network appnet (no port published); each start gives one a new address, as
    a stopped container's address goes back to the network's pool and a restart may get another one."""

    def __init__(self, log, **kwargs):
        super().__init__(log, ports=False, **kwargs)
        self.addresses = {}
        self.next_host = 10

    def start(self, cid, what=""):
        super().start(cid, what)
        self.next_host += 1
        self.addresses[cid] = f"172.30.0.{self.next_host}"

    def inspect_container(self, cid, what=""):
        attrs = super().inspect_container(cid, what)
        attrs["Config"]["Labels"]["zerodown.lb-network"] = "appnet"
        attrs["NetworkSettings"]["Networks"] = {"appnet": {"IPAddress": self.addresses.get(cid, "")}}
        return attrs


def test_a_restarted_retained_container_joins_at_the_address_it_has_after_its_start():
    log = []
    engine = NetworkEngine(log)
    engine.addresses["old1"] = "172.30.0.2"  # where it was before it was stopped
    lb = RecordingBalancer(log, members=["w-r1-a.aaaaaa"])
    swap = batch_swap(engine, lb)
    swap.run([rep("a")], 2, factory(engine, retained=[rep("old1", 2)]))
    swap.stops.close()
    assert lb.intent == {"w-r2-old1.aaaaaa": "172.30.0.11:8080", "w-r2-new1.aaaaaa": "172.30.0.12:8080"}
    assert lb.pool["w-r2-old1.aaaaaa"].address == "172.30.0.11:8080"


def test_a_container_without_an_address_on_its_network_cannot_join_and_is_removed():
    class Unattached(NetworkEngine):
        def start(self, cid, what=""):
            Engine.start(self, cid, what)  # starts, and has no address on appnet

    log = []
    engine = Unattached(log)
    swap = batch_swap(engine, RecordingBalancer(log, members=["w-r1-a.aaaaaa"]))
    with pytest.raises(RolloutFailed, match="w-r2-new1 has no address on network appnet"):
        swap.run([rep("a")], 1, factory(engine))
    assert ("removed", "new1") in log and not any(e[0] in ("add", "drain", "stopped") for e in log), log


def test_where_a_new_member_is_now_is_unknown_while_the_engine_restarts():
    """wait_up's follow: an engine that does not answer (dockerd restarting) or a container not running gives no
    address, and the wait goes on; a running one gives where it publishes now."""
    from ansible_collections.zerodown.rollout.plugins.module_utils.docker.swap import published_now
    from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import PlatformUnreachable

    class Restarting:
        def inspect_container(self, cid, what=""):
            raise PlatformUnreachable("lost the connection to the Docker engine")

    class Answers:
        def __init__(self, status):
            self.status = status

        def inspect_container(self, cid, what=""):
            return {"Id": cid, "Name": "/w-r2-a", "Config": {"Labels": {}}, "State": {"Status": self.status},
                    "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}]}}}

    assert published_now(Restarting(), "a") is None
    assert published_now(Answers("restarting"), "a") is None
    assert published_now(Answers("running"), "a") == "127.0.0.1:32768"
