"""Pod state predicates shared by the controllers, the kubelet and the service proxy."""
from __future__ import annotations

import copy
import itertools
from typing import Any

from .util import controller_ref, now, parse_time, random_suffix

Obj = dict[str, Any]
_node_cycle = itertools.count()


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_active(pod: Obj) -> bool:
    """Counted by ReplicaSets: not terminating and not in a terminal phase."""
    return not is_terminating(pod) and phase(pod) not in ("Succeeded", "Failed")


def ready_condition(pod: Obj) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c
    return None


def is_ready(pod: Obj) -> bool:
    c = ready_condition(pod)
    return bool(c and c.get("status") == "True")


def is_available(pod: Obj, min_ready_seconds: int = 0, at: float | None = None) -> bool:
    """Ready, and (minReadySeconds == 0 or Ready for longer than minReadySeconds)."""
    c = ready_condition(pod)
    if not c or c.get("status") != "True":
        return False
    if not min_ready_seconds:
        return True
    since = parse_time(c.get("lastTransitionTime")) or 0.0
    return since + min_ready_seconds < (at if at is not None else now())


def restarts(pod: Obj) -> int:
    return sum(int(cs.get("restartCount") or 0) for cs in (pod.get("status") or {}).get("containerStatuses") or [])


def pod_from_template(owner: Obj, owner_kind: str, template: Obj, name: str | None = None,
                      node: str | None = None, extra_labels: dict[str, str] | None = None) -> Obj:
    meta = copy.deepcopy(template.get("metadata") or {})
    labels = dict(meta.get("labels") or {})
    labels.update(extra_labels or {})
    pod_name = name or f"{owner['metadata']['name']}-{random_suffix(5)}"
    pod: Obj = {
        "metadata": {
            "name": pod_name,
            "namespace": owner["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [controller_ref(owner, "apps/v1", owner_kind)],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }
    if name is None:
        pod["metadata"]["generateName"] = f"{owner['metadata']['name']}-"
    if meta.get("annotations"):
        pod["metadata"]["annotations"] = dict(meta["annotations"])
    if node:
        pod["spec"]["nodeName"] = node
    return pod


def pick_node(nodes: list[str]) -> str:
    return nodes[next(_node_cycle) % len(nodes)] if nodes else "zd-node-1"


def deletion_rank(pod: Obj) -> tuple:
    """ActivePodsWithRanks ordering: the pods that sort first are deleted first."""
    ph = phase(pod)
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(ph, 3)
    ready = is_ready(pod)
    c = ready_condition(pod)
    ready_since = parse_time(c.get("lastTransitionTime")) if (c and ready) else 0.0
    created = parse_time(pod["metadata"].get("creationTimestamp")) or 0.0
    return (
        0 if pod["spec"].get("nodeName") else -1,
        phase_rank,
        1 if ready else 0,
        -(ready_since or 0.0),  # more recently ready first
        -restarts(pod),
        -created,  # newer first
    )
