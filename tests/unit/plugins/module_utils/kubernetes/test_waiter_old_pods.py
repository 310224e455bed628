"""The opt-in wait until the old pods are gone (wait_old_pods_gone), over a scripted API."""
from __future__ import annotations

import copy

import pytest
from kubernetes.client.exceptions import ApiException

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.waiter import RolloutWaiter
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.workloads import (
    DeploymentAdapter,
    StatefulSetAdapter,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import WaitTimeout, WorkloadRef
from fake_clock import FakeClock

TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "app:2"}]}}


def complete_deployment():
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-web", "generation": 2, "resourceVersion": "20",
                     "annotations": {"deployment.kubernetes.io/revision": "2"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": copy.deepcopy(TEMPLATE)},
        "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
                   "availableReplicas": 1},
    }


def complete_statefulset(partition=0, replicas=3):
    return {
        "metadata": {"name": "db", "namespace": "ns", "uid": "uid-db", "generation": 2, "resourceVersion": "20"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "db"}}, "template": copy.deepcopy(TEMPLATE),
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}},
        "status": {"observedGeneration": 2, "replicas": replicas, "updatedReplicas": replicas - partition,
                   "readyReplicas": replicas, "availableReplicas": replicas, "currentRevision": "db-old",
                   "updateRevision": "db-new"},
    }


def rs_ref(name, uid):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": uid, "controller": True}


def pod(name, hash_value, terminating=False, rv="1", label="pod-template-hash", owner=None):
    """A pod; by default controlled by the ReplicaSet of web (or, for controller-revision-hash, the StatefulSet db)."""
    meta = {"name": name, "resourceVersion": rv, "labels": {"app": "web"}}
    if hash_value is not None:
        meta["labels"][label] = hash_value
    if owner is None and hash_value is not None:
        owner = (rs_ref(f"web-{hash_value}", f"uid-rs-{hash_value}") if label == "pod-template-hash" else
                 {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "uid-db", "controller": True})
    if owner:
        meta["ownerReferences"] = [owner]
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T12:00:30Z"
    return {"metadata": meta, "spec": {"containers": [{"name": "app"}]}, "status": {}}


