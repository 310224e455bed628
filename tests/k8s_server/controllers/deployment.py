"""The Deployment controller, following upstream pkg/controller/deployment step by step.

The arithmetic (fenceposts, NewRSNewReplicas, the old-RS scale-down budget, proportional scaling)
is written as plain functions over ReplicaSet dicts plus a `scale(rs, n)` callback, so unit tests
can drive it without a server.
"""
from __future__ import annotations

import copy
import functools
from typing import Any, Callable

from ..resources import DEPLOYMENT, REPLICASET
from ..store import AlreadyExists, Conflict, NotFound, StoreError
from ..util import (compute_hash, controller_ref, int_or_percent, is_controlled_by, iso, now, parse_time,
                    selector_matches)
from .base import Controller

Obj = dict[str, Any]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
SKIP_COPY = {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
MAX_REV_HISTORY_CHARS = 2000
MAX_INT32 = 2**31 - 1

# Progressing / Available reasons (upstream util/deployment_util.go)
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


# ---------------------------------------------------------------------------- small accessors

def spec_replicas(obj: Obj | None) -> int:
    if obj is None:
        return 0
    r = (obj.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)


def st(obj: Obj | None, field: str) -> int:
    if obj is None:
        return 0
    return int((obj.get("status") or {}).get(field) or 0)


def annotations(obj: Obj) -> dict[str, str]:
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta.get("annotations"), dict):
        meta["annotations"] = {}
    return meta["annotations"]


def revision_of(obj: Obj | None) -> int:
    try:
        return int(((obj or {}).get("metadata", {}).get("annotations") or {}).get(REVISION, ""))
    except ValueError:
        return 0


def _created(obj: Obj) -> tuple[float, str]:
    return (parse_time(obj["metadata"].get("creationTimestamp")) or 0.0, obj["metadata"]["name"])


