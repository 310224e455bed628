# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""``kubectl rollout status``'s completion rule, check for check, on API documents (plain dicts).

The order of the checks and the wording of the messages follow kubectl's status viewers, so that a
playbook and ``kubectl rollout status`` reach the same verdict on the same object. Two deliberate
additions, both of which only turn an endless wait into an early answer:

* a Deployment that is paused before it completes is reported ``paused`` (kubectl waits forever);
* a ``ReplicaFailure=True`` condition (quota, admission webhook...) is a failure (kubectl ignores it).
"""

from __future__ import annotations

import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    STATE_COMPLETE,
    STATE_FAILED,
    STATE_PAUSED,
    STATE_PROGRESSING,
    RolloutStatus,
)

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def _int(value: t.Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _condition(obj: dict[str, t.Any], ctype: str) -> t.Optional[dict[str, t.Any]]:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return cond
    return None


def generation_observed(obj: dict[str, t.Any]) -> bool:
    """Whether the controller has seen the latest spec (observedGeneration >= generation)."""
    generation = _int((obj.get("metadata") or {}).get("generation"), 0)
    observed = (obj.get("status") or {}).get("observedGeneration")
    return observed is not None and generation <= _int(observed, -1)


def deployment_revision(obj: dict[str, t.Any]) -> t.Optional[int]:
    """The Deployment's revision annotation, or None before the controller set one."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    rev = _int(value, 0)
    return rev or None


def deployment_status(obj: dict[str, t.Any], revision: t.Optional[int] = None) -> RolloutStatus:
    """kubectl's DeploymentStatusViewer.

    ``revision``: the revision the caller waits for; a different running revision (once the spec is
    observed) is a failure, as ``kubectl rollout status --revision`` reports it.
    """
    name = (obj.get("metadata") or {}).get("name", "")
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    desired = _int(spec.get("replicas"), 1)
    updated = _int(st.get("updatedReplicas"))
    replicas = _int(st.get("replicas"))
    ready = _int(st.get("readyReplicas"))
    available = _int(st.get("availableReplicas"))
    current = deployment_revision(obj)
    extra = {
        "replicas": replicas,
        "unavailable": _int(st.get("unavailableReplicas")),
        "observed_generation": st.get("observedGeneration"),
        "generation": (obj.get("metadata") or {}).get("generation"),
    }

    def make(state: str, message: str, reason: t.Optional[str] = None) -> RolloutStatus:
        return RolloutStatus(desired, updated, ready, available, current, state, message, reason, dict(extra))

    if not generation_observed(obj):
        return make(STATE_PROGRESSING, "Waiting for deployment spec update to be observed...")
    if revision is not None and current is not None and current != revision:
        return make(
            STATE_FAILED,
            f"desired revision ({revision}) is different from the running revision ({current})",
            "RevisionMismatch",
        )
    progressing = _condition(obj, "Progressing")
    if progressing is not None and progressing.get("reason") == "ProgressDeadlineExceeded":
        return make(STATE_FAILED, f'deployment "{name}" exceeded its progress deadline', "ProgressDeadlineExceeded")
    failure = _condition(obj, "ReplicaFailure")
    if failure is not None and str(failure.get("status")) == "True":
        return make(
            STATE_FAILED,
            f'deployment "{name}" cannot create pods: {failure.get("message") or failure.get("reason")}',
            "ReplicaFailure",
        )
    if spec.get("replicas") is not None and updated < desired:
        msg = (f'Waiting for deployment "{name}" rollout to finish: {updated} out of {desired} new replicas '
               "have been updated...")
    elif replicas > updated:
        msg = (f'Waiting for deployment "{name}" rollout to finish: {replicas - updated} old replicas are '
               "pending termination...")
    elif available < updated:
        msg = (f'Waiting for deployment "{name}" rollout to finish: {available} of {updated} updated replicas '
               "are available...")
    else:
        return make(STATE_COMPLETE, f'deployment "{name}" successfully rolled out')
    if spec.get("paused"):
        return make(STATE_PAUSED, f'deployment "{name}" is paused: {msg[0].lower()}{msg[1:]}', "DeploymentPaused")
    return make(STATE_PROGRESSING, msg)


