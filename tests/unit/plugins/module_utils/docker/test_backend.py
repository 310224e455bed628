"""DockerPlatform's swap order and failure handling, with the engine and load balancer recorded."""
from __future__ import annotations

import threading
import types

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker import engine
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.backend import DockerPlatform
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import Replica
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    RolloutFailed,
    WorkloadRef,
)


class Module:
    def __init__(self, **params):
        self.params = params
        self.check_mode = False
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


def rep(cid, rev=1):
    return Replica(id=cid, name=f"w-r{rev}-{cid}", revision=rev, image=f"app:{rev}", image_id="", state="running",
                   health="healthy", started_at="", finished_at="", address="127.0.0.1:1", change_cause=None,
                   created=None)


class Engine:
    """Stands for docker/engine.py's DockerEngine."""

    def __init__(self, log):
        self.log = log

    def start(self, cid, what=""):
        self.log.append(("start", cid))

    def inspect_container(self, cid, what=""):
        return {"Id": cid, "Name": f"/w-r2-{cid}", "Config": {"Labels": {"zerodown.revision": "2"}},
                "State": {"Status": "running"}}


class Recording(DockerPlatform):
    """The swap's building blocks record what they are asked; ``fail_on`` makes a batch's gate fail."""

    def __init__(self, fail_on=None, **params):
        super().__init__(Module(batch_size=params.pop("batch_size", 1), **params), WorkloadRef("docker", "w"))
        self.log = []
        self.fail_on = fail_on
        self._engine = Engine(self.log)
        self.batches = 0

    def _take_in(self, ids, fresh):
        self.batches += 1
        if self.fail_on == self.batches:
            self.log.append(("undo", tuple(ids)))
            raise RolloutFailed(f"new container {ids[0]} is unhealthy")
        self.log.append(("in", tuple(ids)))
        return [rep(i, 2) for i in ids]

    def _take_out(self, reps, remove=False):
        self.log.append(("remove" if remove else "out", tuple(r.id for r in reps)))


def starter(prefix="n"):
    counter = iter(range(100))

    def start(k):
        ids = [f"{prefix}{next(counter)}" for _index in range(k)]
        return ids, ids
    return start


def test_start_first_batches_in_order():
    platform = Recording(batch_size=2)
    batches = platform._swap([rep("a"), rep("b"), rep("c")], 3, starter())
    assert batches == 2
    assert platform.log == [("in", ("n0", "n1")), ("out", ("a", "b")), ("in", ("n2",)), ("out", ("c",))]


def test_scale_down_in_the_same_swap_takes_out_the_rest():
    platform = Recording(batch_size=1)
    platform._swap([rep("a"), rep("b"), rep("c")], 1, starter())
    assert platform.log == [("in", ("n0",)), ("out", ("a", "b", "c"))]


def test_failed_first_batch_touches_no_old_replica():
    platform = Recording(fail_on=1, batch_size=2)
    with pytest.raises(RolloutFailed) as err:
        platform._swap([rep("a"), rep("b")], 2, starter())
    assert platform.log == [("undo", ("n0", "n1"))]
    assert "swapped back" not in err.value.msg


def test_failed_later_batch_swaps_completed_batches_back():
    platform = Recording(fail_on=2, batch_size=1)
    with pytest.raises(RolloutFailed) as err:
        platform._swap([rep("a"), rep("b")], 2, starter())
    assert platform.log == [
        ("in", ("n0",)), ("out", ("a",)),        # batch 1 completed
        ("undo", ("n1",)),                       # batch 2 failed its gate and was undone
        ("start", "a"), ("in", ("a",)),          # the old replica comes back first, gated
        ("out", ()), ("remove", ("n0",)),        # then batch 1's new container is drained and removed
    ]
    assert "swapped back" in err.value.msg


