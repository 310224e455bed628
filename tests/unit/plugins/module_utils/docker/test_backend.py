"""DockerPlatform: input checks, the load balancer it drives, planning (check mode's predictions, rollback targets,
the lock taken first), and an upgrade and a rollback end to end on an engine in memory, with and without a load
balancer (the swap's own order and failures: test_swap.py)."""
from __future__ import annotations

import copy

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import engine_tag
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.backend import DockerPlatform
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import Replica, creation_config
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    RolloutError,
    RolloutFailed,
    WorkloadRef,
)
from tests.support.docker_fakes import Engine, Pool, planning, platform_with

from tests.support.docker_containers import retained_replica as container
from tests.support.fake_module import FakeModule


def test_invalid_workload_name_is_refused_before_anything():
    with pytest.raises(InvalidInput, match="not a valid Docker workload name"):
        DockerPlatform(FakeModule({}), WorkloadRef("docker", "bad name"))


@pytest.mark.parametrize("value", [0, -1])
def test_max_batches_below_one_is_refused(value):
    with pytest.raises(InvalidInput, match="max_batches must be 1 or more"):
        platform_with(max_batches=value)._validate_rollout_params()


def test_health_timeout_zero_is_refused():
    with pytest.raises(InvalidInput, match="health_timeout must be more than 0"):
        platform_with(health_timeout=0)._validate_rollout_params()
    with pytest.raises(InvalidInput, match="health_timeout must be zero or more"):  # the range check comes first
        platform_with(health_timeout=-5)._validate_rollout_params()


# -- the load balancer it drives -------------------------------------------------------------------------------
def test_without_a_load_balancer_the_change_is_warned_about():
    platform = platform_with(load_balancer={"type": "none"})
    platform._check_balancer()
    assert len(platform.module.warnings) == 1 and "Zero downtime needs a load balancer" in platform.module.warnings[0]


def test_a_load_balancer_that_cannot_be_driven_fails_before_anything():
    platform = platform_with(load_balancer={"type": "haproxy", "socket": "/nonexistent/zerodown/admin.sock"})
    with pytest.raises(RolloutError, match="admin.sock"):
        platform._check_balancer()
    assert platform.module.warnings == []


# -- planning ---------------------------------------------------------------------------------------------------
def _history(*replicas: Replica) -> History:
    return History(list(replicas))


TWO_REVISIONS = (container("a", 1, "app:1", "sha:1", False), container("b", 1, "app:1", "sha:1", False),
                 container("c", 2, "app:2", "sha:2", True, created="2024-02-01T00:00:00Z"),
                 container("d", 2, "app:2", "sha:2", True, created="2024-02-01T00:00:00Z"))


def test_check_mode_predicts_a_new_revision_and_the_pull():
    result = planning(_history(*TWO_REVISIONS), {"app:2": "sha:2"}).upgrade({"image": "app:3"})
    assert result.changed and (result.revision, result.previous_revision) == (3, 2)
    assert result.message == ("would upgrade Docker workload 'w' from app:2 (revision 2) to app:3 (revision 3); "
                              "app:3 would be pulled")
    assert result.after == {"revision": 3, "image": "app:3", "replicas": 2} and result.extra["partial"] is False


def test_check_mode_predicts_a_partial_upgrade():
    result = planning(_history(*TWO_REVISIONS), {"app:3": "sha:3"}, max_batches=1, batch_size=1).upgrade(
        {"image": "app:3"})
    assert result.message.endswith("(revision 3), 1 of 2 replicas in the first 1 batch(es)"), result.message
    assert result.after["replicas"] == 1 and result.extra["partial"] is True


def test_check_mode_predicts_the_restart_of_a_retained_revision():
    result = planning(_history(*TWO_REVISIONS), {"app:1": "sha:1"}).upgrade({"image": "app:1"})
    assert (result.revision, result.previous_revision) == (1, 2)
    assert "it would restart revision 1 (restarting the 2 retained container(s) of revision 1)" in result.message
    assert "no pull, no new revision" in result.message


def test_check_mode_predicts_a_scale_and_a_create_and_nothing_to_do():
    history = _history(*TWO_REVISIONS)
    result = planning(history, {"app:2": "sha:2"}, replicas=3).upgrade({"image": "app:2"})
    assert result.message == "would scale Docker workload 'w' from 2 to 3 replicas"
    result = planning(history, {"app:2": "sha:2"}).upgrade({"image": "app:2"})
    assert not result.changed and result.message == "Docker workload 'w' already runs app:2 (revision 2) with 2 replicas"
    result = planning(_history(), replicas=2).upgrade({"image": "app:2"})
    assert result.changed and result.message == "would create Docker workload 'w' with 2 replicas of app:2"


