"""What an analysis verdict must say, worked out from its own counts.

The flaky demo release fails a fifth of its requests at random, so the first window that reaches
``min_requests`` may hold 1 error in 30 (3.3 %): below ``max_error_rate`` = 5 %, yet 3.3 % above an old
revision with no error, over ``max_error_rate_increase`` = 2 %. Which thresholds a failure names is then
fixed by the counts the verdict reports, and a test checks the message against those counts rather than
against the thresholds it hoped would trip."""
from __future__ import annotations

import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.analysis import Thresholds


def _rate(side: t.Mapping[str, t.Any]) -> t.Optional[float]:
    attempts = side["requests"] + side["connection_errors"]
    return side["errors"] / attempts if attempts else None


def tripped_thresholds(verdict: t.Mapping[str, t.Any], max_error_rate: t.Optional[float] = None,
                       max_error_rate_increase: t.Optional[float] = None, min_requests: t.Optional[int] = None) -> list[str]:
    """The ``analysis.<name>=<value>`` words a failed verdict's message must hold, given its counts (a threshold
    not given is the product's default)."""
    defaults = Thresholds()
    max_error_rate = defaults.max_error_rate if max_error_rate is None else max_error_rate
    if max_error_rate_increase is None:
        max_error_rate_increase = defaults.max_error_rate_increase
    min_requests = defaults.min_requests if min_requests is None else min_requests
    new, old = verdict["new"], verdict["baseline"]
    rate = _rate(new) or 0.0
    out = []
    if rate > max_error_rate:
        out.append(f"analysis.max_error_rate={max_error_rate:.1%}")
    base = _rate(old)
    if old["requests"] + old["connection_errors"] >= min_requests and base is not None \
            and rate - base > max_error_rate_increase:
        out.append(f"analysis.max_error_rate_increase={max_error_rate_increase:.1%}")
    return out


def assert_failure_names_its_thresholds(message: str, verdict: t.Mapping[str, t.Any], **thresholds: t.Any) -> None:
    """A failed verdict names every error-rate threshold its counts exceed, and no other."""
    expected = tripped_thresholds(verdict, **thresholds)
    assert expected, f"the counts exceed no error-rate threshold, yet the step failed: {verdict}"
    for name in ("analysis.max_error_rate=", "analysis.max_error_rate_increase="):
        named = [word for word in expected if word.startswith(name)]
        if named:
            assert named[0] in message, (named[0], message, verdict)
        else:
            assert name not in message, (name, message, verdict)
