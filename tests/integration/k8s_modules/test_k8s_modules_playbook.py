"""image_upgrade / rollout_wait / rollback / rollout_info / preflight on Kubernetes, through ansible-playbook.

Runs against the k8s_cluster fixture: the test API server, or a real cluster (then the demo images must be
available to it; the failure tags crash/nopull/broken still fail there, possibly with another reason).
"""
from __future__ import annotations

import json
import socket
import time

import pytest

from tests.k8s_server import manifests as m

pytestmark = pytest.mark.k8s
V1, V2 = f"{m.DEMO_IMAGE}:1.0", f"{m.DEMO_IMAGE}:2.0"
FATAL = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "ReadinessProbeFailing", "ProgressDeadlineExceeded"}


def deploy(kubectl, name="web", image=V1, **kw):
    kubectl.apply(m.deployment(name, image, **kw))
    kubectl("rollout", "status", f"deployment/{name}", "--timeout=60s")


def live(kubectl, kind="deployment", name="web"):
    return json.loads(kubectl("get", kind, name, "-o", "json").stdout)


def image_of(obj):
    return obj["spec"]["template"]["spec"]["containers"][0]["image"]


def test_upgrade_check_mode_changes_nothing(kubectl, play):
    deploy(kubectl)
    before = live(kubectl)
    [check] = play(("image_upgrade", {"name": "web", "image": V2, "change_cause": "release 2.0"}, True))
    assert check["changed"] is True and not check.get("failed"), check
    assert (check["previous_revision"], check["revision"]) == (1, 2)
    assert check["images"] == {"app": V2} and check["previous_images"] == {"app": V1}
    assert check["diff"]["before"]["template"]["spec"]["containers"][0]["image"] == V1
    assert check["diff"]["after"]["template"]["spec"]["containers"][0]["image"] == V2
    after = live(kubectl)
    assert image_of(after) == V1
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert "kubernetes.io/change-cause" not in after["metadata"].get("annotations", {})


def test_upgrade_idempotence_triplet_history_and_kubectl_agree(kubectl, play):
    deploy(kubectl)
    steps = play(
        ("preflight", {"name": "web", "fail_on": "never"}),
        ("image_upgrade", {"name": "web", "image": V2, "change_cause": "release 2.0"}, True),
        ("image_upgrade", {"name": "web", "image": V2, "change_cause": "release 2.0", "wait_timeout": 120}),
        ("image_upgrade", {"name": "web", "image": V2, "change_cause": "release 2.0"}, True),
        ("image_upgrade", {"name": "web", "image": V2, "change_cause": "release 2.0"}),
        ("rollout_info", {"name": "web"}),
    )
    lint, check1, real1, check2, real2, info = steps
    assert not lint.get("failed") and lint["ok"] is True
    assert {f["check"] for f in lint["findings"]} >= {"prestop_hook"}
    assert [s["changed"] for s in (check1, real1, check2, real2)] == [True, True, False, False]
    assert not any(s.get("failed") for s in steps[1:]), play.last_stdout[-3000:]
    assert (real1["previous_revision"], real1["revision"]) == (1, 2)
    assert real1["status"]["done"] is True and real1["status"]["updated"] == 3
    assert real1["progress"][-1]["message"] == 'deployment "web" successfully rolled out'
    assert (real2["revision"], real2["previous_revision"]) == (2, 2)
    assert info["revision"] == 2 and info["status"]["done"] is True
    assert [(r["revision"], r["current"], r["change_cause"]) for r in info["revisions"]] == \
        [(1, False, None), (2, True, "release 2.0")]
    # kubectl sees the same thing
    assert kubectl.lines("rollout", "status", "deployment/web", "--timeout=10s")[-1] == \
        'deployment "web" successfully rolled out'
    history = kubectl.lines("rollout", "history", "deployment/web")
    assert history[-1].split(None, 1) == ["2", "release 2.0"]
    assert image_of(live(kubectl)) == V2


def test_rollback_triplet_keeps_annotations_and_renumbers(kubectl, play):
    deploy(kubectl)
    kubectl("set", "image", "deployment/web", f"app={V2}")
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    kubectl("annotate", "deployment/web", "team=shop")
    steps = play(
        ("rollback", {"name": "web", "to_revision": 1}, True),
        ("rollback", {"name": "web", "to_revision": 1, "wait_timeout": 120}),
        ("rollback", {"name": "web", "to_revision": 1}, True),
        ("rollback", {"name": "web", "to_revision": 1}),
        ("rollback", {"name": "web", "to_revision": 99}),
    )
    check1, real1, check2, real2, missing = steps
    assert [s["changed"] for s in (check1, real1, check2, real2)] == [True, True, False, False], play.last_stdout
    assert (real1["previous_revision"], real1["revision"], real1["rolled_back_to"]) == (2, 3, 1)
    assert real1["images"] == {"app": V1} and real1["status"]["done"] is True
    assert real2["revision"] == 3
    assert missing["failed"] and "unable to find revision 99" in missing["msg"] and "2, 3" in missing["msg"]
    obj = live(kubectl)
    assert image_of(obj) == V1
    assert obj["metadata"]["annotations"]["team"] == "shop"
    assert "pod-template-hash" not in obj["spec"]["template"]["metadata"]["labels"]
    # the controller reused revision 1's ReplicaSet as revision 3, as after kubectl rollout undo
    assert [line.split()[0] for line in kubectl.lines("rollout", "history", "deployment/web")[2:]] == ["2", "3"]


