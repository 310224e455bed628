"""docker/blue_green.py: what strategy=blue_green refuses before anything changes, and what a re-run does."""
from __future__ import annotations

import datetime

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.haproxy import HaproxyRuntime
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.nginx import NginxUpstream
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.none import NoBalancer
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.blue_green import (
    DEFAULT_STANDBY_SECONDS,
    blue_green_strategy,
    check_blue_green,
    plan_rerun,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.standby import Standby
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.steps import steps_strategy
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput

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


@pytest.mark.parametrize("params, balancer, said", [
    ({"standby_seconds": -1}, HAPROXY, "standby_seconds must be zero or more"),
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


def test_revisions_at_weight_0_that_no_record_names_are_retired():
    plan = plan_rerun([1], 1, True, None, False, 60, NOW)
    assert (plan.switch, plan.retire) == (False, [1]) and "no standby recorded" in plan.reason
    plan = plan_rerun([1, 2], 2, True, standby(revision=2, serving=3), False, 60, NOW)
    assert plan.retire == [1] and plan.record is None
