"""wait_old_pods_gone through ansible-playbook: the modules return only once no pod of an older revision is
left, terminating ones included; without it, they return as soon as kubectl's completion rule holds.

The pods' terminationGracePeriodSeconds makes a deleted pod stay (terminating, with a deletionTimestamp) for
that long, on the test server as on a real cluster whose app ignores SIGTERM.
"""
from __future__ import annotations

import pytest

from tests.k8s_server import manifests as m

pytestmark = pytest.mark.k8s
V1, V2 = f"{m.DEMO_IMAGE}:1.0", f"{m.DEMO_IMAGE}:2.0"
# long enough to outlive the playbook's own end after the module returned, on a busy machine too: with 8 s, a DaemonSet's
# last old pod was gone before the test could list it while make test's two streams ran (a pod that outlives it would
# need a finalizer, which the test server does not implement)
GRACE = 15


@pytest.fixture
def core(k8s_cluster):
    kubernetes = pytest.importorskip("kubernetes")
    api = k8s_cluster.api_client()
    yield kubernetes.client.CoreV1Api(api)
    api.close()


def other_pods(core, namespace, app, image):
    """(name, terminating) of every pod of ``app`` that does not run ``image``, terminating or not."""
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return sorted((p.metadata.name, p.metadata.deletion_timestamp is not None) for p in pods
                  if p.spec.containers[0].image != image)


def workload(kind, image, grace):
    if kind == "Deployment":
        return m.deployment("web", image, replicas=2, max_surge=1, max_unavailable=0, grace=grace)
    return m.daemonset("web", image, grace=grace)


@pytest.mark.parametrize("kind", ["Deployment", "DaemonSet"])
def test_returns_only_after_the_old_pods_are_gone(kubectl, play, core, k8s_namespace, kind):
    kubectl.apply(workload(kind, V1, GRACE))
    kubectl("rollout", "status", f"{kind.lower()}/web", "--timeout=60s")
    args = {"name": "web", "kind": kind, "wait_timeout": 60}

    [up] = play(("image_upgrade", dict(args, image=V2)))
    left = other_pods(core, k8s_namespace, "web", V2)
    assert not up.get("failed") and up["status"]["done"], up.get("msg")
    assert "old_pods_gone" not in up["status"]
    # kubectl's rule held while old pods were still in their grace period: the default returned anyway
    assert left and all(terminating for dummy, terminating in left), left

    [wait] = play(("rollout_wait", {"name": "web", "kind": kind, "timeout": 60, "wait_old_pods_gone": True}))
    assert not wait.get("failed") and wait["status"]["old_pods_gone"] is True, wait.get("msg")
    assert other_pods(core, k8s_namespace, "web", V2) == []

    [back] = play(("rollback", dict(args, wait_old_pods_gone=True)))
    left = other_pods(core, k8s_namespace, "web", V1)
    assert not back.get("failed"), back.get("msg")
    assert back["status"]["done"] and back["status"]["old_pods_gone"] is True
    assert left == [], left
    waited = [p for p in back["progress"] if "old pods to be gone" in p["message"]]
    assert waited and "(terminating)" in waited[0]["message"], back["progress"]


def test_statefulset_waits_for_its_old_pods_and_respects_the_partition(kubectl, play, core, k8s_namespace):
    sts = m.statefulset("db", V1, replicas=3, grace=1)
    kubectl.apply(sts)
    kubectl("rollout", "status", "statefulset/db", "--timeout=60s")
    [up] = play(("image_upgrade", {"name": "db", "kind": "StatefulSet", "image": V2, "wait_timeout": 90,
                                   "wait_old_pods_gone": True}))
    assert not up.get("failed") and up["status"]["old_pods_gone"] is True, up.get("msg")
    assert other_pods(core, k8s_namespace, "db", V2) == []

    # partition 1: db-0 stays on the old revision on purpose, so it is not waited for
    kubectl("patch", "statefulset", "db", "--type=merge", "-p",
            '{"spec": {"updateStrategy": {"rollingUpdate": {"partition": 1}}}}')
    [down] = play(("image_upgrade", {"name": "db", "kind": "StatefulSet", "image": V1, "wait_timeout": 60,
                                     "wait_old_pods_gone": True}))
    assert not down.get("failed") and down["status"]["old_pods_gone"] is True, down.get("msg")
    assert other_pods(core, k8s_namespace, "db", V1) == [("db-0", False)]


def test_timeout_names_the_old_pods_still_terminating(kubectl, play, core, k8s_namespace):
    kubectl.apply(m.deployment("web", V1, replicas=1, max_surge=1, max_unavailable=0, grace=30))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    [old] = [name for name, dummy in other_pods(core, k8s_namespace, "web", V2)]
    [up] = play(("image_upgrade", {"name": "web", "image": V2, "wait_timeout": 4, "wait_old_pods_gone": True}))
    assert up.get("failed") and up["changed"] is True
    assert "waiting for the old pods of" in up["msg"] and f"{old} (terminating)" in up["msg"], up["msg"]
    assert up["old_pods"] == [old] and up["status"]["done"] is True and up["status"]["old_pods_gone"] is False
    assert other_pods(core, k8s_namespace, "web", V2) == [(old, True)]
