"""The DaemonSet controller: one pod per fake node, RollingUpdate bounded by maxUnavailable."""
from __future__ import annotations

from typing import Any

from ..podutil import is_available, is_ready, is_terminating, pod_from_template
from ..resources import DAEMONSET, POD
from ..util import int_or_percent, is_controlled_by, now
from .base import PodController
from .history import HASH_LABEL, sync_revisions, template_of, truncate_history

Obj = dict[str, Any]
REVISION_LABEL = "controller-revision-hash"


class DaemonSetController(PodController):
    kind = DAEMONSET

    def sync(self, ds: Obj) -> None:
        if ds["metadata"].get("deletionTimestamp"):
            return
        ns = ds["metadata"]["namespace"]
        update_rev, revisions = sync_revisions(self.store, ds, "DaemonSet", True)
        h = update_rev["metadata"]["labels"][HASH_LABEL]
        all_pods = [p for p in self.store.list(POD, ns)[0] if is_controlled_by(p, ds)]
        by_node: dict[str, list[Obj]] = {n: [] for n in self.nodes}
        for p in all_pods:
            if not is_terminating(p):
                by_node.setdefault(p["spec"].get("nodeName") or "", []).append(p)
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        t = now()
        strategy = ds["spec"].get("updateStrategy") or {}
        # manage: a pod on every node, none elsewhere
        for node in self.nodes:
            if not by_node[node]:
                self._create(ds, node, update_rev, h)
        for node, pods in by_node.items():
            if node not in self.nodes:
                for p in pods:
                    self.delete_pod(p)
        if strategy.get("type", "RollingUpdate") == "RollingUpdate":
            ru = strategy.get("rollingUpdate") or {}
            desired = len(self.nodes)
            max_unavailable = int_or_percent(ru.get("maxUnavailable", 1), desired, True)
            if max_unavailable == 0 and int_or_percent(ru.get("maxSurge", 0), desired, True) == 0:
                max_unavailable = 1
            num_unavailable = 0
            replace, candidates = [], []
            for node in self.nodes:
                pods = by_node[node]
                new = [p for p in pods if (p["metadata"].get("labels") or {}).get(REVISION_LABEL) == h]
                old = [p for p in pods if p not in new]
                if (not new and not old) or (new and old) or len(pods) > 1:
                    num_unavailable += 1
                elif new:
                    if not is_available(new[0], min_ready, t):
                        num_unavailable += 1
                elif not is_available(old[0], min_ready, t):
                    replace.append(old[0])
                elif num_unavailable < max_unavailable:
                    candidates.append(old[0])
            remaining = max(0, min(max_unavailable - num_unavailable, len(candidates)))
            for p in replace + candidates[:remaining]:
                self.delete_pod(p)
                self.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {p['metadata']['name']}")
        live = {update_rev["metadata"]["name"]}
        live |= {r["metadata"]["name"] for r in revisions
                 if r["metadata"].get("labels", {}).get(HASH_LABEL) in
                 {(p["metadata"].get("labels") or {}).get(REVISION_LABEL) for p in all_pods}}
        truncate_history(self.store, ds, revisions, live)
        self._status(ds, h, min_ready)

    def _create(self, ds: Obj, node: str, rev: Obj, h: str) -> None:
        template = template_of(ds, rev)
        pod = pod_from_template(ds, "DaemonSet", template, node=node, extra_labels={
            REVISION_LABEL: h, "pod-template-generation": str(ds["metadata"].get("generation", 1))})
        created = self.store.create(POD, pod)
        self.event(ds, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

    def _status(self, ds: Obj, h: str, min_ready: int) -> None:
        pods = [p for p in self.store.list(POD, ds["metadata"]["namespace"])[0]
                if is_controlled_by(p, ds) and not is_terminating(p)]
        t = now()
        on_nodes = {n: [p for p in pods if p["spec"].get("nodeName") == n] for n in self.nodes}
        desired = len(self.nodes)
        ready = sum(1 for n, ps in on_nodes.items() if any(is_ready(p) for p in ps))
        available = sum(1 for n, ps in on_nodes.items() if any(is_available(p, min_ready, t) for p in ps))
        status: Obj = {
            "currentNumberScheduled": sum(1 for ps in on_nodes.values() if ps),
            "numberMisscheduled": 0,
            "desiredNumberScheduled": desired,
            "numberReady": ready,
            "observedGeneration": ds["metadata"].get("generation", 1),
            "updatedNumberScheduled": sum(1 for ps in on_nodes.values()
                                          if any((p["metadata"].get("labels") or {}).get(REVISION_LABEL) == h
                                                 for p in ps)),
            "numberAvailable": available,
            "numberUnavailable": desired - available,
        }
        for k in ("updatedNumberScheduled", "numberAvailable", "numberUnavailable"):
            if not status[k]:
                del status[k]
        old = ds.get("status") or {}
        if old.get("collisionCount") is not None:
            status["collisionCount"] = old["collisionCount"]
        if status != old:
            ds["status"] = status
            self.store.update(DAEMONSET, ds, subresource="status")
