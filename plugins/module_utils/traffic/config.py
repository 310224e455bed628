# Copyright (c) zerodown maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the traffic sampler requests and how it reads an answer: ``SamplerConfig`` and its parts.

``SamplerConfig(...).validate()`` checks every option and raises ``TrafficError`` naming the bad one;
``StatusMatcher`` says which statuses count as success, ``VersionReader`` reads the version an answer
reports. The option checks (``validate_number``, ``validate_fraction``) serve the other traffic modules too.
Pure Python (>= 3.9), no third-party or controller-side imports.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union
from urllib.parse import urlsplit, urlunsplit

_METHOD_RE = re.compile(r"^[A-Z][A-Z0-9_-]{0,31}$")
_STATUS_CLASS_RE = re.compile(r"^([1-5])xx$", re.IGNORECASE)
_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class TrafficError(Exception):
    """A sampler option is malformed or a sampler cannot run; ``option`` names the culprit."""

    def __init__(self, msg: str, option: Optional[str] = None) -> None:
        super().__init__(msg)
        self.option = option


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


def validate_number(value: Any, option: str, kind: type, minimum: float, inclusive: bool = True,
                    hint: str = "") -> Union[int, float]:
    """``value`` as a ``kind`` (int or float) of at least ``minimum`` (above it when not ``inclusive``).

    Raises ``TrafficError`` naming ``option``, with ``hint`` (what to give instead) at the end of the message.
    """
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


def validate_fraction(value: Any, option: str) -> float:
    """``value`` as a float from 0 to 1; raises ``TrafficError`` naming ``option``."""
    number = validate_number(value, option, float, 0.0)
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
        self.timeout = float(validate_number(self.timeout, "timeout", float, 0.0, inclusive=False,
                                             hint="Give the per-request timeout in seconds, such as 5."))
        if not isinstance(self.validate_certs, bool):
            raise TrafficError("validate_certs must be true or false.", "validate_certs")
        if self.ca_path is not None and not isinstance(self.ca_path, str):
            raise TrafficError("ca_path must be a path to a PEM bundle.", "ca_path")
        self.concurrency = int(validate_number(self.concurrency, "concurrency", int, 1,
                                               hint="Use 1 or more parallel workers."))
        if self.concurrency > 256:
            raise TrafficError(f"concurrency {self.concurrency} is above the limit of 256 workers.", "concurrency")
        if self.rate is not None:
            self.rate = float(validate_number(self.rate, "rate", float, 0.0, inclusive=False,
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