def test_a_change_outside_check_mode_takes_the_lock_first():
    platform = planning(_history(*TWO_REVISIONS), {"app:1": "sha:1"}, check_mode=False)
    asked = []
    platform.change.locked = lambda operation, target, images, action: asked.append((operation, target, images))
    platform.rollback({})
    assert asked == [("rollback", "revision 1 (app:1)", ["sha:2", "sha:1"])]


# -- end to end on a stand-in engine, without a load balancer ---------------------------------------------------
def test_an_upgrade_and_a_rollback_end_to_end_without_a_load_balancer():
    engine = Engine()
    for index in (1, 2):
        config, _later = creation_config("app:1", "w", 1, "created", {"port": 8080}, {}, 2)
        engine.start(engine.create(config, f"w-r1-old{index}"), "")
    platform = platform_with(batch_size=1, stop_timeout=0, retain=2, lock_timeout=0)
    platform.docker._engine = engine

    result = platform.upgrade({"image": "app:2"})
    assert result.message == "Docker workload 'w' upgraded from revision 1 (app:1) to revision 2 (app:2) in 2 batch(es)"
    assert (result.revision, result.previous_revision, result.status.state) == (2, 1, "complete")
    assert [r[0] for r in engine.running()] == ["2", "2"] and len(engine.by_id) == 4  # the old ones kept, no lock
    # start-first, one batch at a time: a new one started before an old one stops
    steps = [c[0] for c in engine.calls if c[0] in ("create", "stop")]
    assert steps[:2] == ["create", "create"] and steps.count("stop") == 2
    assert [e["message"] for e in result.extra["progress"]][:2] == [
        "batch 1: 1 of 2 new replica(s) healthy, 1 old one(s) left",
        "batch 2: 2 of 2 new replica(s) healthy, 0 old one(s) left"]
    assert any("Zero downtime needs a load balancer" in w for w in platform.module.warnings)

    engine.calls.clear()
    back = platform_with(batch_size=1, stop_timeout=0, lock_timeout=0)
    back.docker._engine = engine
    result = back.rollback({})
    assert (result.revision, result.previous_revision) == (1, 2)
    assert engine.running() == [("1", "w-r1-old1"), ("1", "w-r1-old2")]  # the very containers, restarted
    assert not any(c[0] == "create" and c[1] != "zerodown-lock" for c in engine.calls), engine.calls


def test_an_upgrade_end_to_end_behind_a_load_balancer_ends_with_the_new_containers_as_its_members():
    engine = Engine()
    for index in (1, 2):
        config, _later = creation_config("app:1", "w", 1, "created", {"port": 8080}, {}, 2)
        engine.start(engine.create(config, f"w-r1-old{index}"), "")
    platform = platform_with(batch_size=1, stop_timeout=0, lock_timeout=0)
    platform.docker._engine = engine
    platform.docker._balancer = pool = Pool(engine.calls)
    tag = engine_tag("E|host|/d")
    pool.pool = {f"w-r1-old{i}.{tag}": f"127.0.0.1:{i}" for i in (1, 2)}

    result = platform.upgrade({"image": "app:2"})
    assert result.status.state == "complete" and result.status.available == 2
    running = [name for _revision, name in engine.running()]
    assert sorted(pool.pool) == sorted(f"{name}.{tag}" for name in running)
    # a batch: the new one in, then the old one drained; its stop runs in the background, after its drain
    calls = engine.calls
    assert [c[0] for c in calls if c[0] in ("add", "drain")] == ["add", "drain", "add", "drain"], calls
    for old in ("w-r1-old1", "w-r1-old2"):
        assert calls.index(("drain", old)) < calls.index(("stop", old)), calls
    assert not platform.module.warnings


def test_a_new_revision_that_does_not_start_leaves_the_old_one_serving_and_the_lock_released():
    engine = Engine()
    for index in (1, 2):
        config, _later = creation_config("app:1", "w", 1, "created", {"port": 8080}, {}, 2)
        engine.start(engine.create(config, f"w-r1-old{index}"), "")
    crashing = engine.start

    def start(cid, what=""):  # app:2 exits at once
        crashing(cid, what)
        if engine.by_id[cid]["Image"] == "sha:2":
            engine.by_id[cid]["State"].update(Status="exited", ExitCode=1)
    engine.start = start
    platform = platform_with(batch_size=1, stop_timeout=0, lock_timeout=0)
    platform.docker._engine = engine
    with pytest.raises(RolloutFailed) as err:
        platform.upgrade({"image": "app:2"})
    assert err.value.msg.startswith("upgrade of Docker workload 'w' to app:2 failed: new container w-r2-")
    assert "stopped (state exited, exit code 1) before it became healthy" in err.value.msg
    assert err.value.details["revision"] == 1
    assert engine.running() == [("1", "w-r1-old1"), ("1", "w-r1-old2")] and len(engine.by_id) == 2  # new one removed
    assert not any(c[0] == "stop" for c in engine.calls)


