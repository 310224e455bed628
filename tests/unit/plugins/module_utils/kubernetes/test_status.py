"""kubectl's rollout-status rule, against a table of status documents."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.status import (
    daemonset_status,
    deployment_status,
    rollout_status,
    statefulset_status,
)


def deploy(gen=2, observed=2, replicas=3, status=None, conditions=None, revision="2", paused=False):
    st = {"observedGeneration": observed}
    st.update(status or {})
    if conditions:
        st["conditions"] = conditions
    obj = {"metadata": {"name": "web", "generation": gen, "annotations": {"deployment.kubernetes.io/revision": revision}},
           "spec": {"replicas": replicas, "paused": paused}, "status": st}
    return obj


def kubernetes_core_deployment_ready(obj):
    """kubernetes.core's deployment_ready predicate (waiter.py), for the comparison below."""
    st = obj["status"]
    return (obj["spec"]["replicas"] == (st.get("replicas") or 0) and st.get("availableReplicas") == st.get("replicas")
            and st.get("observedGeneration") == obj["metadata"]["generation"] and not st.get("unavailableReplicas"))


DONE = {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}

DEPLOYMENT_TABLE = [
    # (case, object, state, message)
    ("complete", deploy(status=DONE), "complete", 'deployment "web" successfully rolled out'),
    ("stale status written mid-rollout (maxSurge=0)",
     deploy(status={"replicas": 3, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3,
                    "unavailableReplicas": 0}),
     "progressing", 'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...'),
    ("no new replica yet",
     deploy(status={"replicas": 3, "updatedReplicas": 0, "availableReplicas": 3}),
     "progressing", 'Waiting for deployment "web" rollout to finish: 0 out of 3 new replicas have been updated...'),
    ("old pods still counted",
     deploy(status={"replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
     "progressing", 'Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...'),
    ("new pods not available",
     deploy(status={"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
     "progressing", 'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are available...'),
    ("generation not observed, counts look complete",
     deploy(gen=3, observed=2, status=DONE), "progressing", "Waiting for deployment spec update to be observed..."),
    ("no status at all", {"metadata": {"name": "web", "generation": 1}, "spec": {"replicas": 1}},
     "progressing", "Waiting for deployment spec update to be observed..."),
    ("deadline exceeded",
     deploy(status={"replicas": 4, "updatedReplicas": 1, "availableReplicas": 3},
            conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]),
     "failed", 'deployment "web" exceeded its progress deadline'),
    ("deadline of the previous generation is ignored until observed",
     deploy(gen=3, observed=2, status=DONE,
            conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]),
     "progressing", "Waiting for deployment spec update to be observed..."),
    ("replica failure (quota)",
     deploy(status={"replicas": 3, "updatedReplicas": 0, "availableReplicas": 3},
            conditions=[{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                         "message": "exceeded quota: pods"}]),
     "failed", 'deployment "web" cannot create pods: exceeded quota: pods'),
    ("paused mid-rollout", deploy(paused=True, status={"replicas": 3, "updatedReplicas": 1, "availableReplicas": 3}),
     "paused", 'deployment "web" is paused: waiting for deployment "web" rollout to finish: 1 out of 3 new replicas '
               "have been updated..."),
    ("paused but complete", deploy(paused=True, status=DONE), "complete", 'deployment "web" successfully rolled out'),
    ("scaled to zero", deploy(replicas=0, status={}), "complete", 'deployment "web" successfully rolled out'),
]


@pytest.mark.parametrize("case, obj, state, message", DEPLOYMENT_TABLE, ids=[c[0] for c in DEPLOYMENT_TABLE])
def test_deployment_rule(case, obj, state, message):
    status = deployment_status(obj)
    assert (status.state, status.message) == (state, message)
    assert status.done == (state == "complete")


def test_the_state_kubernetes_core_calls_ready_is_not_done():
    # replicas=3, available=3, updated=1, unavailable=0, observedGeneration == generation
    obj = deploy(status={"replicas": 3, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3,
                         "unavailableReplicas": 0})
    assert kubernetes_core_deployment_ready(obj)
    assert not deployment_status(obj).done


def test_never_done_while_generation_unobserved_whatever_the_counts():
    for observed in (None, 0, 1, 2):
        obj = deploy(gen=3, observed=observed, status=DONE)
        if observed is None:
            del obj["status"]["observedGeneration"]
        assert not deployment_status(obj).done


def test_revision_pin():
    obj = deploy(status=DONE, revision="3")
    assert deployment_status(obj, 3).done
    pinned = deployment_status(obj, 2)
    assert pinned.failed and pinned.reason == "RevisionMismatch"
    assert pinned.message == "desired revision (2) is different from the running revision (3)"
    # Before the controller observed the spec, the annotation is stale: wait, do not fail.
    stale = deployment_status(deploy(gen=3, observed=2, status=DONE, revision="2"), 3)
    assert stale.state == "progressing"


def test_counts_and_revision_reported():
    status = deployment_status(deploy(status={"replicas": 4, "updatedReplicas": 2, "readyReplicas": 3,
                                              "availableReplicas": 3}, revision="7"))
    assert (status.desired, status.updated, status.ready, status.available, status.revision) == (3, 2, 3, 3, 7)


def sts(replicas=3, gen=2, observed=2, partition=None, rolling=True, strategy="RollingUpdate", **status):
    update = {"type": strategy}
    if rolling:
        update["rollingUpdate"] = {} if partition is None else {"partition": partition}
    st = {"observedGeneration": observed, "currentRevision": "db-1", "updateRevision": "db-2"}
    st.update(status)
    return {"metadata": {"name": "db", "generation": gen}, "spec": {"replicas": replicas, "updateStrategy": update},
            "status": st}


STS_TABLE = [
    ("not observed", sts(gen=3, readyReplicas=3, updatedReplicas=3), "progressing",
     "Waiting for statefulset spec update to be observed..."),
    ("observedGeneration 0", sts(gen=0, observed=0), "progressing",
     "Waiting for statefulset spec update to be observed..."),
    ("pods not ready", sts(readyReplicas=1, updatedReplicas=3, partition=0), "progressing",
     "Waiting for 2 pods to be ready..."),
    ("partition 0, not all updated", sts(readyReplicas=3, updatedReplicas=2, partition=0), "progressing",
     "Waiting for partitioned roll out to finish: 2 out of 3 new pods have been updated..."),
    ("partition 0, all updated", sts(readyReplicas=3, updatedReplicas=3, partition=0), "complete",
     "partitioned roll out complete: 3 new pods have been updated..."),
    ("partition 2 of 3: one updated pod is enough", sts(readyReplicas=3, updatedReplicas=1, partition=2), "complete",
     "partitioned roll out complete: 1 new pods have been updated..."),
    ("partition 1 of 3", sts(readyReplicas=3, updatedReplicas=1, partition=1), "progressing",
     "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated..."),
    ("no rollingUpdate: revisions differ", sts(rolling=False, readyReplicas=3, updatedReplicas=3), "progressing",
     "waiting for statefulset rolling update to complete 3 pods at revision db-2..."),
    ("no rollingUpdate: revisions equal",
     sts(rolling=False, readyReplicas=3, updatedReplicas=3, currentReplicas=3, currentRevision="db-2"),
     "complete", "statefulset rolling update complete 3 pods at revision db-2..."),
    ("OnDelete", sts(strategy="OnDelete", rolling=False), "failed",
     "rollout status is only available for RollingUpdate strategy type"),
]


@pytest.mark.parametrize("case, obj, state, message", STS_TABLE, ids=[c[0] for c in STS_TABLE])
def test_statefulset_rule(case, obj, state, message):
    status = statefulset_status(obj)
    assert (status.state, status.message) == (state, message)


def ds(gen=2, observed=2, strategy="RollingUpdate", **status):
    return {"metadata": {"name": "agent", "generation": gen},
            "spec": {"updateStrategy": {"type": strategy}}, "status": dict({"observedGeneration": observed}, **status)}


DS_TABLE = [
    ("not observed", ds(gen=3, desiredNumberScheduled=3, updatedNumberScheduled=3, numberAvailable=3),
     "progressing", "Waiting for daemon set spec update to be observed..."),
    ("updating", ds(desiredNumberScheduled=3, updatedNumberScheduled=1, numberAvailable=3), "progressing",
     'Waiting for daemon set "agent" rollout to finish: 1 out of 3 new pods have been updated...'),
    # kubernetes.core checks numberReady; kubectl (and we) need numberAvailable (minReadySeconds).
    ("ready but not available", ds(desiredNumberScheduled=3, updatedNumberScheduled=3, numberReady=3,
                                   numberAvailable=2), "progressing",
     'Waiting for daemon set "agent" rollout to finish: 2 of 3 updated pods are available...'),
    ("complete", ds(desiredNumberScheduled=3, updatedNumberScheduled=3, numberReady=3, numberAvailable=3),
     "complete", 'daemon set "agent" successfully rolled out'),
    ("no nodes", ds(desiredNumberScheduled=0), "complete", 'daemon set "agent" successfully rolled out'),
    ("OnDelete", ds(strategy="OnDelete"), "failed", "rollout status is only available for RollingUpdate strategy type"),
]


@pytest.mark.parametrize("case, obj, state, message", DS_TABLE, ids=[c[0] for c in DS_TABLE])
def test_daemonset_rule(case, obj, state, message):
    status = daemonset_status(obj)
    assert (status.state, status.message) == (state, message)


def test_dispatch_by_kind():
    assert rollout_status("StatefulSet", sts(readyReplicas=3, updatedReplicas=3, partition=0)).done
    assert rollout_status("DaemonSet", ds(desiredNumberScheduled=1, updatedNumberScheduled=1, numberAvailable=1)).done
    assert not rollout_status("Deployment", deploy(gen=5, observed=4, status=DONE)).done
