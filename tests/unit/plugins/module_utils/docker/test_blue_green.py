"""docker/blue_green.py: what strategy=blue_green refuses before anything changes, and what a re-run does."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Member, check_weights, engine_tag
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.haproxy import HaproxyRuntime
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.nginx import NginxUpstream
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.none import NoBalancer
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.blue_green import (
    DEFAULT_STANDBY_SECONDS,
    blue_green_strategy,
    check_blue_green,
    plan_rerun,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.backend import DockerPlatform
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import creation_config
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.standby import Standby
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.steps import steps_strategy
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput, RolloutFailed, WorkloadRef
from tests.support.docker_fakes import Engine, Pool

HAPROXY = HaproxyRuntime("/run/haproxy/admin.sock", "web")
NGINX = NginxUpstream("/etc/nginx/conf.d/web.conf", "web", runner=lambda argv: (0, "", ""))
NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)


def standby(revision=1, serving=2, seconds=60, since=NOW):
    return Standby.starting("web", revision, serving, seconds, since)


def test_blue_green_options_without_the_strategy_and_steps_options_with_it_are_refused():
    assert blue_green_strategy({"strategy": "blue_green"}) is True
    assert blue_green_strategy({"strategy": "steps"}) is False
    with pytest.raises(InvalidInput, match=r"standby_seconds and promote apply to strategy=blue_green only \(strategy "
                                           r"is rolling\)"):
        blue_green_strategy({"standby_seconds": 0, "promote": False})
    with pytest.raises(InvalidInput, match=r"promote applies to strategy=blue_green only \(strategy is steps\)"):
        blue_green_strategy({"strategy": "steps", "promote": True})
    with pytest.raises(InvalidInput, match=r"steps applies to strategy=steps only \(strategy is blue_green\)"):
        steps_strategy({"strategy": "blue_green", "steps": [{"weight": 5}]})
    with pytest.raises(InvalidInput, match=r"analysis applies to strategy=steps only \(strategy is blue_green\)"):
        steps_strategy({"strategy": "blue_green", "analysis": {}})


def test_standby_seconds_default_and_an_explicit_zero_is_honoured():
    assert check_blue_green({}, HAPROXY) == DEFAULT_STANDBY_SECONDS
    assert check_blue_green({"standby_seconds": 0}, HAPROXY) == 0.0
    assert check_blue_green({"standby_seconds": 30}, NGINX) == 30.0
    assert check_blue_green({"standby_seconds": 316224000}, NGINX) == 316224000.0  # 10 years: its end is recorded
    assert Standby.starting("web", 1, 2, 316224000, NOW).until.year == 2040


@pytest.mark.parametrize("params, balancer, said", [
    ({"standby_seconds": -1}, HAPROXY, "standby_seconds must be zero or more"),
    ({"standby_seconds": float("inf")}, HAPROXY, r"standby_seconds must be zero or more .* got inf"),
    ({"standby_seconds": float("nan")}, HAPROXY, r"standby_seconds must be zero or more .* got nan"),
    ({"standby_seconds": 1e300}, HAPROXY, r"at most 316224000 \(10 years"),
    ({"standby_seconds": 316224001}, HAPROXY, "standby_seconds must be zero or more"),
    ({"max_batches": 1}, HAPROXY, "max_batches applies to strategy=rolling; strategy=blue_green switches"),
    ({}, NoBalancer(), "strategy=blue_green needs a load balancer that weighs its members"),
])
def test_what_cannot_work_is_refused(params, balancer, said):
    with pytest.raises(InvalidInput, match=said):
        check_blue_green(params, balancer)


def test_a_valid_standby_is_left_as_it_is_until_it_expires_or_is_promoted():
    unchanged = plan_rerun([1], 1, True, standby(), False, 60, NOW + datetime.timedelta(seconds=59))
    assert not unchanged.changes and "promote: true retires it now" in unchanged.reason
    expired = plan_rerun([1], 1, True, standby(), False, 60, NOW + datetime.timedelta(seconds=60))
    assert expired.retire == [1] and not expired.switch and "expired" in expired.reason
    promoted = plan_rerun([1], 1, True, standby(), True, 60, NOW)
    assert promoted.retire == [1] and "promote" in promoted.reason
    # promote with nothing standing by: nothing to do
    assert not plan_rerun([], None, True, None, True, 60, NOW).changes


def test_a_switch_that_did_not_end_is_ended_and_the_standby_recorded():
    # killed before the marker was written: the previous revision becomes the standby; an older one is retired
    plan = plan_rerun([1, 2], 2, False, None, False, 60, NOW)
    assert (plan.switch, plan.record, plan.retire) == (True, 2, [1])
    # killed after it: the recorded standby (and its deadline) is kept
    plan = plan_rerun([1], 1, False, standby(), False, 60, NOW)
    assert (plan.switch, plan.record, plan.retire) == (True, None, [])
    # standby_seconds 0: switched, then everything else retired
    plan = plan_rerun([1], 1, False, None, False, 0, NOW)
    assert (plan.switch, plan.record, plan.retire) == (True, None, [1])
    # promote: true, as standby_seconds 0 (a recorded standby is retired too)
    plan = plan_rerun([1], 1, False, standby(), True, 60, NOW)
    assert (plan.switch, plan.record, plan.retire) == (True, None, [1]) and "promote: true" in plan.reason


def test_revisions_at_weight_0_that_no_record_names_are_retired():
    plan = plan_rerun([1], 1, True, None, False, 60, NOW)
    assert (plan.switch, plan.retire) == (False, [1]) and "no standby recorded" in plan.reason
    plan = plan_rerun([1, 2], 2, True, standby(revision=2, serving=3), False, 60, NOW)
    assert plan.retire == [1] and plan.record is None


# -- end to end on the in-memory engine (tests/support/docker_fakes.py), behind a pool that weighs ----------------

TAG = engine_tag("E|host|/d")


class Module:
    def __init__(self, **params):
        self.params = params
        self.check_mode = False

    def warn(self, text):
        raise AssertionError(f"unexpected warning: {text}")


class WeighingPool(Pool):
    """Pool that weighs its members (the default weight 1) and logs each weight write."""

    weighted = True

    def members(self):
        return {n: Member(n, a, "UP", weight=self.weights.get(n, 1)) for n, a in self.pool.items()}

    def set_weights(self, weights):
        check_weights(weights, self.intent, self.MAX_WEIGHT)
        self._intend_weights(weights)
        self.log.append(("weights", {n.split(".")[0]: w for n, w in sorted(weights.items())}))
        return []


def two_replicas_behind_a_pool():
    engine = Engine()
    for index in (1, 2):
        config, _later = creation_config("app:1", "w", 1, "created", {"port": 8080}, {}, 2)
        engine.start(engine.create(config, f"w-r1-old{index}"), "")
    pool = WeighingPool(engine.calls)
    pool.pool = {f"w-r1-old{i}.{TAG}": f"127.0.0.1:{i}" for i in (1, 2)}
    return engine, pool


def run(engine, pool, action, **params):
    platform = DockerPlatform(Module(stop_timeout=0, lock_timeout=0, **params), WorkloadRef("docker", "w"))
    platform.docker._engine = engine
    platform.docker._balancer = pool
    pool.scope = None  # every run binds the pool again, as a new module process would
    return action(platform)


def upgrade(engine, pool, **params):
    return run(engine, pool, lambda p: p.upgrade({"image": "app:2"}), strategy="blue_green", **params)


def marker(engine):
    return next((c for c in engine.by_id.values() if c["Name"] == "/zerodown-standby-w"), None)


def test_one_switch_new_raised_before_old_lowered_and_the_old_set_standing_by():
    engine, pool = two_replicas_behind_a_pool()
    result = upgrade(engine, pool, standby_seconds=60)
    assert (result.revision, result.previous_revision, result.status.state) == (2, 1, "complete")
    assert [r for r, _name in engine.running()] == ["1", "1", "2", "2"]
    writes = [c[1] for c in engine.calls if c[0] == "weights"]
    # admitted at 0 (by admit, not a write), then: new to the default, then old to 0 - never both at 0
    assert len(writes) == 2 and set(writes[0].values()) == {None} and set(writes[1].values()) == {0}, writes
    assert all(name.startswith("w-r2-") for name in writes[0]) and sorted(writes[1]) == ["w-r1-old1", "w-r1-old2"]
    assert result.extra["standby"]["revision"] == 1 and result.after["standby"] == 1
    assert "revision 1 stands by at weight 0" in result.message
    assert marker(engine)["Config"]["Labels"]["zerodown.standby.revision"] == "1"

    again = upgrade(engine, pool, standby_seconds=60)
    assert again.changed is False and again.extra["standby"]["revision"] == 1, again.message
    assert "promote: true retires it now" in again.message


def test_rollback_in_the_window_switches_back_without_starting_a_container():
    engine, pool = two_replicas_behind_a_pool()
    upgrade(engine, pool, standby_seconds=60)
    engine.calls.clear()
    result = run(engine, pool, lambda p: p.rollback({}))
    assert (result.revision, result.previous_revision, result.status.state) == (1, 2, "complete")
    assert "no container starts" in result.message
    assert not [c for c in engine.calls if c[0] == "start" or (c[0] == "create" and c[1] != "zerodown-lock")]
    writes = [c[1] for c in engine.calls if c[0] == "weights"]
    assert writes[0] == {"w-r1-old1": None, "w-r1-old2": None} and set(writes[1].values()) == {0}, writes
    assert [r for r, _name in engine.running()] == ["1", "1"] and marker(engine) is None


def test_promote_or_standby_seconds_0_retire_the_old_set_kept_as_a_retained_revision():
    engine, pool = two_replicas_behind_a_pool()
    result = upgrade(engine, pool, standby_seconds=0)
    assert result.extra["standby"] is None and marker(engine) is None
    assert [r for r, _name in engine.running()] == ["2", "2"] and len(engine.by_id) == 4  # revision 1 kept, stopped

    engine, pool = two_replicas_behind_a_pool()
    upgrade(engine, pool, standby_seconds=60)
    promoted = upgrade(engine, pool, promote=True)
    assert promoted.changed and "promote: retiring the standby revision 1" in promoted.message
    assert [r for r, _name in engine.running()] == ["2", "2"] and marker(engine) is None
    assert promoted.before["standby"] == 1 and promoted.after["standby"] is None
    assert upgrade(engine, pool, promote=True).changed is False  # nothing stands by: nothing to do


def test_a_run_killed_between_the_two_weight_writes_is_ended_by_the_re_run():
    engine, pool = two_replicas_behind_a_pool()
    upgrade(engine, pool, standby_seconds=60)
    pool.weights.clear()  # both revisions at their default weight, as after the first write only
    info = run(engine, pool, lambda p: p.status())
    assert info.state == "progressing", info.message  # a standby that takes requests is none
    check = run(engine, pool, lambda p: (setattr(p.module, "check_mode", True), p.upgrade({"image": "app:2"}))[1],
                strategy="blue_green")
    assert check.changed and "the switch had not ended" in check.message
    result = upgrade(engine, pool)
    assert result.changed and result.status.state == "complete" and result.extra["standby"]["revision"] == 1
    assert {n.split(".")[0]: w for n, w in pool.weights.items()} == {"w-r1-old1": 0, "w-r1-old2": 0}


def restart(engine, name):
    """``docker restart`` (or a crash under a restart policy): the container starts again, StartedAt now."""
    cid = next(cid for cid, c in engine.by_id.items() if c["Name"] == f"/{name}")
    engine.stop(cid, 0)
    engine.start(cid)


def test_a_standby_container_that_restarts_does_not_become_current():
    engine, pool = two_replicas_behind_a_pool()
    upgrade(engine, pool, standby_seconds=60)
    restart(engine, "w-r1-old1")  # the newest StartedAt is now a standby container's
    info = run(engine, pool, lambda p: p.status())
    assert (info.revision, info.state) == (2, "complete"), info.message
    assert info.extra["standby"]["revision"] == 1
    again = upgrade(engine, pool, standby_seconds=60)
    assert again.changed is False and again.revision == 2 and marker(engine) is not None, again.message
    assert not [c for c in engine.calls if c[0] == "create" and c[1].startswith("w-r3")]
    result = run(engine, pool, lambda p: p.rollback({}))
    assert (result.revision, result.previous_revision) == (1, 2) and "no container starts" in result.message
    assert [r for r, _name in engine.running()] == ["1", "1"]


def test_promote_on_the_switching_run_keeps_no_standby():
    engine, pool = two_replicas_behind_a_pool()
    check = run(engine, pool, lambda p: (setattr(p.module, "check_mode", True), p.upgrade({"image": "app:2"}))[1],
                strategy="blue_green", standby_seconds=60, promote=True)
    assert check.changed and "revision 1 is taken out at once (promote: true)" in check.message, check.message
    result = upgrade(engine, pool, standby_seconds=60, promote=True)
    assert (result.revision, result.status.state) == (2, "complete") and result.extra["standby"] is None
    assert [r for r, _name in engine.running()] == ["2", "2"] and marker(engine) is None
    assert "stands by" not in result.message


class Warned(Module):
    def __init__(self, **params):
        super().__init__(**params)
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


def rollback_warned(engine, pool, **params):
    module = Warned(stop_timeout=0, lock_timeout=0)
    platform = DockerPlatform(module, WorkloadRef("docker", "w"))
    platform.docker._engine = engine
    platform.docker._balancer = pool
    pool.scope = None
    return platform.rollback(params), module.warnings


class DownPool(WeighingPool):
    """A pool in which the members of ``down`` (container names) never come UP."""

    down = ()

    def members(self):
        return {n: (m if n.split(".")[0] not in self.down else Member(n, m.address, "DOWN", weight=m.weight))
                for n, m in super().members().items()}

    def wait_up(self, name, timeout, follow=None):
        if name.split(".")[0] in self.down:
            raise RolloutFailed(f"server {name.split('.')[0]} did not come UP within {timeout:g}s")


def raised(engine):
    """The members each weight write raised to their default weight (None)."""
    return [sorted(n for n, w in c[1].items() if w is None) for c in engine.calls if c[0] == "weights"]


@pytest.mark.parametrize("spoil", ["unhealthy", "down"])
def test_a_standby_that_cannot_serve_is_not_switched_back_to_but_rolled_back_start_first(spoil):
    engine = two_replicas_behind_a_pool()[0]
    pool = DownPool(engine.calls)
    pool.pool = {f"w-r1-old{i}.{TAG}": f"127.0.0.1:{i}" for i in (1, 2)}
    upgrade(engine, pool, standby_seconds=60)
    bad = next(c for c in engine.by_id.values() if c["Name"] == "/w-r1-old1")
    if spoil == "unhealthy":
        bad["State"]["Health"] = {"Status": "unhealthy"}
    else:
        pool.down = ("w-r1-old1",)
    check = run(engine, pool, lambda p: (setattr(p.module, "check_mode", True), p.rollback({}))[1])
    if spoil == "unhealthy":  # check mode judges the containers (a member's UP is waited for under the lock only)
        assert "rolling (start-first), not by switching back: container w-r1-old1 is unhealthy" in check.message
    engine.calls.clear()
    result, warnings = rollback_warned(engine, pool)
    assert (result.revision, result.previous_revision) == (1, 2) and "batch(es)" in result.message, result.message
    assert len(warnings) == 1 and "rolling back start-first instead" in warnings[0] and "w-r1-old1" in warnings[0]
    # new replicas of revision 1 started and gated; the standby never raised; the standby and revision 2 taken out
    assert [c for c in engine.calls if c[0] == "start"] and not any("w-r1-old" in n for r in raised(engine) for n in r)
    running = [name for r, name in engine.running()]
    assert len(running) == 2 and all(n.startswith("w-r1-") and "old" not in n for n in running), running
    stopped = sorted(c[1] for c in engine.calls if c[0] == "stop")
    assert stopped[:2] == ["w-r1-old1", "w-r1-old2"] and len([n for n in stopped if n.startswith("w-r2-")]) == 2


def test_a_rollback_to_a_third_revision_leaves_the_standby_at_weight_0():
    engine, pool = two_replicas_behind_a_pool()
    engine.images["app:3"] = {"Id": "sha:3", "Config": {}}
    upgrade(engine, pool, standby_seconds=0)  # revision 1 retained, stopped
    run(engine, pool, lambda p: p.upgrade({"image": "app:3"}), strategy="blue_green", standby_seconds=60)
    assert sorted({r for r, _name in engine.running()}) == ["2", "3"] and marker(engine) is not None
    engine.calls.clear()
    result = run(engine, pool, lambda p: p.rollback({"to_revision": 1}))
    assert (result.revision, result.previous_revision) == (1, 3), result.message
    assert not any(n.startswith("w-r2-") for r in raised(engine) for n in r), raised(engine)
    assert [r for r, _name in engine.running()] == ["1", "1"]