def is_rolling(d: Obj) -> bool:
    return (d["spec"].get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


# ---------------------------------------------------------------------------- fenceposts

def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """ResolveFenceposts: surge rounds up, unavailable rounds down, both 0 => unavailable 1."""
    surge = int_or_percent(max_surge if max_surge is not None else 0, desired, True)
    unavail = int_or_percent(max_unavailable if max_unavailable is not None else 0, desired, False)
    if surge == 0 and unavail == 0:
        unavail = 1
    return surge, unavail


def _ru(d: Obj) -> dict[str, Any]:
    return ((d["spec"].get("strategy") or {}).get("rollingUpdate") or {})


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    surge, _unavail = resolve_fenceposts(_ru(d).get("maxSurge"), _ru(d).get("maxUnavailable"), spec_replicas(d))
    return surge


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or spec_replicas(d) == 0:
        return 0
    _surge, unavail = resolve_fenceposts(_ru(d).get("maxSurge"), _ru(d).get("maxUnavailable"), spec_replicas(d))
    return min(unavail, spec_replicas(d))


def new_rs_new_replicas(d: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    """NewRSNewReplicas: how far the new ReplicaSet may be scaled up in this sync."""
    if not is_rolling(d):
        return spec_replicas(d)
    max_total = spec_replicas(d) + max_surge(d)
    current = sum(spec_replicas(rs) for rs in all_rss if rs is not None)
    if current >= max_total:
        return spec_replicas(new_rs)
    scale_up = min(max_total - current, spec_replicas(d) - spec_replicas(new_rs))
    return spec_replicas(new_rs) + scale_up


def filter_active(rss: list[Obj | None]) -> list[Obj]:
    return [rs for rs in rss if rs is not None and spec_replicas(rs) > 0]


def reconcile_new_replica_set(d: Obj, all_rss: list[Obj], new_rs: Obj, scale: Callable[[Obj, int], bool]) -> bool:
    if spec_replicas(new_rs) == spec_replicas(d):
        return False
    if spec_replicas(new_rs) > spec_replicas(d):
        return scale(new_rs, spec_replicas(d))
    return scale(new_rs, new_rs_new_replicas(d, all_rss, new_rs))


def reconcile_old_replica_sets(d: Obj, all_rss: list[Obj], old_rss: list[Obj], new_rs: Obj,
                               scale: Callable[[Obj, int], bool]) -> bool:
    """Scale old ReplicaSets down: unhealthy replicas first, then within the availability budget.

    `old_rss` are the active old ReplicaSets; `scale` must update the dict it is given (spec.replicas).
    """
    old_count = sum(spec_replicas(rs) for rs in old_rss)
    if old_count == 0:
        return False
    all_count = sum(spec_replicas(rs) for rs in all_rss if rs is not None)
    min_available = spec_replicas(d) - max_unavailable(d)
    new_unavailable = spec_replicas(new_rs) - st(new_rs, "availableReplicas")
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return False
    cleaned = cleanup_unhealthy_replicas(old_rss, max_scaled_down, scale)
    scaled = scale_down_old_for_rolling_update(d, old_rss + [new_rs], old_rss, scale)
    return (cleaned + scaled) > 0


def cleanup_unhealthy_replicas(old_rss: list[Obj], max_cleanup: int, scale: Callable[[Obj, int], bool]) -> int:
    total = 0
    for rs in sorted(old_rss, key=_created):
        if total >= max_cleanup:
            break
        if spec_replicas(rs) == 0:
            continue
        if spec_replicas(rs) == st(rs, "availableReplicas"):
            continue
        down = min(max_cleanup - total, spec_replicas(rs) - st(rs, "availableReplicas"))
        scale(rs, spec_replicas(rs) - down)
        total += down
    return total


def scale_down_old_for_rolling_update(d: Obj, all_rss: list[Obj], old_rss: list[Obj],
                                      scale: Callable[[Obj, int], bool]) -> int:
    min_available = spec_replicas(d) - max_unavailable(d)
    available = sum(st(rs, "availableReplicas") for rs in all_rss if rs is not None)
    if available <= min_available:
        return 0
    budget = available - min_available
    total = 0
    for rs in sorted(old_rss, key=_created):
        if total >= budget:
            break
        if spec_replicas(rs) == 0:
            continue
        down = min(spec_replicas(rs), budget - total)
        scale(rs, spec_replicas(rs) - down)
        total += down
    return total


def equal_ignore_hash(t1: Obj | None, t2: Obj | None) -> bool:
    a, b = copy.deepcopy(t1 or {}), copy.deepcopy(t2 or {})
    for t in (a, b):
        labels = (t.get("metadata") or {}).get("labels")
        if isinstance(labels, dict):
            labels.pop("pod-template-hash", None)
            if not labels:
                t["metadata"].pop("labels")
        if t.get("metadata") == {}:
            t.pop("metadata")
    return a == b


def find_new_rs(d: Obj, rss: list[Obj]) -> Obj | None:
    for rs in sorted(rss, key=_created):
        if equal_ignore_hash(rs["spec"].get("template"), d["spec"].get("template")):
            return rs
    return None


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    ann = annotations(rs)
    changed = False
    if ann.get(DESIRED_REPLICAS) != str(desired):
        ann[DESIRED_REPLICAS] = str(desired)
        changed = True
    if ann.get(MAX_REPLICAS) != str(max_replicas):
        ann[MAX_REPLICAS] = str(max_replicas)
        changed = True
    return changed


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: str, exists: bool) -> bool:
    """SetNewReplicaSetAnnotations: copy annotations, bump the revision, keep revision-history."""
    ann = annotations(rs)
    changed = False
    for k, v in (d["metadata"].get("annotations") or {}).items():
        if k in SKIP_COPY or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    old_revision = ann.get(REVISION)
    try:
        old_int = int(old_revision) if old_revision else 0
    except ValueError:
        return False
    new_int = int(new_revision)
    if old_int < new_int:
        ann[REVISION] = new_revision
        changed = True
    if old_revision and old_int < new_int:
        history = ann.get(REVISION_HISTORY, "")
        olds = history.split(",") if history else []
        if not olds:
            ann[REVISION_HISTORY] = old_revision
        else:
            total = len(history) + len(old_revision) + 1
            start = 0
            while total > MAX_REV_HISTORY_CHARS and start < len(olds):
                total -= len(olds[start]) + 1
                start += 1
            if total <= MAX_REV_HISTORY_CHARS:
                ann[REVISION_HISTORY] = ",".join(olds[start:] + [old_revision])
    if not exists and set_replicas_annotations(rs, spec_replicas(d), spec_replicas(d) + max_surge(d)):
        changed = True
    return changed


def get_condition(status: Obj, ctype: str) -> Obj | None:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def new_condition(ctype: str, status: str, reason: str, message: str) -> Obj:
    t = iso()
    return {"type": ctype, "status": status, "lastUpdateTime": t, "lastTransitionTime": t,
            "reason": reason, "message": message}


def set_condition(status: Obj, cond: Obj) -> None:
    cur = get_condition(status, cond["type"])
    if cur is not None and cur["status"] == cond["status"] and cur.get("reason") == cond.get("reason"):
        return
    if cur is not None and cur["status"] == cond["status"]:
        cond["lastTransitionTime"] = cur["lastTransitionTime"]
    remove_condition(status, cond["type"])
    status.setdefault("conditions", []).append(cond)


def remove_condition(status: Obj, ctype: str) -> None:
    if status.get("conditions"):
        status["conditions"] = [c for c in status["conditions"] if c.get("type") != ctype]
        if not status["conditions"]:
            status.pop("conditions")


def has_progress_deadline(d: Obj) -> bool:
    pds = d["spec"].get("progressDeadlineSeconds")
    return pds is not None and pds != MAX_INT32


def deployment_complete(d: Obj, status: Obj) -> bool:
    n = spec_replicas(d)
    return (int(status.get("updatedReplicas") or 0) == n and int(status.get("replicas") or 0) == n
            and int(status.get("availableReplicas") or 0) == n
            and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0))


