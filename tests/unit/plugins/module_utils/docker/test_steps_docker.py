"""strategy=steps on Docker: what is refused before anything changes (the steps themselves: test_progressive.py)."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.haproxy import HaproxyRuntime
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.nginx import NginxUpstream
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.none import NoBalancer
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.steps import check_steps, steps_strategy
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput

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
