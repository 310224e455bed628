# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Wait for a rollout, driven by a watch, and fail as soon as it cannot complete.

* The workload is watched (``fieldSelector=metadata.name=<name>``, from the ``resourceVersion`` of the
  last object seen), so that each change is judged the moment it arrives. A rollout that progresses keeps
  the watch busy and costs no other request; only when the object has been quiet for longer than a new
  pod normally needs between two steps of a rollout (the watch's read timeout, QUIET_BEFORE_POD_CHECK) are
  the new pods inspected, then the watch is reopened. The quiet time doubles up to MAX_QUIET while
  inspections find nothing, and resets on the next change (an open watch keeps the read timeout it was
  opened with). A rollout whose pods start and become ready in the usual seconds thus costs one GET and one
  watch. An expired resourceVersion (410) re-reads the object; any other watch failure falls back to polling.
* Each version of the object is judged by kubectl's rule (:mod:`status`), pinned to a revision: the one
  given, or the one the controller assigns once it has observed the generation our change produced.
* Fail fast: ProgressDeadlineExceeded, ReplicaFailure, a revision other than the pinned one, and pods of
  the new revision that are crash-looping, cannot pull their image, cannot be created, or keep failing
  their readiness probe, named with their last events.
* Opt-in (``wait_old_pods_gone``): once the rollout is complete, wait on until no pod of the workload that
  carries another revision's hash label exists any more, terminating ones included (only the workload's own
  pods: those of its ReplicaSets, or controlled by it; a canary's pods match the selector but do not count). One LIST of the pods the
  workload's selector matches, then a watch on that selector from the LIST's ``resourceVersion``; polling
  once a second when the watch fails. Without the option this phase costs no request.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import time
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes import revisions as rev
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.library import ApiException, urllib3
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.status import generation_observed
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    STATE_PAUSED,
    STATE_PROGRESSING,
    Deadline,
    ProgressCallback,
    RolloutError,
    RolloutFailed,
    RolloutStatus,
    WaitTimeout,
    WorkloadNotFound,
)

# Container waiting reasons after which a pod will not become ready by itself.
FATAL_WAITING_REASONS = frozenset((
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
))

# Quiet seconds before the first look at the pods: longer than the usual gap between two status changes of a
# healthy rollout (a pod starting and passing its first readiness probe), shorter than the kubelet needs to
# report CrashLoopBackOff (a restart after a 10 s back-off), so a broken pod is seen about as soon as it can be.
QUIET_BEFORE_POD_CHECK = 5.0
MAX_QUIET = 20.0
POLL_INTERVAL = 1.0
MAX_SEGMENT = 60


def _parse_time(value: t.Optional[str]) -> t.Optional[datetime.datetime]:
    if not value:
        return None
    try:
        return datetime.datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def pod_problems(pod: dict[str, t.Any], readiness_failure_limit: int,
                 now: t.Optional[datetime.datetime] = None) -> list[dict[str, t.Any]]:
    """Why ``pod`` will not become ready by itself: one entry per failing container, empty when none.

    Readiness counts as failing repeatedly when a running container with a readiness probe has stayed
    not ready for ``readiness_failure_limit`` probe periods past its initial delay.
    """
    now = now or _now()
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return []
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    probes = {c.get("name"): c.get("readinessProbe") for c in spec.get("containers") or []}
    ready_cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    out: list[dict[str, t.Any]] = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or []:
            state = cs.get("state") or {}
            waiting = state.get("waiting") or {}
            reason = waiting.get("reason")
            if reason in FATAL_WAITING_REASONS:
                out.append({"pod": meta.get("name"), "container": cs.get("name"), "reason": reason,
                            "message": waiting.get("message") or "", "restarts": cs.get("restartCount", 0)})
                continue
            probe = probes.get(cs.get("name")) if key == "containerStatuses" else None
            running = state.get("running")
            if readiness_failure_limit > 0 and probe and running and not cs.get("ready"):
                since = _parse_time(running.get("startedAt"))
                if ready_cond and str(ready_cond.get("status")) == "False":
                    changed = _parse_time(ready_cond.get("lastTransitionTime"))
                    if since is None or (changed is not None and changed > since):
                        since = changed
                if since is None:
                    continue
                period = max(1, int(probe.get("periodSeconds") or 10))
                delay = int(probe.get("initialDelaySeconds") or 0)
                failing_for = (now - since).total_seconds() - delay
                if failing_for >= period * readiness_failure_limit:
                    out.append({
                        "pod": meta.get("name"), "container": cs.get("name"), "reason": "ReadinessProbeFailing",
                        "message": f"running but not ready for {int(failing_for + delay)}s "
                                   f"(readiness probe every {period}s, limit {readiness_failure_limit} periods)",
                        "restarts": cs.get("restartCount", 0),
                    })
    return out