def test_connect_rejects_unusable_tls_settings(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    if not engine.HAS_DOCKER:
        pytest.skip("docker SDK not installed")
    with pytest.raises(InvalidInput, match="must start with"):
        engine.connect({"docker_host": "http://host:2375"})
    with pytest.raises(InvalidInput, match="tcp:// hosts only"):
        engine.connect({"docker_host": "unix:///var/run/docker.sock", "docker_tls": True})
    with pytest.raises(InvalidInput, match="go together"):
        engine.connect({"docker_host": "tcp://127.0.0.1:1", "docker_client_cert": str(cert)})
    with pytest.raises(InvalidInput, match="not a readable file"):
        engine.connect({"docker_host": "tcp://127.0.0.1:1", "docker_ca_path": str(tmp_path / "missing.pem")})


def test_invalid_workload_name_is_refused_before_anything():
    with pytest.raises(InvalidInput, match="not a valid Docker workload name"):
        DockerPlatform(Module(), WorkloadRef("docker", "bad name"))


def test_a_cap_stops_the_swap_with_the_rest_of_the_old_replicas_serving():
    platform = Recording(batch_size=1)
    batches = platform._swap([rep("a"), rep("b"), rep("c")], 3, starter(), cap=1)
    assert batches == 1
    assert platform.log == [("in", ("n0",)), ("out", ("a",))]  # b and c are neither drained nor stopped


def test_a_cap_inside_a_batch_cuts_that_batch_short():
    # a re-run that must reach 3 new replicas with 1 already in: 2 more, not a whole batch of 3
    platform = Recording(batch_size=3)
    batches = platform._swap([rep("a"), rep("b"), rep("c")], 3, starter(), cap=2)
    assert batches == 1
    assert platform.log == [("in", ("n0", "n1")), ("out", ("a", "b"))]


def test_a_cap_beyond_the_replicas_needed_swaps_everything():
    platform = Recording(batch_size=2)
    batches = platform._swap([rep("a"), rep("b"), rep("c")], 3, starter(), cap=10)
    assert batches == 2
    assert platform.log == [("in", ("n0", "n1")), ("out", ("a", "b")), ("in", ("n2",)), ("out", ("c",))]


@pytest.mark.parametrize("value", [0, -1])
def test_max_batches_below_one_is_refused(value):
    platform = Recording(max_batches=value)
    with pytest.raises(InvalidInput, match="max_batches must be 1 or more"):
        platform._validate_rollout_params()


def test_health_timeout_zero_is_refused_and_unset_means_60():
    with pytest.raises(InvalidInput, match="health_timeout must be more than 0"):
        Recording(health_timeout=0)._validate_rollout_params()
    with pytest.raises(InvalidInput, match="health_timeout must be zero or more"):  # the range check comes first
        Recording(health_timeout=-5)._validate_rollout_params()
    assert Recording(health_timeout=0.5)._health_timeout() == 0.5
    assert Recording(health_timeout=None)._health_timeout() == 60.0


@pytest.mark.parametrize("value", [0, -3])
def test_docker_timeout_below_one_is_refused_before_connecting(value):
    if not engine.HAS_DOCKER:
        pytest.skip("docker SDK not installed")
    with pytest.raises(InvalidInput, match="docker_timeout must be 1 or more"):
        engine.connect({"docker_host": "tcp://127.0.0.1:1", "docker_timeout": value})


# -- old containers stopped in the background ------------------------------------------------------------------
class StoppingEngine(Engine):
    """``stop`` blocks until ``gate`` is set (an app that ignores SIGTERM); ``fail`` ids answer with an error."""

    def __init__(self, log, gate, fail=()):
        super().__init__(log)
        self.gate = gate
        self.fail = set(fail)
        self.stopping = set()

    def stop(self, cid, timeout, what=""):
        self.stopping.add(cid)
        self.gate.wait(30)
        self.stopping.discard(cid)
        if cid in self.fail:
            raise RolloutFailed(f"the Docker engine refused to stop container {cid}")
        self.log.append(("stopped", cid, timeout))

    def start(self, cid, what=""):
        self.log.append(("start", cid, "while its stop runs" if cid in self.stopping else "stopped"))

    def remove(self, cid, volumes=True, what=""):
        self.log.append(("removed", cid))


class Stopping(Recording):
    """The real _take_out (no load balancer), so old replicas go through the background stops."""

    def __init__(self, gate, fail=(), fail_on=None, **params):
        super().__init__(fail_on=fail_on, **params)
        self._engine = StoppingEngine(self.log, gate, fail)

    _take_out = DockerPlatform._take_out


def test_the_next_batch_starts_before_the_previous_stops_end_and_all_are_joined():
    gate = threading.Event()
    platform = Stopping(gate, batch_size=1)
    try:
        platform._swap([rep("a"), rep("b"), rep("c")], 3, starter())
        # every batch went in while no stop had ended: the stops block until the gate opens
        assert platform.log == [("in", ("n0",)), ("in", ("n1",)), ("in", ("n2",))]
        assert [r.id for r, _future in platform._stops] == ["a", "b", "c"]
    finally:
        gate.set()
    assert platform._join_stops() == []
    assert sorted(platform.log[3:]) == [("stopped", "a", 10), ("stopped", "b", 10), ("stopped", "c", 10)]
    assert platform._stops == []
    platform._close_stopper()


def test_stop_timeout_zero_is_honoured():
    gate = threading.Event()
    gate.set()
    platform = Stopping(gate, batch_size=2, stop_timeout=0)
    platform._swap([rep("a")], 1, starter())
    platform._settle_stops()
    assert ("stopped", "a", 0) in platform.log
    platform._close_stopper()


def test_a_failed_stop_is_reported_after_the_others_are_joined():
    gate = threading.Event()
    gate.set()
    platform = Stopping(gate, fail=("b",), batch_size=1)
    platform._swap([rep("a"), rep("b"), rep("c")], 3, starter())
    with pytest.raises(RolloutFailed) as err:
        platform._settle_stops()
    assert "w-r1-b" in err.value.msg and "converges" in err.value.msg
    assert "w-r1-a" not in err.value.msg
    assert {e[1] for e in platform.log if e[0] == "stopped"} == {"a", "c"}
    platform._close_stopper()


def test_a_failed_batch_waits_for_the_stops_before_restarting_the_old_replicas():
    gate = threading.Event()
    opener = threading.Timer(1.0, gate.set)  # the stop of "a" is still running when batch 2 fails
    platform = Stopping(gate, fail_on=2, batch_size=1)
    opener.start()
    try:
        with pytest.raises(RolloutFailed) as err:
            platform._swap([rep("a"), rep("b")], 2, starter())
    finally:
        opener.cancel()
        gate.set()
    assert ("start", "a", "stopped") in platform.log, platform.log
    assert platform.log.index(("stopped", "a", 10)) < platform.log.index(("start", "a", "stopped"))
    assert "swapped back" in err.value.msg
    platform._close_stopper()


# -- planning ---------------------------------------------------------------------------------------------------
def container(cid, rev, image, image_id, running, env=("A=1",), created="2024-01-01T00:00:00Z"):
    labels = {"zerodown.workload": "w", "zerodown.revision": str(rev), "zerodown.image": image,
              "zerodown.change-cause": f"cause {rev}", "zerodown.created": created, "zerodown.replicas": "2",
              "zerodown.port": "8080/tcp", "team": "shop"}
    return Replica.from_attrs({
        "Id": cid, "Name": f"/w-r{rev}-{cid}", "Image": image_id,
        "Config": {"Image": image, "Env": list(env), "Labels": labels, "ExposedPorts": {"8080/tcp": {}}},
        "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}},
        "State": {"Status": "running" if running else "exited", "StartedAt": f"2024-01-0{rev}T00:00:00Z",
                  "FinishedAt": "" if running else f"2024-01-0{rev}T01:00:00Z"},
    })


class Planning(DockerPlatform):
    def __init__(self):
        super().__init__(Module(), WorkloadRef("docker", "w"))


def _history(*replicas):
    from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History
    return History(list(replicas))


# -- the end of a run: waiting for the new revision -----------------------------------------------------------
class Finishing(DockerPlatform):
    """``_finish`` over a history whose revision 2 is not done yet; records the timeout it waits with."""

    def __init__(self, **params):
        super().__init__(Module(**params), WorkloadRef("docker", "w"))
        self.waited = []

    def load(self):
        return _history(container("c", 2, "app:2", "sha:2", True))

    def _status(self, history, target=None):
        from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutStatus
        return RolloutStatus(desired=1, updated=1, ready=0, available=0, revision=2, state="Progressing",
                             message="waiting")

    def wait(self, revision, timeout, progress=None):
        self.waited.append((revision, timeout))
        return self._status(self.load(), revision)


def test_progress_has_each_batch_then_the_final_wait():
    platform = Recording(batch_size=2, load_balancer={"type": "haproxy", "socket": "/x.sock"})
    platform._balancer = types.SimpleNamespace(routes=True)  # a load balancer that routes, never asked anything here
    platform._swap([rep("a"), rep("b"), rep("c")], 3, starter())
    messages = [e["message"] for e in platform._progress.entries]
    assert messages == ["batch 1: 2 of 3 new replica(s) healthy and in the load balancer, 1 old one(s) left",
                        "batch 2: 3 of 3 new replica(s) healthy and in the load balancer, 0 old one(s) left"]
    times = [e["t"] for e in platform._progress.entries]
    assert times == sorted(times) and times[0] >= 0

    finishing = Finishing(retain=5)
    finishing._progress.note("batch 1: 1 of 1 new replica(s) healthy, 0 old one(s) left")

    def wait(revision, timeout, progress=None):  # the final wait reports its statuses through progress
        progress(finishing._status(None))
        progress(finishing._status(None))  # the same message again: kept once
        return finishing._status(None)
    finishing.wait = wait
    result = finishing._finish(2, 1, {"image": "app:1"}, "upgraded")
    assert [e["message"] for e in result.extra["progress"]] == [
        "batch 1: 1 of 1 new replica(s) healthy, 0 old one(s) left", "waiting"]


@pytest.mark.parametrize("given, waited", [(0, 0.0), (7, 7.0), (None, 300.0)])
def test_wait_timeout_is_honoured_zero_included(given, waited):
    platform = Finishing(wait_timeout=given, retain=5)
    platform._finish(2, 1, {"image": "app:1"}, "upgraded")
    assert platform.waited == [(2, waited)]


@pytest.mark.parametrize("given", [0, None])
def test_rollback_to_revision_zero_means_the_previous_one_as_kubectl(given):
    history = _history(container("a", 1, "app:1", "sha:1", False),
                       container("c", 2, "app:2", "sha:2", True, created="2024-02-01T00:00:00Z"))
    platform = Planning()
    platform.module.check_mode = True
    platform.params["to_revision"] = given
    result = platform._plan_rollback(history)
    assert result.changed and "back from revision 2 to revision 1" in result.message, result.message


def test_rollback_to_a_negative_revision_is_refused():
    platform = Planning()
    platform._existing = lambda: pytest.fail("read the engine before refusing the input")
    with pytest.raises(InvalidInput, match="to_revision must be zero or more"):
        platform.rollback({"to_revision": -1})
