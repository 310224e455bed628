# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Revision history of Kubernetes workloads and how to go back to an entry of it.

* Deployments keep their history in ReplicaSets; DaemonSets and StatefulSets in ControllerRevisions.
* History entries are the objects the workload *controls* (an ownerReference with ``controller: true``
  and the workload's UID). Label selectors only narrow the list; another Deployment whose pods share the
  labels never contributes a revision, unlike ``kubernetes.core.k8s_rollback``.
* ``kubectl rollout undo`` semantics otherwise: without a target, the second-highest revision; the
  template is compared ignoring ``pod-template-hash``; a Deployment keeps the annotations of kubectl's
  skip list, and gets back the annotations (change-cause...) the target ReplicaSet recorded.

Everything here works on plain API documents and is free of I/O.
"""

from __future__ import annotations

import copy
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput, Revision

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
# Where we remember, on a StatefulSet/DaemonSet, which ControllerRevision an old revision number became
# after a rollback (their controllers renumber the revision like the Deployment controller does, but keep
# no revision-history): "3=web-5d8f7c,1=web-7b9c4d".
ALIASES_ANNOTATION = "rollout.zerodown.io/revision-aliases"
MAX_ALIASES = 20
POD_TEMPLATE_HASH = "pod-template-hash"

# Annotations that belong to the Deployment (or the controller) and must never be copied back from a
# ReplicaSet when rolling back: kubectl's annotationsToSkip.
ANNOTATIONS_TO_SKIP = frozenset((
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
))


def _int(value: t.Any) -> t.Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def meta(obj: dict[str, t.Any]) -> dict[str, t.Any]:
    return obj.get("metadata") or {}


def is_controlled_by(obj: dict[str, t.Any], owner_uid: str) -> bool:
    """Whether ``obj``'s controller reference points at the object with UID ``owner_uid``."""
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid") == owner_uid:
            return True
    return False


def selector_string(selector: t.Optional[dict[str, t.Any]]) -> str:
    """A LabelSelector as the ``labelSelector`` query string the API accepts."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def _normalize(value: t.Any) -> t.Any:
    # Kubernetes' semantic equality treats nil and empty maps/lists alike.
    if isinstance(value, dict):
        out = {k: _normalize(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


def strip_hash(template: t.Optional[dict[str, t.Any]]) -> dict[str, t.Any]:
    """A copy of a pod template without the ``pod-template-hash`` label (and without ``$patch``)."""
    out = copy.deepcopy(template or {})
    out.pop("$patch", None)
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    return out


def templates_equal(a: t.Optional[dict[str, t.Any]], b: t.Optional[dict[str, t.Any]]) -> bool:
    """kubectl's equalIgnoreHash: semantic equality of two pod templates, ignoring pod-template-hash."""
    return _normalize(strip_hash(a)) == _normalize(strip_hash(b))


def template_images(template: t.Optional[dict[str, t.Any]]) -> dict[str, str]:
    """Container name -> image of a pod template (init containers included)."""
    spec = (template or {}).get("spec") or {}
    out: dict[str, str] = {}
    for key in ("initContainers", "containers"):
        for container in spec.get(key) or []:
            out[container.get("name", "")] = container.get("image", "")
    return out


# ---------------------------------------------------------------------------------------------- entries


class HistoryEntry(t.NamedTuple):
    """One owned ReplicaSet or ControllerRevision, reduced to what rollback and history need."""

    number: int
    name: str
    template: dict[str, t.Any]
    annotations: dict[str, str]
    created: t.Optional[str]
    replicas: t.Optional[int]
    raw: dict[str, t.Any]

    def to_revision(self, current: bool, source_kind: str) -> Revision:
        return Revision(
            number=self.number,
            images=template_images(self.template),
            current=current,
            change_cause=self.annotations.get(CHANGE_CAUSE_ANNOTATION),
            created=self.created,
            source=f"{source_kind}/{self.name}",
            replicas=self.replicas,
        )


def replica_set_entries(replica_sets: t.Iterable[dict[str, t.Any]], owner_uid: str) -> list[HistoryEntry]:
    """History entries from the ReplicaSets controlled by the Deployment with UID ``owner_uid``, oldest first.

    ReplicaSets without a parseable revision annotation are skipped, as the controller does.
    """
    out = []
    for rs in replica_sets:
        if not is_controlled_by(rs, owner_uid):
            continue
        number = _int((meta(rs).get("annotations") or {}).get(REVISION_ANNOTATION))
        if number is None:
            continue
        out.append(HistoryEntry(
            number=number,
            name=meta(rs).get("name", ""),
            template=(rs.get("spec") or {}).get("template") or {},
            annotations=dict(meta(rs).get("annotations") or {}),
            created=meta(rs).get("creationTimestamp"),
            replicas=_int((rs.get("status") or {}).get("replicas")) or 0,
            raw=rs,
        ))
    return sorted(out, key=lambda e: e.number)


def controller_revision_entries(revisions: t.Iterable[dict[str, t.Any]], owner_uid: str) -> list[HistoryEntry]:
    """History entries from the ControllerRevisions controlled by the workload with UID ``owner_uid``."""
    out = []
    for cr in revisions:
        if not is_controlled_by(cr, owner_uid):
            continue
        number = _int(cr.get("revision"))
        if number is None:
            continue
        data = cr.get("data") or {}
        template = ((data.get("spec") or {}).get("template")) or {}
        out.append(HistoryEntry(
            number=number,
            name=meta(cr).get("name", ""),
            template=strip_hash(template),
            annotations=dict(meta(cr).get("annotations") or {}),
            created=meta(cr).get("creationTimestamp"),
            replicas=None,
            raw=cr,
        ))
    return sorted(out, key=lambda e: e.number)


def available_numbers(entries: list[HistoryEntry]) -> str:
    return ", ".join(str(e.number) for e in entries) or "none"


def parse_aliases(value: t.Optional[str]) -> dict[int, str]:
    """The ``number=name`` pairs of the aliases annotation."""
    out: dict[int, str] = {}
    for part in (value or "").split(","):
        number, dummy, name = part.partition("=")
        parsed = _int(number.strip())
        if parsed is not None and name.strip():
            out[parsed] = name.strip()
    return out


def format_aliases(aliases: dict[int, str]) -> str:
    items = sorted(aliases.items())[-MAX_ALIASES:]
    return ",".join(f"{number}={name}" for number, name in items)


def find_entry(entries: list[HistoryEntry], number: int,
               aliases: t.Optional[dict[int, str]] = None) -> t.Optional[HistoryEntry]:
    """The entry that is or was revision ``number``.

    A rollback makes the controller renumber the target (revision 1 becomes 4); the Deployment controller
    records the old number in the ReplicaSet's revision-history, and we record it for StatefulSets and
    DaemonSets in ``aliases``. Following the renaming is what makes ``to_revision`` re-runs idempotent.
    """
    for entry in entries:
        if entry.number == number:
            return entry
    for entry in entries:
        history = entry.annotations.get(REVISION_HISTORY_ANNOTATION) or ""
        if str(number) in [h.strip() for h in history.split(",")]:
            return entry
    name = (aliases or {}).get(number)
    if name:
        for entry in entries:
            if entry.name == name:
                return entry
    return None


def select_target(entries: list[HistoryEntry], to_revision: t.Optional[int], what: str,
                  aliases: t.Optional[dict[int, str]] = None) -> HistoryEntry:
    """kubectl's choice of the revision to roll back to.

    ``to_revision`` None (or 0): the entry with the second-highest revision number; else the entry that
    is, or was before a rollback renumbered it, that revision. Raises InvalidInput naming the revisions
    that do exist.
    """
    if to_revision is not None and to_revision < 0:
        raise InvalidInput(f"to_revision must be a revision number (1 or more), got {to_revision}")
    if to_revision:
        entry = find_entry(entries, to_revision, aliases)
        if entry is not None:
            return entry
        raise InvalidInput(
            f"unable to find revision {to_revision} in the history of {what}; the retained revisions are "
            f"{available_numbers(entries)} (older ones are pruned after revisionHistoryLimit)"
        )
    if len(entries) < 2:
        raise InvalidInput(
            f"no earlier revision to roll back to: {what} has revision(s) {available_numbers(entries)} only"
        )
    return sorted(entries, key=lambda e: e.number)[-2]


def rollback_annotations(current: t.Optional[dict[str, str]], target: t.Optional[dict[str, str]],
                         fallback_cause: t.Optional[str] = None) -> dict[str, str]:
    """The Deployment's annotations after a rollback.

    Every annotation of the Deployment is kept; the annotations the target ReplicaSet recorded from the
    Deployment when it was current (change-cause...) are restored over them, except kubectl's skip list,
    which always keeps the Deployment's own values. When the target recorded no change-cause,
    ``fallback_cause`` replaces the Deployment's, which describes the revision being left.
    """
    out = dict(current or {})
    for key, value in (target or {}).items():
        if key not in ANNOTATIONS_TO_SKIP:
            out[key] = value
    if fallback_cause and CHANGE_CAUSE_ANNOTATION not in (target or {}):
        out[CHANGE_CAUSE_ANNOTATION] = fallback_cause
    return out


def rollback_cause(target: HistoryEntry) -> str:
    """The change-cause recorded for a rollback to ``target`` when it has none of its own."""
    images = ", ".join(f"{k}={v}" for k, v in sorted(template_images(target.template).items()))
    return f"zerodown.rollout.rollback to revision {target.number} ({images})"


def deployment_rollback_patch(deployment: dict[str, t.Any], target: HistoryEntry) -> list[dict[str, t.Any]]:
    """The JSON patch that makes ``target``'s template the Deployment's again."""
    template = strip_hash(target.template)
    return [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "add", "path": "/metadata/annotations",
         "value": rollback_annotations(meta(deployment).get("annotations"), target.annotations,
                                       rollback_cause(target))},
    ]


def controller_revision_patch(target: HistoryEntry, workload: t.Optional[dict[str, t.Any]] = None
                              ) -> dict[str, t.Any]:
    """The strategic merge patch kubectl applies for DaemonSets/StatefulSets: the revision's data.

    With ``workload``, the patch also records in the aliases annotation that ``target``'s current number
    is about to be replaced, so that a later ``to_revision`` with that number still finds it.
    """
    patch = copy.deepcopy(target.raw.get("data") or {})
    if workload is not None:
        aliases = parse_aliases((meta(workload).get("annotations") or {}).get(ALIASES_ANNOTATION))
        aliases[target.number] = target.name
        patch.setdefault("metadata", {}).setdefault("annotations", {})[ALIASES_ANNOTATION] = format_aliases(aliases)
    return patch
