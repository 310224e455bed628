"""image_upgrade's canary option on Kubernetes, through ansible-playbook against the k8s_cluster fixture."""
from __future__ import annotations

import json

import pytest

from tests.k8s_server import manifests as m

pytestmark = pytest.mark.k8s
V1, V2, BROKEN = f"{m.DEMO_IMAGE}:1.0", f"{m.DEMO_IMAGE}:2.0", f"{m.DEMO_IMAGE}:broken"
PRESENT = {"name": "web", "image": V2, "canary": {"replicas": 2}, "wait_timeout": 120}
ABSENT = {"name": "web", "canary": {"state": "absent"}, "wait_timeout": 120}


@pytest.fixture
def web(kubectl):
    kubectl.apply(m.deployment("web", V1, replicas=3))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    return live(kubectl)


def live(kubectl, name="web"):
    return json.loads(kubectl("get", "deployment", name, "-o", "json").stdout)


def deployments(kubectl) -> list[str]:
    return kubectl("get", "deployments", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()


def canary_pods(kubectl) -> list[str]:
    return kubectl("get", "pods", "-l", "app=web,track=canary", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()


def assert_workload_untouched(kubectl, before):
    after = live(kubectl)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert after["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"


def test_canary_present_and_absent_triplets(kubectl, play, web):
    steps = play(
        ("image_upgrade", PRESENT, True),
        ("image_upgrade", PRESENT),
        ("image_upgrade", PRESENT, True),
        ("image_upgrade", PRESENT),
    )
    check1, real1, check2, real2 = steps
    assert not any(s.get("failed") for s in steps), play.last_stdout[-4000:]
    assert [s["changed"] for s in steps] == [True, True, False, False]
    assert check1["diff"] == {"before": {}, "after": {"name": "web-canary", "replicas": 2, "image": V2,
                                                      "images": {"app": V2}}}
    assert real1["canary"]["status"]["done"] is True and real1["canary"]["status"]["ready"] == 2
    assert real2["canary"]["status"]["done"] is True
    assert real1["images"] == {"app": V1} and real1["revision"] == 1  # the workload's, unchanged
    canary = live(kubectl, "web-canary")
    assert canary["spec"]["selector"]["matchLabels"] == {"app": "web", "track": "canary"}
    assert canary["spec"]["template"]["spec"]["containers"][0]["image"] == V2
    assert canary["metadata"]["annotations"]["zerodown.rollout/canary-of"] == "web"
    assert len(canary_pods(kubectl)) == 2
    assert_workload_untouched(kubectl, web)

    steps = play(
        ("image_upgrade", ABSENT, True),
        ("image_upgrade", ABSENT),
        ("image_upgrade", ABSENT, True),
        ("image_upgrade", ABSENT),
    )
    check1, real1, check2, real2 = steps
    assert not any(s.get("failed") for s in steps), play.last_stdout[-4000:]
    assert [s["changed"] for s in steps] == [True, True, False, False]
    assert check1["diff"]["after"] == {} and check1["diff"]["before"]["replicas"] == 2
    assert real1["canary"]["replicas"] == 0 and real1["canary"]["image"] == V2
    assert "web-canary" not in deployments(kubectl)
    assert canary_pods(kubectl) == []  # the task returned once they were gone, not before
    assert_workload_untouched(kubectl, web)


def test_broken_canary_fails_fast_says_it_created_it_and_is_removed(kubectl, play, web):
    broken = dict(PRESENT, image=BROKEN, canary={"replicas": 1}, readiness_failure_limit=2)
    failed, removed = play(("image_upgrade", broken), ("image_upgrade", ABSENT))
    assert failed["failed"] and failed["changed"] is True, failed
    assert failed["canary"]["name"] == "web-canary" and failed["canary"]["image"] == BROKEN
    assert "the new pods of Deployment" in failed["msg"] and "web-canary" in failed["msg"]
    assert removed["changed"] is True and not removed.get("failed"), removed
    assert "web-canary" not in deployments(kubectl) and canary_pods(kubectl) == []
    assert_workload_untouched(kubectl, web)


def test_canary_requests_that_cannot_work_are_refused_and_nothing_changes(kubectl, play, web, k8s_namespace):
    stranger = m.deployment("other", V1, replicas=1)
    stranger["metadata"]["name"] = "web-stranger"
    kubectl.apply(stranger)
    steps = play(
        ("image_upgrade", dict(PRESENT, canary={"replicas": 4})),
        ("image_upgrade", dict(PRESENT, canary={"replicas": 0})),
        ("image_upgrade", dict(PRESENT, kind="StatefulSet")),
        ("image_upgrade", dict(ABSENT, image=V2)),
        ("image_upgrade", {"name": "web", "canary": {"replicas": 1}}),
        ("image_upgrade", dict(PRESENT, canary={"name_suffix": "-stranger"})),
        ("image_upgrade", dict(ABSENT, canary={"state": "absent", "name_suffix": "-stranger"})),
    )
    messages = [s.get("msg", "") for s in steps]
    assert all(s.get("failed") for s in steps), messages
    assert "canary.replicas=4 is more than the 3 replica(s) of Deployment" in messages[0]
    assert "canary.replicas must be 1 or more, got 0" in messages[1]
    assert "canary needs kind=Deployment, and this task has kind=StatefulSet" in messages[2]
    assert "image cannot be given with canary.state=absent" in messages[3]
    assert "image is required" in messages[4]
    assert "web-stranger exists and is not the canary of Deployment" in messages[5]
    assert "web-stranger exists and is not the canary of Deployment" in messages[6]
    assert not any(s.get("changed") for s in steps)
    [docker] = play(("image_upgrade", dict(PRESENT, canary={"replicas": 1})), defaults={"platform": "docker"})
    assert docker["failed"] and "canary applies to platform=kubernetes only" in docker["msg"], docker
    assert "max_batches" in docker["msg"]
    assert sorted(deployments(kubectl)) == ["web", "web-stranger"]
    assert live(kubectl, "web-stranger")["spec"]["replicas"] == 1
    assert_workload_untouched(kubectl, web)


def test_a_live_canary_does_not_hold_up_the_wait_for_old_pods(kubectl, play, web):
    # the canary's pods match the workload's selector (app=web) and carry another pod-template-hash, but they
    # are the canary Deployment's, not old pods of web
    [present] = play(("image_upgrade", PRESENT))
    assert not present.get("failed") and len(canary_pods(kubectl)) == 2, present.get("msg")
    [wait] = play(("rollout_wait", {"name": "web", "timeout": 20, "wait_old_pods_gone": True}))
    assert not wait.get("failed"), wait.get("msg")
    assert wait["status"]["done"] is True and wait["status"]["old_pods_gone"] is True
    assert len(canary_pods(kubectl)) == 2  # the canary still runs: it was not waited away
    assert not any("old pods to be gone" in p["message"] for p in wait.get("progress") or []), wait.get("progress")