def deployment_progressing(d: Obj, new_status: Obj) -> bool:
    old = d.get("status") or {}

    def g(s: Obj, f: str) -> int:
        return int(s.get(f) or 0)
    old_old = g(old, "replicas") - g(old, "updatedReplicas")
    new_old = g(new_status, "replicas") - g(new_status, "updatedReplicas")
    return (g(new_status, "updatedReplicas") > g(old, "updatedReplicas") or new_old < old_old
            or g(new_status, "readyReplicas") > g(old, "readyReplicas")
            or g(new_status, "availableReplicas") > g(old, "availableReplicas"))


def deployment_timed_out(d: Obj, new_status: Obj) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(new_status, "Progressing")
    if cond is None:
        return False
    if cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime")) or now()
    return since + int(d["spec"]["progressDeadlineSeconds"]) < now()


def calculate_status(d: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> Obj:
    rss = [rs for rs in all_rss if rs is not None]
    available = sum(st(rs, "availableReplicas") for rs in rss)
    total = sum(spec_replicas(rs) for rs in rss)
    status: Obj = {
        "observedGeneration": d["metadata"].get("generation", 1),
        "replicas": sum(st(rs, "replicas") for rs in rss),
        "updatedReplicas": st(new_rs, "replicas"),
        "readyReplicas": sum(st(rs, "readyReplicas") for rs in rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total - available),
    }
    old = d.get("status") or {}
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= spec_replicas(d) - max_unavailable(d):
        set_condition(status, new_condition("Available", "True", MIN_AVAILABLE, "Deployment has minimum availability."))
    else:
        set_condition(status, new_condition("Available", "False", MIN_UNAVAILABLE,
                                            "Deployment does not have minimum availability."))
    # omitempty: zero counts are absent on the wire, as upstream writes them
    for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"):
        if not status[k]:
            del status[k]
    return status


def _status_eq(a: Obj, b: Obj) -> bool:
    return a == b


# ---------------------------------------------------------------------------- the controller

class DeploymentController(Controller):
    kind = DEPLOYMENT

    # -- helpers writing through the store --------------------------------------------------
    def _owned_rss(self, d: Obj) -> list[Obj]:
        rss, _rv = self.store.list(REPLICASET, d["metadata"]["namespace"])
        return [rs for rs in rss if is_controlled_by(rs, d)]

    def _save(self, d: Obj) -> Obj:
        """UpdateStatus-like write of the Deployment's annotations and status (optimistic)."""
        with self.store.lock:
            stored = self.store.get(DEPLOYMENT, d["metadata"]["namespace"], d["metadata"]["name"])
            if stored["metadata"]["resourceVersion"] != d["metadata"]["resourceVersion"]:
                raise Conflict(DEPLOYMENT, d["metadata"]["name"])
            if stored["metadata"].get("annotations") != d["metadata"].get("annotations"):
                stored["metadata"]["annotations"] = d["metadata"].get("annotations")
                stored = self.store.update(DEPLOYMENT, stored)
            stored["status"] = d.get("status") or {}
            return self.store.update(DEPLOYMENT, stored, subresource="status")

    def _scale_rs(self, d: Obj, rs: Obj, new_scale: int, operation: str | None = None) -> bool:
        """scaleReplicaSet: returns whether the size changed; updates `rs` in place."""
        size_changed = spec_replicas(rs) != new_scale
        candidate = copy.deepcopy(rs)
        ann_changed = set_replicas_annotations(candidate, spec_replicas(d), spec_replicas(d) + max_surge(d))
        if size_changed or ann_changed:
            old_scale = spec_replicas(rs)
            candidate["spec"]["replicas"] = new_scale
            saved = self.store.update(REPLICASET, candidate)
            rs.clear()
            rs.update(saved)
            if size_changed:
                op = operation or ("up" if new_scale > old_scale else "down")
                self.event(d, "Normal", "ScalingReplicaSet",
                           f"Scaled {op} replica set {rs['metadata']['name']} to {new_scale} from {old_scale}")
        return size_changed

    def _scale_and_record(self, d: Obj, rs: Obj, new_scale: int) -> bool:
        if spec_replicas(rs) == new_scale:
            return False
        return self._scale_rs(d, rs, new_scale)

    # -- syncDeployment ---------------------------------------------------------------------
    def sync(self, d: Obj) -> None:
        if not d["spec"].get("selector"):
            return
        rss = self._owned_rss(d)
        self._adopt(d)
        if d["metadata"].get("deletionTimestamp"):
            return
        d = self._check_paused_conditions(d)
        if d["spec"].get("paused"):
            self._sync_scaling(d, rss)
            return
        scaling, d = self._is_scaling_event(d, rss)
        if scaling:
            self._sync_scaling(d, self._owned_rss(d))
            return
        if is_rolling(d):
            self._rollout_rolling(d, rss)
        else:
            self._rollout_recreate(d, rss)

    def _adopt(self, d: Obj) -> None:
        """Claim orphan ReplicaSets whose labels match the selector (ControllerRefManager)."""
        for rs in self.store.list(REPLICASET, d["metadata"]["namespace"])[0]:
            refs = rs["metadata"].get("ownerReferences") or []
            if any(r.get("controller") for r in refs):
                continue
            if selector_matches(d["spec"]["selector"], rs["metadata"].get("labels")):
                rs["metadata"]["ownerReferences"] = refs + [controller_ref(d, "apps/v1", "Deployment")]
                self.store.update(REPLICASET, rs)

    def _check_paused_conditions(self, d: Obj) -> Obj:
        if not has_progress_deadline(d):
            return d
        status = d.setdefault("status", {})
        cond = get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == TIMED_OUT:
            return d
        paused_exists = cond is not None and cond.get("reason") == PAUSED
        if d["spec"].get("paused") and not paused_exists:
            set_condition(status, new_condition("Progressing", "Unknown", PAUSED, "Deployment is paused"))
        elif not d["spec"].get("paused") and paused_exists:
            set_condition(status, new_condition("Progressing", "Unknown", RESUMED, "Deployment is resumed"))
        else:
            return d
        return self._save(d)

    def _get_all_rss_and_sync_revision(self, d: Obj, rss: list[Obj], create: bool) -> tuple[Obj | None, list[Obj], Obj]:
        new_rs = find_new_rs(d, rss)
        old_rss = [rs for rs in rss if new_rs is None or rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        new_rs, d = self._get_new_rs(d, rss, old_rss, new_rs, create)
        return new_rs, old_rss, d

    def _get_new_rs(self, d: Obj, rss: list[Obj], old_rss: list[Obj], existing: Obj | None,
                    create: bool) -> tuple[Obj | None, Obj]:
        max_old = max((revision_of(rs) for rs in old_rss), default=0)
        new_revision = str(max_old + 1)
        status = d.setdefault("status", {})
        if existing is not None:
            rs_copy = copy.deepcopy(existing)
            ann_updated = set_new_rs_annotations(d, rs_copy, new_revision, True)
            min_ready = d["spec"].get("minReadySeconds", 0) or 0
            min_ready_changed = (rs_copy["spec"].get("minReadySeconds", 0) or 0) != min_ready
            if ann_updated or min_ready_changed:
                if min_ready:
                    rs_copy["spec"]["minReadySeconds"] = min_ready
                else:
                    rs_copy["spec"].pop("minReadySeconds", None)
                saved = self.store.update(REPLICASET, rs_copy)
                existing.clear()
                existing.update(saved)
            needs_update = False
            rs_rev = annotations(existing).get(REVISION, "")
            if annotations(d).get(REVISION) != rs_rev:
                annotations(d)[REVISION] = rs_rev
                needs_update = True
            if has_progress_deadline(d) and get_condition(status, "Progressing") is None:
                set_condition(status, new_condition("Progressing", "True", FOUND_NEW_RS,
                                                    f'Found new replica set "{existing["metadata"]["name"]}"'))
                needs_update = True
            if needs_update:
                d = self._save(d)
            return existing, d
        if not create:
            return None, d
        template = copy.deepcopy(d["spec"]["template"])
        collision = status.get("collisionCount")
        pth = compute_hash(template, collision)
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = pth
        selector = copy.deepcopy(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})["pod-template-hash"] = pth
        name = f"{d['metadata']['name']}-{pth}"
        new_rs: Obj = {
            "metadata": {
                "name": name, "namespace": d["metadata"]["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "ownerReferences": [controller_ref(d, "apps/v1", "Deployment")],
                "annotations": {},
            },
            "spec": {"replicas": 0, "selector": selector, "template": template},
        }
        if d["spec"].get("minReadySeconds"):
            new_rs["spec"]["minReadySeconds"] = d["spec"]["minReadySeconds"]
        set_new_rs_annotations(d, new_rs, new_revision, False)
        all_rss = old_rss + [new_rs]
        new_rs["spec"]["replicas"] = new_rs_new_replicas(d, all_rss, new_rs)
        try:
            created = self.store.create(REPLICASET, new_rs)
        except AlreadyExists:
            other = self.store.get(REPLICASET, d["metadata"]["namespace"], name)
            if is_controlled_by(other, d) and equal_ignore_hash(other["spec"]["template"], d["spec"]["template"]):
                return other, d
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            self._save(d)
            raise
        if spec_replicas(created) > 0:
            self.event(d, "Normal", "ScalingReplicaSet",
                       f"Scaled up replica set {name} to {spec_replicas(created)}")
        annotations(d)[REVISION] = new_revision
        if has_progress_deadline(d):
            set_condition(status, new_condition("Progressing", "True", NEW_RS_CREATED,
                                                f'Created new replica set "{name}"'))
        d = self._save(d)
        return created, d

    def _is_scaling_event(self, d: Obj, rss: list[Obj]) -> tuple[bool, Obj]:
        new_rs, old_rss, d = self._get_all_rss_and_sync_revision(d, rss, False)
        for rs in filter_active(old_rss + [new_rs]):
            desired = annotations(rs).get(DESIRED_REPLICAS)
            if desired is None:
                continue
            if desired != str(spec_replicas(d)):
                return True, d
        return False, d

    # -- sync(): scaling only (paused deployments and scaling events) ------------------------
    def _sync_scaling(self, d: Obj, rss: list[Obj]) -> None:
        new_rs, old_rss, d = self._get_all_rss_and_sync_revision(d, rss, False)
        self._scale(d, new_rs, old_rss)
        if d["spec"].get("paused"):
            self._cleanup(d, old_rss)
        all_rss = old_rss + ([new_rs] if new_rs else [])
        new_status = calculate_status(d, all_rss, new_rs)
        if new_status != (d.get("status") or {}):
            d["status"] = new_status
            self._save(d)

    def _scale(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        active_or_latest = find_active_or_latest(new_rs, old_rss)
        if active_or_latest is not None:
            if spec_replicas(active_or_latest) != spec_replicas(d):
                self._scale_and_record(d, active_or_latest, spec_replicas(d))
            return
        if is_saturated(d, new_rs):
            for old in filter_active(old_rss):
                self._scale_and_record(d, old, 0)
            return
        if is_rolling(d):
            plan = proportional_plan(d, new_rs, old_rss)
            op = None
            for rs, size in plan:
                op = "up" if size > spec_replicas(rs) else "down"
                self._scale_rs(d, rs, size, op)

    # -- rolloutRolling ---------------------------------------------------------------------
    def _rollout_rolling(self, d: Obj, rss: list[Obj]) -> None:
        new_rs, old_rss, d = self._get_all_rss_and_sync_revision(d, rss, True)
        # Status is computed from these pre-scale snapshots, as upstream does (short "looks done" windows).
        snapshot_all = [copy.deepcopy(rs) for rs in old_rss + [new_rs]]
        snapshot_new = snapshot_all[-1]
        work_new = copy.deepcopy(new_rs)
        work_old = [copy.deepcopy(rs) for rs in old_rss]
        scale = functools.partial(self._scale_and_record, d)
        if reconcile_new_replica_set(d, work_old + [work_new], work_new, scale):
            self._sync_rollout_status(d, snapshot_all, snapshot_new)
            return
        active_old = filter_active(work_old)
        if reconcile_old_replica_sets(d, work_old + [work_new], active_old, work_new, scale):
            self._sync_rollout_status(d, snapshot_all, snapshot_new)
            return
        if deployment_complete(d, d.get("status") or {}):
            self._cleanup(d, work_old)
        self._sync_rollout_status(d, snapshot_all, snapshot_new)

    # -- rolloutRecreate --------------------------------------------------------------------
    def _rollout_recreate(self, d: Obj, rss: list[Obj]) -> None:
        from ..resources import POD
        new_rs, old_rss, d = self._get_all_rss_and_sync_revision(d, rss, False)
        all_rss = old_rss + ([new_rs] if new_rs else [])
        snapshot = [copy.deepcopy(rs) for rs in all_rss]
        scaled = False
        for rs in filter_active(old_rss):
            scaled = self._scale_and_record(d, rs, 0) or scaled
        if scaled:
            self._sync_rollout_status(d, snapshot, new_rs)
            return
        pods, _rv = self.store.list(POD, d["metadata"]["namespace"])
        if any(st(rs, "replicas") > 0 for rs in old_rss) or any(
                is_controlled_by(p, rs) and (p.get("status") or {}).get("phase") not in ("Failed", "Succeeded")
                for rs in old_rss for p in pods):
            self._sync_rollout_status(d, snapshot, new_rs)
            return
        if new_rs is None:
            new_rs, old_rss, d = self._get_all_rss_and_sync_revision(d, rss, True)
            snapshot = [copy.deepcopy(rs) for rs in old_rss + [new_rs]]
        if spec_replicas(new_rs) != spec_replicas(d):
            self._scale_and_record(d, copy.deepcopy(new_rs), spec_replicas(d))
        if deployment_complete(d, d.get("status") or {}):
            self._cleanup(d, old_rss)
        self._sync_rollout_status(d, snapshot, new_rs)

    # -- cleanupDeployment ------------------------------------------------------------------
    def _cleanup(self, d: Obj, old_rss: list[Obj]) -> None:
        limit = d["spec"].get("revisionHistoryLimit")
        if limit is None or limit == MAX_INT32:
            return
        cleanable = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
        diff = len(cleanable) - int(limit)
        if diff <= 0:
            return
        cleanable.sort(key=lambda rs: (revision_of(rs), _created(rs)))
        for rs in cleanable[:diff]:
            if (st(rs, "replicas") != 0 or spec_replicas(rs) != 0
                    or rs["metadata"].get("generation", 1) > st(rs, "observedGeneration")):
                continue
            try:
                self.store.delete(REPLICASET, rs["metadata"]["namespace"], rs["metadata"]["name"],
                                  uid=rs["metadata"]["uid"])
            except NotFound:
                pass

    # -- syncRolloutStatus ------------------------------------------------------------------
    def _sync_rollout_status(self, d: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> None:
        new_status = calculate_status(d, all_rss, new_rs)
        if not has_progress_deadline(d):
            remove_condition(new_status, "Progressing")
        cur = get_condition(d.get("status") or {}, "Progressing")
        is_complete = (int(new_status.get("replicas") or 0) == int(new_status.get("updatedReplicas") or 0)
                       and cur is not None and cur.get("reason") == NEW_RS_AVAILABLE)
        if has_progress_deadline(d) and not is_complete:
            rs_name = new_rs["metadata"]["name"] if new_rs else None
            if deployment_complete(d, new_status):
                msg = (f'ReplicaSet "{rs_name}" has successfully progressed.' if rs_name
                       else f'Deployment "{d["metadata"]["name"]}" has successfully progressed.')
                set_condition(new_status, new_condition("Progressing", "True", NEW_RS_AVAILABLE, msg))
            elif deployment_progressing(d, new_status):
                msg = f'ReplicaSet "{rs_name}" is progressing.'
                cond = new_condition("Progressing", "True", RS_UPDATED, msg)
                if cur is not None:
                    if cur["status"] == "True":
                        cond["lastTransitionTime"] = cur["lastTransitionTime"]
                    remove_condition(new_status, "Progressing")
                set_condition(new_status, cond)
            elif deployment_timed_out(d, new_status):
                msg = (f'ReplicaSet "{rs_name}" has timed out progressing.' if rs_name
                       else f'Deployment "{d["metadata"]["name"]}" has timed out progressing.')
                set_condition(new_status, new_condition("Progressing", "False", TIMED_OUT, msg))
                if cur is None or cur.get("reason") != TIMED_OUT:
                    # once, when the deadline passes: every sync of a timed-out Deployment comes here again
                    self.event(d, "Warning", TIMED_OUT, msg)
        failure = None
        for rs in ([new_rs] if new_rs else []) + [r for r in all_rss if r is not None]:
            failure = get_condition(rs.get("status") or {}, "ReplicaFailure")
            if failure:
                break
        if failure:
            set_condition(new_status, {"type": "ReplicaFailure", "status": failure["status"],
                                       "lastUpdateTime": failure.get("lastTransitionTime", iso()),
                                       "lastTransitionTime": failure.get("lastTransitionTime", iso()),
                                       "reason": failure.get("reason"), "message": failure.get("message")})
        else:
            remove_condition(new_status, "ReplicaFailure")
        if new_status == (d.get("status") or {}):
            return
        d["status"] = new_status
        self._save(d)


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    if new_rs is None and not old_rss:
        return None
    olds = sorted(old_rss, key=_created, reverse=True)
    active = filter_active(olds + [new_rs])
    if not active:
        return new_rs if new_rs is not None else olds[0]
    if len(active) == 1:
        return active[0]
    return None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    desired = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
    return (spec_replicas(rs) == spec_replicas(d) and desired == str(spec_replicas(d))
            and st(rs, "availableReplicas") == spec_replicas(d))


def proportional_plan(d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> list[tuple[Obj, int]]:
    """scale() for RollingUpdate: distribute a replicas change over the active ReplicaSets."""
    all_rss = filter_active(old_rss + [new_rs])
    all_count = sum(spec_replicas(rs) for rs in all_rss)
    allowed = spec_replicas(d) + max_surge(d) if spec_replicas(d) > 0 else 0
    to_add = allowed - all_count
    if to_add > 0:
        all_rss.sort(key=lambda rs: (-spec_replicas(rs), -_created(rs)[0], rs["metadata"]["name"]))
    elif to_add < 0:
        all_rss.sort(key=lambda rs: (-spec_replicas(rs), _created(rs)))
    added = 0
    sizes: dict[str, int] = {}
    for rs in all_rss:
        if to_add != 0:
            prop = get_proportion(rs, d, to_add, added)
            sizes[rs["metadata"]["name"]] = spec_replicas(rs) + prop
            added += prop
        else:
            sizes[rs["metadata"]["name"]] = spec_replicas(rs)
    plan = []
    for i, rs in enumerate(all_rss):
        name = rs["metadata"]["name"]
        if i == 0 and to_add != 0:
            sizes[name] = max(0, sizes[name] + to_add - added)
        plan.append((rs, sizes[name]))
    return plan


def get_proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    if spec_replicas(d) == 0:
        fraction = -spec_replicas(rs)
    else:
        deployment_replicas = spec_replicas(d) + max_surge(d)
        ann = (rs["metadata"].get("annotations") or {}).get(MAX_REPLICAS)
        annotated = int(ann) if ann and ann.isdigit() else int((d.get("status") or {}).get("replicas") or 0)
        size = spec_replicas(rs) * deployment_replicas / annotated if annotated else spec_replicas(rs)
        fraction = _round_half_away(size) - spec_replicas(rs)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def _round_half_away(x: float) -> int:
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


__all__ = ["DeploymentController", "resolve_fenceposts", "new_rs_new_replicas", "reconcile_new_replica_set",
           "reconcile_old_replica_sets", "calculate_status", "StoreError"]
