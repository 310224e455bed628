"""The StatefulSet controller: OrderedReady pods, RollingUpdate from the highest ordinal, partition."""
from __future__ import annotations

from typing import Any

from ..podutil import is_available, is_ready, is_terminating, phase, pod_from_template, pick_node
from ..resources import POD, STATEFULSET
from ..util import is_controlled_by, now
from .base import PodController
from .history import sync_revisions, template_of, truncate_history

Obj = dict[str, Any]
REVISION_LABEL = "controller-revision-hash"


def _ordinal(sts: Obj, pod: Obj) -> int | None:
    prefix = sts["metadata"]["name"] + "-"
    name = pod["metadata"]["name"]
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        return int(name[len(prefix):])
    return None


def _running_ready(pod: Obj) -> bool:
    return phase(pod) == "Running" and is_ready(pod)


class StatefulSetController(PodController):
    kind = STATEFULSET

    def sync(self, sts: Obj) -> None:
        if sts["metadata"].get("deletionTimestamp"):
            return
        ns = sts["metadata"]["namespace"]
        update_rev, revisions = sync_revisions(self.store, sts, "StatefulSet", True)
        by_name = {r["metadata"]["name"]: r for r in revisions}
        current_rev = by_name.get((sts.get("status") or {}).get("currentRevision") or "", update_rev)
        pods = {o: p for p in self.store.list(POD, ns)[0] if is_controlled_by(p, sts)
                for o in [_ordinal(sts, p)] if o is not None}
        replicas = int(sts["spec"].get("replicas", 1))
        strategy = sts["spec"].get("updateStrategy") or {}
        rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
        ru = strategy.get("rollingUpdate")
        partition = int((ru or {}).get("partition") or 0)
        self._act(sts, pods, replicas, rolling, ru, partition, current_rev, update_rev)
        pods = {o: p for p in self.store.list(POD, ns)[0] if is_controlled_by(p, sts)
                for o in [_ordinal(sts, p)] if o is not None}
        live = {current_rev["metadata"]["name"], update_rev["metadata"]["name"]}
        live |= {(p["metadata"].get("labels") or {}).get(REVISION_LABEL, "") for p in pods.values()}
        truncate_history(self.store, sts, revisions, live)
        self._status(sts, list(pods.values()), rolling, current_rev, update_rev)

    def _act(self, sts: Obj, pods: dict[int, Obj], replicas: int, rolling: bool, ru: Obj | None, partition: int,
             current_rev: Obj, update_rev: Obj) -> None:
        """One ordered step per sync, as the OrderedReady policy requires."""
        for ordinal in range(replicas):
            pod = pods.get(ordinal)
            if pod is None:
                use_current = rolling and ((ru is None and ordinal < replicas) or (ru is not None and ordinal < partition))
                rev = current_rev if use_current else update_rev
                self._create(sts, ordinal, rev)
                return
            if is_terminating(pod):
                return
            if phase(pod) == "Failed":
                self.delete_pod(pod)
                return
            if not _running_ready(pod):
                return
        condemned = sorted((o for o in pods if o >= replicas), reverse=True)
        for ordinal in condemned:
            pod = pods[ordinal]
            if is_terminating(pod):
                return
            self.delete_pod(pod)
            self.event(sts, "Normal", "SuccessfulDelete",
                       f"delete Pod {pod['metadata']['name']} in StatefulSet {sts['metadata']['name']} successful")
            return
        if not rolling:
            return
        for ordinal in range(replicas - 1, partition - 1, -1):
            pod = pods.get(ordinal)
            if pod is None:
                return
            rev = (pod["metadata"].get("labels") or {}).get(REVISION_LABEL)
            if rev != update_rev["metadata"]["name"] and not is_terminating(pod):
                self.delete_pod(pod)
                self.event(sts, "Normal", "SuccessfulDelete",
                           f"delete Pod {pod['metadata']['name']} in StatefulSet {sts['metadata']['name']} "
                           "successful")
                return
            if not _running_ready(pod):
                return

    def _create(self, sts: Obj, ordinal: int, rev: Obj) -> None:
        name = f"{sts['metadata']['name']}-{ordinal}"
        template = template_of(sts, rev)
        pod = pod_from_template(sts, "StatefulSet", template, name=name, node=pick_node(self.nodes), extra_labels={
            REVISION_LABEL: rev["metadata"]["name"], "statefulset.kubernetes.io/pod-name": name,
            "apps.kubernetes.io/pod-index": str(ordinal)})
        pod["spec"]["hostname"] = name
        if sts["spec"].get("serviceName"):
            pod["spec"]["subdomain"] = sts["spec"]["serviceName"]
        self.store.create(POD, pod)
        self.event(sts, "Normal", "SuccessfulCreate",
                   f"create Pod {name} in StatefulSet {sts['metadata']['name']} successful")

    def _status(self, sts: Obj, pods: list[Obj], rolling: bool, current_rev: Obj, update_rev: Obj) -> None:
        min_ready = int(sts["spec"].get("minReadySeconds") or 0)
        t = now()
        cur_name, upd_name = current_rev["metadata"]["name"], update_rev["metadata"]["name"]

        def rev(p: Obj) -> str:
            return (p["metadata"].get("labels") or {}).get(REVISION_LABEL, "")
        status: Obj = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(pods),
            "readyReplicas": sum(1 for p in pods if _running_ready(p)),
            "availableReplicas": sum(1 for p in pods if _running_ready(p) and is_available(p, min_ready, t)),
            "currentReplicas": sum(1 for p in pods if not is_terminating(p) and rev(p) == cur_name),
            "updatedReplicas": sum(1 for p in pods if not is_terminating(p) and rev(p) == upd_name),
            "currentRevision": cur_name,
            "updateRevision": upd_name,
            "collisionCount": int((sts.get("status") or {}).get("collisionCount") or 0),
        }
        if rolling and status["updatedReplicas"] == status["replicas"] and status["readyReplicas"] == status["replicas"]:
            status["currentReplicas"] = status["updatedReplicas"]
            status["currentRevision"] = upd_name
        for k in ("readyReplicas", "currentReplicas", "updatedReplicas"):
            if not status[k]:
                del status[k]
        if status != (sts.get("status") or {}):
            sts["status"] = status
            self.store.update(STATEFULSET, sts, subresource="status")
