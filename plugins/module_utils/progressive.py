# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Weighted progressive delivery behind a load balancer we drive: ``strategy: steps``.

The new revision's replicas are all started, gated and put in the pool at weight 0 first; then each step
gives them ``weight`` percent of the requests (the weights of both revisions' members together make that
share), holds it ``duration`` seconds while the analysis judges the new members against the old ones from
the load balancer's own counters, and moves on. A ``pause`` step ends the run; the same call run again reads
the share the pool gives now and goes on from the step after it. After the last step the new revision takes
all requests and the old one is taken out as a rolling upgrade does.

This module holds what does not depend on the platform: the steps option, the weights of a share, where a
re-run goes on, and the runner of the steps against a :class:`~.balancer.base.Balancer`.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass, field

from ansible_collections.zerodown.rollout.plugins.module_utils.analysis import (
    FAIL,
    INCONCLUSIVE,
    Thresholds,
    Verdict,
    analyse,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput
from ansible_collections.zerodown.rollout.plugins.module_utils.sampled_counters import SAMPLE_OPTIONS

STRATEGIES = ("rolling", "steps", "blue_green")
ON_INCONCLUSIVE = ("pause", "fail", "continue")
# the options of strategy=steps (argument-spec style; the backend owns them)
STEP_OPTIONS: t.Dict[str, t.Dict[str, t.Any]] = {
    "weight": {"type": "int"},
    "duration": {"type": "float"},
    "pause": {"type": "bool"},
}
ANALYSIS_OPTIONS: t.Dict[str, t.Dict[str, t.Any]] = {
    "max_error_rate": {"type": "float"},
    "max_error_rate_increase": {"type": "float"},
    "max_latency_ratio": {"type": "float"},
    "min_requests": {"type": "int"},
    "interval": {"type": "float"},
    "on_inconclusive": {"type": "str", "choices": list(ON_INCONCLUSIVE)},
    "sample": {"type": "dict", "options": SAMPLE_OPTIONS},
}
DEFAULT_INTERVAL = 1.0


@dataclass(frozen=True)
class Step:
    """One item of ``steps``: a share of requests for the new revision held ``duration`` seconds, or a pause."""

    weight: t.Optional[int] = None
    duration: float = 0.0
    pause: bool = False

    def describe(self) -> str:
        if self.pause:
            return "pause"
        return f"{self.weight} %" + (f" for {self.duration:g}s" if self.duration else "")


def parse_steps(items: t.Any) -> list[Step]:
    """The ``steps`` option as :class:`Step` s, refusing what cannot mean anything; a last weight below 100 is
    followed by 100 (the end of every rollout)."""
    if not isinstance(items, list) or not items:
        raise InvalidInput("steps must be a non-empty list such as [{weight: 5, duration: 30}, {pause: true}, "
                           "{weight: 50, duration: 30}] when strategy is steps")
    out: list[Step] = []
    last = 0
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise InvalidInput(f"steps[{index}] must be a mapping with weight (and duration) or pause: true, got {item!r}")
        weight, duration, pause = item.get("weight"), item.get("duration"), item.get("pause")
        if pause:
            if weight is not None or duration is not None:
                raise InvalidInput(f"steps[{index}] is a pause: it takes no weight or duration (give them a step "
                                   "of their own)")
            out.append(Step(pause=True))
            continue
        if weight is None:
            raise InvalidInput(f"steps[{index}] needs a weight (the percent of requests the new revision gets) or "
                               "pause: true")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise InvalidInput(f"steps[{index}].weight must be a whole percent from 0 to 100, got {weight!r}")
        if weight < last:
            raise InvalidInput(f"steps[{index}].weight {weight} is below the step before it ({last}): the share of "
                               "the new revision only grows; a rollback takes it back")
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))
                                     or duration < 0):
            raise InvalidInput(f"steps[{index}].duration must be zero or more seconds, got {duration!r}")
        if duration and weight in (0, 100):
            raise InvalidInput(f"steps[{index}] holds weight {weight} for {duration:g}s, but at {weight} % one revision "
                               "takes every request and there is nothing to compare: remove its duration (a pause "
                               "step waits for you)")
        last = weight
        out.append(Step(weight=weight, duration=float(duration or 0)))
    if last < 100:
        out.append(Step(weight=100))
    return out


