"""The analysis of a weighted step from per-server counters: windows, totals and verdicts."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.analysis import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Thresholds,
    analyse,
    delta,
    judge,
    totals,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import ServerCounters
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput


def c(requests, e5xx=0, econ=0, eresp=0, ms=None, worker="1"):
    return ServerCounters(requests=requests, responses_5xx=e5xx, connection_errors=econ, response_errors=eresp,
                          response_ms=ms, worker=worker)


def test_delta_is_the_difference_and_a_reload_or_a_new_server_counts_from_zero():
    before = {"old": c(100, 1), "reloaded": c(500, 9, worker="1")}
    after = {"old": c(160, 4), "reloaded": c(30, 2, worker="2"), "new": c(12, 1)}
    window = delta(before, after)
    assert (window["old"].requests, window["old"].responses_5xx) == (60, 3)
    assert (window["reloaded"].requests, window["reloaded"].responses_5xx) == (30, 2)
    assert (window["new"].requests, window["new"].responses_5xx) == (12, 1)


def test_totals_weigh_the_response_time_by_requests():
    window = {"a": c(30, 3, econ=1, ms=10), "b": c(10, 0, eresp=1, ms=50), "c": c(99, 99)}
    got = totals(window, ["a", "b", "missing"])
    assert (got.requests, got.errors, got.attempts) == (40, 5, 41)
    assert got.response_ms == pytest.approx(20.0)
    assert got.error_rate == pytest.approx(5 / 41)


def test_fewer_requests_than_the_minimum_is_inconclusive_even_with_errors():
    verdict = judge(totals({"n": c(19, 19)}, ["n"]), totals({}, []), Thresholds(min_requests=20))
    assert verdict.status == INCONCLUSIVE
    assert "19 requests, fewer than analysis.min_requests=20" in verdict.reasons[0]


def test_an_error_rate_above_the_threshold_fails_with_the_numbers():
    before = {"n1": c(0), "o1": c(0)}
    after = {"n1": c(40, 8), "o1": c(400, 0)}
    verdict = analyse(before, after, ["n1"], ["o1"], Thresholds(max_error_rate=0.05, max_error_rate_increase=1))
    assert verdict.status == FAIL
    assert verdict.reasons == ["error rate 20.0% (8 of 40: 8 5xx, 0 connection errors, 0 response errors) is above "
                               "analysis.max_error_rate=5.0%"]
    assert verdict.to_dict()["new"]["error_rate"] == 0.2
    assert verdict.to_dict()["baseline"]["requests"] == 400


def test_the_increase_over_the_baseline_fails_only_with_enough_baseline_requests():
    new = totals({"n": c(100, 4)}, ["n"])
    busy_old = totals({"o": c(100, 1)}, ["o"])
    quiet_old = totals({"o": c(5, 0)}, ["o"])
    limits = Thresholds(max_error_rate=0.1, max_error_rate_increase=0.02, min_requests=20)
    assert judge(new, busy_old, limits).status == FAIL
    assert "3.0% above the old revision's 1.0%" in judge(new, busy_old, limits).reasons[0]
    assert judge(new, quiet_old, limits).status == PASS


def test_zero_is_an_honoured_threshold():
    one_error = totals({"n": c(100, 1)}, ["n"])
    assert judge(one_error, totals({}, []), Thresholds(max_error_rate=0, min_requests=1)).status == FAIL
    assert judge(totals({"n": c(100)}, ["n"]), totals({}, []), Thresholds(max_error_rate=0, min_requests=1)).status == PASS


def test_latency_ratio_fails_a_slow_revision_but_not_a_millisecond_difference():
    limits = Thresholds(max_latency_ratio=1.5, min_requests=10)
    slow = judge(totals({"n": c(50, ms=90)}, ["n"]), totals({"o": c(50, ms=40)}, ["o"]), limits)
    assert slow.status == FAIL and "90 ms is more than 1.5 x the old revision's 40 ms" in slow.reasons[0]
    tiny = judge(totals({"n": c(50, ms=3)}, ["n"]), totals({"o": c(50, ms=0)}, ["o"]), limits)
    assert tiny.status == PASS


@pytest.mark.parametrize("params, said", [
    ({"max_error_rate": 5}, "analysis.max_error_rate is a fraction"),
    ({"max_error_rate_increase": -0.1}, "analysis.max_error_rate_increase is a fraction"),
    ({"max_latency_ratio": 0.5}, "analysis.max_latency_ratio"),
    ({"min_requests": 0}, "analysis.min_requests must be 1 or more"),
])
def test_thresholds_that_cannot_mean_anything_are_refused(params, said):
    with pytest.raises(InvalidInput, match=said):
        Thresholds.from_params(params)


def test_thresholds_from_params_keep_explicit_zero():
    got = Thresholds.from_params({"max_error_rate": 0, "max_error_rate_increase": 0, "min_requests": 1})
    assert (got.max_error_rate, got.max_error_rate_increase, got.min_requests) == (0, 0, 1)
    assert Thresholds.from_params({}) == Thresholds()


@pytest.mark.parametrize("new, old", [
    (c(30, 1), c(300)),                  # 3.3 %: only the increase trips (the flaky release's unlucky first window)
    (c(27, econ=1), c(300)),             # the same with a refused connection: 1 error in 28 attempts
    (c(30, 6), c(300)),                  # 20 %: both trip
    (c(50, 3), c(50, 2)),                # 6 % against 4 %: only the rate trips
    (c(50, 3), c(10)),                   # the old revision answered too few for the increase to be judged
    (c(50, 3), c(19, econ=1)),           # ... but 20 attempts are enough, a refused connection among them
    (c(50, 1), c(300)),                  # exactly 2 % above: not above, nothing trips
    (c(20, 1), c(300)),                  # exactly 5 %: only the increase trips
    (c(19, econ=1), c(300)),             # exactly 5 % of attempts (1 in 19 requests would be above)
    (c(40, 1, eresp=1), c(300, 1)),      # a response that broke off counts as an error
    (c(100, 1), c(300)),                 # 1 %: neither trips
])
def test_the_integration_tests_oracle_agrees_with_the_verdict(new, old):
    """The integration tests check a failure's message against the thresholds its counts exceed
    (tests/support/analysis_oracle.py): that reading of the counts is the product's, at its defaults."""
    from tests.support.analysis_oracle import tripped_thresholds
    verdict = judge(totals({"n": new}, ["n"]), totals({"o": old}, ["o"]), Thresholds())
    named = sorted(word for reason in verdict.reasons for word in reason.replace("(", " ").replace(")", " ").split()
                   if word.startswith("analysis.max_error_rate"))
    assert named == sorted(tripped_thresholds(verdict.to_dict()))
    assert (verdict.status == FAIL) == bool(named)
