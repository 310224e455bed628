# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The platform-neutral rollout model.

Every module speaks one vocabulary, whatever the platform:

* a *workload* (:class:`WorkloadRef`): a Kubernetes Deployment/StatefulSet/DaemonSet, or on a Docker
  host a named set of containers behind a load balancer;
* a *revision* (:class:`Revision`): an immutable record of what the workload ran; upgrades make a new
  one, a rollback makes an old one current again;
* a *rollout status* (:class:`RolloutStatus`): counts, the revision it is for, a state and a human
  reason (kubectl's wording where one exists).

Backends implement :class:`Platform`. Errors are :class:`RolloutError` subclasses whose message is
meant for the user as it is: what failed, why, and what to do.
"""

from __future__ import annotations

import re
import time
import typing as t
from dataclasses import dataclass, field

STATE_COMPLETE = "complete"
STATE_PROGRESSING = "progressing"
STATE_FAILED = "failed"
STATE_PAUSED = "paused"


class RolloutError(Exception):
    """Base error. ``msg`` is user-facing; ``details`` are returned alongside it (never secrets)."""

    def __init__(self, msg: str, **details: t.Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


class InvalidInput(RolloutError):
    """The task's arguments cannot work; nothing was changed."""


class WorkloadNotFound(RolloutError):
    """The named workload does not exist."""


class PlatformUnreachable(RolloutError):
    """The Docker engine / Kubernetes API / load balancer could not be reached."""


class RolloutFailed(RolloutError):
    """The rollout could not complete (health gate, deadline, crash loop...)."""


class WaitTimeout(RolloutError):
    """The wait ran out of time before the rollout completed."""


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference ``[registry/]repository[:tag][@digest]``."""

    repository: str
    tag: t.Optional[str] = None
    digest: t.Optional[str] = None

    def __str__(self) -> str:
        out = self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def version(self) -> t.Optional[str]:
        """The tag, else the digest: what a person calls the image's version."""
        return self.tag or self.digest


# Grammar of the distribution reference (repository path components, tag, digest), simplified to
# what an engine accepts. Upper-case letters are not allowed in the repository part.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_IMAGE_RE = re.compile(
    rf"^(?P<repo>(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)


def parse_image_reference(ref: t.Any, option: str = "image") -> ImageRef:
    """Parse and validate an image reference, raising :class:`InvalidInput` naming ``option``."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput(f"{option} must be a non-empty image reference such as 'registry/app:2.0'")
    match = _IMAGE_RE.match(ref.strip())
    if not match:
        raise InvalidInput(
            f"{option}={ref!r} is not a valid image reference; expected [registry/]repository[:tag][@digest] "
            "with a lower-case repository, e.g. 'example.org/team/app:2.0'"
        )
    return ImageRef(match.group("repo"), match.group("tag"), match.group("digest"))


@dataclass(frozen=True)
class WorkloadRef:
    """Which workload a task acts on."""

    platform: str
    name: str
    kind: str = "Deployment"
    namespace: t.Optional[str] = None

    def describe(self) -> str:
        if self.platform == "kubernetes":
            return f"{self.kind} {self.namespace or 'default'}/{self.name}"
        return f"Docker workload {self.name!r}"

    def to_dict(self) -> dict[str, t.Any]:
        return {"platform": self.platform, "kind": self.kind, "name": self.name, "namespace": self.namespace}


@dataclass
class Revision:
    """One entry of a workload's history."""

    number: int
    images: dict[str, str]
    current: bool = False
    change_cause: t.Optional[str] = None
    created: t.Optional[str] = None
    source: t.Optional[str] = None
    replicas: t.Optional[int] = None

    def to_dict(self) -> dict[str, t.Any]:
        return {
            "revision": self.number,
            "images": dict(self.images),
            "current": self.current,
            "change_cause": self.change_cause,
            "created": self.created,
            "source": self.source,
            "replicas": self.replicas,
        }


@dataclass
class RolloutStatus:
    """Where a rollout stands, in one shape for every platform."""

    desired: int
    updated: int
    ready: int
    available: int
    revision: t.Optional[int]
    state: str
    message: str
    reason: t.Optional[str] = None
    extra: dict[str, t.Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.state == STATE_COMPLETE

    @property
    def failed(self) -> bool:
        return self.state == STATE_FAILED

    def to_dict(self) -> dict[str, t.Any]:
        out = {
            "desired": self.desired,
            "updated": self.updated,
            "ready": self.ready,
            "available": self.available,
            "revision": self.revision,
            "state": self.state,
            "done": self.done,
            "message": self.message,
            "reason": self.reason,
        }
        out.update(self.extra)
        return out


@dataclass
class ActionResult:
    """What a changing operation (upgrade, rollback) did or would do."""

    changed: bool
    workload: WorkloadRef
    revision: t.Optional[int] = None
    previous_revision: t.Optional[int] = None
    images: dict[str, str] = field(default_factory=dict)
    previous_images: dict[str, str] = field(default_factory=dict)
    status: t.Optional[RolloutStatus] = None
    before: t.Optional[dict[str, t.Any]] = None
    after: t.Optional[dict[str, t.Any]] = None
    message: str = ""
    extra: dict[str, t.Any] = field(default_factory=dict)

    def to_module_result(self, diff: bool) -> dict[str, t.Any]:
        out: dict[str, t.Any] = {
            "changed": self.changed,
            "workload": self.workload.to_dict(),
            "revision": self.revision,
            "previous_revision": self.previous_revision,
            "images": dict(self.images),
            "previous_images": dict(self.previous_images),
            "msg": self.message,
        }
        if self.status is not None:
            out["status"] = self.status.to_dict()
        if diff and (self.before is not None or self.after is not None):
            out["diff"] = {"before": self.before or {}, "after": self.after or {}}
        out.update(self.extra)
        return out


@dataclass
class Finding:
    """One pre-flight finding. ``severity`` is ``error`` (an upgrade would drop traffic) or ``warning``."""

    check: str
    severity: str
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, t.Any]:
        return {"check": self.check, "severity": self.severity, "message": self.message, "fix": self.fix}


ProgressCallback = t.Callable[[RolloutStatus], None]

# at most this many lines of ``progress`` in a result (a long wait repeats few distinct messages anyway)
MAX_PROGRESS_LINES = 200


class ProgressLog:
    """A task's ``progress`` return value: each distinct message, with the seconds at which it appeared.

    Called with a status (a :data:`ProgressCallback` for waits), or :meth:`note` for a step of the platform's own."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.entries: list[dict[str, t.Any]] = []

    def note(self, message: str) -> None:
        if (not self.entries or self.entries[-1]["message"] != message) and len(self.entries) < MAX_PROGRESS_LINES:
            self.entries.append({"t": round(time.monotonic() - self.started, 3), "message": message})

    def __call__(self, status: RolloutStatus) -> None:
        self.note(status.message)


class Platform:
    """What every backend implements. ``module`` is the AnsibleModule (for check mode, warnings)."""

    name = ""

    def __init__(self, module: t.Any, workload: WorkloadRef) -> None:
        self.module = module
        self.workload = workload

    def status(self) -> RolloutStatus:
        raise NotImplementedError

    def history(self) -> list[Revision]:
        raise NotImplementedError

    def upgrade(self, params: dict[str, t.Any]) -> ActionResult:
        """Move the workload to new image(s); honours check mode; waits if ``params['wait']``."""
        raise NotImplementedError

    def wait(self, revision: t.Optional[int], timeout: float, progress: t.Optional[ProgressCallback] = None) -> RolloutStatus:
        """Wait until the rollout of ``revision`` (None: the current one) completes, or raise."""
        raise NotImplementedError

    def rollback(self, params: dict[str, t.Any]) -> ActionResult:
        """Make ``params['to_revision']`` (None: the previous one) current again, the same safe way."""
        raise NotImplementedError

    def preflight(self, params: dict[str, t.Any]) -> list[Finding]:
        """Zero-downtime lint: what in the workload's configuration would make an upgrade drop traffic."""
        raise NotImplementedError

    # the names of the checks preflight() runs: what the preflight module's ``skip`` accepts
    checks: t.Tuple[str, ...] = ()

    def lint(self, params: dict[str, t.Any]) -> list[Finding]:
        """:meth:`preflight` without the checks ``params['skip']`` names; a name the platform has no check of is
        refused before anything is read."""
        skip = list(params.get("skip") or [])
        unknown = sorted(set(skip) - set(self.checks))
        if unknown:
            raise InvalidInput(f"skip: unknown check(s) {', '.join(unknown)}; the checks of "
                               f"platform={self.workload.platform} are {', '.join(self.checks)}")
        return [f for f in self.preflight(params) if f.check not in skip]


class Deadline:
    """A monotonic deadline: ``Deadline(30).remaining`` counts down, ``expired`` turns true."""

    def __init__(self, seconds: t.Optional[float], clock: t.Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.start = clock()
        self.seconds = seconds

    @property
    def elapsed(self) -> float:
        return self._clock() - self.start

    @property
    def remaining(self) -> float:
        if self.seconds is None:
            return float("inf")
        return max(0.0, self.seconds - self.elapsed)

    @property
    def expired(self) -> bool:
        return self.seconds is not None and self.elapsed >= self.seconds


def check_non_negative(params: dict[str, t.Any], *names: str) -> None:
    """Raise InvalidInput for any named numeric option that is negative."""
    for name in names:
        value = params.get(name)
        if value is not None and value < 0:
            raise InvalidInput(f"{name} must be zero or more, got {value}")


def check_positive(params: dict[str, t.Any], *names: str) -> None:
    """Raise InvalidInput for any named numeric option that is zero or negative."""
    for name in names:
        value = params.get(name)
        if value is not None and value <= 0:
            raise InvalidInput(f"{name} must be 1 or more, got {value}")
