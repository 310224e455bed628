# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Zero-downtime lint of a Kubernetes workload: what in its spec would make an upgrade drop traffic.

Pure functions over the workload document. ``error`` findings mean an image upgrade *will* take
capacity (or all of it) away or will not roll out at all; ``warning`` findings mean it may drop
requests or fail slowly.
"""

from __future__ import annotations

import math
import re
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import Finding

ERROR = "error"
WARNING = "warning"

# Seconds of a preStop sleep below which endpoint removal may not have propagated yet.
MIN_PRESTOP_SECONDS = 3
MIN_PROGRESS_DEADLINE = 60

CHECKS = (
    "readiness_probe",
    "max_unavailable",
    "single_replica",
    "recreate_strategy",
    "on_delete_strategy",
    "prestop_hook",
    "termination_grace",
    "progress_deadline",
    "partition",
    "daemonset_surge",
    "paused",
)


def scaled_value(value: t.Any, total: int, round_up: bool) -> int:
    """An IntOrString (``2`` or ``"25%"``) resolved against ``total``, rounded as the controller does."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value).strip()
    match = re.fullmatch(r"(\d+)%", text)
    if match:
        exact = int(match.group(1)) * total / 100.0
        return int(math.ceil(exact)) if round_up else int(math.floor(exact))
    try:
        return int(text)
    except ValueError:
        return 0


def _sleep_seconds(handler: t.Optional[dict[str, t.Any]]) -> t.Optional[int]:
    """How long a preStop handler holds the pod, when that is knowable (sleep action or exec sleep N)."""
    if not handler:
        return None
    if "sleep" in handler:
        return int((handler.get("sleep") or {}).get("seconds") or 0)
    command = " ".join(str(c) for c in ((handler.get("exec") or {}).get("command") or []))
    match = re.search(r"\bsleep\s+(\d+)", command)
    if match:
        return int(match.group(1))
    return None


