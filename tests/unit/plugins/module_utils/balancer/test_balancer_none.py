"""none: the null driver (load_balancer.type=none)."""
from __future__ import annotations

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.registry import make_balancer


def test_the_null_driver_takes_every_step_and_holds_nothing():
    lb = make_balancer(None, "app")
    assert lb.kind == "none" and not lb.routes
    # unbound, without an address: the swap drives it as any other driver and nothing happens
    assert lb.member_names("app-r1-abcdef") == [] and lb.admit("app-r1-abcdef", None) == []
    lb.wait_up("app-r1-abcdef", 1)
    lb.drain("app-r1-abcdef")
    assert lb.wait_drained("app-r1-abcdef", 1)
    lb.remove("app-r1-abcdef")
    assert lb.members() == {} and lb.release([]) == [] and lb.divergence() == []
    assert lb.reconcile() == [] and lb.reconcile(settle=True) == []