# -- replicas reached on a network (docker_container.lb_network) -------------------------------------------------
def test_a_new_workload_on_a_network_the_engine_lacks_is_refused_before_anything(monkeypatch):
    for check_mode in (True, False):
        platform = planning(_history(), {"app:1": "sha:1"}, check_mode=check_mode, replicas=2,
                            docker_container={"port": 8080, "lb_network": "appnet"})
        asked = []
        platform.docker.network = asked.append  # None: no such network
        platform.docker.ensure_image = lambda *a: pytest.fail("nothing may be pulled")
        with pytest.raises(InvalidInput, match="lb_network=appnet: .* has no such network; create it"):
            platform.upgrade({"image": "app:1"})
        assert asked == ["appnet"]
    platform = planning(_history(), {"app:1": "sha:1"}, replicas=2, docker_container={"lb_network": "hostnet"})
    platform.docker.network = lambda ref: {"Name": "hostnet", "Driver": "host"}
    with pytest.raises(InvalidInput, match="is a host network"):
        platform.upgrade({"image": "app:1"})
    # found under its id: the name is what the containers record
    platform = planning(_history(), {"app:1": "sha:1"}, replicas=2, docker_container={"lb_network": "1234abcd"})
    platform.docker.network = lambda ref: {"Name": "appnet", "Driver": "bridge"}
    assert platform.docker.lb_network("1234abcd") == "appnet"
    assert platform.upgrade({"image": "app:1"}).message.startswith("would create")


def test_an_existing_workload_keeps_its_addressing_and_a_task_asking_otherwise_is_refused():
    published = _history(*TWO_REVISIONS)
    platform = planning(published, {"app:2": "sha:2"}, docker_container={"lb_network": "appnet"})
    platform.docker.network = lambda ref: {"Name": ref, "Driver": "bridge"}
    with pytest.raises(InvalidInput, match="reached by its load balancer on their published ports"):
        platform.upgrade({"image": "app:3"})
    # docker_container without lb_network, or none: as before (ignored for an existing workload)
    assert planning(published, {"app:2": "sha:2"}, docker_container={"port": 8080}).upgrade({"image": "app:3"}).changed
    networked = [copy.deepcopy(r) for r in TWO_REVISIONS]
    for rep in networked:
        rep.attrs["Config"]["Labels"]["zerodown.lb-network"] = "appnet"
    history = _history(*[Replica.from_attrs(r.attrs) for r in networked])
    platform = planning(history, {"app:2": "sha:2"}, docker_container={"port": 8080})
    with pytest.raises(InvalidInput, match="on network appnet .* asks for on published ports"):
        platform.upgrade({"image": "app:3"})
    same = planning(history, {"app:2": "sha:2"}, docker_container={"lb_network": "appnet"}).upgrade({"image": "app:2"})
    assert not same.changed  # the same options twice: nothing to do


@pytest.mark.parametrize("label,local", [("unix:///var/run/docker.sock", True), ("tcp://127.0.0.1:2375", True),
                                         ("tcp://localhost:2375", True), ("tcp://10.0.0.5:2376", False),
                                         ("ssh://deploy@web1", False), ("ssh://127.0.0.1", False)])
def test_which_engines_run_on_this_machine(label, local):
    from ansible_collections.zerodown.rollout.plugins.module_utils.docker.backend import engine_is_local

    assert engine_is_local(label) is local


def test_preflight_reads_the_network_and_tries_a_replica_from_here(monkeypatch):
    from ansible_collections.zerodown.rollout.plugins.module_utils.docker import backend

    networked = []
    for cid, ip in (("c", "172.30.0.7"), ("d", "172.30.0.6")):
        rep = copy.deepcopy(container(cid, 2, "app:2", "sha:2", True))
        rep.attrs["Config"]["Labels"]["zerodown.lb-network"] = "appnet"
        rep.attrs["NetworkSettings"] = {"Networks": {"appnet": {"IPAddress": ip}}}
        networked.append(Replica.from_attrs(rep.attrs))
    history = _history(*networked)
    tried = []
    monkeypatch.setattr(backend, "tcp_reach", lambda address: tried.append(address) or "connection refused")
    platform = planning(history, {})
    platform.docker.network = lambda ref: {"Name": ref, "Driver": "bridge"}
    facts = platform._network_facts(history)
    assert (facts.name, facts.driver, facts.local) == ("appnet", "bridge", True)
    assert tried == ["172.30.0.7:8080"] and facts.unreachable == "connection refused"
    platform.docker.network = lambda ref: None
    assert platform._network_facts(history).driver is None and tried == ["172.30.0.7:8080"]  # nothing to try
    assert planning(_history(*TWO_REVISIONS), {})._network_facts(_history(*TWO_REVISIONS)) is None