class Fails:
    """A watch segment that fails when opened."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


class PodScript:
    """A workload that is already complete; pods are listed and watched from a script.

    ``lists`` are the successive LIST answers (items, resourceVersion); ``segments`` the successive pod watch
    segments, each a list of events, or Fails(exception) for a watch that fails when it opens.
    """

    def __init__(self, workload, lists, segments=()):
        self.clock = FakeClock()
        self.workload = workload
        self.lists = list(lists)
        self.segments = list(segments)
        self.calls = []

    def get(self, kind, name, namespace):
        self.calls.append(("get", kind))
        return copy.deepcopy(self.workload)

    def list(self, kind, namespace, label_selector=None, field_selector=None):
        self.calls.append(("list", kind, label_selector))
        if kind == "ReplicaSet":
            return {"items": [
                {"metadata": {"name": f"web-{h}", "uid": f"uid-rs-{h}",
                              "labels": {"app": "web", "pod-template-hash": h},
                              "annotations": {"deployment.kubernetes.io/revision": str(n)},
                              "ownerReferences": [{"uid": "uid-web", "controller": True}]},
                 "spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": h}},
                                       "spec": {"containers": [{"name": "app", "image": f"app:{n}"}]}}}}
                for n, h in ((1, "old"), (2, "new"))]}
        if kind == "ControllerRevision":
            return {"items": [
                {"metadata": {"name": f"db-{h}", "labels": {"controller-revision-hash": f"db-{h}"},
                              "ownerReferences": [{"uid": "uid-db", "controller": True}]},
                 "revision": n, "data": {"spec": {"template": {
                     "metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "app", "image": f"app:{n}"}]}}}}}
                for n, h in ((1, "old"), (2, "new"))]}
        if kind == "Pod":
            items, rv = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
            return {"metadata": {"resourceVersion": rv}, "items": copy.deepcopy(items)}
        return {"items": []}

    def watch(self, kind, namespace, name, resource_version, timeout_seconds, quiet_timeout=None,
              label_selector=None):
        self.calls.append(("watch", kind, name, resource_version, label_selector))
        segment = self.segments.pop(0) if self.segments else []
        if isinstance(segment, Fails):
            raise segment.exc
        if not segment:  # nothing arrives: the read times out (as the quiet timeout would)
            self.clock.sleep(quiet_timeout or timeout_seconds)
        for etype, obj in segment:
            yield etype, copy.deepcopy(obj)


def make(client, adapter_cls=DeploymentAdapter, name="web", kind="Deployment", enabled=True):
    adapter = adapter_cls(client, WorkloadRef("kubernetes", name, kind, "ns"))
    return RolloutWaiter(adapter, 10, clock=client.clock, sleep=client.clock.sleep, wait_old_pods_gone=enabled)


def pod_calls(client):
    return [c for c in client.calls if c[1] in ("Pod", "ReplicaSet")]


def test_off_by_default_costs_no_request_on_pods():
    client = PodScript(complete_deployment(), [([pod("web-old-a", "old", terminating=True)], "30")])
    status = make(client, enabled=False).wait(60, initial=complete_deployment())
    assert status.done and "old_pods_gone" not in status.to_dict()
    assert client.calls == []  # started from the caller's object: not one request


def test_returns_only_once_the_terminating_old_pod_is_deleted():
    old = pod("web-old-a", "old", terminating=True, rv="30")
    client = PodScript(complete_deployment(), [([pod("web-new-a", "new"), old], "31")], segments=[[
        ("MODIFIED", pod("web-new-a", "new", rv="32")),
        ("DELETED", pod("web-old-a", "old", terminating=True, rv="33")),
    ]])
    seen = []
    status = make(client).wait(60, initial=complete_deployment(), progress=lambda s: seen.append(s.message))
    assert status.done and status.to_dict()["old_pods_gone"] is True
    assert status.message == 'deployment "web" successfully rolled out'
    assert seen[-1] == ('Waiting for deployment "web" old pods to be gone: 1 of an older revision still present '
                        "(web-old-a (terminating))...")
    # one LIST of the workload's pods, then a watch on the same selector from that LIST's resourceVersion
    assert ("list", "Pod", "app=web") in client.calls
    assert [c for c in client.calls if c[0] == "watch"] == [("watch", "Pod", None, "31", "app=web")]


def test_no_old_pod_costs_one_list_and_no_watch():
    client = PodScript(complete_deployment(), [([pod("web-new-a", "new"), pod("stray", None)], "31")])
    status = make(client).wait(60, initial=complete_deployment())
    assert status.to_dict()["old_pods_gone"] is True
    assert [c for c in client.calls if c[:2] == ("list", "Pod")] == [("list", "Pod", "app=web")]
    assert not [c for c in client.calls if c[0] == "watch"]


def test_an_old_pod_not_yet_terminating_counts_too():
    running_old = pod("web-old-b", "old", rv="30")
    client = PodScript(complete_deployment(), [([running_old], "31")], segments=[[
        ("MODIFIED", pod("web-old-b", "old", terminating=True, rv="32")),
        ("DELETED", pod("web-old-b", "old", terminating=True, rv="33")),
    ]])
    seen = []
    status = make(client).wait(60, initial=complete_deployment(), progress=lambda s: seen.append(s.message))
    assert status.to_dict()["old_pods_gone"] is True
    assert any("(web-old-b)" in m for m in seen) and any("web-old-b (terminating)" in m for m in seen)


def test_timeout_names_the_pods_still_present():
    client = PodScript(complete_deployment(), [([pod("web-old-a", "old", terminating=True),
                                                 pod("web-old-b", "old")], "31")])
    with pytest.raises(WaitTimeout) as err:
        make(client).wait(10, initial=complete_deployment())
    assert "timed out after 10s waiting for the old pods of" in err.value.msg
    assert "the rollout itself is complete" in err.value.msg
    assert "web-old-a (terminating), web-old-b" in err.value.msg
    assert err.value.details["old_pods"] == ["web-old-a", "web-old-b"]
    assert err.value.details["status"]["old_pods_gone"] is False
    assert 10 <= client.clock.now <= 12  # the deadline is the rollout's, not a fresh one
    assert len([c for c in client.calls if c[0] == "watch"]) <= 3


def test_watch_failure_falls_back_to_polling_once_a_second():
    old = pod("web-old-a", "old", terminating=True)
    lists = [([old], "31")] * 4 + [([], "40")]
    client = PodScript(complete_deployment(), lists, segments=[Fails(ApiException(status=500, reason="boom"))])
    waiter = make(client)
    status = waiter.wait(60, initial=complete_deployment())
    assert status.to_dict()["old_pods_gone"] is True
    assert waiter.polling and "pod watch failed (500" in waiter.watch_error
    assert len([c for c in client.calls if c[:2] == ("list", "Pod")]) == 5
    assert 3 <= client.clock.now <= 5  # about one LIST per second


def test_expired_resource_version_lists_again_and_watches_from_there():
    old = pod("web-old-a", "old", terminating=True)
    client = PodScript(complete_deployment(), [([old], "31"), ([old], "50")], segments=[
        Fails(ApiException(status=410, reason="Expired")),
        [("DELETED", pod("web-old-a", "old", terminating=True, rv="51"))],
    ])
    waiter = make(client)
    status = waiter.wait(60, initial=complete_deployment())
    assert status.to_dict()["old_pods_gone"] is True and not waiter.polling
    assert [c[3] for c in client.calls if c[0] == "watch"] == ["31", "50"]


def sts_pod(ordinal, revision, terminating=False):
    p = pod(f"db-{ordinal}", revision, terminating=terminating, label="controller-revision-hash")
    p["metadata"]["labels"]["app"] = "db"
    return p


def test_statefulset_compares_the_update_revision_and_ignores_pods_below_the_partition():
    obj = complete_statefulset(partition=1)
    pods = [sts_pod(0, "db-old"), sts_pod(1, "db-new"), sts_pod(2, "db-new"), sts_pod(3, "db-old", terminating=True)]
    client = PodScript(obj, [(pods, "31")], segments=[[("DELETED", sts_pod(3, "db-old", terminating=True))]])
    seen = []
    waiter = make(client, StatefulSetAdapter, "db", "StatefulSet")
    status = waiter.wait(60, initial=obj, progress=lambda s: seen.append(s.message))
    assert status.to_dict()["old_pods_gone"] is True
    # db-3 (old, above the partition) was waited for; db-0 (kept on the old revision on purpose) was not
    assert any("1 of an older revision still present (db-3 (terminating))" in m for m in seen)
    assert [c[4] for c in client.calls if c[0] == "watch"] == ["app=db"]


def test_statefulset_without_partition_waits_for_every_old_pod():
    obj = complete_statefulset(partition=0)
    client = PodScript(obj, [([sts_pod(0, "db-old", terminating=True)], "31")])
    with pytest.raises(WaitTimeout, match=r"1 still present: db-0 \(terminating\)"):
        make(client, StatefulSetAdapter, "db", "StatefulSet").wait(3, initial=obj)


def canary_pod(name, terminating=False, rv="1"):
    """A pod of the canary Deployment web-canary: web's labels plus track=canary, its own ReplicaSet and hash."""
    p = pod(name, "cn", terminating=terminating, rv=rv, owner=rs_ref("web-canary-cn", "uid-rs-canary"))
    p["metadata"]["labels"]["track"] = "canary"
    return p


