"""Traffic reports and verdicts: nearest-rank percentiles, thresholds, evaluate()."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import TrafficError
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.report import Thresholds, TrafficReport, evaluate, percentile


# --- percentile (nearest rank) --------------------------------------------------------------------

def test_percentile_nearest_rank_on_1_to_100():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1


def test_percentile_small_samples_pick_an_observed_value():
    assert percentile([7.0], 95) == 7.0
    ten = [float(v) for v in range(10, 110, 10)]  # 10..100
    assert percentile(ten, 50) == 50  # rank ceil(5) = 5
    assert percentile(ten, 95) == 100  # rank ceil(9.5) = 10
    assert percentile(ten, 51) == 60  # rank ceil(5.1) = 6
    twenty = [1.0] * 19 + [9.0]
    assert percentile(twenty, 95) == 1.0  # rank 19: one outlier in 20 is beyond p95
    assert percentile(twenty, 99) == 9.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile([1.0], 101)


# --- verdicts ----------------------------------------------------------------------------------------

def make_report(total=100, errors=0, versions=None, p95=5.0, responses=None) -> TrafficReport:
    versions = versions if versions is not None else {"2.0": total}
    responses = sum(versions.values()) if responses is None else responses
    return TrafficReport(url="http://x/", total=total, responses=responses, ok=total - errors,
                         status_counts={}, errors=errors, error_kinds={"status": errors} if errors else {},
                         error_examples={}, versions=versions,
                         latency_ms={"p50": 1.0, "p95": p95, "p99": p95, "max": p95, "mean": 1.0},
                         duration_s=1.0, requests_per_s=float(total), concurrency=1, version_source="json version",
                         expected_status=["2xx"])


def test_too_few_samples_is_inconclusive_never_pass():
    verdict = evaluate(make_report(total=5), Thresholds(min_samples=10))
    assert verdict.verdict == "inconclusive"
    assert "fewer than min_samples=10" in verdict.reasons[0]
    # even when every other number would fail, too few samples says nothing either way
    assert evaluate(make_report(total=5, errors=5), Thresholds(min_samples=10)).verdict == "inconclusive"
    assert evaluate(make_report(total=10), Thresholds(min_samples=10)).verdict == "pass"


def test_expect_version_fraction():
    report = make_report(total=100, versions={"2.0": 96, "1.0": 4})
    assert evaluate(report, Thresholds(expect_version="2.0")).verdict == "fail"  # default: all of them
    assert evaluate(report, Thresholds(expect_version="2.0", min_version_fraction=0.95)).verdict == "pass"
    verdict = evaluate(report, Thresholds(expect_version="2.0", min_version_fraction=0.97))
    assert verdict.verdict == "fail"
    assert verdict.reasons == ["version '2.0' answered 96.00% of 100 responses (2.0=96, 1.0=4), "
                               "below min_version_fraction 97.00%"]
    check = [c for c in verdict.checks if c["name"] == "expect_version"][0]
    assert check == {"name": "expect_version", "ok": False, "actual": 0.96, "limit": 0.97}


def test_answers_without_a_readable_version_say_where_it_was_looked_for_and_how_to_point_it():
    report = make_report(total=10, versions={"unknown": 10})
    verdict = evaluate(report, Thresholds(expect_version="2.0"))
    assert verdict.verdict == "fail"
    reason = verdict.reasons[0]
    assert "(unknown=10)" in reason
    assert "10 of them reported no version readable at json version" in reason
    assert "version_json_path (a dotted JSON path), version_header (a response header) or version_regex" in reason
    mixed = evaluate(make_report(total=10, versions={"2.0": 10}), Thresholds(expect_version="1.0"))
    assert "readable" not in mixed.reasons[0]  # every answer had a version: nothing to point elsewhere


def test_several_failed_checks_give_several_reasons():
    report = make_report(total=100, errors=3, versions={"1.0": 100}, p95=900.0)
    verdict = evaluate(report, Thresholds(max_error_rate=0.01, expect_version="2.0", max_p95_ms=300))
    assert verdict.verdict == "fail" and len(verdict.reasons) == 3
    assert [c["ok"] for c in verdict.checks] == [True, False, False, False]


@pytest.mark.parametrize("kwargs, option", [
    ({"max_error_rate": 1.5}, "max_error_rate"),
    ({"max_error_rate": -0.1}, "max_error_rate"),
    ({"min_version_fraction": 0.5}, "min_version_fraction"),  # without expect_version
    ({"expect_version": "2", "min_version_fraction": 2}, "min_version_fraction"),
    ({"max_p95_ms": 0}, "max_p95_ms"),
    ({"min_samples": 0}, "min_samples"),
])
def test_thresholds_refuse_bad_values(kwargs, option):
    with pytest.raises(TrafficError) as err:
        Thresholds(**kwargs).validate()
    assert err.value.option == option
