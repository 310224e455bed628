"""The ReplicaSet controller: create/delete pods toward spec.replicas, then report status.

Status is computed from the pods seen *before* this sync's creations/deletions, as upstream does,
so ReplicaSet status lags its spec by one sync (the lag the Deployment controller must live with).
"""
from __future__ import annotations

from typing import Any

from ..podutil import deletion_rank, is_active, is_available, is_ready, pick_node, pod_from_template
from ..resources import POD, REPLICASET
from ..store import Conflict, NotFound
from ..util import is_controlled_by, now
from .base import PodController

Obj = dict[str, Any]


class ReplicaSetController(PodController):
    kind = REPLICASET

    def sync_all(self) -> None:
        pods_by_ns: dict[str, list[Obj]] = {}
        for rs in self.store.list(REPLICASET)[0]:
            ns = rs["metadata"]["namespace"]
            if ns not in pods_by_ns:
                pods_by_ns[ns] = self.store.list(POD, ns)[0]
            try:
                self.sync(rs, [p for p in pods_by_ns[ns] if is_controlled_by(p, rs)])
            except (Conflict, NotFound):
                continue

    def sync(self, rs: Obj, pods: list[Obj]) -> None:
        active = [p for p in pods if is_active(p)]
        want = int(rs["spec"].get("replicas", 1))
        diff = len(active) - want
        if not rs["metadata"].get("deletionTimestamp"):
            if diff < 0:
                for _i in range(-diff):
                    pod = pod_from_template(rs, "ReplicaSet", rs["spec"]["template"], node=pick_node(self.nodes))
                    created = self.store.create(POD, pod)
                    self.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
            elif diff > 0:
                for pod in sorted(active, key=deletion_rank)[:diff]:
                    self.delete_pod(pod)
                    self.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")
        min_ready = int(rs["spec"].get("minReadySeconds") or 0)
        t = now()
        labels = (rs["spec"]["template"].get("metadata") or {}).get("labels") or {}
        status: Obj = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(1 for p in active if all(
                (p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())),
            "readyReplicas": sum(1 for p in active if is_ready(p)),
            "availableReplicas": sum(1 for p in active if is_available(p, min_ready, t)),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        for k in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
            if not status[k] and k != "replicas":
                del status[k]
        old = rs.get("status") or {}
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        if status != old:
            rs["status"] = status
            self.store.update(REPLICASET, rs, subresource="status")
