"""The upgrade and rollback roles on Kubernetes (test API server), under recorded traffic through the Service."""
from __future__ import annotations

import json

import pytest

from tests.support.roles_harness import recording, run_role
from tests.k8s_server import manifests as m
from tests.k8s_server.testing import Kubectl

pytestmark = pytest.mark.k8s
V1, V2, BROKEN = f"{m.DEMO_IMAGE}:1.0", f"{m.DEMO_IMAGE}:2.0", f"{m.DEMO_IMAGE}:broken"


@pytest.fixture
def web(k8s_cluster, k8s_namespace):
    """A 3-replica Deployment 'web' of 1.0 behind Service 'web'; returns (kubectl, service URL, role vars)."""
    if k8s_cluster.real:
        pytest.skip("the timings below assume the test API server")
    kubectl = Kubectl(k8s_cluster, k8s_namespace)
    kubectl.apply(m.deployment("web", V1, replicas=3, max_surge=1, max_unavailable=0), m.service("web"))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    url = k8s_cluster.service_url("web", namespace=k8s_namespace) + "/version"
    conn = {"upgrade_platform": "kubernetes", "upgrade_workload": "web", "upgrade_namespace": k8s_namespace,
            "upgrade_kubeconfig": k8s_cluster.kubeconfig, "upgrade_context": k8s_cluster.context,
            "upgrade_traffic_url": url, "upgrade_gate_requests": 60}
    return kubectl, url, conn


def images(kubectl) -> list[str]:
    obj = json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)
    return [c["image"] for c in obj["spec"]["template"]["spec"]["containers"]]


def deployments(kubectl) -> list[str]:
    return kubectl("get", "deployments", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()


def assert_no_failed_requests(timeline) -> None:
    summary = timeline["summary"]
    assert summary["total"] >= 50, summary
    assert summary["errors"] == 0, (summary["error_kinds"], summary["error_examples"])


def test_canary_then_upgrade_then_rollback_role(web, tmp_path):
    kubectl, url, conn = web
    with recording(url) as timeline:
        run = run_role(tmp_path, "zerodown.rollout.upgrade", {
            **conn, "upgrade_image": V2, "upgrade_canary": True, "upgrade_canary_replicas": 1,
            "upgrade_change_cause": "release 2.0"})
    assert run.rc == 0, run.output[-6000:]
    rec = run.records
    assert rec["ok"] is True and rec["rolled_back"] is False
    assert (rec["previous_revision"], rec["revision"]) == (1, 2)
    assert rec["images_before"] == {"app": V1} and rec["images_after"] == {"app": V2}
    # the canary ran and took traffic: the canary gate saw 2.0 next to 1.0, and it is gone afterwards
    assert "Traffic gate 'canary' passed" in run.output
    canary_line = next(line for line in run.output.splitlines() if "Traffic gate 'canary' passed" in line)
    assert "'1.0'" in canary_line and "'2.0'" in canary_line
    assert "web-canary" not in deployments(kubectl)
    assert images(kubectl) == [V2]
    assert_no_failed_requests(timeline)
    # artifacts for a workflow's next node
    assert '"zerodown_previous_revision": 1' in run.output and '"zerodown_new_revision": 2' in run.output

    with recording(url) as timeline:
        back = run_role(tmp_path, "zerodown.rollout.rollback", {
            "rollback_platform": "kubernetes", "rollback_workload": "web", "rollback_namespace": conn["upgrade_namespace"],
            "rollback_kubeconfig": conn["upgrade_kubeconfig"], "rollback_context": conn["upgrade_context"],
            "rollback_to_revision": rec["previous_revision"], "rollback_traffic_url": url,
            "rollback_expect_version": "1.0", "rollback_gate_requests": 40})
    assert back.rc == 0, back.output[-6000:]
    assert back.records["changed"] is True and back.records["revision_before"] == 2
    assert images(kubectl) == [V1]
    assert_no_failed_requests(timeline)


def test_broken_canary_is_removed_and_nothing_else_changes(web, tmp_path):
    kubectl, url, conn = web
    with recording(url) as timeline:
        run = run_role(tmp_path, "zerodown.rollout.upgrade", {
            **conn, "upgrade_image": BROKEN, "upgrade_canary": True, "upgrade_canary_timeout": 60})
    assert run.rc != 0
    rec = run.records
    assert rec, run.output[-6000:]
    assert rec["ok"] is False and "Wait for the canary" in rec["failure"]
    assert "Upgrade of web to zerodown/demo-app:broken failed at Wait for the canary" in run.output
    assert "web-canary" not in deployments(kubectl)
    assert images(kubectl) == [V1]
    revisions = kubectl("get", "deployment", "web", "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}").stdout
    assert revisions == "1"
    assert_no_failed_requests(timeline)


def test_broken_upgrade_rolls_back_automatically(web, tmp_path):
    kubectl, url, conn = web
    with recording(url) as timeline:
        run = run_role(tmp_path, "zerodown.rollout.upgrade", {**conn, "upgrade_image": BROKEN})
    assert run.rc != 0
    rec = run.records
    assert rec, run.output[-6000:]
    assert rec["ok"] is False and rec["rolled_back"] is True, rec
    assert "Upgrade to the new image" in rec["failure"] and "ReadinessProbeFailing" in rec["failure"]
    assert rec["previous_revision"] == 1 and rec["traffic_after_rollback"] == "pass"
    assert "Rolled back to revision 1" in run.output
    assert images(kubectl) == [V1]
    assert_no_failed_requests(timeline)
    versions = timeline["summary"]["versions"]
    assert set(versions) == {"1.0"}, versions  # the broken pods never became ready, so never took traffic


def test_canary_requests_that_cannot_work_are_refused_before_anything_changes(web, tmp_path):
    kubectl, _url, conn = web
    too_big = run_role(tmp_path, "zerodown.rollout.upgrade", {
        **conn, "upgrade_image": V2, "upgrade_canary": True, "upgrade_canary_replicas": 4})
    assert too_big.rc != 0
    assert "upgrade_canary_replicas=4 is more than the 3 replica(s) of web" in too_big.output, too_big.output[-4000:]
    no_gate = run_role(tmp_path, "zerodown.rollout.upgrade", {
        **conn, "upgrade_image": V2, "upgrade_canary": True, "upgrade_traffic_url": ""})
    assert no_gate.rc != 0
    assert "upgrade_canary is true but upgrade_traffic_url is empty" in no_gate.output, no_gate.output[-4000:]
    assert "web-canary" not in deployments(kubectl) and images(kubectl) == [V1]
