"""The per-kind adapters: where each kind keeps its history, which entry runs now, and which pods are its own."""
from __future__ import annotations

import copy

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.workloads import (
    DaemonSetAdapter,
    DeploymentAdapter,
    StatefulSetAdapter,
    adapter_for,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import WorkloadRef


def template(image):
    return {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": image}]}}


def owner(uid, kind="Deployment", name="web"):
    return [{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": True}]


def replica_set(number, pod_hash, image, owner_uid="uid-web", name=None):
    tpl = template(image)
    tpl["metadata"]["labels"]["pod-template-hash"] = pod_hash
    return {"metadata": {"name": name or f"web-{pod_hash}", "uid": f"uid-rs-{pod_hash}",
                         "labels": {"app": "web", "pod-template-hash": pod_hash},
                         "annotations": {"deployment.kubernetes.io/revision": str(number)},
                         "ownerReferences": owner(owner_uid)},
            "spec": {"template": tpl}, "status": {"replicas": 1}}


def controller_revision(name, number, image, owner_uid, labels=None):
    return {"metadata": {"name": name, "uid": f"uid-{name}", "labels": dict(labels or {}),
                         "ownerReferences": owner(owner_uid, "StatefulSet")},
            "revision": number, "data": {"spec": {"template": template(image)}}}


def deployment(image, revision="2", generation=3, observed=3):
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "uid-web", "generation": generation,
                         "annotations": {"deployment.kubernetes.io/revision": revision}},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template(image)},
            "status": {"observedGeneration": observed}}


class ListingClient:
    """Answers LIST with the given items, whatever the selector, and records the calls."""

    def __init__(self, items):
        self.items = items
        self.calls = []

    def list(self, kind, namespace, label_selector=None, field_selector=None):
        self.calls.append((kind, namespace, label_selector))
        return {"items": copy.deepcopy(self.items)}

    def get(self, kind, name, namespace):
        self.calls.append(("get", kind, name, namespace))
        return {"kind": kind}


def ref(kind, name="web", namespace="ns"):
    return WorkloadRef("kubernetes", name, kind, namespace)


# ------------------------------------------------------------------------------------------ adapter_for
@pytest.mark.parametrize("kind, cls, history_kind", [
    ("Deployment", DeploymentAdapter, "ReplicaSet"),
    ("DaemonSet", DaemonSetAdapter, "ControllerRevision"),
    ("StatefulSet", StatefulSetAdapter, "ControllerRevision"),
])
def test_adapter_for_picks_the_adapter_of_the_kind(kind, cls, history_kind):
    adapter = adapter_for(ListingClient([]), ref(kind))
    assert adapter.__class__ is cls and adapter.kind == kind and adapter.history_kind == history_kind


def test_a_workload_without_namespace_is_read_in_default():
    client = ListingClient([])
    adapter = adapter_for(client, WorkloadRef("kubernetes", "web", "Deployment", None))
    adapter.get()
    assert adapter.namespace == "default" and client.calls == [("get", "Deployment", "web", "default")]


# ------------------------------------------------------------------------------------------ history
def test_history_lists_by_the_selector_and_keeps_only_the_owned_entries_oldest_first():
    items = [replica_set(2, "bbb", "app:2"), replica_set(1, "aaa", "app:1"),
             replica_set(9, "ccc", "app:9", owner_uid="uid-other", name="web-canary-ccc")]
    client = ListingClient(items)
    entries = adapter_for(client, ref("Deployment")).history(deployment("app:2"))
    assert [(e.number, e.name) for e in entries] == [(1, "web-aaa"), (2, "web-bbb")]
    assert client.calls == [("ReplicaSet", "ns", "app=web")]


# ------------------------------------------------------------------------------------------ Deployment
def deployment_entries(*replica_sets):
    return DeploymentAdapter(None, ref("Deployment")).entries(list(replica_sets), "uid-web")


def test_deployment_current_entry_is_the_replica_set_with_the_live_template():
    entries = deployment_entries(replica_set(1, "aaa", "app:1"), replica_set(2, "bbb", "app:2"))
    adapter = DeploymentAdapter(None, ref("Deployment"))
    # the annotation still says 1 (say, right after a rollback), but the template is revision 2's
    assert adapter.current_entry(deployment("app:2", revision="1"), entries).name == "web-bbb"


def test_deployment_current_entry_follows_the_annotation_until_the_spec_is_observed():
    entries = deployment_entries(replica_set(1, "aaa", "app:1"), replica_set(2, "bbb", "app:2"))
    adapter = DeploymentAdapter(None, ref("Deployment"))
    not_observed = deployment("app:2", revision="1", generation=4, observed=3)
    assert adapter.current_entry(not_observed, entries).name == "web-aaa"
    assert adapter.current_entry(deployment("app:3", revision="7"), entries) is None
    assert adapter.current_revision(not_observed, entries) == 1  # the annotation, whatever the entries


def test_deployment_new_pod_label_is_the_replica_sets_pod_template_hash():
    adapter = DeploymentAdapter(None, ref("Deployment"))
    [entry] = deployment_entries(replica_set(2, "bbb", "app:2"))
    assert adapter.new_pod_label(entry) == ("pod-template-hash", "bbb")
    assert adapter.new_pod_label(None) is None
    unlabelled = copy.deepcopy(entry.raw)
    del unlabelled["metadata"]["labels"]["pod-template-hash"]
    assert adapter.new_pod_label(entry._replace(raw=unlabelled)) is None
    assert adapter.new_pod_selector(deployment("app:2"), entry) == "app=web,pod-template-hash=bbb"
    assert adapter.new_pod_selector(deployment("app:2"), None) is None


def pod(name, pod_hash, refs):
    return {"metadata": {"name": name, "labels": {"app": "web", "pod-template-hash": pod_hash},
                         "ownerReferences": refs}}


def rs_ref(name, uid, controller=True):
    return [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": uid, "controller": controller}]


def test_deployment_owns_the_pods_of_its_replica_sets_and_not_a_canarys():
    adapter = DeploymentAdapter(None, ref("Deployment"))
    entries = deployment_entries(replica_set(1, "aaa", "app:1"), replica_set(2, "bbb", "app:2"))
    obj = deployment("app:2")
    assert adapter.owns_pod(obj, entries, pod("web-aaa-1", "aaa", rs_ref("web-aaa", "uid-rs-aaa")))
    # a canary Deployment's pod: same labels, its own ReplicaSet
    assert not adapter.owns_pod(obj, entries, pod("web-canary-c-1", "c", rs_ref("web-canary-c", "uid-rs-c")))
    # a ReplicaSet already deleted (revisionHistoryLimit 0): known by the name the controller gives it
    assert adapter.owns_pod(obj, entries, pod("web-zzz-1", "zzz", rs_ref("web-zzz", "uid-gone")))
    assert not adapter.owns_pod(obj, entries, pod("web-zzz-2", "zzz", rs_ref("web-zzz", "uid-gone", False)))
    assert not adapter.owns_pod(obj, entries, pod("web-x", "aaa", []))
    job = [{"apiVersion": "batch/v1", "kind": "Job", "name": "web-aaa", "uid": "uid-rs-aaa", "controller": True}]
    assert not adapter.owns_pod(obj, entries, pod("web-job", "aaa", job))


# ------------------------------------------------------------------------------------------ StatefulSet
def statefulset(image, update="db-new", partition=None, generation=2, observed=2):
    spec = {"selector": {"matchLabels": {"app": "db"}}, "template": template(image)}
    if partition is not None:
        spec["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
    return {"metadata": {"name": "db", "namespace": "ns", "uid": "uid-db", "generation": generation},
            "spec": spec, "status": {"observedGeneration": observed, "updateRevision": update}}


def sts_entries(adapter):
    return adapter.entries([controller_revision("db-old", 1, "app:1", "uid-db"),
                            controller_revision("db-new", 2, "app:2", "uid-db"),
                            controller_revision("db2-x", 5, "app:2", "uid-db2")], "uid-db")


def test_statefulset_current_entry_is_the_update_revision_once_observed():
    adapter = StatefulSetAdapter(None, ref("StatefulSet", "db"))
    entries = sts_entries(adapter)
    assert [e.name for e in entries] == ["db-old", "db-new"]
    assert adapter.current_entry(statefulset("app:2"), entries).name == "db-new"
    # not observed yet: the entry whose template matches the live one
    assert adapter.current_entry(statefulset("app:1", generation=3), entries).name == "db-old"
    assert adapter.current_entry(statefulset("app:3", update="db-gone"), entries) is None
    assert adapter.current_revision(statefulset("app:2"), entries) == 2


def test_statefulset_pods_carry_the_full_revision_name():
    adapter = StatefulSetAdapter(None, ref("StatefulSet", "db"))
    entry = sts_entries(adapter)[1]
    assert adapter.new_pod_label(entry) == ("controller-revision-hash", "db-new")
    assert adapter.new_pod_selector(statefulset("app:2"), entry) == "app=db,controller-revision-hash=db-new"


@pytest.mark.parametrize("partition, name, kept", [
    (2, "db-0", True), (2, "db-1", True), (2, "db-2", False), (2, "db-10", False),
    (0, "db-0", False), (None, "db-0", False), ("x", "db-0", False),
    (2, "dbx-0", False), (2, "db-a", False), (2, "other-0", False),
])
def test_statefulset_keeps_old_revision_below_the_partition_only(partition, name, kept):
    adapter = StatefulSetAdapter(None, ref("StatefulSet", "db"))
    assert adapter.keeps_old_revision(statefulset("app:2", partition=partition), {"metadata": {"name": name}}) is kept


def test_statefulset_owns_only_the_pods_it_controls():
    adapter = StatefulSetAdapter(None, ref("StatefulSet", "db"))
    obj = statefulset("app:2")
    assert adapter.owns_pod(obj, [], {"metadata": {"name": "db-0", "ownerReferences": owner("uid-db", "StatefulSet")}})
    assert not adapter.owns_pod(obj, [], {"metadata": {"name": "db-0",
                                                       "ownerReferences": owner("uid-db2", "StatefulSet", "db2")}})
    assert not adapter.owns_pod(obj, [], {"metadata": {"name": "db-0"}})


def test_a_failed_revision_check_only_once_the_spec_is_observed():
    adapter = StatefulSetAdapter(None, ref("StatefulSet", "db"))
    status = adapter.status(statefulset("app:2"), revision=1, current=2)
    assert status.state == "failed" and status.reason == "RevisionMismatch"
    assert "desired revision (1) is different from the running revision (2)" in status.message
    assert adapter.status(statefulset("app:2", generation=3), revision=1, current=2).reason != "RevisionMismatch"
    assert adapter.status(statefulset("app:2"), revision=2, current=2).reason != "RevisionMismatch"


# ------------------------------------------------------------------------------------------ DaemonSet
def test_daemonset_current_entry_is_the_newest_with_the_live_template_and_its_label_the_hash():
    adapter = DaemonSetAdapter(None, ref("DaemonSet", "ds"))
    entries = adapter.entries([
        controller_revision("ds-5d8f7c", 1, "app:1", "uid-ds", {"controller-revision-hash": "5d8f7c"}),
        controller_revision("ds-7b9c4d", 2, "app:2", "uid-ds"),
        controller_revision("ds-6e6e6e", 3, "app:1", "uid-ds", {"controller-revision-hash": "6e6e6e"}),
    ], "uid-ds")
    live = {"metadata": {"name": "ds", "uid": "uid-ds"}, "spec": {"template": template("app:1")}}
    current = adapter.current_entry(live, entries)
    assert current.number == 3
    # DaemonSet pods carry the hash label of the revision; without the label, the name's suffix
    assert adapter.new_pod_label(current) == ("controller-revision-hash", "6e6e6e")
    assert adapter.new_pod_label(entries[1]) == ("controller-revision-hash", "7b9c4d")
    assert adapter.current_entry({"spec": {"template": template("app:9")}}, entries) is None