def analysis_settings(params: t.Optional[t.Mapping[str, t.Any]]) -> tuple[Thresholds, float, str]:
    """(thresholds, seconds between two reads, what an inconclusive verdict does) from the ``analysis`` option."""
    params = params or {}
    interval = params.get("interval")
    if interval is not None and interval <= 0:
        raise InvalidInput(f"analysis.interval must be more than 0 seconds (how often the counters are read), "
                           f"got {interval}")
    on_inconclusive = params.get("on_inconclusive") or "pause"
    if on_inconclusive not in ON_INCONCLUSIVE:
        raise InvalidInput(f"analysis.on_inconclusive must be one of {', '.join(ON_INCONCLUSIVE)}, got {on_inconclusive!r}")
    return Thresholds.from_params(params), float(interval if interval is not None else DEFAULT_INTERVAL), on_inconclusive


def share_weights(share: int, new: t.Sequence[str], old: t.Sequence[str], maximum: int) -> dict[str, t.Optional[int]]:
    """Per-member weights (None: the driver's default) so that the ``new`` members together get ``share``
    percent of the requests and the ``old`` ones the rest; whole weights up to ``maximum``."""
    if not new or share >= 100:
        return {**{n: None for n in new}, **{o: 0 for o in old}} if new else {o: None for o in old}
    if not old or share <= 0:
        return {**{n: 0 for n in new}, **{o: None for o in old}} if old else {n: None for n in new}
    # the pair of whole weights (each 1 to ``maximum``) whose share is nearest: the larger side is tried at every
    # value, the smaller one rounded to it
    best: tuple[float, int, int] = (101.0, 1, 1)
    per_new, per_old = share / len(new), (100 - share) / len(old)
    for big in range(1, maximum + 1):
        if per_new >= per_old:
            w_new, w_old = big, min(maximum, max(1, round(big * per_old / per_new)))
        else:
            w_new, w_old = min(maximum, max(1, round(big * per_new / per_old))), big
        got = 100.0 * w_new * len(new) / (w_new * len(new) + w_old * len(old))
        if abs(got - share) < best[0] - 1e-9:
            best = (abs(got - share), w_new, w_old)
    out: dict[str, t.Optional[int]] = {n: best[1] for n in new}
    out.update({o: best[2] for o in old})
    return out


def current_share(weights: t.Mapping[str, t.Optional[int]], new: t.Sequence[str], old: t.Sequence[str],
                  default: int) -> float:
    """The percent of requests the ``new`` members get with ``weights`` (None or missing: ``default``)."""
    def weight(name: str) -> int:
        value = weights.get(name)
        return default if value is None else value
    total_new = sum(weight(n) for n in new)
    total = total_new + sum(weight(o) for o in old)
    return 100.0 * total_new / total if total else 0.0


def resume_at(steps: t.Sequence[Step], share: float) -> int:
    """The index of the step a re-run goes on from, the pool giving the new revision ``share`` percent now:
    after the last weight step at or below that share (a pause right after it counts as done, since it is
    what ended the run), so a re-run never goes back to a smaller share."""
    index = 0
    for i, step in enumerate(steps):
        if step.pause:
            continue
        if step.weight is not None and step.weight <= round(share):
            index = i + 1
            while index < len(steps) and steps[index].pause:
                index += 1
    # a run that paused before its first weight step (the new revision admitted at weight 0) goes on past that pause
    while index < len(steps) and steps[index].pause and all(s.pause for s in steps[:index + 1]):
        index += 1
    return index


@dataclass
class StepRecord:
    """What one step did, for the result."""

    step: int
    weight: t.Optional[int]
    pause: bool
    held: float = 0.0
    verdict: t.Optional[dict[str, t.Any]] = None

    def to_dict(self) -> dict[str, t.Any]:
        out: dict[str, t.Any] = {"step": self.step, "held": round(self.held, 1)}
        if self.pause:
            out["pause"] = True
        else:
            out["weight"] = self.weight
        if self.verdict is not None:
            out["analysis"] = self.verdict
        return out


