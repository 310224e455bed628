"""ControllerRevisions for StatefulSets and DaemonSets (upstream pkg/controller/history)."""
from __future__ import annotations

import copy
from typing import Any

from ..patch import strategic_merge_patch
from ..resources import CONTROLLERREVISION
from ..store import AlreadyExists, Store
from ..util import compute_hash, controller_ref, is_controlled_by, parse_time

Obj = dict[str, Any]
HASH_LABEL = "controller.kubernetes.io/hash"


def template_patch(obj: Obj) -> Obj:
    """What upstream stores in ControllerRevision.data: a patch replacing spec.template."""
    template = copy.deepcopy(obj["spec"]["template"])
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(owner: Obj, revision: Obj) -> Obj:
    """The pod template a revision describes (its data applied to the owner)."""
    return strategic_merge_patch(owner, revision["data"])["spec"]["template"]


def owned_revisions(store: Store, owner: Obj) -> list[Obj]:
    revs, _rv = store.list(CONTROLLERREVISION, owner["metadata"]["namespace"])
    revs = [r for r in revs if is_controlled_by(r, owner)]
    revs.sort(key=lambda r: (int(r.get("revision") or 0),
                             parse_time(r["metadata"].get("creationTimestamp")) or 0, r["metadata"]["name"]))
    return revs


def sync_revisions(store: Store, owner: Obj, kind: str, copy_annotations: bool) -> tuple[Obj, list[Obj]]:
    """Find or create the update revision; an equal older revision is renumbered to max+1 (rollback)."""
    revisions = owned_revisions(store, owner)
    data = template_patch(owner)
    max_rev = max((int(r.get("revision") or 0) for r in revisions), default=0)
    equal = [r for r in revisions if r.get("data") == data]
    if equal:
        update = equal[-1]
        if update is not revisions[-1] and int(update.get("revision") or 0) < max_rev:
            update["revision"] = max_rev + 1
            update = store.internal_update(CONTROLLERREVISION, update)
            revisions = owned_revisions(store, owner)
        return update, revisions
    collision = int((owner.get("status") or {}).get("collisionCount") or 0)
    while True:
        h = compute_hash({"data": data}, collision)
        labels = dict((owner["spec"]["template"].get("metadata") or {}).get("labels") or {})
        labels[HASH_LABEL] = h
        rev: Obj = {
            "metadata": {"name": f"{owner['metadata']['name']}-{h}", "namespace": owner["metadata"]["namespace"],
                         "labels": labels, "ownerReferences": [controller_ref(owner, "apps/v1", kind)]},
            "data": data, "revision": max_rev + 1,
        }
        if copy_annotations and owner["metadata"].get("annotations"):
            rev["metadata"]["annotations"] = dict(owner["metadata"]["annotations"])
        try:
            created = store.create(CONTROLLERREVISION, rev)
            return created, owned_revisions(store, owner)
        except AlreadyExists:
            collision += 1
            if collision > 50:
                raise


def truncate_history(store: Store, owner: Obj, revisions: list[Obj], live: set[str]) -> None:
    limit = int(owner["spec"].get("revisionHistoryLimit", 10))
    stale = [r for r in revisions if r["metadata"]["name"] not in live]
    for r in stale[: max(0, len(stale) - limit)]:
        try:
            store.delete(CONTROLLERREVISION, r["metadata"]["namespace"], r["metadata"]["name"],
                         uid=r["metadata"]["uid"])
        except Exception:  # noqa: BLE001 (already gone)
            pass