# -- adopted containers (docker/adopt.py) end to end on the stand-in engine -----------------------------------------
class AdoptEngine(Engine):
    """Engine, with containers started by hand and the label query adoption makes."""

    def containers_labelled(self, labels):
        def has(c, sel):
            key, _sep, value = sel.partition("=")
            got = c["Config"]["Labels"]
            return key in got and (not value or got[key] == value)
        return [{"Id": cid} for cid, c in self.by_id.items() if all(has(c, s) for s in labels)]

    def by_hand(self, name, port):
        cid = f"h-{name}"
        self.by_id[cid] = {"Id": cid, "Name": f"/{name}", "Image": "sha:1", "Created": "2024-01-01T00:00:00.5Z",
                           "Config": {"Image": "app:1", "Labels": {"app": "web"}, "Env": ["GREETING=hi"]},
                           "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": port}]},
                                          "RestartPolicy": {"Name": "always"}},
                           "State": {"Status": "created"}}
        self.start(cid)
        return cid

    def state(self):
        return {c["Name"][1:]: c["State"]["Status"] for c in self.by_id.values() if c["Name"] != "/zerodown-lock-w"}


def test_containers_started_by_hand_are_adopted_upgraded_and_rolled_back_to():
    engine = AdoptEngine()
    hand = [engine.by_hand("web-a", "8081"), engine.by_hand("web-b", "8082")]
    platform = platform_with(batch_size=1, stop_timeout=0, lock_timeout=0, adopt={"labels": {"app": "web"}})
    platform.docker._engine = engine
    platform.docker._balancer = pool = Pool(engine.calls)
    tag = engine_tag("E|host|/d")
    pool.pool = {f"web-a.{tag}": "127.0.0.1:8081", f"web-b.{tag}": "127.0.0.1:8082"}

    result = platform.upgrade({"image": "app:2"})
    assert (result.revision, result.previous_revision, result.status.state) == (2, 1, "complete")
    new = [c for c in engine.by_id.values() if c["Config"]["Labels"].get("zerodown.workload") == "w"]
    assert len(new) == 2 and all(c["State"]["Status"] == "running" for c in new)
    for c in new:
        labels = c["Config"]["Labels"]
        assert labels["app"] == "web" and labels["zerodown.revision"] == "2" and labels["zerodown.port"] == "8080/tcp"
        assert labels["zerodown.adopted"] == ",".join(hand) and c["Config"]["Env"] == ["GREETING=hi"]
        assert c["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
        assert c["HostConfig"]["RestartPolicy"] == {"Name": "always"}
    assert engine.state()["web-a"] == engine.state()["web-b"] == "exited"
    assert engine.by_id[hand[0]]["Config"]["Labels"] == {"app": "web"}  # never relabelled
    assert sorted(pool.pool) == sorted(f"{c['Name'][1:]}.{tag}" for c in new)

    engine.by_hand("web-c", "8083")  # matches the selector, started after the upgrade: never adopted
    back = platform_with(batch_size=1, stop_timeout=0, lock_timeout=0)  # no adopt: the record is enough
    back.docker._engine = engine
    back.docker._balancer = pool
    result = back.rollback({})
    assert (result.revision, result.previous_revision) == (1, 2)
    state = engine.state()
    assert (state["web-a"], state["web-b"], state["web-c"]) == ("running", "running", "running")
    assert sorted(s for n, s in state.items() if n.startswith("w-r2")) == ["exited", "exited"]
    assert sorted(pool.pool) == [f"web-a.{tag}", f"web-b.{tag}"]
    assert [r.source for r in back.history() if r.number == 1] == ["web-a, web-b"]


def test_adopting_without_a_load_balancer_is_refused_with_nothing_changed():
    engine = AdoptEngine()
    engine.by_hand("web-a", "8081")
    platform = platform_with(adopt={"names": ["web-a"]}, lock_timeout=0)
    platform.docker._engine = engine
    engine.calls.clear()
    with pytest.raises(InvalidInput, match="needs a load_balancer"):
        platform.upgrade({"image": "app:2"})
    assert engine.calls == [] and engine.state() == {"web-a": "running"}
