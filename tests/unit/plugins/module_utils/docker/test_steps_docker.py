"""strategy=steps on Docker: what is refused before anything changes (the steps themselves: test_progressive.py)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Member
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.haproxy import HaproxyRuntime
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.nginx import NginxUpstream
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.none import NoBalancer
from ansible_collections.zerodown.rollout.plugins.module_utils.docker import standby as standby_mod
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import Replica
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.standby import Standby
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.steps import IdleReplicas, StepsPlan, check_steps, steps_strategy
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput, WorkloadRef
from tests.support.docker_containers import container_attrs

HAPROXY = HaproxyRuntime("/run/haproxy/admin.sock", "web")
NGINX = NginxUpstream("/etc/nginx/conf.d/web.conf", "web", runner=lambda argv: (0, "", ""))


def test_steps_options_without_strategy_steps_are_refused():
    assert steps_strategy({"strategy": "steps"}) is True
    assert steps_strategy({}) is False
    with pytest.raises(InvalidInput, match="steps and analysis apply to strategy=steps only"):
        steps_strategy({"steps": [{"weight": 5}], "analysis": {}})
    with pytest.raises(InvalidInput, match=r"analysis applies to strategy=steps only \(strategy is rolling\)"):
        steps_strategy({"strategy": "rolling", "analysis": {"min_requests": 5}})


def test_steps_need_a_balancer_that_weighs_and_counts_for_durations():
    steps = [{"weight": 5, "duration": 10}]
    assert [s.weight for s in check_steps({"steps": steps}, HAPROXY)] == [5, 100]
    with pytest.raises(InvalidInput, match="keeps no per-server request counters.*give analysis.sample"):
        check_steps({"steps": steps}, NGINX)
    # nginx with a sample of each member: the step is analysed from the sample
    assert [s.weight for s in check_steps({"steps": steps, "analysis": {"sample": {"path": "/version"}}}, NGINX)] == [5, 100]
    with pytest.raises(InvalidInput, match="analysis.sample.path must be"):
        check_steps({"steps": steps, "analysis": {"sample": {"path": "version"}}}, NGINX)
    assert [s.weight for s in check_steps({"steps": [{"weight": 20}, {"pause": True}]}, NGINX)] == [20, None, 100]
    with pytest.raises(InvalidInput, match="needs a load balancer that weighs its members"):
        check_steps({"steps": [{"weight": 20}]}, NoBalancer())


@pytest.mark.parametrize("params, said", [
    ({"steps": [{"weight": 5}], "max_batches": 1}, "max_batches applies to strategy=rolling"),
    ({"steps": None}, "steps must be a non-empty list"),
    ({"steps": [{"weight": 5, "duration": 9}], "analysis": {"interval": 0}}, "analysis.interval must be more than 0"),
    ({"steps": [{"weight": 5, "duration": 9}], "analysis": {"max_error_rate": 2}}, "analysis.max_error_rate is a fraction"),
    ({"steps": [{"weight": 5}, {"pause": True}], "analysis": {"min_requests": 5}}, "no step has a duration"),
])
def test_bad_steps_options_are_refused(params, said):
    with pytest.raises(InvalidInput, match=said):
        check_steps(params, HAPROXY)


# -- old replicas taking no request: retired before the steps share the requests ---------------------------------
class _Pool:
    """The pool as StepsPlan reads it: members by name (a member's name is its container's)."""

    def __init__(self, members):
        self._members = members

    def members(self):
        return dict(self._members)

    def member_names(self, container):
        return [container]


class _Docker:
    def __init__(self, record, members):
        self.record, self.pool, self.engine = record, _Pool(members), object()

    def standby(self, history):
        return self.record

    def view(self, history):
        return self.pool


class _Plan:
    """What StepsPlan asks of the platform and the changing run, each call logged in order."""

    def __init__(self, record, members):
        self.log = []
        self.docker = _Docker(record, members)
        self.workload = WorkloadRef("docker", "w")
        self.change = SimpleNamespace(swap=SimpleNamespace(take_out=lambda reps: self.log.append(("take_out", _names(reps)))),
                                      progress=SimpleNamespace(note=lambda text: self.log.append(("note", text))))

    def _shift_to(self, keep, others, raise_zero=True):
        self.log.append(("shift", _names(keep), _names(others)))


def _names(reps):
    return sorted(r.name for r in reps)


def _rep(cid, rev):
    return Replica.from_attrs(container_attrs(cid, rev, True, port=32000 + ord(cid)))


def _member(name, weight=None, status="UP"):
    return Member(name, "127.0.0.1:1", status, 0, weight)


def test_the_standby_and_old_replicas_taking_no_request_are_idle(monkeypatch):
    """The recorded standby (even serving: a switch cut off before its weights), and any old replica whose members
    are all at weight 0 or drained (a standby whose record a later run dropped); not one that serves."""
    standby, zero, drained, serving = _rep("a", 1), _rep("b", 0), _rep("c", 0), _rep("d", 2)
    members = {"w-r1-a": _member("w-r1-a"), "w-r0-b": _member("w-r0-b", 0), "w-r0-c": _member("w-r0-c", 5, "DRAIN"),
               "w-r2-d": _member("w-r2-d", 5)}
    record = Standby.starting("w", 1, 2, 600)
    pool = _Pool(members)
    idle = StepsPlan(_Plan(record, members), [])._idle(None, [standby, zero, drained, serving], pool, members)
    assert _names(idle.replicas) == ["w-r0-b", "w-r0-c", "w-r1-a"]
    assert idle.describe() == "revision 1 (the blue-green standby) and revision(s) 0 (at weight 0 or drained)"
    unrecorded = StepsPlan(_Plan(None, members), [])._idle(None, [standby, zero, serving], pool, members)
    assert _names(unrecorded.replicas) == ["w-r0-b"]
    assert unrecorded.describe() == "revision(s) 0 (at weight 0 or drained)"


def test_retiring_raises_the_serving_side_before_it_takes_the_idle_out(monkeypatch):
    """A switch cut off between recording its standby and its weights left the standby serving and the current
    revision at weight 0: the current revision gets its default weight before the standby is drained, so the pool
    is never without a weighed member; then the record goes."""
    dropped = []
    monkeypatch.setattr(standby_mod, "drop", lambda engine, workload: dropped.append(workload) or True)
    platform = _Plan(Standby.starting("w", 1, 2, 600), {})
    StepsPlan(platform, [])._retire(IdleReplicas([_rep("a", 1)], 1), [_rep("d", 2)])
    assert [entry[0] for entry in platform.log] == ["shift", "take_out", "note"]
    assert platform.log[0] == ("shift", ["w-r2-d"], ["w-r1-a"]) and platform.log[1] == ("take_out", ["w-r1-a"])
    assert dropped == ["w"]
    platform.log.clear()
    StepsPlan(platform, [])._retire(IdleReplicas([], 1))
    assert platform.log == [] and dropped == ["w"]  # nothing idle: nothing done