def test_rollback_only_considers_owned_replicasets(kubectl, play):
    # Two Deployments whose pods share app=web: web-canary's ReplicaSets match web's selector labels too.
    deploy(kubectl)
    canary = m.deployment("web-canary", "zerodown/demo-app:9.9", replicas=1)
    canary["spec"]["selector"]["matchLabels"] = {"app": "web", "track": "canary"}
    canary["spec"]["template"]["metadata"]["labels"] = {"app": "web", "track": "canary"}
    kubectl.apply(canary)
    kubectl("rollout", "status", "deployment/web-canary", "--timeout=60s")
    kubectl("set", "image", "deployment/web", f"app={V2}")
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    [info, back] = play(("rollout_info", {"name": "web"}), ("rollback", {"name": "web"}))
    assert [r["revision"] for r in info["revisions"]] == [1, 2]
    assert all("9.9" not in r["images"]["app"] for r in info["revisions"])
    assert back["changed"] and back["images"] == {"app": V1}, back


def test_wait_verdict_matches_kubectl(kubectl, play):
    deploy(kubectl)
    [upgrade, waited] = play(("image_upgrade", {"name": "web", "image": V2, "wait": False}),
                             ("rollout_wait", {"name": "web", "revision": 2, "timeout": 120}))
    assert upgrade["changed"] and upgrade["revision"] == 2 and not upgrade.get("failed")
    assert waited["status"]["done"] is True and waited["revision"] == 2
    kubectl_status = kubectl("rollout", "status", "deployment/web", "--revision=2", "--timeout=30s", ok=False)
    assert kubectl_status.returncode == 0
    assert waited["status"]["message"] == kubectl_status.stdout.strip().splitlines()[-1]

    # A never-ready image with a short progress deadline: both report the deadline (our pod check is off).
    deploy(kubectl, name="slow", progress_deadline=3)
    kubectl("set", "image", "deployment/slow", f"app={m.DEMO_IMAGE}:broken")
    [failed] = play(("rollout_wait", {"name": "slow", "timeout": 60, "readiness_failure_limit": 0}))
    kubectl_fail = kubectl("rollout", "status", "deployment/slow", "--timeout=60s", ok=False)
    assert failed["failed"] and failed["status"]["reason"] == "ProgressDeadlineExceeded"
    assert kubectl_fail.returncode != 0
    assert 'deployment "slow" exceeded its progress deadline' in failed["msg"]
    assert 'deployment "slow" exceeded its progress deadline' in kubectl_fail.stderr


