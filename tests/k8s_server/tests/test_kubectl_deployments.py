"""kubectl, unchanged, against the cluster: Deployment rollouts behave as upstream documents."""
from __future__ import annotations

import json

import pytest

from tests.k8s_server import manifests as m
from tests.k8s_server.testing import ScaleRecorder

pytestmark = pytest.mark.k8s
V1, V2, V3 = (f"{m.DEMO_IMAGE}:{v}" for v in ("1.0", "2.0", "3.0"))


def _rs_by_revision(kubectl) -> dict[str, dict]:
    out = json.loads(kubectl("get", "rs", "-o", "json").stdout)
    return {i["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: i for i in out["items"]}


def _history(kubectl, name: str = "web") -> list[str]:
    return kubectl.lines("rollout", "history", f"deployment/{name}")


def test_apply_get_and_status(kubectl):
    assert kubectl.apply(m.deployment("web", V1, replicas=3)).strip() == "deployment.apps/web created"
    status = kubectl.lines("rollout", "status", "deployment/web", "--timeout=60s")
    assert status[-1] == 'deployment "web" successfully rolled out'
    got = kubectl.lines("get", "deployment", "web")
    assert got[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert got[1].split()[:4] == ["web", "3/3", "3", "3"]
    assert kubectl.apply(m.deployment("web", V1, replicas=3)).strip() == "deployment.apps/web unchanged"


@pytest.mark.parametrize(("surge", "unavail", "expected"), [
    # surge 1 / unavailable 0: a new pod first, an old one only once it is available
    (1, 0, [(3, 0), (3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3)]),
    # surge 0 / unavailable 1: an old pod first (new RS created at 0), then replace one by one
    (0, 1, [(3, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2), (0, 3)]),
    # unavailable 100%: every old pod goes at once, then the new ones come
    (0, "100%", [(3, 0), (0, 0), (0, 3)]),
])
def test_set_image_intermediate_replica_counts(kubectl, k8s_cluster, surge, unavail, expected):
    kubectl.apply(m.deployment("web", V1, replicas=3, max_surge=surge, max_unavailable=unavail))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    api = k8s_cluster.api_client()
    try:
        with ScaleRecorder(api, kubectl.namespace) as rec:
            assert kubectl.lines("set", "image", "deployment/web", f"app={V2}") == ["deployment.apps/web image updated"]
            status = kubectl.lines("rollout", "status", "deployment/web", "--timeout=60s")
        revs = _rs_by_revision(kubectl)
        pairs = rec.pairs(revs["1"]["metadata"]["name"], revs["2"]["metadata"]["name"])
    finally:
        api.close()
    assert pairs == expected
    assert status[-1] == 'deployment "web" successfully rolled out'
    assert all(line.startswith('Waiting for deployment "web" rollout to finish: ') for line in status[:-1])
    if surge == 1:
        assert 'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...' in status


def test_progress_deadline_exceeded(kubectl):
    kubectl.apply(m.deployment("web", V1, replicas=2, max_surge=1, max_unavailable=0, progress_deadline=2))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    kubectl("set", "image", "deployment/web", f"app={m.DEMO_IMAGE}:broken")
    proc = kubectl("rollout", "status", "deployment/web", "--timeout=60s", ok=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == 'error: deployment "web" exceeded its progress deadline'
    cond = json.loads(kubectl.jsonpath("deployment/web", "{.status.conditions[?(@.type=='Progressing')]}"))
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    # the old pods keep serving: maxUnavailable 0 never took one down
    assert kubectl.jsonpath("deployment/web", "{.status.availableReplicas}") == "2"


def test_pause_and_resume(kubectl):
    kubectl.apply(m.deployment("web", V1, replicas=2))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert kubectl.lines("rollout", "pause", "deployment/web") == ["deployment.apps/web paused"]
    kubectl("set", "image", "deployment/web", f"app={V2}")
    # pause (spec.paused) and set image each bump the generation: 3 once both are observed
    kubectl.wait_for(lambda: kubectl.jsonpath("deployment/web", "{.metadata.generation} {.status.observedGeneration}")
                     == "3 3", what="the paused spec change to be observed")
    cond = json.loads(kubectl.jsonpath("deployment/web", "{.status.conditions[?(@.type=='Progressing')]}"))
    assert (cond["status"], cond["reason"]) == ("Unknown", "DeploymentPaused")
    assert list(_rs_by_revision(kubectl)) == ["1"]  # no rollout while paused
    once = kubectl.lines("rollout", "status", "deployment/web", "--watch=false")
    assert once == ['Waiting for deployment "web" rollout to finish: 0 out of 2 new replicas have been updated...']
    undo = kubectl("rollout", "undo", "deployment/web", "--to-revision=1", ok=False)
    assert undo.returncode == 1
    assert "you cannot rollback a paused deployment; resume it first with 'kubectl rollout resume" in undo.stderr
    assert kubectl.lines("rollout", "resume", "deployment/web") == ["deployment.apps/web resumed"]
    assert kubectl.lines("rollout", "status", "deployment/web", "--timeout=60s")[-1] == \
        'deployment "web" successfully rolled out'
    assert sorted(_rs_by_revision(kubectl)) == ["1", "2"]


def test_history_and_rollback_renumbering(kubectl):
    kubectl.apply(m.deployment("web", V1, replicas=2, annotations={"kubernetes.io/change-cause": "v1"}))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    for version, image in (("v2", V2), ("v3", V3)):
        kubectl("annotate", "--overwrite", "deployment/web", f"kubernetes.io/change-cause={version}")
        kubectl("set", "image", "deployment/web", f"app={image}")
        kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    # upstream copies the Deployment's annotations to its *current* ReplicaSet: annotating before a set image
    # also re-labels the revision that was current then (why people annotate after the change)
    assert _history(kubectl) == ["deployment.apps/web", "REVISION  CHANGE-CAUSE", "1         v2", "2         v3",
                                 "3         v3"]
    assert kubectl.lines("rollout", "undo", "deployment/web", "--to-revision=2") == ["deployment.apps/web rolled back"]
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    revs = _rs_by_revision(kubectl)
    assert sorted(revs, key=int) == ["1", "3", "4"]
    assert revs["4"]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "2"
    assert revs["4"]["spec"]["template"]["spec"]["containers"][0]["image"] == V2
    assert kubectl.jsonpath("deployment/web", "{.spec.template.spec.containers[0].image}") == V2
    assert kubectl.lines("rollout", "undo", "deployment/web", "--to-revision=4") == \
        ["deployment.apps/web skipped rollback (current template already matches revision 4)"]
    # plain undo goes to the second-highest revision (3)
    kubectl("rollout", "undo", "deployment/web")
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert sorted(_rs_by_revision(kubectl), key=int) == ["1", "4", "5"]
    missing = kubectl("rollout", "undo", "deployment/web", "--to-revision=9", ok=False)
    assert missing.returncode == 1 and "unable to find specified revision 9 in history" in missing.stderr


def test_revision_history_limit_prunes_after_completion(kubectl):
    kubectl.apply(m.deployment("web", V1, replicas=1, revision_history_limit=2))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    for tag in ("2.0", "3.0", "4.0"):
        kubectl("set", "image", "deployment/web", f"app={m.DEMO_IMAGE}:{tag}")
        kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    kubectl.wait_for(lambda: len(_rs_by_revision(kubectl)) == 3, what="old ReplicaSets to be pruned")
    assert sorted(_rs_by_revision(kubectl), key=int) == ["2", "3", "4"]
    assert [line.split()[0] for line in _history(kubectl)[2:]] == ["2", "3", "4"]


def test_scale(kubectl):
    kubectl.apply(m.deployment("web", V1, replicas=2))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert kubectl.lines("scale", "deployment/web", "--replicas=5") == ["deployment.apps/web scaled"]
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert kubectl.jsonpath("deployment/web", "{.status.availableReplicas}") == "5"
    rs = _rs_by_revision(kubectl)["1"]
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "5"
    assert rs["spec"]["replicas"] == 5
    stale = kubectl("scale", "deployment/web", "--replicas=1", "--current-replicas=3", ok=False)
    assert stale.returncode == 1 and "error: Expected replicas to be 3, was 5" in stale.stderr


def test_crash_looping_pods(kubectl, k8s_cluster):
    if k8s_cluster.real:
        pytest.skip("the crash tag is a convention of the test server's fake kubelet")
    kubectl.apply(m.deployment("web", V1, replicas=2, max_surge=1, max_unavailable=0))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    kubectl("set", "image", "deployment/web", f"app={m.DEMO_IMAGE}:crash")

    def crashing() -> dict | None:
        pods = json.loads(kubectl("get", "pods", "-o", "json").stdout)["items"]
        for p in pods:
            for cs in p["status"].get("containerStatuses") or []:
                if cs["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff" and cs["restartCount"] >= 2:
                    return p
        return None
    # The fake kubelet restarts the container after a back-off of at most 2 s and it runs 0.3 s, so two kubectl
    # calls may see two different phases of the loop: each check reads its own snapshot.
    pod = kubectl.wait_for(crashing, what="CrashLoopBackOff in the API")
    cs = pod["status"]["containerStatuses"][0]
    assert cs["lastState"]["terminated"]["exitCode"] == 1 and cs["ready"] is False

    def crash_row() -> list[str] | None:  # the table kubectl prints: READY, STATUS and RESTARTS of a crashing pod
        rows = [line.split() for line in kubectl.lines("get", "pods")[1:]]
        return next((row for row in rows if row[2] == "CrashLoopBackOff"), None)
    row = kubectl.wait_for(crash_row, what="CrashLoopBackOff in kubectl's table")
    assert row[1] == "0/1" and int(row[3]) >= 2, row
    proc = kubectl("rollout", "status", "deployment/web", "--timeout=2s", ok=False)
    assert proc.returncode == 1
    assert 'Waiting for deployment "web" rollout to finish: 1 out of 2 new replicas have been updated...' in proc.stdout
    assert "error: timed out waiting for the condition" in proc.stderr
    assert kubectl.jsonpath("deployment/web", "{.status.availableReplicas}") == "2"


def test_image_pull_errors(kubectl):
    kubectl.apply(m.deployment("web", f"{m.DEMO_IMAGE}:nopull", replicas=1))
    reasons: set[str] = set()

    def seen_both() -> bool:
        out = kubectl.jsonpath("pods", "{.items[*].status.containerStatuses[*].state.waiting.reason}")
        reasons.update(out.split())
        return {"ErrImagePull", "ImagePullBackOff"} <= reasons
    kubectl.wait_for(seen_both, what="ErrImagePull then ImagePullBackOff")
    assert kubectl.jsonpath("pods", "{.items[0].status.phase}") == "Pending"