def lint(kind: str, obj: dict[str, t.Any], skip: t.Iterable[str] = ()) -> list[Finding]:
    """All findings for the workload document ``obj`` of ``kind``, minus the checks named in ``skip``."""
    skipped = set(skip)
    name = (obj.get("metadata") or {}).get("name", "")
    spec = obj.get("spec") or {}
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    containers = pod_spec.get("containers") or []
    findings: list[Finding] = []

    def add(check: str, severity: str, message: str, fix: str) -> None:
        if check not in skipped:
            findings.append(Finding(check, severity, message, fix))

    replicas = int(spec.get("replicas", 1)) if kind != "DaemonSet" else None

    # -- readiness: without it a pod receives traffic as soon as its process starts
    for container in containers:
        if not container.get("readinessProbe"):
            add("readiness_probe", ERROR,
                f"container {container.get('name')!r} has no readinessProbe: new pods count as ready (and get "
                "traffic, and old pods are removed) as soon as the process starts, before it can serve",
                "add a readinessProbe (httpGet on a health endpoint) to the container")

    # -- strategy
    if kind == "Deployment":
        strategy = spec.get("strategy") or {}
        stype = strategy.get("type") or "RollingUpdate"
        if stype == "Recreate":
            add("recreate_strategy", ERROR,
                f"Deployment {name!r} uses the Recreate strategy: every old pod is stopped before any new one starts",
                "use strategy.type RollingUpdate with maxUnavailable 0 and maxSurge 1 (or 25%)")
        else:
            rolling = strategy.get("rollingUpdate") or {}
            surge_raw = rolling.get("maxSurge", "25%")
            unavail_raw = rolling.get("maxUnavailable", "25%")
            total = replicas or 0
            surge = scaled_value(surge_raw, total, True)
            unavail = scaled_value(unavail_raw, total, False)
            if surge == 0 and unavail == 0:
                unavail = 1
            unavail = min(unavail, total)
            if str(unavail_raw).strip() == "100%" or (total > 0 and total - unavail <= 0):
                add("max_unavailable", ERROR,
                    f"maxUnavailable {unavail_raw} with {total} replica(s) lets the controller take every pod "
                    "down at once during a rollout",
                    "set strategy.rollingUpdate.maxUnavailable to 0 and maxSurge to 1 (or 25%)")
            elif total > 0 and unavail > 0 and total - unavail <= total / 2:
                add("max_unavailable", WARNING,
                    f"maxUnavailable {unavail_raw} leaves only {total - unavail} of {total} replicas (half or less) "
                    "serving during a rollout",
                    "lower maxUnavailable (0 keeps full capacity) and use maxSurge instead")
        deadline = spec.get("progressDeadlineSeconds", 600)
        probe = next((c.get("readinessProbe") for c in containers if c.get("readinessProbe")), None) or {}
        needed = max(MIN_PROGRESS_DEADLINE,
                     int(spec.get("minReadySeconds") or 0) + int(probe.get("initialDelaySeconds") or 0)
                     + int(probe.get("periodSeconds") or 10) * int(probe.get("successThreshold") or 1) + 30)
        if deadline is not None and int(deadline) < needed:
            add("progress_deadline", WARNING,
                f"progressDeadlineSeconds {deadline} is shorter than a pod needs to become available "
                f"(about {needed}s with minReadySeconds and the readiness probe's delays): healthy rollouts "
                "may be reported as failed",
                f"set progressDeadlineSeconds to at least {needed}")
        if spec.get("paused"):
            add("paused", WARNING, f"Deployment {name!r} is paused: an image upgrade will not roll out until it "
                                   "is resumed", "kubectl rollout resume before upgrading")
    else:
        strategy = spec.get("updateStrategy") or {}
        stype = strategy.get("type") or "RollingUpdate"
        if stype == "OnDelete":
            add("on_delete_strategy", ERROR,
                f"{kind} {name!r} uses the OnDelete update strategy: an image upgrade changes no running pod "
                "until someone deletes it, and its rollout status cannot be followed",
                "use updateStrategy.type RollingUpdate")
        rolling = strategy.get("rollingUpdate") or {}
        if kind == "StatefulSet" and int(rolling.get("partition") or 0) > 0:
            add("partition", WARNING,
                f"StatefulSet {name!r} has partition {rolling.get('partition')}: only pods with an ordinal at or "
                "above it are updated",
                "set updateStrategy.rollingUpdate.partition to 0 once the canary is verified")
        if kind == "DaemonSet" and stype == "RollingUpdate":
            if scaled_value(rolling.get("maxSurge", 0), 1, True) == 0:
                add("daemonset_surge", WARNING,
                    f"DaemonSet {name!r} has maxSurge 0: on each node the old pod stops before the new one is "
                    "ready, so that node has no copy for a while",
                    "set updateStrategy.rollingUpdate.maxSurge to 1 (and maxUnavailable to 0)")

    if replicas is not None and replicas <= 1:
        add("single_replica", WARNING,
            f"{kind} {name!r} has {replicas} replica(s): there is no redundancy, so any pod restart or node "
            "drain interrupts service",
            "run at least 2 replicas (with a PodDisruptionBudget)")

    # -- termination: endpoints are removed asynchronously, so in-flight and new requests need a grace
    grace = pod_spec.get("terminationGracePeriodSeconds", 30)
    for container in containers:
        pre_stop = (container.get("lifecycle") or {}).get("preStop")
        if not pre_stop:
            add("prestop_hook", WARNING,
                f"container {container.get('name')!r} has no preStop hook: it gets SIGTERM while load balancers "
                "and kube-proxy may still send it requests",
                f"add lifecycle.preStop (for example a sleep of {MIN_PRESTOP_SECONDS * 2}-10 s) so endpoints are "
                "removed before the process stops")
            continue
        slept = _sleep_seconds(pre_stop)
        if slept is not None and grace is not None and slept >= int(grace):
            add("termination_grace", ERROR,
                f"container {container.get('name')!r} sleeps {slept}s in preStop but terminationGracePeriodSeconds "
                f"is {grace}: the container is killed before it can finish in-flight requests",
                f"raise terminationGracePeriodSeconds above {slept + 10}")
    if grace is not None and int(grace) < MIN_PRESTOP_SECONDS * 2:
        add("termination_grace", WARNING,
            f"terminationGracePeriodSeconds {grace} is too short to drain in-flight requests",
            "use at least 10 seconds (the default is 30)")
    return findings
