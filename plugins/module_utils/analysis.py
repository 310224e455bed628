# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The analysis of a weighted step: the new revision's servers judged against the old ones, from the load
balancer's own per-server counters (real user traffic, no synthetic load).

Two reads of the counters bound a window; their difference per server is what that server did in it.
Counters are cumulative per HAProxy worker, and a reload starts a new worker from zero: a server whose
worker changed between the reads counts from zero (what the old worker served after the first read is
lost to the window, never counted twice).
"""

from __future__ import annotations

import dataclasses
import typing as t
from dataclasses import dataclass

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import RequestCounters, ServerCounters
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
# HAProxy's rtime is whole milliseconds: a latency difference below this is never a failure
LATENCY_SLACK_MS = 5.0


@dataclass
class Thresholds:
    """When a step fails: error rates are fractions (0.05 = 5 %), the latency ratio is new / old."""

    max_error_rate: float = 0.05
    max_error_rate_increase: float = 0.02
    max_latency_ratio: t.Optional[float] = None
    min_requests: int = 20

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any]) -> "Thresholds":
        """From the ``analysis`` option, refusing values that cannot mean anything (0 is a valid threshold)."""
        rate = params.get("max_error_rate")
        increase = params.get("max_error_rate_increase")
        ratio = params.get("max_latency_ratio")
        minimum = params.get("min_requests")
        for name, value in (("max_error_rate", rate), ("max_error_rate_increase", increase)):
            if value is not None and not 0 <= value <= 1:
                raise InvalidInput(f"analysis.{name} is a fraction of requests from 0 to 1 (0.05 = 5 %), got {value}")
        if ratio is not None and ratio < 1:
            raise InvalidInput(f"analysis.max_latency_ratio is the new revision's response time over the old one's, "
                               f"1 or more (1.5 = 50 % slower at most), got {ratio}")
        if minimum is not None and minimum < 1:
            raise InvalidInput(f"analysis.min_requests must be 1 or more (the requests the new revision must answer "
                               f"before a step can pass), got {minimum}")
        return cls(
            max_error_rate=cls.max_error_rate if rate is None else float(rate),
            max_error_rate_increase=cls.max_error_rate_increase if increase is None else float(increase),
            max_latency_ratio=None if ratio is None else float(ratio),
            min_requests=cls.min_requests if minimum is None else int(minimum),
        )


@dataclass
class Totals(RequestCounters):
    """What a set of servers did in a window; ``response_ms`` is their average weighted by requests."""

    @property
    def errors(self) -> int:
        """Answers with a 5xx status, requests that could not connect, and responses that broke off."""
        return self.responses_5xx + self.connection_errors + self.response_errors

    @property
    def attempts(self) -> int:
        """Requests sent plus those that could not even connect."""
        return self.requests + self.connection_errors

    @property
    def error_rate(self) -> t.Optional[float]:
        return self.errors / self.attempts if self.attempts else None

    def to_dict(self) -> dict[str, t.Any]:
        rate = self.error_rate
        return {"requests": self.requests, "errors": self.errors, "responses_5xx": self.responses_5xx,
                "connection_errors": self.connection_errors, "response_errors": self.response_errors,
                "error_rate": None if rate is None else round(rate, 4),
                "response_ms": None if self.response_ms is None else round(self.response_ms, 1)}


@dataclass
class Verdict:
    status: str
    reasons: t.List[str]
    new: Totals
    baseline: Totals

    def to_dict(self) -> dict[str, t.Any]:
        return {"verdict": self.status, "reasons": list(self.reasons), "new": self.new.to_dict(),
                "baseline": self.baseline.to_dict()}


def delta(before: t.Mapping[str, ServerCounters], after: t.Mapping[str, ServerCounters]) -> dict[str, ServerCounters]:
    """Per server, what it did between two reads (a server new since the first read, or whose counters a
    reload restarted, counts from zero)."""
    out: dict[str, ServerCounters] = {}
    for name, now in after.items():
        then = before.get(name)
        restarted = then is None or then.worker != now.worker or now.requests < then.requests
        if restarted:
            out[name] = dataclasses.replace(now)
            continue
        out[name] = ServerCounters(
            requests=now.requests - then.requests,
            responses_5xx=max(0, now.responses_5xx - then.responses_5xx),
            responses_4xx=max(0, now.responses_4xx - then.responses_4xx),
            connection_errors=max(0, now.connection_errors - then.connection_errors),
            response_errors=max(0, now.response_errors - then.response_errors),
            response_ms=now.response_ms,
            worker=now.worker,
        )
    return out


def totals(window: t.Mapping[str, ServerCounters], names: t.Iterable[str]) -> Totals:
    """The sum over ``names`` of a window; the response time is the average weighted by requests."""
    out = Totals()
    weighted = 0.0
    timed = 0
    for name in names:
        c = window.get(name)
        if c is None:
            continue
        out.requests += c.requests
        out.responses_5xx += c.responses_5xx
        out.responses_4xx += c.responses_4xx
        out.connection_errors += c.connection_errors
        out.response_errors += c.response_errors
        if c.response_ms is not None and c.requests:
            weighted += c.response_ms * c.requests
            timed += c.requests
    out.response_ms = weighted / timed if timed else None
    return out


def judge(new: Totals, baseline: Totals, thresholds: Thresholds) -> Verdict:
    """The verdict on the new revision's servers against the baseline (the old revision's) in one window.

    A failure is told as soon as the new revision has answered ``min_requests``; with fewer it is inconclusive.
    The error-rate increase and the latency ratio need a baseline of ``min_requests`` too (else they are not
    judged, and say so)."""
    reasons: list[str] = []
    if new.attempts < thresholds.min_requests:
        reasons.append(f"the new revision answered {new.attempts} requests, fewer than analysis.min_requests="
                       f"{thresholds.min_requests}")
        return Verdict(INCONCLUSIVE, reasons, new, baseline)
    rate = new.error_rate or 0.0
    if rate > thresholds.max_error_rate:
        reasons.append(f"error rate {rate:.1%} ({new.errors} of {new.attempts}: {new.responses_5xx} 5xx, "
                       f"{new.connection_errors} connection errors, {new.response_errors} response errors) is above "
                       f"analysis.max_error_rate={thresholds.max_error_rate:.1%}")
    base_rate = baseline.error_rate
    if baseline.attempts >= thresholds.min_requests and base_rate is not None and \
            rate - base_rate > thresholds.max_error_rate_increase:
        reasons.append(f"error rate {rate:.1%} is {rate - base_rate:.1%} above the old revision's {base_rate:.1%} "
                       f"(analysis.max_error_rate_increase={thresholds.max_error_rate_increase:.1%})")
    ratio = thresholds.max_latency_ratio
    if ratio is not None and new.response_ms is not None and baseline.response_ms is not None and \
            baseline.attempts >= thresholds.min_requests:
        if new.response_ms > max(baseline.response_ms, 1.0) * ratio and \
                new.response_ms - baseline.response_ms >= LATENCY_SLACK_MS:
            reasons.append(f"response time {new.response_ms:.0f} ms is more than {ratio:g} x the old revision's "
                           f"{baseline.response_ms:.0f} ms (analysis.max_latency_ratio)")
    if reasons:
        return Verdict(FAIL, reasons, new, baseline)
    return Verdict(PASS, [f"the new revision answered {new.attempts} requests with {rate:.1%} errors"], new, baseline)


def analyse(before: t.Mapping[str, ServerCounters], after: t.Mapping[str, ServerCounters],
            new_names: t.Collection[str], old_names: t.Collection[str], thresholds: Thresholds) -> Verdict:
    """The verdict on a window bounded by two reads of the counters."""
    window = delta(before, after)
    return judge(totals(window, new_names), totals(window, old_names), thresholds)
