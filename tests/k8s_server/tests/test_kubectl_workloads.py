"""kubectl against StatefulSets (ordered update, partition) and DaemonSets (rollout, history, undo)."""
from __future__ import annotations

import json
import re

import pytest

from tests.k8s_server import manifests as m

pytestmark = pytest.mark.k8s
V1, V2 = f"{m.DEMO_IMAGE}:1.0", f"{m.DEMO_IMAGE}:2.0"


def _pod_images(kubectl, selector: str) -> dict[str, str]:
    pods = json.loads(kubectl("get", "pods", "-l", selector, "-o", "json").stdout)["items"]
    return {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in pods
            if not p["metadata"].get("deletionTimestamp")}


def test_statefulset_partition_and_ordered_update(kubectl, k8s_cluster):
    kubectl.apply(m.statefulset("db", V1, replicas=3, partition=2))
    status = kubectl.lines("rollout", "status", "statefulset/db", "--timeout=60s")
    assert all(re.fullmatch(r"Waiting for [1-3] pods to be ready\.\.\.", line) for line in status[:-1])
    assert status[-1] == "partitioned roll out complete: 3 new pods have been updated..."
    kubectl("set", "image", "statefulset/db", f"app={V2}")
    status = kubectl.lines("rollout", "status", "statefulset/db", "--timeout=60s")
    assert status[-1] == "partitioned roll out complete: 1 new pods have been updated..."
    assert _pod_images(kubectl, "app=db") == {"db-0": V1, "db-1": V1, "db-2": V2}
    sts = json.loads(kubectl("get", "statefulset", "db", "-o", "json").stdout)
    assert sts["status"]["currentRevision"] != sts["status"]["updateRevision"]
    assert sts["status"]["updatedReplicas"] == 1 and sts["status"]["currentReplicas"] == 2
    # lowering the partition rolls the rest, highest ordinal first
    api = k8s_cluster.api_client()
    from kubernetes import client, watch  # noqa: PLC0415
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    deleted: list[str] = []
    try:
        rv = core.list_namespaced_pod(kubectl.namespace).metadata.resource_version
        apps.patch_namespaced_stateful_set("db", kubectl.namespace,
                                           {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_pod, kubectl.namespace, resource_version=rv, timeout_seconds=30):
            if ev["type"] == "DELETED":
                deleted.append(ev["object"].metadata.name)
            if len(deleted) == 2:
                w.stop()
    finally:
        api.close()
    assert deleted == ["db-1", "db-0"]
    kubectl("rollout", "status", "statefulset/db", "--timeout=60s")
    kubectl.wait_for(lambda: _pod_images(kubectl, "app=db") == {"db-0": V2, "db-1": V2, "db-2": V2},
                     what="every pod on the new image")
    history = kubectl.lines("rollout", "history", "statefulset/db")
    assert history == ["statefulset.apps/db", "REVISION  CHANGE-CAUSE", "1         <none>", "2         <none>"]
    cur = json.loads(kubectl("get", "statefulset", "db", "-o", "json").stdout)["status"]
    kubectl.wait_for(lambda: json.loads(kubectl("get", "statefulset", "db", "-o", "json").stdout)["status"]
                     .get("currentRevision") == cur["updateRevision"], what="currentRevision to catch up")


def test_daemonset_rollout_history_and_undo(kubectl, k8s_cluster):
    kubectl.apply(m.daemonset("agent", V1, max_unavailable=1))
    status = kubectl.lines("rollout", "status", "daemonset/agent", "--timeout=60s")
    assert status[-1] == 'daemon set "agent" successfully rolled out'
    nodes = 3 if not k8s_cluster.real else None
    if nodes:
        assert len(_pod_images(kubectl, "app=agent")) == nodes
    kubectl("set", "image", "daemonset/agent", f"app={V2}")
    status = kubectl.lines("rollout", "status", "daemonset/agent", "--timeout=60s")
    assert status[-1] == 'daemon set "agent" successfully rolled out'
    if nodes:
        # how many steps kubectl sees depends on when it starts, but every line it prints on the way is one of
        # kubectl's two DaemonSet progress messages, with counts below the 3 nodes
        waiting = status[:-1]
        assert waiting, status
        for line in waiting:
            assert re.fullmatch(r'Waiting for daemon set "agent" rollout to finish: ([0-2] out of 3 new pods have '
                                r'been updated|[0-2] of 3 updated pods are available)\.\.\.', line), line
    assert set(_pod_images(kubectl, "app=agent").values()) == {V2}
    assert kubectl.lines("rollout", "history", "daemonset/agent") == [
        "daemonset.apps/agent", "REVISION  CHANGE-CAUSE", "1         <none>", "2         <none>"]
    assert kubectl.lines("rollout", "undo", "daemonset/agent") == ["daemonset.apps/agent rolled back"]
    kubectl("rollout", "status", "daemonset/agent", "--timeout=60s")
    kubectl.wait_for(lambda: set(_pod_images(kubectl, "app=agent").values()) == {V1}, what="pods back on 1.0")
    # the rolled-back revision is renumbered: history {1,2} -> {2,3}
    assert kubectl.lines("rollout", "history", "daemonset/agent")[2:] == ["2         <none>", "3         <none>"]
    revs = json.loads(kubectl("get", "controllerrevisions", "-o", "json").stdout)["items"]
    by_rev = {r["revision"]: r["data"]["spec"]["template"]["spec"]["containers"][0]["image"] for r in revs}
    assert by_rev == {2: V2, 3: V1}


def test_daemonset_max_unavailable_bounds_the_rollout(kubectl, k8s_cluster):
    if k8s_cluster.real:
        pytest.skip("counts the fake nodes of the test server")
    kubectl.apply(m.daemonset("agent", V1, max_unavailable=1))
    kubectl("rollout", "status", "daemonset/agent", "--timeout=60s")
    kubectl("set", "image", "daemonset/agent", f"app={m.DEMO_IMAGE}:broken")
    kubectl.wait_for(lambda: len([i for i in _pod_images(kubectl, "app=agent").values() if i.endswith("broken")]) == 1,
                     what="one broken pod")
    proc = kubectl("rollout", "status", "daemonset/agent", "--timeout=2s", ok=False)
    assert proc.returncode == 1
    assert 'Waiting for daemon set "agent" rollout to finish: 0 of 3 updated pods are available...' in proc.stdout \
        or 'Waiting for daemon set "agent" rollout to finish: 1 out of 3 new pods have been updated...' in proc.stdout
    # maxUnavailable 1: the broken pod is never available, so no second node is touched
    images = list(_pod_images(kubectl, "app=agent").values())
    assert images.count(V1) == 2