def _event_time(event: dict[str, t.Any]) -> str:
    return (event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp")
            or (event.get("metadata") or {}).get("creationTimestamp") or "")


class RolloutWaiter:
    """One wait on one workload. ``adapter`` reads the workload (see :mod:`workloads`)."""

    def __init__(self, adapter: t.Any, readiness_failure_limit: int = 10,
                 clock: t.Callable[[], float] = time.monotonic, sleep: t.Callable[[float], None] = time.sleep,
                 wait_old_pods_gone: bool = False) -> None:
        self.adapter = adapter
        self.client = adapter.client
        self.readiness_failure_limit = readiness_failure_limit
        self.wait_old_pods_gone = wait_old_pods_gone
        self._clock = clock
        self._sleep = sleep
        self.polling = False
        self.watch_error: t.Optional[str] = None
        self._entries: t.Optional[list[rev.HistoryEntry]] = None
        self._entries_key: t.Any = None
        self._segment: t.Optional[t.Iterator[tuple[str, dict[str, t.Any]]]] = None
        # True when the last step ended because nothing changed: the moment to look at the pods
        self._quiet = False
        self._quiet_time = QUIET_BEFORE_POD_CHECK
        self._last_change = 0.0

    # -------------------------------------------------------------------- history, cached per template
    def _history(self, obj: dict[str, t.Any]) -> list[rev.HistoryEntry]:
        key = (rev.meta(obj).get("generation"), (obj.get("status") or {}).get("observedGeneration"),
               (obj.get("status") or {}).get("updateRevision"))
        if self._entries is None or key != self._entries_key:
            self._entries = self.adapter.history(obj)
            self._entries_key = key
        return self._entries

    def evaluate(self, obj: dict[str, t.Any], revision: t.Optional[int]) -> RolloutStatus:
        """kubectl's verdict on ``obj`` pinned to ``revision``, with the running revision filled in."""
        if self.adapter.kind == "Deployment":
            return self.adapter.status(obj, revision)
        entries = self._history(obj)
        current = self.adapter.current_revision(obj, entries)
        status = self.adapter.status(obj, revision, current)
        status.revision = current
        return status

    # -------------------------------------------------------------------- fail fast on the new pods
    def failing_pods(self, obj: dict[str, t.Any]) -> list[dict[str, t.Any]]:
        """Problems of the pods of the revision being rolled out, with each pod's last events."""
        entries = self._history(obj)
        entry = self.adapter.current_entry(obj, entries)
        selector = self.adapter.new_pod_selector(obj, entry)
        if not selector:
            return []
        pods = self.client.list("Pod", self.adapter.namespace, label_selector=selector).get("items") or []
        problems: list[dict[str, t.Any]] = []
        for pod in pods:
            problems.extend(pod_problems(pod, self.readiness_failure_limit))
        for problem in problems[:5]:
            problem["events"] = self.last_events(problem["pod"])
        return problems

    def last_events(self, pod_name: str, count: int = 3) -> list[str]:
        """The pod's last few events as 'Reason: message' lines (empty when events cannot be read)."""
        try:
            items = self.client.list("Event", self.adapter.namespace,
                                     field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod_name}")
        except RolloutError:
            return []
        events = sorted(items.get("items") or [], key=_event_time)
        return [f"{e.get('reason')}: {e.get('message')}" for e in events[-count:]]

    # -------------------------------------------------------------------- the loop
    def wait(self, timeout: float, revision: t.Optional[int] = None, min_generation: t.Optional[int] = None,
             progress: t.Optional[ProgressCallback] = None, until_observed: bool = False,
             initial: t.Optional[dict[str, t.Any]] = None) -> RolloutStatus:
        """Wait for the rollout (or, with ``until_observed``, only for the controller to observe the spec).

        ``revision`` pins the wait to that revision. ``min_generation`` (the generation our own change
        produced) pins it to the revision the controller assigns once it observed that generation.
        ``initial`` is the object as the caller last received it from the server (the answer to its own
        PATCH): the wait starts from it instead of reading the object again.
        Raises RolloutFailed, WaitTimeout or WorkloadNotFound.
        """
        deadline = Deadline(timeout, self._clock)
        self._last_change = self._clock()
        obj = initial if initial and rev.meta(initial).get("resourceVersion") else self.adapter.get()
        resource_version = rev.meta(obj).get("resourceVersion")
        try:
            return self._loop(obj, resource_version, deadline, timeout, revision, min_generation, progress,
                              until_observed)
        finally:
            self._close_segment()

    def _loop(self, obj: dict[str, t.Any], resource_version: t.Optional[str], deadline: Deadline, timeout: float,
              revision: t.Optional[int], min_generation: t.Optional[int], progress: t.Optional[ProgressCallback],
              until_observed: bool) -> RolloutStatus:
        pinned = revision
        next_pod_check = self._clock()
        while True:
            generation = int(rev.meta(obj).get("generation") or 0)
            fresh = min_generation is None or (generation >= min_generation and generation_observed(obj))
            if fresh and pinned is None and min_generation is not None:
                pinned = self.evaluate(obj, None).revision
            status = self.evaluate(obj, pinned if fresh else None)
            if not fresh:
                status.state = "progressing"
                status.message = f"Waiting for {self.adapter.kind.lower()} spec update to be observed..."
            if progress is not None:
                progress(status)
            if fresh and until_observed:
                return status
            if fresh and status.done:
                if self.wait_old_pods_gone:
                    return self._wait_old_pods(obj, status, deadline, timeout, progress)
                return status
            if fresh and status.failed:
                raise RolloutFailed(f"{self.adapter.describe()}: {status.message}", status=status.to_dict(),
                                    reason=status.reason)
            if fresh and status.state == STATE_PAUSED:
                raise RolloutFailed(
                    f"{self.adapter.describe()} is paused, so its rollout cannot finish; resume it "
                    "(kubectl rollout resume) and wait again", status=status.to_dict(), reason=status.reason)
            if deadline.expired:
                raise WaitTimeout(
                    f"timed out after {timeout:g}s waiting for {self.adapter.describe()}: {status.message}",
                    status=status.to_dict(), reason="Timeout")
            stalled = self._quiet or self.polling
            if fresh and not until_observed and stalled and self._clock() >= next_pod_check:
                next_pod_check = self._clock() + POLL_INTERVAL
                problems = self.failing_pods(obj)
                if problems:
                    raise RolloutFailed(self._problem_message(status, problems), status=status.to_dict(),
                                        reason=problems[0]["reason"], failing_pods=problems)
                # nothing wrong yet: wait longer before the next look, unless the workload changes first
                self._quiet_time = min(MAX_QUIET, self._quiet_time * 2)
            obj, resource_version = self._next(obj, resource_version, deadline)

    def _problem_message(self, status: RolloutStatus, problems: list[dict[str, t.Any]]) -> str:
        names = sorted({p["pod"] for p in problems})
        first = problems[0]
        detail = f"{first['pod']}: container {first['container']} {first['reason']}"
        if first.get("message"):
            detail += f" ({first['message']})"
        if first.get("events"):
            detail += "; last events: " + " | ".join(first["events"])
        rev_text = f" (revision {status.revision})" if status.revision else ""
        return (f"the new pods of {self.adapter.describe()}{rev_text} cannot become ready: "
                f"{len(names)} failing ({', '.join(names[:5])}). {detail}")

    def _next(self, obj: dict[str, t.Any], resource_version: t.Optional[str], deadline: Deadline
              ) -> tuple[dict[str, t.Any], t.Optional[str]]:
        """The next version of the object: the next watch event, or the same object after a quiet slice."""
        if self.polling:
            self._sleep(min(POLL_INTERVAL, max(0.05, deadline.remaining)))
            new = self.adapter.get()
            return new, rev.meta(new).get("resourceVersion")
        self._quiet = False
        try:
            if self._segment is None:
                seconds = max(1, min(MAX_SEGMENT, int(deadline.remaining)))
                quiet = max(0.5, min(self._quiet_time, deadline.remaining))
                self._segment = iter(self.client.watch(self.adapter.kind, self.adapter.namespace,
                                                       self.adapter.name, resource_version, seconds,
                                                       quiet_timeout=quiet))
            for etype, new in self._segment:
                if etype == "DELETED":
                    raise WorkloadNotFound(f"{self.adapter.describe()} was deleted while waiting for its rollout")
                if etype in ("ADDED", "MODIFIED") and new:
                    self._quiet_time = QUIET_BEFORE_POD_CHECK
                    self._last_change = self._clock()
                    return new, rev.meta(new).get("resourceVersion") or resource_version
                if etype == "BOOKMARK":
                    resource_version = rev.meta(new).get("resourceVersion") or resource_version
            # the server ended the watch: quiet only if nothing changed for the quiet time either
            self._segment = None
            self._quiet = self._clock() - self._last_change >= self._quiet_time
            return obj, resource_version
        except urllib3.exceptions.ReadTimeoutError:
            # nothing changed for the quiet time: look at the pods, then reopen the watch where it was
            self._segment = None
            self._quiet = True
            return obj, resource_version
        except ApiException as exc:
            self._segment = None
            if getattr(exc, "status", None) == 410:
                new = self.adapter.get()
                return new, rev.meta(new).get("resourceVersion")
            self._fall_back(f"watch failed ({getattr(exc, 'status', '?')} {getattr(exc, 'reason', '')})")
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            self._segment = None
            self._fall_back(f"watch failed ({type(exc).__name__})")
        new = self.adapter.get()
        return new, rev.meta(new).get("resourceVersion")

    def _fall_back(self, why: str) -> None:
        self.polling = True
        self.watch_error = why

    # -------------------------------------------------------------------- opt-in: until the old pods are gone
    def _close_segment(self) -> None:
        if self._segment is not None and hasattr(self._segment, "close"):
            self._segment.close()
        self._segment = None

    def old_pods(self, obj: dict[str, t.Any], pods: t.Iterable[dict[str, t.Any]],
                 label: tuple[str, str]) -> list[dict[str, t.Any]]:
        """The pods of ``pods`` that carry another revision's ``label`` than the new one, sorted by name.

        Only the workload's own pods count: pods without the label, and pods another controller made that the
        selector matches too (a canary Deployment's), do not; nor do the pods a partitioned StatefulSet keeps on
        the current revision on purpose.
        """
        key, value = label
        entries = self._history(obj)
        out = []
        for pod in pods:
            have = ((pod.get("metadata") or {}).get("labels") or {}).get(key)
            if (have and have != value and self.adapter.owns_pod(obj, entries, pod)
                    and not self.adapter.keeps_old_revision(obj, pod)):
                out.append(pod)
        return sorted(out, key=lambda p: str((p.get("metadata") or {}).get("name") or ""))

    @staticmethod
    def _pod_text(pod: dict[str, t.Any]) -> str:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return f"{meta.get('name')} (terminating)"
        return str(meta.get("name"))

    def _old_pods_message(self, old: list[dict[str, t.Any]]) -> str:
        shown = ", ".join(self._pod_text(p) for p in old[:5]) + (", ..." if len(old) > 5 else "")
        kind = self.adapter.kind.lower()
        return (f'Waiting for {kind} "{self.adapter.name}" old pods to be gone: {len(old)} of an older revision '
                f"still present ({shown})...")

    def _wait_old_pods(self, obj: dict[str, t.Any], status: RolloutStatus, deadline: Deadline, timeout: float,
                       progress: t.Optional[ProgressCallback]) -> RolloutStatus:
        """After a complete rollout: return once no pod of another revision exists, within ``deadline``."""
        self._close_segment()
        label = self.adapter.new_pod_label(self.adapter.current_entry(obj, self._history(obj)))
        if label is None:
            raise RolloutFailed(
                f"{self.adapter.describe()}: cannot tell the new revision's pods from the old ones (the controller "
                "has not labelled its newest revision); wait again without wait_old_pods_gone",
                status=status.to_dict(), reason="UnknownRevisionLabel")
        selector = rev.selector_string((obj.get("spec") or {}).get("selector")) or None
        pods, resource_version = self._list_pods(selector)
        while True:
            old = self.old_pods(obj, pods.values(), label)
            if not old:
                status.extra["old_pods_gone"] = True
                return status
            message = self._old_pods_message(old)
            if progress is not None:
                progress(dataclasses.replace(status, state=STATE_PROGRESSING, message=message,
                                             extra=dict(status.extra)))
            if deadline.expired:
                status.extra["old_pods_gone"] = False
                names = [str((p.get("metadata") or {}).get("name")) for p in old]
                shown = ", ".join(self._pod_text(p) for p in old[:10]) + (", ..." if len(old) > 10 else "")
                raise WaitTimeout(
                    f"timed out after {timeout:g}s waiting for the old pods of {self.adapter.describe()} to be gone "
                    f"(the rollout itself is complete): {len(old)} still present: {shown}",
                    status=status.to_dict(), reason="Timeout", old_pods=names)
            pods, resource_version = self._next_pods(pods, resource_version, selector, deadline)

    def wait_pods_gone(self, selector: str, timeout: float,
                       progress: t.Optional[t.Callable[[str], None]] = None) -> None:
        """Return once no pod that ``selector`` selects exists any more, terminating ones included.

        One LIST, then a watch on the selector from the LIST's ``resourceVersion`` (polling once a second when the
        watch fails), within ``timeout`` seconds (0: look once). Raises WaitTimeout naming the pods still there.
        """
        if not selector:
            raise RolloutError(f"{self.adapter.describe()}: no label selector to find its pods by")
        deadline = Deadline(timeout, self._clock)
        pods, resource_version = self._list_pods(selector)
        try:
            while pods:
                left = sorted(pods.values(), key=lambda p: str(rev.meta(p).get("name") or ""))
                shown = ", ".join(self._pod_text(p) for p in left[:5]) + (", ..." if len(left) > 5 else "")
                if progress is not None:
                    progress(f"Waiting for the {len(left)} pod(s) of {self.adapter.describe()} to be gone ({shown})...")
                if deadline.expired:
                    raise WaitTimeout(
                        f"timed out after {timeout:g}s waiting for the pods of {self.adapter.describe()} to be gone: "
                        f"{len(left)} still present: {shown}",
                        reason="Timeout", pods=[str(rev.meta(p).get("name")) for p in left])
                pods, resource_version = self._next_pods(pods, resource_version, selector, deadline)
        finally:
            self._close_segment()

    def _list_pods(self, selector: t.Optional[str]) -> tuple[dict[str, dict[str, t.Any]], t.Optional[str]]:
        listing = self.client.list("Pod", self.adapter.namespace, label_selector=selector)
        pods = {str(rev.meta(p).get("name")): p for p in listing.get("items") or []}
        return pods, rev.meta(listing).get("resourceVersion")

    def _next_pods(self, pods: dict[str, dict[str, t.Any]], resource_version: t.Optional[str],
                   selector: t.Optional[str], deadline: Deadline
                   ) -> tuple[dict[str, dict[str, t.Any]], t.Optional[str]]:
        """The pods after the next change: one watch event applied, or a fresh LIST when polling."""
        if self.polling:
            self._sleep(min(POLL_INTERVAL, max(0.05, deadline.remaining)))
            return self._list_pods(selector)
        try:
            if self._segment is None:
                seconds = max(1, min(MAX_SEGMENT, int(math.ceil(deadline.remaining))))
                # the read timeout ends a silent watch at the deadline, so a timeout is reported on time
                quiet = max(0.5, min(float(MAX_SEGMENT), deadline.remaining))
                self._segment = iter(self.client.watch("Pod", self.adapter.namespace, None, resource_version,
                                                       seconds, quiet_timeout=quiet, label_selector=selector))
            for etype, pod in self._segment:
                resource_version = rev.meta(pod).get("resourceVersion") or resource_version
                name = str(rev.meta(pod).get("name") or "")
                if etype in ("ADDED", "MODIFIED") and name:
                    pods[name] = pod
                    return pods, resource_version
                if etype == "DELETED" and name:
                    pods.pop(name, None)
                    return pods, resource_version
            self._segment = None
            return pods, resource_version
        except urllib3.exceptions.ReadTimeoutError:
            self._segment = None
            return pods, resource_version
        except ApiException as exc:
            self._segment = None
            if getattr(exc, "status", None) != 410:
                self._fall_back(f"pod watch failed ({getattr(exc, 'status', '?')} {getattr(exc, 'reason', '')})")
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            self._segment = None
            self._fall_back(f"pod watch failed ({type(exc).__name__})")
        return self._list_pods(selector)
