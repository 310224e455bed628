"""strategy=steps without a platform: the steps option, the weights of a share, where a re-run goes on, and
the runner against a scripted load balancer and clock."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.analysis import Thresholds
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import ServerCounters
from ansible_collections.zerodown.rollout.plugins.module_utils.progressive import (
    Step,
    StepRunner,
    analysis_settings,
    current_share,
    parse_steps,
    resume_at,
    share_weights,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput


def test_steps_parse_and_end_at_100():
    steps = parse_steps([{"weight": 5, "duration": 30}, {"pause": True}, {"weight": 50}])
    assert steps == [Step(5, 30.0), Step(pause=True), Step(50, 0.0), Step(100, 0.0)]
    assert parse_steps([{"weight": 0}, {"weight": 100}]) == [Step(0), Step(100)]


@pytest.mark.parametrize("items, said", [
    ([], "non-empty list"),
    (None, "non-empty list"),
    (["5"], r"steps\[1\] must be a mapping"),
    ([{"duration": 3}], r"steps\[1\] needs a weight"),
    ([{"weight": 101}], "whole percent from 0 to 100"),
    ([{"weight": -1}], "whole percent from 0 to 100"),
    ([{"weight": 2.5}], "whole percent from 0 to 100"),
    ([{"weight": 50}, {"weight": 10}], "below the step before it"),
    ([{"weight": 5, "duration": -1}], "zero or more seconds"),
    ([{"pause": True, "weight": 5}], "takes no weight or duration"),
    ([{"weight": 0, "duration": 10}], "nothing to compare"),
    ([{"weight": 100, "duration": 10}], "nothing to compare"),
])
def test_steps_that_cannot_mean_anything_are_refused(items, said):
    with pytest.raises(InvalidInput, match=said):
        parse_steps(items)


@pytest.mark.parametrize("share", [1, 5, 10, 25, 33, 50, 75, 90, 99])
@pytest.mark.parametrize("new, old", [(4, 4), (1, 4), (4, 1), (3, 5), (8, 8)])
def test_weights_give_the_share_within_a_point(share, new, old):
    # whole weights of at most 256 cannot give every share exactly (1 new member against 4 at 99 %: 256 / 260)
    new_names = [f"n{i}" for i in range(new)]
    old_names = [f"o{i}" for i in range(old)]
    weights = share_weights(share, new_names, old_names, 256)
    assert all(0 < w <= 256 for w in weights.values())
    assert current_share(weights, new_names, old_names, 1) == pytest.approx(share, abs=1.0)


def test_weights_at_the_ends_use_zero_and_the_default():
    assert share_weights(0, ["n"], ["o1", "o2"], 256) == {"n": 0, "o1": None, "o2": None}
    assert share_weights(100, ["n"], ["o"], 256) == {"n": None, "o": 0}
    assert current_share({"n": 0}, ["n"], ["o"], 1) == 0
    assert current_share({}, ["n"], ["o1", "o2", "o3"], 1) == 25


def test_a_re_run_goes_on_after_the_step_the_share_shows():
    steps = parse_steps([{"weight": 5, "duration": 30}, {"pause": True}, {"weight": 25}, {"weight": 50}])
    assert resume_at(steps, 0) == 0
    assert resume_at(steps, 4.8) == 2      # the 5 % step ran; its pause ended the run
    assert resume_at(steps, 25.2) == 3
    assert resume_at(steps, 100) == 5
    # a leading pause ended the first run with the new revision at weight 0: the re-run goes past it
    assert resume_at(parse_steps([{"pause": True}, {"weight": 50}]), 0) == 1
    assert resume_at(parse_steps([{"weight": 0}, {"pause": True}, {"weight": 10}]), 0) == 2


class FakePool:
    MAX_WEIGHT = 256

    def __init__(self, script):
        self.script = list(script)   # counters to answer, one per read
        self.weights = []

    def set_weights(self, weights):
        self.weights.append(dict(weights))
        return []

    def counters(self):
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def describe(self):
        return "the fake pool"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def counters(new_requests, new_errors, old_requests):
    return {"n": ServerCounters(requests=new_requests, responses_5xx=new_errors, worker="1"),
            "o": ServerCounters(requests=old_requests, worker="1")}


def runner(pool, clock, on_inconclusive="pause", notes=None):
    return StepRunner(pool, ["n"], ["o"], Thresholds(max_error_rate=0.05, min_requests=20), 1.0, on_inconclusive,
                      (notes if notes is not None else []).append, clock=clock, sleep=clock.sleep)


def test_a_failing_new_revision_fails_the_step_at_the_first_read_with_enough_requests():
    clock = Clock()
    pool = FakePool([counters(0, 0, 0), counters(10, 2, 190), counters(21, 5, 380), counters(40, 8, 570)])
    outcome = runner(pool, clock).run(parse_steps([{"weight": 5, "duration": 30}, {"weight": 50, "duration": 30}]), 0)
    assert outcome.state == "failed"
    assert clock.now == 2.0                             # the second read had 21 requests: judged at once
    assert "error rate 23.8%" in outcome.reason
    assert len(pool.weights) == 1 and pool.weights[0]["n"] < pool.weights[0]["o"]
    assert outcome.records[0].verdict["new"]["responses_5xx"] == 5


def test_healthy_steps_pass_at_their_end_and_finish_at_100():
    clock = Clock()
    pool = FakePool([counters(0, 0, 0), counters(30, 0, 300), counters(60, 0, 600)])
    notes = []
    outcome = runner(pool, clock, notes=notes).run(parse_steps([{"weight": 10, "duration": 3}]), 0)
    assert outcome.state == "done"
    assert clock.now == 3.0
    assert pool.weights[-1] == {"n": None, "o": 0}
    assert [r.to_dict()["weight"] for r in outcome.records] == [10, 100]
    assert notes[0].startswith("step 1: 10 % for 3s: pass")


@pytest.mark.parametrize("on_inconclusive, state", [("pause", "paused"), ("fail", "failed"), ("continue", "done")])
def test_too_few_requests_is_inconclusive_and_never_promotes_by_itself(on_inconclusive, state):
    clock = Clock()
    pool = FakePool([counters(0, 0, 0), counters(3, 0, 50)])
    outcome = runner(pool, clock, on_inconclusive).run(parse_steps([{"weight": 5, "duration": 2}]), 0)
    assert outcome.state == state
    if state != "done":
        assert len(pool.weights) == 1   # still at the step's share: not promoted


def test_a_pause_step_ends_the_run_where_it_is():
    clock = Clock()
    pool = FakePool([counters(0, 0, 0)])
    outcome = runner(pool, clock).run(parse_steps([{"weight": 20}, {"pause": True}, {"weight": 60}]), 0)
    assert outcome.state == "paused" and outcome.reason == "paused at step 2 of 4"
    assert len(pool.weights) == 1


def test_a_step_analysis_needs_a_balancer_with_counters():
    class Uncounted(FakePool):
        def counters(self):
            return None
    with pytest.raises(InvalidInput, match="keeps no per-server counters"):
        runner(Uncounted([{}]), Clock()).run(parse_steps([{"weight": 5, "duration": 3}]), 0)


def test_analysis_settings_refuse_a_zero_interval_and_default_to_pause():
    with pytest.raises(InvalidInput, match="analysis.interval must be more than 0"):
        analysis_settings({"interval": 0})
    assert analysis_settings(None)[1:] == (1.0, "pause")