def daemonset_status(obj: dict[str, t.Any], revision: t.Optional[int] = None) -> RolloutStatus:
    """kubectl's DaemonSetStatusViewer (``revision`` is checked by the caller, via ControllerRevisions)."""
    name = (obj.get("metadata") or {}).get("name", "")
    st = obj.get("status") or {}
    strategy = ((obj.get("spec") or {}).get("updateStrategy") or {}).get("type") or "RollingUpdate"
    desired = _int(st.get("desiredNumberScheduled"))
    updated = _int(st.get("updatedNumberScheduled"))
    ready = _int(st.get("numberReady"))
    available = _int(st.get("numberAvailable"))
    extra = {"unavailable": _int(st.get("numberUnavailable")), "observed_generation": st.get("observedGeneration"),
             "generation": (obj.get("metadata") or {}).get("generation")}

    def make(state: str, message: str, reason: t.Optional[str] = None) -> RolloutStatus:
        return RolloutStatus(desired, updated, ready, available, revision, state, message, reason, dict(extra))

    if strategy != "RollingUpdate":
        return make(STATE_FAILED, "rollout status is only available for RollingUpdate strategy type",
                    "UnsupportedStrategy")
    if not generation_observed(obj):
        return make(STATE_PROGRESSING, "Waiting for daemon set spec update to be observed...")
    if updated < desired:
        return make(STATE_PROGRESSING, f'Waiting for daemon set "{name}" rollout to finish: {updated} out of '
                                       f"{desired} new pods have been updated...")
    if available < desired:
        return make(STATE_PROGRESSING, f'Waiting for daemon set "{name}" rollout to finish: {available} of '
                                       f"{desired} updated pods are available...")
    return make(STATE_COMPLETE, f'daemon set "{name}" successfully rolled out')


def statefulset_status(obj: dict[str, t.Any], revision: t.Optional[int] = None) -> RolloutStatus:
    """kubectl's StatefulSetStatusViewer, partitions included."""
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    strategy = spec.get("updateStrategy") or {}
    desired = _int(spec.get("replicas"), 1)
    updated = _int(st.get("updatedReplicas"))
    ready = _int(st.get("readyReplicas"))
    available = _int(st.get("availableReplicas"), ready)
    extra = {"current_revision_name": st.get("currentRevision"), "update_revision_name": st.get("updateRevision"),
             "observed_generation": st.get("observedGeneration"),
             "generation": (obj.get("metadata") or {}).get("generation")}

    def make(state: str, message: str, reason: t.Optional[str] = None) -> RolloutStatus:
        return RolloutStatus(desired, updated, ready, available, revision, state, message, reason, dict(extra))

    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        return make(STATE_FAILED, "rollout status is only available for RollingUpdate strategy type",
                    "UnsupportedStrategy")
    if st.get("observedGeneration") in (None, 0) or not generation_observed(obj):
        return make(STATE_PROGRESSING, "Waiting for statefulset spec update to be observed...")
    if spec.get("replicas") is not None and ready < desired:
        return make(STATE_PROGRESSING, f"Waiting for {desired - ready} pods to be ready...")
    rolling = strategy.get("rollingUpdate")
    if rolling is not None:
        # As kubectl: once rollingUpdate is set (API defaulting sets it, partition 0), completion is
        # "updated >= replicas - partition"; the revision comparison below is only for objects without it.
        partition = rolling.get("partition")
        if spec.get("replicas") is not None and partition is not None:
            target = desired - _int(partition)
            if updated < target:
                return make(STATE_PROGRESSING, "Waiting for partitioned roll out to finish: "
                                               f"{updated} out of {target} new pods have been updated...")
        return make(STATE_COMPLETE, f"partitioned roll out complete: {updated} new pods have been updated...")
    if st.get("updateRevision") != st.get("currentRevision"):
        return make(STATE_PROGRESSING, f"waiting for statefulset rolling update to complete {updated} pods at "
                                       f"revision {st.get('updateRevision')}...")
    return make(STATE_COMPLETE, f"statefulset rolling update complete {st.get('currentReplicas', updated)} pods at "
                                f"revision {st.get('currentRevision')}...")


STATUS_VIEWERS: dict[str, t.Callable[..., RolloutStatus]] = {
    "Deployment": deployment_status,
    "DaemonSet": daemonset_status,
    "StatefulSet": statefulset_status,
}


def rollout_status(kind: str, obj: dict[str, t.Any], revision: t.Optional[int] = None) -> RolloutStatus:
    """Dispatch to the status viewer of ``kind``."""
    return STATUS_VIEWERS[kind](obj, revision)
