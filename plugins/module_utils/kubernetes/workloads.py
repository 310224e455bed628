# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Per-kind adapters: where a workload keeps its history, its current revision and its new pods.

``Deployment`` -> ReplicaSets (revision annotation, ``pod-template-hash`` label on pods);
``DaemonSet`` / ``StatefulSet`` -> ControllerRevisions (``revision`` field, ``controller-revision-hash``
label on pods). The adapters only read; the backend decides what to change.
"""

from __future__ import annotations

import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes import revisions as rev
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.status import (
    deployment_revision,
    generation_observed,
    rollout_status,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutStatus, WorkloadRef

REVISION_HASH_LABEL = "controller-revision-hash"


class WorkloadAdapter:
    """Reads one workload of one kind through a :class:`client.KubeClient`."""

    kind = ""
    history_kind = ""

    def __init__(self, client: t.Any, ref: WorkloadRef) -> None:
        self.client = client
        self.ref = ref
        self.namespace = ref.namespace or "default"
        self.name = ref.name

    def describe(self) -> str:
        return self.ref.describe()

    def get(self) -> dict[str, t.Any]:
        """The workload object; raises WorkloadNotFound with the kind/namespace/name."""
        return self.client.get(self.kind, self.name, self.namespace)

    def history(self, obj: dict[str, t.Any]) -> list[rev.HistoryEntry]:
        """The owned history entries, oldest first."""
        selector = rev.selector_string((obj.get("spec") or {}).get("selector"))
        listing = self.client.list(self.history_kind, self.namespace, label_selector=selector or None)
        return self.entries(listing.get("items") or [], rev.meta(obj).get("uid", ""))

    def entries(self, items: list[dict[str, t.Any]], uid: str) -> list[rev.HistoryEntry]:
        raise NotImplementedError

    def current_entry(self, obj: dict[str, t.Any], entries: list[rev.HistoryEntry]) -> t.Optional[rev.HistoryEntry]:
        """The history entry the workload runs now (None before the controller recorded it)."""
        raise NotImplementedError

    def current_revision(self, obj: dict[str, t.Any], entries: t.Optional[list[rev.HistoryEntry]] = None) -> t.Optional[int]:
        entry = self.current_entry(obj, entries if entries is not None else self.history(obj))
        return entry.number if entry else None

    def status(self, obj: dict[str, t.Any], revision: t.Optional[int] = None,
               current: t.Optional[int] = None) -> RolloutStatus:
        """kubectl's status rule for ``obj``; ``current`` is the running revision when already known."""
        return rollout_status(self.kind, obj, revision)

    def new_pod_selector(self, obj: dict[str, t.Any], entry: t.Optional[rev.HistoryEntry]) -> t.Optional[str]:
        """Label selector of the pods of ``entry`` (the new revision), or None when unknown."""
        label = self.new_pod_label(entry)
        if label is None:
            return None
        base = rev.selector_string((obj.get("spec") or {}).get("selector"))
        return ",".join(p for p in (base, f"{label[0]}={label[1]}") if p)

    def new_pod_label(self, entry: t.Optional[rev.HistoryEntry]) -> t.Optional[tuple[str, str]]:
        """The (label, value) the controller puts on the pods of ``entry``, or None when unknown."""
        raise NotImplementedError

    def keeps_old_revision(self, obj: dict[str, t.Any], pod: dict[str, t.Any]) -> bool:
        """Whether ``pod`` is meant to stay on an older revision once the rollout is complete."""
        return False

    def owns_pod(self, obj: dict[str, t.Any], entries: list[rev.HistoryEntry], pod: dict[str, t.Any]) -> bool:
        """Whether ``pod`` was made by this workload's controller (not merely matched by its selector).

        DaemonSet and StatefulSet pods are controlled by the workload itself.
        """
        return rev.is_controlled_by(pod, str(rev.meta(obj).get("uid") or ""))


