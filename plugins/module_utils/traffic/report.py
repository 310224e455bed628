# Copyright (c) zerodown maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a sampling run showed and whether it passes: ``Sample``, ``TrafficReport``, ``Thresholds``, ``Verdict``.

``TrafficReport.from_samples`` aggregates raw samples (counts, version mix, nearest-rank latency
percentiles); ``evaluate(report, Thresholds(...))`` -> ``Verdict`` (``pass`` / ``fail`` / ``inconclusive``).
Pure Python (>= 3.9), no third-party or controller-side imports.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import (
    SamplerConfig,
    TrafficError,
    redact_url,
    validate_fraction,
    validate_number,
)

# The version counted for answers that report none readable.
UNKNOWN_VERSION = "unknown"
VERDICT_PASS = "pass"
VERDICT_FAIL = "fail"
VERDICT_INCONCLUSIVE = "inconclusive"


class Sample(NamedTuple):
    """One request: start offset (s, from the run start), latency (s), status, error kind, version.

    The error kind is ``status`` for an HTTP answer outside expected_status; ``connection``, ``timeout``,
    ``tls`` and ``protocol`` mean no usable answer arrived at all.
    """

    start: float
    latency: Optional[float]
    status: Optional[int]
    error: Optional[str]
    version: Optional[str]


def percentile(values: Sequence[float], pct: float) -> Optional[float]:
    """Nearest-rank percentile: the smallest value with at least ``pct``% of values <= it.

    ``values`` must be sorted ascending. Always an observed value (no interpolation); None when empty.
    Rank = ceil(pct / 100 * n), clamped to 1..n.
    """
    if not values:
        return None
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, got {pct}")
    rank = max(1, math.ceil(pct / 100.0 * len(values) - 1e-9))
    return values[min(rank, len(values)) - 1]


def to_ms(seconds: Optional[float]) -> Optional[float]:
    """Seconds as milliseconds rounded to the microsecond, for reports; None stays None."""
    return None if seconds is None else round(seconds * 1000.0, 3)


@dataclass
class TrafficReport:
    """Numbers for one sampling run; ``to_dict()`` is what the lookup returns."""

    url: str
    total: int
    responses: int
    ok: int
    status_counts: Dict[str, int]
    errors: int
    error_kinds: Dict[str, int]
    error_examples: Dict[str, str]
    versions: Dict[str, int]
    latency_ms: Dict[str, Optional[float]]
    duration_s: float
    requests_per_s: float
    concurrency: int
    version_source: str
    expected_status: List[str]

    @property
    def error_rate(self) -> float:
        return self.errors / self.total if self.total else 0.0

    @property
    def version_fractions(self) -> Dict[str, float]:
        return {v: round(n / self.responses, 6) for v, n in self.versions.items()} if self.responses else {}

    @classmethod
    def from_samples(cls, config: SamplerConfig, samples: Sequence[Sample], duration: float,
                     error_examples: Optional[Dict[str, str]] = None) -> "TrafficReport":
        """Aggregate raw samples (any order) into a report."""
        status_counts: Dict[str, int] = {}
        error_kinds: Dict[str, int] = {}
        versions: Dict[str, int] = {}
        latencies: List[float] = []
        responses = ok = 0
        for sample in samples:
            if sample.status is not None:
                responses += 1
                key = str(sample.status)
                status_counts[key] = status_counts.get(key, 0) + 1
                version = sample.version or UNKNOWN_VERSION
                versions[version] = versions.get(version, 0) + 1
                if sample.latency is not None:
                    latencies.append(sample.latency)
            if sample.error:
                error_kinds[sample.error] = error_kinds.get(sample.error, 0) + 1
            else:
                ok += 1
        latencies.sort()
        total = len(samples)
        return cls(
            url=redact_url(config.url),
            total=total,
            responses=responses,
            ok=ok,
            status_counts=dict(sorted(status_counts.items())),
            errors=total - ok,
            error_kinds=dict(sorted(error_kinds.items())),
            error_examples=dict(sorted((error_examples or {}).items())),
            versions=dict(sorted(versions.items(), key=lambda kv: (-kv[1], kv[0]))),
            latency_ms={
                "p50": to_ms(percentile(latencies, 50)),
                "p95": to_ms(percentile(latencies, 95)),
                "p99": to_ms(percentile(latencies, 99)),
                "max": to_ms(latencies[-1] if latencies else None),
                "mean": to_ms(sum(latencies) / len(latencies) if latencies else None),
            },
            duration_s=round(duration, 3),
            requests_per_s=round(total / duration, 1) if duration > 0 else 0.0,
            concurrency=config.concurrency,
            version_source=config.version_reader.describe(),
            expected_status=config.status_matcher.describe(),
        )

    def to_dict(self) -> Dict[str, Any]:
        """Plain data (JSON-safe) for the lookup, modules and the timeline file."""
        return {
            "url": self.url,
            "total": self.total,
            "responses": self.responses,
            "ok": self.ok,
            "status_counts": dict(self.status_counts),
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "error_kinds": dict(self.error_kinds),
            "error_examples": dict(self.error_examples),
            "versions": dict(self.versions),
            "version_fractions": self.version_fractions,
            "latency_ms": dict(self.latency_ms),
            "duration_s": self.duration_s,
            "requests_per_s": self.requests_per_s,
            "concurrency": self.concurrency,
            "version_source": self.version_source,
            "expected_status": list(self.expected_status),
        }


