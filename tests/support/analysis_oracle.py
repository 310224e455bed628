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


def tripped_thresholds(verdict: t.Mapping[str, t.Any], **given: t.Any) -> list[str]:
    """The ``analysis.<name>=<value>`` words a failed verdict's message must hold, given its counts and the
    ``analysis`` thresholds ``given`` (those not given are the product's defaults)."""
    limits = Thresholds.from_params(given)
    new, old = verdict["new"], verdict["baseline"]
    rate = _rate(new) or 0.0
    base = _rate(old)
    out = []
    if rate > limits.max_error_rate:
        out.append(f"analysis.max_error_rate={limits.max_error_rate:.1%}")
    if old["requests"] + old["connection_errors"] >= limits.min_requests and base is not None \
            and rate - base > limits.max_error_rate_increase:
        out.append(f"analysis.max_error_rate_increase={limits.max_error_rate_increase:.1%}")
    return out


def assert_failure_names_its_thresholds(message: str, verdict: t.Mapping[str, t.Any], **given: t.Any) -> None:
    """A failed verdict names every error-rate threshold its counts exceed, and no other."""
    expected = tripped_thresholds(verdict, **given)
    assert expected, f"the counts exceed no error-rate threshold, yet the step failed: {verdict}"
    for name in ("analysis.max_error_rate=", "analysis.max_error_rate_increase="):
        word = next((w for w in expected if w.startswith(name)), None)
        if word is not None:
            assert word in message, (word, message, verdict)
        else:
            assert name not in message, (name, message, verdict)