class DeploymentAdapter(WorkloadAdapter):
    kind = "Deployment"
    history_kind = "ReplicaSet"

    def entries(self, items: list[dict[str, t.Any]], uid: str) -> list[rev.HistoryEntry]:
        return rev.replica_set_entries(items, uid)

    def current_entry(self, obj: dict[str, t.Any], entries: list[rev.HistoryEntry]) -> t.Optional[rev.HistoryEntry]:
        number = deployment_revision(obj)
        template = (obj.get("spec") or {}).get("template")
        # The new ReplicaSet is the one whose template matches; before the controller observed the
        # latest spec the annotation still names the previous one.
        for entry in reversed(entries):
            if rev.templates_equal(entry.template, template) and generation_observed(obj):
                return entry
        for entry in entries:
            if entry.number == number:
                return entry
        return None

    def current_revision(self, obj: dict[str, t.Any], entries: t.Optional[list[rev.HistoryEntry]] = None) -> t.Optional[int]:
        return deployment_revision(obj)

    def status(self, obj: dict[str, t.Any], revision: t.Optional[int] = None,
               current: t.Optional[int] = None) -> RolloutStatus:
        return rollout_status(self.kind, obj, revision)

    def new_pod_label(self, entry: t.Optional[rev.HistoryEntry]) -> t.Optional[tuple[str, str]]:
        if entry is None:
            return None
        pod_hash = ((entry.raw.get("metadata") or {}).get("labels") or {}).get(rev.POD_TEMPLATE_HASH)
        return (rev.POD_TEMPLATE_HASH, pod_hash) if pod_hash else None

    def owns_pod(self, obj: dict[str, t.Any], entries: list[rev.HistoryEntry], pod: dict[str, t.Any]) -> bool:
        """Whether ``pod`` belongs to one of this Deployment's ReplicaSets.

        Another Deployment whose pods carry the same labels (a canary: the labels plus ``track=canary``) matches
        the selector too; its pods are controlled by its own ReplicaSets, whose UIDs are not in ``entries``. A
        ReplicaSet already deleted (revisionHistoryLimit 0) while its pods terminate is no entry any more: it is
        recognised by the name the controller gives it, ``<deployment>-<pod-template-hash>``.
        """
        owned = {str(rev.meta(e.raw).get("uid") or "") for e in entries} - {""}
        pod_hash = (rev.meta(pod).get("labels") or {}).get(rev.POD_TEMPLATE_HASH)
        for ref in rev.meta(pod).get("ownerReferences") or []:
            if not ref.get("controller") or ref.get("kind") != "ReplicaSet":
                continue
            if ref.get("uid") in owned:
                return True
            return bool(pod_hash) and ref.get("name") == f"{self.name}-{pod_hash}"
        return False


class _ControllerRevisionAdapter(WorkloadAdapter):
    history_kind = "ControllerRevision"

    def entries(self, items: list[dict[str, t.Any]], uid: str) -> list[rev.HistoryEntry]:
        return rev.controller_revision_entries(items, uid)

    def status(self, obj: dict[str, t.Any], revision: t.Optional[int] = None,
               current: t.Optional[int] = None) -> RolloutStatus:
        status = rollout_status(self.kind, obj, current)
        if revision is not None and current is not None and current != revision and generation_observed(obj):
            status.state = "failed"
            status.reason = "RevisionMismatch"
            status.message = f"desired revision ({revision}) is different from the running revision ({current})"
        return status

    def pod_hash(self, entry: rev.HistoryEntry) -> str:
        labels = (entry.raw.get("metadata") or {}).get("labels") or {}
        return labels.get(REVISION_HASH_LABEL) or entry.name[len(self.name) + 1:]

    def new_pod_label(self, entry: t.Optional[rev.HistoryEntry]) -> t.Optional[tuple[str, str]]:
        if entry is None:
            return None
        return (REVISION_HASH_LABEL, self.pod_label_value(entry))

    def pod_label_value(self, entry: rev.HistoryEntry) -> str:
        return self.pod_hash(entry)


class DaemonSetAdapter(_ControllerRevisionAdapter):
    kind = "DaemonSet"

    def current_entry(self, obj: dict[str, t.Any], entries: list[rev.HistoryEntry]) -> t.Optional[rev.HistoryEntry]:
        # The DaemonSet controller gives the revision matching the live template the highest number.
        template = (obj.get("spec") or {}).get("template")
        for entry in reversed(entries):
            if rev.templates_equal(entry.template, template):
                return entry
        return None


class StatefulSetAdapter(_ControllerRevisionAdapter):
    kind = "StatefulSet"

    def current_entry(self, obj: dict[str, t.Any], entries: list[rev.HistoryEntry]) -> t.Optional[rev.HistoryEntry]:
        update = (obj.get("status") or {}).get("updateRevision")
        if update and generation_observed(obj):
            for entry in entries:
                if entry.name == update:
                    return entry
        template = (obj.get("spec") or {}).get("template")
        for entry in reversed(entries):
            if rev.templates_equal(entry.template, template):
                return entry
        return None

    def pod_label_value(self, entry: rev.HistoryEntry) -> str:
        # StatefulSet pods carry the full ControllerRevision name in controller-revision-hash.
        return entry.name

    def keeps_old_revision(self, obj: dict[str, t.Any], pod: dict[str, t.Any]) -> bool:
        # A partitioned rolling update leaves the pods below the partition on the current revision.
        rolling = ((obj.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate") or {}
        try:
            partition = int(rolling.get("partition") or 0)
        except (TypeError, ValueError):
            return False
        if partition <= 0:
            return False
        name = str((pod.get("metadata") or {}).get("name") or "")
        prefix = f"{self.name}-"
        ordinal = name[len(prefix):] if name.startswith(prefix) else ""
        return ordinal.isdigit() and int(ordinal) < partition


ADAPTERS: dict[str, t.Type[WorkloadAdapter]] = {
    "Deployment": DeploymentAdapter,
    "DaemonSet": DaemonSetAdapter,
    "StatefulSet": StatefulSetAdapter,
}


def adapter_for(client: t.Any, ref: WorkloadRef) -> WorkloadAdapter:
    """The adapter for ``ref.kind``."""
    return ADAPTERS[ref.kind](client, ref)
