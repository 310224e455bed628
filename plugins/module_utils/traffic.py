# Copyright (c) zerodown maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP traffic sampler: what a ``while true; do curl URL; done`` loop would see, as numbers.

Used by the ``traffic_check`` lookup (and so by the roles' traffic gates), and by the tests, benchmarks and
``tools/traffic_watch.py`` (the recorder and its SVG timeline). No module imports it: the Docker backend's
health gate has its own probe (``docker/replicas.py``, ``http_probe``). Pure Python (>= 3.9) plus ``requests``;
no controller-side Ansible imports.

Main entry points:

* ``SamplerConfig`` - what to request and how to read the version (validated, errors name the option);
* ``TrafficSampler(config).run(requests=N | duration=S)`` -> ``TrafficReport``;
* ``evaluate(report, Thresholds(...))`` -> ``Verdict`` (``pass`` / ``fail`` / ``inconclusive``);
* ``TrafficRecorder(config, rate=...)`` with ``start()`` / ``stop()`` -> a per-second timeline,
  and ``render_timeline_svg(timeline)`` for a picture of it.
"""
from __future__ import annotations

import json
import math
import re
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

try:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.exceptions import LocationParseError
    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - exercised only where requests is absent
    HAS_REQUESTS = False


UNKNOWN_VERSION = "unknown"
VERDICT_PASS = "pass"
VERDICT_FAIL = "fail"
VERDICT_INCONCLUSIVE = "inconclusive"

_METHOD_RE = re.compile(r"^[A-Z][A-Z0-9_-]{0,31}$")
_STATUS_CLASS_RE = re.compile(r"^([1-5])xx$", re.IGNORECASE)
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class TrafficError(Exception):
    """A sampler option is malformed or a sampler cannot run; ``option`` names the culprit."""

    def __init__(self, msg: str, option: Optional[str] = None) -> None:
        super().__init__(msg)
        self.option = option


def missing_requests_message() -> str:
    """The ``missing_required_lib`` text for ``requests`` (Ansible's wording when it is importable)."""
    try:
        from ansible.module_utils.basic import missing_required_lib
        return missing_required_lib("requests")
    except ImportError:  # running outside Ansible (the watch tool on a bare Python)
        return ("Failed to import the required Python library (requests) on this host's Python. "
                "Please read the module documentation and install it in the appropriate location.")


def require_requests() -> None:
    """Raise ``TrafficError`` with an install hint when ``requests`` cannot be imported."""
    if not HAS_REQUESTS:
        raise TrafficError(missing_requests_message(), option=None)


def redact_url(url: str) -> str:
    """Return ``url`` with any password in its userinfo replaced, safe for messages and reports."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    netloc = f"{user}:********@{host}" if user else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# ---------------------------------------------------------------------------------------------------
# Option parsing


def _number(value: Any, option: str, kind: type, minimum: float, inclusive: bool = True,
            hint: str = "") -> Union[int, float]:
    if isinstance(value, bool):
        raise TrafficError(f"{option} must be a number, got a boolean. {hint}".strip(), option)
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise TrafficError(f"{option} must be {'an integer' if kind is int else 'a number'}, "
                           f"got {value!r}. {hint}".strip(), option) from None
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise TrafficError(f"{option} must be a whole number, got {value!r}. {hint}".strip(), option)
    if isinstance(number, float) and not math.isfinite(number):
        raise TrafficError(f"{option} must be a finite number, got {value!r}. {hint}".strip(), option)
    if number < minimum or (not inclusive and number == minimum):
        bound = f">= {minimum}" if inclusive else f"> {minimum}"
        raise TrafficError(f"{option} must be {bound}, got {value!r}. {hint}".strip(), option)
    return number


def _fraction(value: Any, option: str) -> float:
    number = _number(value, option, float, 0.0)
    if number > 1.0:
        raise TrafficError(f"{option} is a fraction between 0 and 1 (0.01 means 1%), got {value!r}.", option)
    return float(number)


class StatusMatcher:
    """Which HTTP statuses count as success: integers (``200``) and classes (``"2xx"``)."""

    def __init__(self, spec: Optional[Sequence[Union[int, str]]] = None) -> None:
        if spec is None:
            spec = ["2xx"]
        if isinstance(spec, (str, int)):
            spec = [spec]
        codes = set()
        classes = set()
        if not spec:
            raise TrafficError("expected_status must list at least one status code or class such as '2xx'.",
                               "expected_status")
        for item in spec:
            text = str(item).strip()
            match = _STATUS_CLASS_RE.match(text)
            if match:
                classes.add(int(match.group(1)))
                continue
            if isinstance(item, bool) or not text.isdigit() or not 100 <= int(text) <= 599:
                raise TrafficError(f"expected_status entry {item!r} is not an HTTP status: use a code from 100 "
                                   "to 599 (such as 200) or a class such as '2xx'.", "expected_status")
            codes.add(int(text))
        self.codes = frozenset(codes)
        self.classes = frozenset(classes)

    def __call__(self, status: int) -> bool:
        return status in self.codes or status // 100 in self.classes

    def describe(self) -> List[str]:
        """The accepted statuses as a sorted list of strings, for reports."""
        return [f"{c}xx" for c in sorted(self.classes)] + [str(c) for c in sorted(self.codes)]


class VersionReader:
    """Reads the version a response reports: a JSON field (dotted path), a header, or a body regex."""

    def __init__(self, json_path: Optional[str] = None, header: Optional[str] = None,
                 regex: Optional[str] = None) -> None:
        chosen = [name for name, value in (("version_json_path", json_path), ("version_header", header),
                                           ("version_regex", regex)) if value not in (None, "")]
        if len(chosen) > 1:
            raise TrafficError(f"set only one of {', '.join(chosen)}: the version is read from one place.",
                               chosen[-1])
        self.source = "json"
        self.path: List[str] = []
        self.header: Optional[str] = None
        self.pattern: Optional[re.Pattern] = None
        if header:
            if not _HEADER_NAME_RE.match(str(header)):
                raise TrafficError(f"version_header {header!r} is not a valid HTTP header name.", "version_header")
            self.source = "header"
            self.header = str(header)
        elif regex:
            try:
                self.pattern = re.compile(str(regex))
            except re.error as exc:
                raise TrafficError(f"version_regex is not a valid regular expression ({exc}); "
                                   "fix the pattern, for example 'version: (\\S+)'.", "version_regex") from None
            self.source = "regex"
        else:
            path = "version" if json_path in (None, "") else str(json_path)
            parts = path.split(".")
            if any(part == "" for part in parts):
                raise TrafficError(f"version_json_path {path!r} has an empty segment; use a dotted path "
                                   "such as 'build.version'.", "version_json_path")
            self.path = parts

    def describe(self) -> str:
        if self.source == "header":
            return f"header {self.header}"
        if self.source == "regex" and self.pattern is not None:
            return f"regex {self.pattern.pattern}"
        return f"json {'.'.join(self.path)}"

    def read(self, headers: Any, body: bytes) -> Optional[str]:
        """The version from one response, or None when it has none readable."""
        if self.source == "header":
            value = headers.get(self.header) if headers is not None else None
            return value.strip() or None if isinstance(value, str) else None
        if not body:
            return None
        if self.source == "regex" and self.pattern is not None:
            match = self.pattern.search(body.decode("utf-8", "replace"))
            if not match:
                return None
            value = match.group(1) if self.pattern.groups else match.group(0)
            return value.strip() or None if value is not None else None
        try:
            node: Any = json.loads(body)
        except ValueError:
            return None
        for part in self.path:
            if isinstance(node, dict):
                if part not in node:
                    return None
                node = node[part]
            elif isinstance(node, list) and part.lstrip("-").isdigit():
                index = int(part)
                if not -len(node) <= index < len(node):
                    return None
                node = node[index]
            else:
                return None
        if isinstance(node, bool) or node is None or isinstance(node, (dict, list)):
            return None
        text = str(node).strip()
        return text or None


@dataclass
class SamplerConfig:
    """What to request and how to judge one answer. ``validate()`` checks every field."""

    url: str
    method: str = "GET"
    headers: Dict[str, str] = field(default_factory=dict)
    timeout: float = 5.0
    validate_certs: bool = True
    ca_path: Optional[str] = None
    expected_status: Optional[Sequence[Union[int, str]]] = None
    version_json_path: Optional[str] = None
    version_header: Optional[str] = None
    version_regex: Optional[str] = None
    concurrency: int = 4
    rate: Optional[float] = None

    def validate(self) -> "SamplerConfig":
        """Check and normalise the options; raise ``TrafficError`` naming the first bad one."""
        if not isinstance(self.url, str) or not self.url.strip():
            raise TrafficError("url is required: give the http:// or https:// address to sample.", "url")
        self.url = self.url.strip()
        try:
            parts = urlsplit(self.url)
            port = parts.port
        except ValueError as exc:
            raise TrafficError(f"url {redact_url(self.url)!r} cannot be parsed ({exc}).", "url") from None
        if parts.scheme.lower() not in ("http", "https"):
            raise TrafficError(f"url {redact_url(self.url)!r} is not http or https; only http:// and https:// "
                               "addresses can be sampled.", "url")
        if not parts.hostname:
            raise TrafficError(f"url {redact_url(self.url)!r} has no host.", "url")
        if port == 0:
            raise TrafficError(f"url {redact_url(self.url)!r} has port 0; give a port from 1 to 65535.", "url")
        method = str(self.method or "").strip().upper()
        if not _METHOD_RE.match(method):
            raise TrafficError(f"method {self.method!r} is not an HTTP method such as GET or HEAD.", "method")
        self.method = method
        if self.headers is None:
            self.headers = {}
        if not isinstance(self.headers, dict):
            raise TrafficError("headers must be a mapping of header name to value.", "headers")
        clean: Dict[str, str] = {}
        for name, value in self.headers.items():
            if not isinstance(name, str) or not _HEADER_NAME_RE.match(name):
                # The name is safe to echo; the value may be a secret and never is.
                raise TrafficError(f"headers: {str(name)!r} is not a valid HTTP header name.", "headers")
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise TrafficError(f"headers: the value of {name!r} must be a string.", "headers")
            text = str(value)
            if "\r" in text or "\n" in text:
                raise TrafficError(f"headers: the value of {name!r} contains a line break; remove it.", "headers")
            clean[name] = text
        self.headers = clean
        self.timeout = float(_number(self.timeout, "timeout", float, 0.0, inclusive=False,
                                     hint="Give the per-request timeout in seconds, such as 5."))
        if not isinstance(self.validate_certs, bool):
            raise TrafficError("validate_certs must be true or false.", "validate_certs")
        if self.ca_path is not None and not isinstance(self.ca_path, str):
            raise TrafficError("ca_path must be a path to a PEM bundle.", "ca_path")
        self.concurrency = int(_number(self.concurrency, "concurrency", int, 1,
                                       hint="Use 1 or more parallel workers."))
        if self.concurrency > 256:
            raise TrafficError(f"concurrency {self.concurrency} is above the limit of 256 workers.", "concurrency")
        if self.rate is not None:
            self.rate = float(_number(self.rate, "rate", float, 0.0, inclusive=False,
                                      hint="Give requests per second, such as 20, or leave it unset for no limit."))
        self.status_matcher  # noqa: B018 - parse now so a bad value fails before any request
        self.version_reader  # noqa: B018
        return self

    @property
    def status_matcher(self) -> StatusMatcher:
        if not hasattr(self, "_status_matcher"):
            self._status_matcher = StatusMatcher(self.expected_status)
        return self._status_matcher

    @property
    def version_reader(self) -> VersionReader:
        if not hasattr(self, "_version_reader"):
            self._version_reader = VersionReader(self.version_json_path, self.version_header, self.version_regex)
        return self._version_reader


# ---------------------------------------------------------------------------------------------------
# Samples, reports, verdicts


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


def _ms(seconds: Optional[float]) -> Optional[float]:
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
                "p50": _ms(percentile(latencies, 50)),
                "p95": _ms(percentile(latencies, 95)),
                "p99": _ms(percentile(latencies, 99)),
                "max": _ms(latencies[-1] if latencies else None),
                "mean": _ms(sum(latencies) / len(latencies) if latencies else None),
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
            self.max_error_rate = _fraction(self.max_error_rate, "max_error_rate")
        if self.min_version_fraction is not None:
            self.min_version_fraction = _fraction(self.min_version_fraction, "min_version_fraction")
            if self.expect_version in (None, ""):
                raise TrafficError("min_version_fraction needs expect_version: say which version the fraction is of.",
                                   "min_version_fraction")
        if self.expect_version is not None:
            self.expect_version = str(self.expect_version).strip() or None
        if self.max_p95_ms is not None:
            self.max_p95_ms = float(_number(self.max_p95_ms, "max_p95_ms", float, 0.0, inclusive=False,
                                            hint="Give the latency limit in milliseconds."))
        self.min_samples = int(_number(self.min_samples, "min_samples", int, 1,
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


# Argument specs for modules, kept in step with the doc fragments zerodown.rollout.traffic and
# zerodown.rollout.traffic.THRESHOLDS (a unit test compares them).
SAMPLER_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {
    "concurrency": {"type": "int", "default": 4},
    "rate": {"type": "float"},
    "timeout": {"type": "float", "default": 5.0},
    "method": {"type": "str", "default": "GET"},
    "headers": {"type": "dict", "default": {}, "no_log": True},
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
    "expected_status": {"type": "list", "elements": "str", "default": ["2xx"]},
    "version_json_path": {"type": "str"},
    "version_header": {"type": "str"},
    "version_regex": {"type": "str"},
}
SAMPLER_MUTUALLY_EXCLUSIVE = [("version_json_path", "version_header", "version_regex")]
THRESHOLDS_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {
    "min_samples": {"type": "int", "default": 10},
    "max_error_rate": {"type": "float", "default": 0.0},
    "expect_version": {"type": "str"},
    "min_version_fraction": {"type": "float"},
    "max_p95_ms": {"type": "float"},
}


def sampler_config_from_params(url: str, params: Dict[str, Any]) -> SamplerConfig:
    """A validated ``SamplerConfig`` for ``url`` from module params shaped by ``SAMPLER_ARGUMENT_SPEC``."""
    options = {name: params[name] for name in SAMPLER_ARGUMENT_SPEC if params.get(name) is not None}
    return SamplerConfig(url=url, **options).validate()


def thresholds_from_params(params: Dict[str, Any]) -> Thresholds:
    """Validated ``Thresholds`` from module params shaped by ``THRESHOLDS_ARGUMENT_SPEC``."""
    return Thresholds(**{name: params.get(name, spec.get("default"))
                         for name, spec in THRESHOLDS_ARGUMENT_SPEC.items()}).validate()


# ---------------------------------------------------------------------------------------------------
# The sampler


def _classify(exc: BaseException) -> str:
    """Map a requests exception onto an error kind."""
    if not HAS_REQUESTS:  # pragma: no cover
        return "connection"
    exc_mod = requests.exceptions
    if isinstance(exc, exc_mod.SSLError):
        return "tls"
    if isinstance(exc, exc_mod.Timeout):  # ConnectTimeout and ReadTimeout
        return "timeout"
    if isinstance(exc, (exc_mod.ConnectionError, exc_mod.ChunkedEncodingError)):
        return "connection"
    return "protocol"


def _describe_exception(exc: BaseException, url: str) -> str:
    # requests' messages carry the URL (maybe with credentials) but never request headers.
    # Its ConnectionError wraps urllib3's retry error; the reason inside is the readable part.
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", None)
    text = f"{type(exc).__name__}: {reason if reason is not None else exc}"
    if url != redact_url(url):
        text = text.replace(url, redact_url(url))
    return text[:300]


class _Pacer:
    """Spreads requests evenly at ``rate`` per second over all workers (None: as fast as possible)."""

    def __init__(self, rate: Optional[float]) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def slot(self) -> float:
        """The monotonic time this request may start at."""
        if not self.interval:
            return 0.0
        with self._lock:
            now = time.monotonic()
            # A worker late by more than one interval does not earn a burst to catch up.
            at = max(now, self._next)
            self._next = at + self.interval
            return at


class TrafficSampler:
    """Sends requests with ``concurrency`` worker threads (one keep-alive Session each) and aggregates them."""

    def __init__(self, config: SamplerConfig) -> None:
        require_requests()
        self.config = config.validate()
        self._stop = threading.Event()
        self._examples: Dict[str, str] = {}
        self._examples_lock = threading.Lock()

    def stop(self) -> None:
        """Ask a running ``run``/``run_until_stopped`` to finish after the requests in flight."""
        self._stop.set()

    def run(self, requests: Optional[int] = None, duration: Optional[float] = None) -> TrafficReport:  # noqa: A002
        """Send ``requests`` requests, or keep sending for ``duration`` seconds (one of the two)."""
        if (requests is None) == (duration is None):
            raise TrafficError("give exactly one of requests (a count) or duration (seconds).", "requests")
        if requests is not None:
            requests = int(_number(requests, "requests", int, 1, hint="Ask for 1 or more requests."))
            if requests > 10_000_000:
                raise TrafficError(f"requests {requests} is above the limit of 10000000.", "requests")
        if duration is not None:
            duration = float(_number(duration, "duration", float, 0.0, inclusive=False,
                                     hint="Give the sampling time in seconds, such as 10."))
            if duration > 86400:
                raise TrafficError("duration is above the limit of 86400 seconds.", "duration")
        samples, elapsed = self.collect(requests=requests, duration=duration)
        return TrafficReport.from_samples(self.config, samples, elapsed, self.error_examples)

    @property
    def error_examples(self) -> Dict[str, str]:
        with self._examples_lock:
            return dict(self._examples)

    def collect(self, requests: Optional[int] = None, duration: Optional[float] = None,  # noqa: A002
                on_sample: Optional[Callable[[Sample], None]] = None,
                origin: Optional[float] = None) -> Tuple[List[Sample], float]:
        """Run the workers and return (samples, elapsed seconds); stops on count, duration or ``stop()``.

        With neither ``requests`` nor ``duration`` it runs until ``stop()``. ``origin`` is the
        ``time.perf_counter()`` sample start offsets are measured from (default: now).
        """
        config = self.config
        t0 = time.perf_counter() if origin is None else origin
        started = time.perf_counter()
        deadline = started + duration if duration is not None else None
        remaining = [requests]
        claim_lock = threading.Lock()
        pacer = _Pacer(config.rate)

        def claim() -> bool:
            if self._stop.is_set():
                return False
            if deadline is not None and time.perf_counter() >= deadline:
                return False
            if remaining[0] is None:
                return True
            with claim_lock:
                if remaining[0] <= 0:
                    return False
                remaining[0] -= 1
                return True

        results: List[List[Sample]] = [[] for _worker in range(config.concurrency)]
        failures: List[BaseException] = []
        workers = min(config.concurrency, requests) if requests is not None else config.concurrency
        threads = [threading.Thread(target=self._worker, name=f"traffic-sampler-{i}", daemon=True,
                                    args=(claim, pacer, deadline, t0, results[i], on_sample, failures))
                   for i in range(workers)]
        with warnings.catch_warnings():
            if not config.validate_certs:
                # The user turned verification off on purpose; one warning per request would drown the output.
                warnings.simplefilter("ignore")
            for thread in threads:
                thread.start()
            try:
                for thread in threads:
                    while thread.is_alive():
                        thread.join(0.2)
            except BaseException:
                self._stop.set()
                raise
        elapsed = time.perf_counter() - started
        if failures:
            if isinstance(failures[0], TrafficError):
                raise failures[0]
            raise TrafficError(f"the traffic sampler failed unexpectedly: {failures[0]!r}")
        merged = [s for chunk in results for s in chunk]
        merged.sort(key=lambda s: s.start)
        return merged, elapsed

    def _new_session(self) -> "requests.Session":
        session = requests.Session()
        # One connection per worker is all a serial worker needs; no retries, a retry would hide an error
        # the curl watcher would have seen.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update(self.config.headers)
        # No proxies from the environment: the point is to see what the target itself answers.
        session.trust_env = False
        session.verify = (self.config.ca_path or True) if self.config.validate_certs else False
        return session

    def _note_example(self, kind: str, text: str) -> None:
        with self._examples_lock:
            self._examples.setdefault(kind, text)

    def _worker(self, claim: Callable[[], bool], pacer: _Pacer, deadline: Optional[float], t0: float,
                out: List[Sample], on_sample: Optional[Callable[[Sample], None]],
                failures: List[BaseException]) -> None:
        config = self.config
        matcher = config.status_matcher
        reader = config.version_reader
        method, url, timeout = config.method, config.url, config.timeout
        stop = self._stop
        try:
            session = self._new_session()
        except Exception as exc:  # a bad ca_path and the like
            failures.append(exc)
            return
        append = out.append
        perf = time.perf_counter
        verify = session.verify
        try:
            # Prepared once: Session.send skips the per-call merge and prepare work (about 1.5x the
            # throughput), and no cookie picked up from an answer is sent back, as with a curl loop; a
            # load balancer's sticky cookie would otherwise pin each worker to one backend.
            prepared = session.prepare_request(requests.Request(method, url))
        except requests.exceptions.RequestException as exc:
            failures.append(TrafficError(f"url {redact_url(url)!r} cannot be requested: {exc}", "url"))
            session.close()
            return
        except Exception as exc:
            failures.append(exc)
            session.close()
            return
        try:
            while claim():
                at = pacer.slot()
                if at:
                    delay = at - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        break
                    if deadline is not None and perf() >= deadline:
                        break
                begin = perf()
                try:
                    response = session.send(prepared, timeout=timeout, allow_redirects=False, verify=verify,
                                            proxies={}, stream=False, cert=None)
                    body = response.content
                except (requests.exceptions.InvalidURL, LocationParseError) as exc:
                    failures.append(TrafficError(f"url {redact_url(url)!r} cannot be requested: {exc}", "url"))
                    return
                except requests.exceptions.RequestException as exc:
                    kind = _classify(exc)
                    self._note_example(kind, _describe_exception(exc, url))
                    sample = Sample(begin - t0, None, None, kind, None)
                else:
                    latency = perf() - begin
                    status = response.status_code
                    version = reader.read(response.headers, body)
                    error = None
                    if not matcher(status):
                        error = "status"
                        self._note_example("status", f"HTTP {status} {response.reason or ''}".strip())
                    sample = Sample(begin - t0, latency, status, error, version)
                append(sample)
                if on_sample is not None:
                    on_sample(sample)
        except Exception as exc:  # never let a worker die silently
            failures.append(exc)
        finally:
            session.close()


# ---------------------------------------------------------------------------------------------------
# Watch mode: a background recorder and its per-second timeline


def build_timeline(samples: Sequence[Sample], config: SamplerConfig, started_at: float, elapsed: float,
                   error_examples: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Per-second buckets (by request start) of versions, errors and latency, plus the overall report.

    ``span_s`` is how much of its second a bucket covers (less than 1 only for the last one).
    """
    seconds = max(1, int(math.ceil(elapsed - 1e-9))) if elapsed > 0 else 1
    buckets: List[Dict[str, Any]] = []
    latencies: List[List[float]] = [[] for _second in range(seconds)]
    for second in range(seconds):
        span = round(min(1.0, elapsed - second), 3) if elapsed > 0 else 1.0
        buckets.append({"t": second, "span_s": span, "requests": 0, "ok": 0, "errors": 0, "error_kinds": {}, "versions": {},
                        "p50_ms": None, "p95_ms": None, "max_ms": None})
    for sample in samples:
        index = min(max(int(sample.start), 0), seconds - 1)
        bucket = buckets[index]
        bucket["requests"] += 1
        if sample.error:
            bucket["errors"] += 1
            bucket["error_kinds"][sample.error] = bucket["error_kinds"].get(sample.error, 0) + 1
        else:
            bucket["ok"] += 1
        if sample.status is not None:
            version = sample.version or UNKNOWN_VERSION
            bucket["versions"][version] = bucket["versions"].get(version, 0) + 1
            if sample.latency is not None:
                latencies[index].append(sample.latency)
    for bucket, values in zip(buckets, latencies):
        values.sort()
        bucket["p50_ms"] = _ms(percentile(values, 50))
        bucket["p95_ms"] = _ms(percentile(values, 95))
        bucket["max_ms"] = _ms(values[-1] if values else None)
    report = TrafficReport.from_samples(config, samples, elapsed, error_examples)
    return {
        "url": redact_url(config.url),
        "started_at": datetime.fromtimestamp(started_at, timezone.utc).isoformat(timespec="milliseconds"),
        "duration_s": round(elapsed, 3),
        "rate": config.rate,
        "concurrency": config.concurrency,
        "summary": report.to_dict(),
        "seconds": buckets,
    }


class TrafficRecorder:
    """Samples in a background thread from ``start()`` to ``stop()`` and returns a per-second timeline.

    ``rate`` (requests per second over all workers, default 20) keeps the watcher light on the service;
    ``concurrency`` workers keep that rate up when answers are slow. ``max_duration`` stops a
    forgotten recorder by itself.
    """

    def __init__(self, config: SamplerConfig, rate: float = 20.0, max_duration: float = 3600.0) -> None:
        # A recorder keeps every sample until stop(): an unlimited rate over an hour would fill memory.
        if rate is None:
            raise TrafficError("rate is required for a recorder: give requests per second, such as 20.", "rate")
        config.rate = float(_number(rate, "rate", float, 0.0, inclusive=False,
                                    hint="Give requests per second, such as 20."))
        if config.rate > 5000:
            raise TrafficError(f"rate {rate} is above the recorder's limit of 5000 requests per second.", "rate")
        self.sampler = TrafficSampler(config)
        self.config = self.sampler.config
        self.max_duration = float(_number(max_duration, "max_duration", float, 0.0, inclusive=False,
                                          hint="Give the longest recording in seconds, such as 3600."))
        if self.max_duration > 86400:
            raise TrafficError("max_duration is above the limit of 86400 seconds.", "max_duration")
        self._thread: Optional[threading.Thread] = None
        self._samples: List[Sample] = []
        self._elapsed = 0.0
        self._started_wall = 0.0
        self._error: Optional[BaseException] = None
        self._live: List[Sample] = []
        self._live_lock = threading.Lock()

    def start(self) -> "TrafficRecorder":
        """Begin recording in a background thread; returns self."""
        if self._thread is not None:
            raise TrafficError("this recorder was already started; make a new one for a new recording.")
        self._started_wall = time.time()
        origin = time.perf_counter()

        def record() -> None:
            try:
                self._samples, self._elapsed = self.sampler.collect(
                    duration=self.max_duration, on_sample=self._on_sample, origin=origin)
            except BaseException as exc:  # surfaced by stop()
                self._error = exc

        self._thread = threading.Thread(target=record, name="traffic-recorder", daemon=True)
        self._thread.start()
        return self

    def _on_sample(self, sample: Sample) -> None:
        with self._live_lock:
            self._live.append(sample)

    def snapshot(self) -> List[Sample]:
        """The samples recorded so far (while running)."""
        with self._live_lock:
            return list(self._live)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the recorder stops by itself (max_duration); True if it has stopped."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Stop recording (requests in flight finish, bounded by the request timeout) and return the timeline."""
        if self._thread is None:
            raise TrafficError("the recorder was never started.")
        self.sampler.stop()
        self._thread.join(timeout if timeout is not None else self.config.timeout + 5.0)
        if self._thread.is_alive():
            raise TrafficError("the recorder did not stop in time; a request is still hanging.")
        if self._error is not None:
            if isinstance(self._error, TrafficError):
                raise self._error
            raise TrafficError(f"the recorder failed: {self._error!r}")
        return build_timeline(self._samples, self.config, self._started_wall, self._elapsed,
                              self.sampler.error_examples)


# ---------------------------------------------------------------------------------------------------
# SVG picture of a timeline (hand-written; no plotting library)

_PALETTE = ("#4e79a7", "#59a14f", "#f28e2b", "#76b7b2", "#b07aa1", "#edc948", "#9c755f", "#ff9da7")
_UNKNOWN_COLOUR = "#bab0ac"
_ERROR_COLOUR = "#d62728"
_LATENCY_COLOUR = "#222222"


def _xml(text: Any) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _axis(value: float, ticks: int = 4) -> Tuple[float, float]:
    """A round axis (top, step): step is 1, 2 or 5 x 10^n, about ``ticks`` steps, top >= value."""
    value = max(value, 1e-9)
    raw = value / ticks
    exponent = math.floor(math.log10(raw))
    step = 10.0 ** exponent
    for factor in (1, 2, 5, 10):
        step = factor * 10.0 ** exponent
        if step >= raw - 1e-12:
            break
    top = math.ceil(value / step - 1e-9) * step
    return max(top, step), step


def _label(value: float) -> str:
    return f"{value:.10g}"


def render_timeline_svg(timeline: Dict[str, Any], width: int = 960, height: int = 420) -> str:
    """Stacked bars of versions per second, errors in red on top, and a p95 latency line (right axis)."""
    buckets = timeline.get("seconds") or []
    summary = timeline.get("summary") or {}
    left, right, top, bottom = 64, 72, 58, 64
    plot_w = width - left - right
    plot_h = height - top - bottom
    n = max(1, len(buckets))
    versions: List[str] = []
    for bucket in buckets:
        for version in bucket.get("versions", {}):
            if version not in versions and version != UNKNOWN_VERSION:
                versions.append(version)
    colours = {v: _PALETTE[i % len(_PALETTE)] for i, v in enumerate(versions)}
    colours[UNKNOWN_VERSION] = _UNKNOWN_COLOUR
    order = versions + [UNKNOWN_VERSION]
    # Errors with a response (bad status) are drawn as errors, not as their version, so the red is honest.
    # 10% headroom so the tallest bar does not touch the frame
    y_max, y_step = _axis(1.1 * max([b.get("requests", 0) for b in buckets] + [1]))
    p95s = [b.get("p95_ms") for b in buckets if b.get("p95_ms") is not None]
    l_max, l_step = _axis(max(p95s + [1.0]))
    bar_w = plot_w / n
    gap = min(2.0, bar_w * 0.15)

    out: List[str] = []
    add = out.append
    add(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">')
    add(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>')
    title = f"Traffic during rollout: {timeline.get('url', '')}"
    add(f'<text x="{left}" y="22" font-size="15" font-weight="bold">{_xml(title)}</text>')
    p95_all = (summary.get("latency_ms") or {}).get("p95")
    mix = ", ".join(f"{v} {f * 100:.1f}%" for v, f in (summary.get("version_fractions") or {}).items())
    sub = (f"{summary.get('total', 0)} requests in {summary.get('duration_s', 0):.1f} s, "
           f"{summary.get('errors', 0)} errors ({summary.get('error_rate', 0) * 100:.2f}%), "
           f"p95 {'-' if p95_all is None else f'{p95_all:.1f}'} ms" + (f"; versions {mix}" if mix else ""))
    add(f'<text x="{left}" y="40" fill="#555555">{_xml(sub)}</text>')
    # grid and axes
    for i in range(int(round(y_max / y_step)) + 1):
        y = top + plot_h - i * y_step / y_max * plot_h
        add(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        add(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(i * y_step)}</text>')
    for i in range(int(round(l_max / l_step)) + 1):
        y = top + plot_h - i * l_step / l_max * plot_h
        add(f'<text x="{left + plot_w + 6}" y="{y + 4:.1f}" fill="{_LATENCY_COLOUR}">{_label(i * l_step)}</text>')
    add(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333333"/>')
    add(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#333333"/>')
    add(f'<text x="16" y="{top + plot_h / 2:.1f}" transform="rotate(-90 16 {top + plot_h / 2:.1f})" '
        'text-anchor="middle">requests per second</text>')
    rx = width - 14
    add(f'<text x="{rx}" y="{top + plot_h / 2:.1f}" transform="rotate(90 {rx} {top + plot_h / 2:.1f})" '
        'text-anchor="middle">p95 latency (ms)</text>')
    tick_every = max(1, int(math.ceil(n / 12)))
    for i in range(0, n, tick_every):
        x = left + (i + 0.5) * bar_w
        add(f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{i}</text>')
    add(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 34}" text-anchor="middle">seconds since start</text>')
    # bars
    drawn_unknown = False
    for i, bucket in enumerate(buckets):
        x = left + i * bar_w + gap / 2
        # a trailing partial second gets a narrower bar, or it would read as a drop in traffic
        span = min(1.0, max(0.0, float(bucket.get("span_s", 1.0))))
        w = max(0.5, bar_w * span - gap)
        y = top + plot_h
        status_errors = bucket.get("error_kinds", {}).get("status", 0)
        answered = dict(bucket.get("versions", {}))
        # Remove bad-status answers from the version stack (they are in the red part); take them from
        # "unknown" first, since error pages rarely carry a version.
        to_remove = status_errors
        for version in [UNKNOWN_VERSION] + versions[::-1]:
            if to_remove <= 0:
                break
            take = min(answered.get(version, 0), to_remove)
            answered[version] = answered.get(version, 0) - take
            to_remove -= take
        segments = [(v, answered.get(v, 0), colours[v]) for v in order]
        drawn_unknown = drawn_unknown or answered.get(UNKNOWN_VERSION, 0) > 0
        segments.append(("errors", bucket.get("errors", 0), _ERROR_COLOUR))
        for label, count, colour in segments:
            if count <= 0:
                continue
            h = count / y_max * plot_h
            y -= h
            add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{colour}">'
                f'<title>{_xml(f"t={i}s {label}: {count}")}</title></rect>')
    # p95 line
    points = []
    for i, bucket in enumerate(buckets):
        value = bucket.get("p95_ms")
        if value is None:
            continue
        span = min(1.0, max(0.0, float(bucket.get("span_s", 1.0))))
        x = left + (i + 0.5 * span) * bar_w
        y = top + plot_h - min(value, l_max) / l_max * plot_h
        points.append(f"{x:.1f},{y:.1f}")
    if len(points) > 1:
        add(f'<polyline points="{" ".join(points)}" fill="none" stroke="{_LATENCY_COLOUR}" stroke-width="2"/>')
    for point in points if len(points) <= 120 else []:
        px, py = point.split(",")
        add(f'<circle cx="{px}" cy="{py}" r="2.5" fill="{_LATENCY_COLOUR}"/>')
    # legend
    lx = left
    ly = height - 14
    legend = [(f"version {v}", colours[v]) for v in versions]
    if drawn_unknown:
        legend.append(("no version", _UNKNOWN_COLOUR))
    legend.append(("errors", _ERROR_COLOUR))
    for label, colour in legend:
        add(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{colour}"/>')
        add(f'<text x="{lx + 16}" y="{ly}">{_xml(label)}</text>')
        lx += 26 + 7 * len(label)
    add(f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 18}" y2="{ly - 4}" stroke="{_LATENCY_COLOUR}" stroke-width="2"/>')
    add(f'<text x="{lx + 22}" y="{ly}">p95 latency</text>')
    add("</svg>")
    return "\n".join(out) + "\n"