def test_a_live_canary_pods_are_not_old_pods_of_the_workload():
    # the canary's pods match web's selector and carry another pod-template-hash, but belong to web-canary
    client = PodScript(complete_deployment(), [([pod("web-new-a", "new"), canary_pod("web-canary-cn-x")], "31")])
    status = make(client).wait(5, initial=complete_deployment())
    assert status.to_dict()["old_pods_gone"] is True
    assert not [c for c in client.calls if c[0] == "watch"]


def test_an_old_pod_is_waited_for_while_a_canary_runs_beside_it():
    old = pod("web-old-a", "old", terminating=True, rv="30")
    client = PodScript(complete_deployment(), [([canary_pod("web-canary-cn-x"), old], "31")], segments=[[
        ("ADDED", canary_pod("web-canary-cn-y", rv="32")),
        ("DELETED", pod("web-old-a", "old", terminating=True, rv="33")),
    ]])
    seen = []
    status = make(client).wait(60, initial=complete_deployment(), progress=lambda s: seen.append(s.message))
    assert status.to_dict()["old_pods_gone"] is True
    assert "1 of an older revision still present (web-old-a (terminating))" in seen[-1]
    assert not any("canary" in m for m in seen)


def test_a_pod_of_an_already_deleted_replica_set_of_the_workload_still_counts():
    # revisionHistoryLimit 0: the old ReplicaSet is gone from the history while its pod terminates
    gone = pod("web-gone-a", "gone", terminating=True, owner=rs_ref("web-gone", "uid-rs-deleted"))
    client = PodScript(complete_deployment(), [([gone], "31")])
    with pytest.raises(WaitTimeout, match=r"1 still present: web-gone-a \(terminating\)"):
        make(client).wait(3, initial=complete_deployment())


def test_a_pod_of_another_controller_or_of_none_is_not_waited_for():
    orphan = pod("web-orphan", "old", owner={})
    job = pod("web-job", "old", owner={"apiVersion": "batch/v1", "kind": "Job", "name": "web", "uid": "uid-job",
                                       "controller": True})
    client = PodScript(complete_deployment(), [([orphan, job], "31")])
    assert make(client).wait(3, initial=complete_deployment()).to_dict()["old_pods_gone"] is True


def test_statefulset_counts_only_the_pods_it_controls():
    obj = complete_statefulset(partition=0)
    foreign = sts_pod(7, "db-old", terminating=True)
    foreign["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db2",
                                               "uid": "uid-db2", "controller": True}]
    client = PodScript(obj, [([foreign, sts_pod(0, "db-new")], "31")])
    waiter = make(client, StatefulSetAdapter, "db", "StatefulSet")
    assert waiter.wait(3, initial=obj).to_dict()["old_pods_gone"] is True