@pytest.mark.parametrize("tag, reasons", [
    ("crash", {"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff"}),
    ("nopull", {"ErrImagePull", "ImagePullBackOff"}),
    ("broken", {"ReadinessProbeFailing"}),
])
def test_fail_fast_then_rescue_rollback(kubectl, play, tag, reasons):
    deploy(kubectl, max_surge=1, max_unavailable=0)
    start = time.monotonic()
    [upgrade, back] = play(
        ("image_upgrade", {"name": "web", "image": f"{m.DEMO_IMAGE}:{tag}", "wait_timeout": 240,
                           "readiness_failure_limit": 3}),
        ("rollback", {"name": "web", "to_revision": 1, "wait_timeout": 120}),
    )
    elapsed = time.monotonic() - start
    assert upgrade["failed"] and upgrade["changed"] is True, upgrade
    assert upgrade["reason"] in reasons, upgrade["msg"]
    assert upgrade["failing_pods"] and upgrade["failing_pods"][0]["pod"] in upgrade["msg"]
    assert (upgrade["previous_revision"], upgrade["revision"]) == (1, 2)
    assert elapsed < 90, f"fail-fast took {elapsed:.0f}s"
    assert back["changed"] and not back.get("failed") and back["status"]["done"], back
    assert image_of(live(kubectl)) == V1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_bad_inputs_fail_clearly_and_change_nothing(kubectl, play, k8s_cluster, k8s_namespace):
    deploy(kubectl)
    before = live(kubectl)
    steps = play(
        ("image_upgrade", {"name": "nosuch", "image": V2}),
        ("image_upgrade", {"name": "web", "image": V2, "container": "nginx"}),
        ("image_upgrade", {"name": "web", "image": "Not An Image"}),
        ("image_upgrade", {"name": "web", "image": "other/repo:2.0"}),
        ("image_upgrade", {"name": "web", "image": V2, "kubeconfig": "/nonexistent/kubeconfig"}),
        ("rollout_wait", {"name": "web", "revision": 0}),
        ("rollout_wait", {"name": "web", "revision": 7, "timeout": 30}),
        ("rollback", {"name": "web", "to_revision": 5}),
        ("rollback", {"name": "web"}),
    )
    msgs = [s.get("msg", "") for s in steps]
    assert all(s.get("failed") for s in steps), msgs
    assert all(not s.get("changed") for s in steps), msgs
    assert "not found" in msgs[0] and "nosuch" in msgs[0]
    assert "no container named 'nginx'" in msgs[1] and f"app ({V1})" in msgs[1]
    assert "not a valid image reference" in msgs[2]
    assert "no container of Deployment" in msgs[3] and "other/repo" in msgs[3]
    assert "kubeconfig: file /nonexistent/kubeconfig does not exist" in msgs[4]
    assert "revision must be 1 or more" in msgs[5]
    assert "desired revision (7) is different from the running revision (1)" in msgs[6]
    assert "unable to find revision 5" in msgs[7]
    assert "no earlier revision" in msgs[8]

    port = closed_port()
    secret = "tok-" + "z" * 24
    [unreachable] = play(("rollout_info", {"name": "web"}), defaults={
        "platform": "kubernetes", "host": f"http://127.0.0.1:{port}", "api_key": secret,
        "namespace": k8s_namespace})
    assert unreachable["failed"] and f"127.0.0.1:{port}" in unreachable["msg"]
    assert "cannot reach the Kubernetes API" in unreachable["msg"]
    assert secret not in play.last_stdout
    after = live(kubectl)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["metadata"].get("annotations") == before["metadata"].get("annotations")


def test_awx_style_environment_credentials(kubectl, play, k8s_cluster):
    # AWX's Kubernetes credential injects K8S_AUTH_* variables; no connection option in the task.
    deploy(kubectl)
    [info] = play(("rollout_info", {"name": "web"}),
                  env={"K8S_AUTH_KUBECONFIG": k8s_cluster.kubeconfig, "K8S_AUTH_CONTEXT": k8s_cluster.context},
                  defaults={"platform": "kubernetes", "namespace": kubectl.namespace})
    assert not info.get("failed"), info
    assert info["revision"] == 1 and info["status"]["done"]


def test_preflight_fails_on_recreate(kubectl, play):
    kubectl.apply(m.deployment("legacy", V1, replicas=1, strategy="Recreate", readiness=False))
    [lint, report] = play(("preflight", {"name": "legacy"}),
                          ("preflight", {"name": "legacy", "fail_on": "never", "skip": ["single_replica"]}))
    assert lint["failed"] and "not safe to upgrade without downtime" in lint["msg"]
    checks = {(f["check"], f["severity"]) for f in lint["findings"]}
    assert {("recreate_strategy", "error"), ("readiness_probe", "error"), ("single_replica", "warning")} <= checks
    assert not report.get("failed") and report["ok"] is True
    assert "single_replica" not in {f["check"] for f in report["findings"]}


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_statefulset_and_daemonset_upgrade_and_rollback(kubectl, play, kind):
    manifest = m.statefulset("db", V1, replicas=2) if kind == "StatefulSet" else m.daemonset("db", V1)
    kubectl.apply(manifest)
    kubectl("rollout", "status", f"{kind.lower()}/db", "--timeout=60s")
    steps = play(
        ("image_upgrade", {"name": "db", "kind": kind, "image": V2, "wait_timeout": 120}),
        ("image_upgrade", {"name": "db", "kind": kind, "image": V2}),
        ("rollout_info", {"name": "db", "kind": kind}),
        ("rollback", {"name": "db", "kind": kind, "wait_timeout": 120}),
        ("rollback", {"name": "db", "kind": kind, "to_revision": 3}),
    )
    up, again, info, back, again_back = steps
    assert not any(s.get("failed") for s in steps), [s.get("msg") for s in steps]
    assert (up["changed"], again["changed"], back["changed"], again_back["changed"]) == (True, False, True, False)
    assert (up["previous_revision"], up["revision"]) == (1, 2)
    assert [r["revision"] for r in info["revisions"]] == [1, 2] and info["revisions"][1]["current"]
    assert back["images"] == {"app": V1} and back["revision"] == 3 and back["status"]["done"]
    assert image_of(live(kubectl, kind.lower(), "db")) == V1
    assert kubectl("rollout", "status", f"{kind.lower()}/db", "--timeout=30s", ok=False).returncode == 0