@dataclass
class StepsOutcome:
    """``done`` (the new revision takes all requests), ``paused`` (a pause step or an inconclusive analysis ended
    the run) or ``failed`` (a step's analysis failed: ``verdict`` says why)."""

    state: str
    records: list[StepRecord] = field(default_factory=list)
    verdict: t.Optional[Verdict] = None
    reason: str = ""


class StepRunner:
    """Runs ``steps`` from ``start`` against ``balancer``, the ``new`` members in the pool (at weight 0 or the
    share a paused run left) next to the ``old`` ones. It only sets weights and reads counters: taking the old
    or the new revision out is the caller's, on the outcome."""

    def __init__(self, balancer: t.Any, new: t.Sequence[str], old: t.Sequence[str], thresholds: Thresholds,
                 interval: float, on_inconclusive: str, note: t.Callable[[str], None],
                 clock: t.Callable[[], float] = time.monotonic, sleep: t.Callable[[float], None] = time.sleep,
                 counters: t.Optional[t.Callable[[], t.Optional[dict[str, t.Any]]]] = None) -> None:
        self.balancer = balancer
        # where a step's numbers come from: the load balancer's counters, or a sample (analysis.sample)
        self.counters = counters or balancer.counters
        self.new = list(new)
        self.old = list(old)
        self.thresholds = thresholds
        self.interval = interval
        self.on_inconclusive = on_inconclusive
        self.note = note
        self.clock = clock
        self.sleep = sleep

    def run(self, steps: t.Sequence[Step], start: int) -> StepsOutcome:
        outcome = StepsOutcome("done")
        for index in range(start, len(steps)):
            step = steps[index]
            record = StepRecord(index + 1, step.weight, step.pause)
            outcome.records.append(record)
            if step.pause:
                self.note(f"step {index + 1}: paused with the new revision at the share of the step before; "
                          "run the same task again to go on, or roll back")
                outcome.state = "paused"
                outcome.reason = f"paused at step {index + 1} of {len(steps)}"
                return outcome
            weight = step.weight or 0  # parse_steps gives every step that is not a pause a weight
            self.balancer.set_weights(share_weights(weight, self.new, self.old, self.balancer.MAX_WEIGHT))
            if not step.duration or weight >= 100:
                self.note(f"step {index + 1}: the new revision gets {step.weight} % of requests")
                continue
            verdict = self._hold(step, record)
            record.verdict = verdict.to_dict()
            self.note(f"step {index + 1}: {step.weight} % for {record.held:.0f}s: {verdict.status} "
                      f"({'; '.join(verdict.reasons)})")
            if verdict.status == FAIL or (verdict.status == INCONCLUSIVE and self.on_inconclusive == "fail"):
                outcome.state = "failed"
                outcome.verdict = verdict
                outcome.reason = f"step {index + 1} ({step.describe()}): {'; '.join(verdict.reasons)}"
                return outcome
            if verdict.status == INCONCLUSIVE and self.on_inconclusive == "pause":
                outcome.state = "paused"
                outcome.verdict = verdict
                outcome.reason = (f"step {index + 1} ({step.describe()}) was inconclusive ({'; '.join(verdict.reasons)}); "
                                  "paused there (analysis.on_inconclusive=pause)")
                return outcome
        return outcome

    def _hold(self, step: Step, record: StepRecord) -> Verdict:
        """Hold the step's share ``duration`` seconds, judging every ``interval``: a failure ends it at once,
        a pass or an inconclusive verdict only at the end."""
        started = self.clock()
        before = self.counters()
        if before is None:
            raise InvalidInput(f"{self.balancer.describe()} keeps no per-server counters to analyse a step from; "
                               "use load_balancer.type=haproxy, or give analysis.sample, for steps with a duration")
        deadline = started + step.duration
        while True:
            self.sleep(max(0.0, min(self.interval, deadline - self.clock())))
            verdict = analyse(before, self.counters() or {}, self.new, self.old, self.thresholds)
            record.held = self.clock() - started
            if verdict.status == FAIL or self.clock() >= deadline:
                return verdict
