"""base: which members a run owns (Scope, engine tag) and how a container becomes one (member_names, admit)."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer import haproxy as hx
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Member, Scope, engine_tag
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutFailed
from tests.support.balancer_fakes import FakeHaproxy


@pytest.fixture
def fake():
    server = FakeHaproxy()
    yield server
    server.close()


def test_scope_owns_this_workloads_members_on_this_engine_only():
    mine, other = engine_tag("ENGINE:A"), engine_tag("ENGINE:B")
    assert mine != other and len(mine) == 6
    scope = Scope("shop", mine, legacy={"shop-r1-0a0a0a"})
    assert scope.name("shop-r2-abcdef") == f"shop-r2-abcdef.{mine}"
    assert scope.owns(f"shop-r2-abcdef.{mine}")
    assert scope.owns("shop-r1-0a0a0a")                    # untagged name of one of this engine's containers
    assert not scope.owns(f"shop-r2-abcdef.{other}")       # the same workload on another host
    assert not scope.owns("shop-r2-bbbbbb")                # untagged, no container of ours by that name
    assert not scope.owns(f"shop-api-r1-abcdef.{mine}")    # another workload on this engine
    assert not scope.owns("static-1")                      # a server written by hand


def test_member_names_are_the_scope_name_then_the_untagged_one_and_need_a_scope(fake):
    lb = hx.HaproxyRuntime(fake.path, "web")
    with pytest.raises(RolloutFailed, match="internal error"):
        lb.member_names("app-r1-abcdef")
    lb.bind(Scope("app", "aaaaaa"), {}, drain_timeout=1, up_timeout=1)
    assert lb.member_names("app-r1-abcdef") == ["app-r1-abcdef.aaaaaa", "app-r1-abcdef"]


def test_admit_adds_the_tagged_member_and_refuses_a_container_without_address(fake):
    lb = hx.HaproxyRuntime(fake.path, "web")
    lb.check()
    lb.bind(Scope("app", "aaaaaa"), {}, drain_timeout=1, up_timeout=1)
    with pytest.raises(RolloutFailed, match="app-r1-abcdef has no address for the load balancer"):
        lb.admit("app-r1-abcdef", None)
    assert lb.intent == {} and not any(c.startswith("add server") for c in fake.commands)
    assert lb.admit("app-r1-abcdef", "127.0.0.1:32768") == ["app-r1-abcdef.aaaaaa"]
    assert lb.intent == {"app-r1-abcdef.aaaaaa": "127.0.0.1:32768"}


def test_a_member_takes_requests_when_serving_at_a_weight_other_than_0():
    """The one reading of "takes no request" that blue-green's switch, the standby's status and the steps share."""
    assert Member("a", "127.0.0.1:1", "UP", 0, 5).takes_requests
    assert Member("a", "127.0.0.1:1", "UP", 0, None).takes_requests  # a driver that does not say: it serves
    assert Member("a", "127.0.0.1:1", "DOWN", 0, 5).takes_requests  # down is the health check's, not ours
    assert not Member("a", "127.0.0.1:1", "UP", 0, 0).takes_requests
    assert not Member("a", "127.0.0.1:1", "DRAIN", 0, 5).takes_requests
    assert not Member("a", "127.0.0.1:1", "MAINT", 0, 5).takes_requests