@dataclass
class Thresholds:
    """What a run must show to pass. None disables a check; ``max_error_rate`` defaults to 0 (zero downtime)."""

    max_error_rate: Optional[float] = 0.0
    expect_version: Optional[str] = None
    min_version_fraction: Optional[float] = None
    max_p95_ms: Optional[float] = None
    min_samples: int = 10

    def validate(self) -> "Thresholds":
        """Check ranges; raise ``TrafficError`` naming the bad option."""
        if self.max_error_rate is not None:
            self.max_error_rate = validate_fraction(self.max_error_rate, "max_error_rate")
        if self.min_version_fraction is not None:
            self.min_version_fraction = validate_fraction(self.min_version_fraction, "min_version_fraction")
            if self.expect_version in (None, ""):
                raise TrafficError("min_version_fraction needs expect_version: say which version the fraction is of.",
                                   "min_version_fraction")
        if self.expect_version is not None:
            self.expect_version = str(self.expect_version).strip() or None
        if self.max_p95_ms is not None:
            self.max_p95_ms = float(validate_number(self.max_p95_ms, "max_p95_ms", float, 0.0, inclusive=False,
                                                    hint="Give the latency limit in milliseconds."))
        self.min_samples = int(validate_number(self.min_samples, "min_samples", int, 1,
                                               hint="Use at least 1 sample."))
        return self


@dataclass
class Verdict:
    """``pass`` / ``fail`` / ``inconclusive``, why, and each check with its measured value and limit."""

    verdict: str
    reasons: List[str]
    checks: List[Dict[str, Any]]

    @property
    def passed(self) -> bool:
        return self.verdict == VERDICT_PASS

    def to_dict(self) -> Dict[str, Any]:
        return {"verdict": self.verdict, "reasons": list(self.reasons), "checks": [dict(c) for c in self.checks]}


def evaluate(report: TrafficReport, thresholds: Optional[Thresholds] = None) -> Verdict:
    """Judge a report: too few samples is inconclusive (never a pass); any failed check is a fail."""
    thresholds = (thresholds or Thresholds()).validate()
    checks: List[Dict[str, Any]] = []
    reasons: List[str] = []

    def check(name: str, ok: bool, actual: Any, limit: Any, reason: str) -> None:
        checks.append({"name": name, "ok": ok, "actual": actual, "limit": limit})
        if not ok:
            reasons.append(reason)

    if report.total < thresholds.min_samples:
        checks.append({"name": "min_samples", "ok": False, "actual": report.total, "limit": thresholds.min_samples})
        return Verdict(VERDICT_INCONCLUSIVE,
                       [f"only {report.total} sample(s) taken, fewer than min_samples={thresholds.min_samples}; "
                        "sample longer or with more requests"], checks)
    checks.append({"name": "min_samples", "ok": True, "actual": report.total, "limit": thresholds.min_samples})

    if thresholds.max_error_rate is not None:
        rate = report.error_rate
        kinds = ", ".join(f"{k}={n}" for k, n in report.error_kinds.items())
        check("max_error_rate", rate <= thresholds.max_error_rate + 1e-12, round(rate, 6), thresholds.max_error_rate,
              f"error rate {rate:.2%} ({report.errors}/{report.total}: {kinds}) is above max_error_rate "
              f"{thresholds.max_error_rate:.2%}")
    if thresholds.expect_version is not None:
        wanted = thresholds.expect_version
        min_fraction = 1.0 if thresholds.min_version_fraction is None else thresholds.min_version_fraction
        if report.responses == 0:
            check("expect_version", False, 0.0, min_fraction,
                  f"no HTTP response arrived, so version {wanted!r} was never seen")
        else:
            fraction = report.versions.get(wanted, 0) / report.responses
            mix = ", ".join(f"{v}={n}" for v, n in report.versions.items())
            unreadable = report.versions.get(UNKNOWN_VERSION, 0)
            hint = ""
            if unreadable:
                hint = (f"; {unreadable} of them reported no version readable at {report.version_source} (without "
                        "options the JSON field 'version' is read): point the check at where the app reports its "
                        "version with version_json_path (a dotted JSON path), version_header (a response header) "
                        "or version_regex (a pattern over the body)")
            check("expect_version", fraction + 1e-12 >= min_fraction, round(fraction, 6), min_fraction,
                  f"version {wanted!r} answered {fraction:.2%} of {report.responses} responses ({mix}), below "
                  f"min_version_fraction {min_fraction:.2%}{hint}")
    if thresholds.max_p95_ms is not None:
        p95 = report.latency_ms.get("p95")
        if p95 is None:
            check("max_p95_ms", False, None, thresholds.max_p95_ms, "no HTTP response arrived, so p95 latency is unknown")
        else:
            check("max_p95_ms", p95 <= thresholds.max_p95_ms, p95, thresholds.max_p95_ms,
                  f"p95 latency {p95:.1f} ms is above max_p95_ms {thresholds.max_p95_ms:g} ms")
    return Verdict(VERDICT_FAIL if reasons else VERDICT_PASS, reasons, checks)
