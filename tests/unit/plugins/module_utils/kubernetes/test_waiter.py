"""The waiter's loop (pinning, fail-fast, watch fallback) over a scripted API, and pod diagnosis."""
from __future__ import annotations

import copy
import datetime

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.waiter import RolloutWaiter, pod_problems
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.workloads import DeploymentAdapter
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    RolloutFailed,
    WaitTimeout,
    WorkloadNotFound,
    WorkloadRef,
)
from fake_clock import FakeClock

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def ts(seconds_ago: float) -> str:
    return (NOW - datetime.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment(gen, observed, revision, updated, replicas=3, available=3, rv="1", total=None):
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-web", "generation": gen, "resourceVersion": rv,
                     "annotations": {"deployment.kubernetes.io/revision": str(revision)}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": f"app:{revision}"}]}}},
        "status": {"observedGeneration": observed, "replicas": total if total is not None else replicas,
                   "updatedReplicas": updated, "readyReplicas": available, "availableReplicas": available},
    }


class ScriptedClient:
    """Answers get/list/watch from a script: each watch segment yields the next batch of events."""

    def __init__(self, initial, segments, pods=None, watch_error=None):
        self.clock = FakeClock()
        self.current = initial
        self.segments = list(segments)
        self.pods = pods or []
        self.watch_error = watch_error
        self.calls = []

    def get(self, kind, name, namespace):
        self.calls.append(("get", kind))
        if self.current is None:
            raise WorkloadNotFound("gone")
        return copy.deepcopy(self.current)

    def list(self, kind, namespace, label_selector=None, field_selector=None):
        self.calls.append(("list", kind, label_selector))
        if kind == "ReplicaSet":
            return {"items": [{
                "metadata": {"name": "web-new", "labels": {"app": "web", "pod-template-hash": "new"},
                             "annotations": {"deployment.kubernetes.io/revision": "2"},
                             "ownerReferences": [{"uid": "uid-web", "controller": True}]},
                "spec": {"template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "new"}},
                                      "spec": {"containers": [{"name": "app", "image": "app:2"}]}}}}]}
        if kind == "Pod":
            return {"items": copy.deepcopy(self.pods)}
        if kind == "Event":
            return {"items": [{"reason": "BackOff", "message": "Back-off restarting failed container",
                               "lastTimestamp": ts(1)}]}
        return {"items": []}

    def watch(self, kind, namespace, name, resource_version, timeout_seconds, quiet_timeout=None):
        self.calls.append(("watch", resource_version))
        if self.watch_error is not None:
            raise self.watch_error
        batch = self.segments.pop(0) if self.segments else []
        if not batch:  # a watch on which nothing arrives ends when its read times out
            self.clock.sleep(quiet_timeout or timeout_seconds)
        for etype, obj in batch:
            if obj is not None:
                self.current = obj
            else:
                self.current = None
            yield etype, copy.deepcopy(obj or {})


def make_waiter(client, limit=10, clock=None):
    adapter = DeploymentAdapter(client, WorkloadRef("kubernetes", "web", "Deployment", "ns"))
    clock = clock or client.clock
    return RolloutWaiter(adapter, limit, clock=clock, sleep=clock.sleep)


def test_pinned_to_our_generation_ignores_the_stale_complete_status():
    # Right after our PATCH (generation 2) the object still shows revision 1 complete.
    stale = deployment(gen=2, observed=1, revision=1, updated=3, rv="10")
    client = ScriptedClient(stale, [
        [("MODIFIED", deployment(2, 2, 2, updated=1, total=4, rv="11"))],
        [("MODIFIED", deployment(2, 2, 2, updated=3, total=3, rv="12"))],
    ])
    seen = []
    status = make_waiter(client).wait(60, min_generation=2, progress=lambda s: seen.append(s.message))
    assert status.done and status.revision == 2
    assert seen[0] == "Waiting for deployment spec update to be observed..."
    assert seen[-1] == 'deployment "web" successfully rolled out'
    # the watch resumed from the resourceVersion of the last object seen
    assert [c[1] for c in client.calls if c[0] == "watch"] == ["10", "11"]


def test_superseded_revision_fails():
    client = ScriptedClient(deployment(3, 3, 3, updated=3, rv="5"), [])
    with pytest.raises(RolloutFailed, match=r"desired revision \(2\) is different from the running revision \(3\)"):
        make_waiter(client).wait(60, revision=2)


def test_deleted_while_waiting():
    client = ScriptedClient(deployment(2, 2, 2, updated=1), [[("DELETED", None)]])
    with pytest.raises(WorkloadNotFound, match="deleted while waiting"):
        make_waiter(client).wait(60)


def test_crash_looping_new_pod_fails_fast_with_events():
    pod = {"metadata": {"name": "web-new-x1"}, "spec": {"containers": [{"name": "app"}]},
           "status": {"containerStatuses": [{"name": "app", "ready": False, "restartCount": 4,
                                             "state": {"waiting": {"reason": "CrashLoopBackOff",
                                                                   "message": "back-off 40s"}}}]}}
    client = ScriptedClient(deployment(2, 2, 2, updated=1, total=4), [], pods=[pod])
    with pytest.raises(RolloutFailed) as err:
        make_waiter(client).wait(600)
    assert "web-new-x1" in err.value.msg and "CrashLoopBackOff" in err.value.msg
    assert "BackOff: Back-off restarting failed container" in err.value.msg
    assert err.value.details["failing_pods"][0]["reason"] == "CrashLoopBackOff"
    # pods were looked up by the new ReplicaSet's hash, not by the app label alone
    assert ("list", "Pod", "app=web,pod-template-hash=new") in client.calls


def test_watch_failure_falls_back_to_polling_and_times_out_cleanly():
    client = ScriptedClient(deployment(2, 2, 2, updated=1, total=4), [], watch_error=OSError("connection reset"))
    clock = client.clock
    waiter = make_waiter(client, clock=clock)
    with pytest.raises(WaitTimeout) as err:
        waiter.wait(5)
    assert waiter.polling and "watch failed" in waiter.watch_error
    assert "timed out after 5s" in err.value.msg
    assert "1 out of 3 new replicas" in err.value.msg
    gets = [c for c in client.calls if c[0] == "get"]
    assert 4 <= len(gets) <= 8  # about one GET per second of the 5 s budget


def running_pod(started_ago, ready=False, period=1, delay=0, reason=None):
    cs = {"name": "app", "ready": ready, "restartCount": 0}
    cs["state"] = {"waiting": {"reason": reason}} if reason else {"running": {"startedAt": ts(started_ago)}}
    probe = {"periodSeconds": period, "initialDelaySeconds": delay}
    ready_condition = {"type": "Ready", "status": str(ready), "lastTransitionTime": ts(started_ago)}
    return {"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "readinessProbe": probe}]},
            "status": {"containerStatuses": [cs], "conditions": [ready_condition]}}


@pytest.mark.parametrize("pod, limit, reason", [
    (running_pod(2), 3, None),                       # not ready for 2 probe periods: still starting
    (running_pod(4), 3, "ReadinessProbeFailing"),    # 4 periods > limit 3
    (running_pod(40, period=10, delay=5), 3, "ReadinessProbeFailing"),
    (running_pod(30, period=10, delay=5), 3, None),  # 25 s after the initial delay < 30 s
    (running_pod(100), 0, None),                     # check disabled
    (running_pod(100, ready=True), 3, None),
    (running_pod(0, reason="ImagePullBackOff"), 3, "ImagePullBackOff"),
    (running_pod(0, reason="ErrImagePull"), 0, "ErrImagePull"),
    (running_pod(0, reason="CreateContainerConfigError"), 3, "CreateContainerConfigError"),
    (running_pod(0, reason="ContainerCreating"), 3, None),
])
def test_pod_problems(pod, limit, reason):
    problems = pod_problems(pod, limit, now=NOW)
    assert [p["reason"] for p in problems] == ([reason] if reason else [])


def test_terminating_pods_are_not_judged():
    pod = running_pod(0, reason="CrashLoopBackOff")
    pod["metadata"]["deletionTimestamp"] = ts(0)
    assert pod_problems(pod, 3, now=NOW) == []


def test_container_without_probe_is_not_a_readiness_failure():
    pod = running_pod(100)
    del pod["spec"]["containers"][0]["readinessProbe"]
    assert pod_problems(pod, 3, now=NOW) == []


def test_a_progressing_rollout_costs_no_pod_inspection():
    # every watch read brings a change, so the waiter never needs to look at the pods
    client = ScriptedClient(deployment(2, 2, 2, updated=1, total=4, rv="20"), [
        [("MODIFIED", deployment(2, 2, 2, updated=2, total=4, rv="21")),
         ("MODIFIED", deployment(2, 2, 2, updated=3, total=4, rv="22")),
         ("MODIFIED", deployment(2, 2, 2, updated=3, total=3, rv="23"))],
    ])
    status = make_waiter(client).wait(60)
    assert status.done
    assert not [c for c in client.calls if c[0] == "list" and c[1] == "Pod"]
    assert len([c for c in client.calls if c[0] == "watch"]) == 1


def test_wait_starts_from_the_callers_object_without_reading_it_again():
    patched = deployment(gen=2, observed=1, revision=1, updated=3, rv="30")
    client = ScriptedClient(patched, [[("MODIFIED", deployment(2, 2, 2, updated=3, total=3, rv="31"))]])
    status = make_waiter(client).wait(60, min_generation=2, initial=patched)
    assert status.done and status.revision == 2
    assert [c[0] for c in client.calls] == ["watch"]
    assert client.calls[0] == ("watch", "30")


class QuietClient(ScriptedClient):
    """Records the read timeout of each watch; an empty segment stands for a watch that stayed quiet."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.quiet_timeouts = []

    def watch(self, kind, namespace, name, resource_version, timeout_seconds, quiet_timeout=None):
        self.quiet_timeouts.append(quiet_timeout)
        return super().watch(kind, namespace, name, resource_version, timeout_seconds, quiet_timeout)


def test_pods_are_inspected_only_after_a_quiet_spell_that_grows_and_resets_on_change():
    from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes import waiter as waiter_mod

    client = QuietClient(deployment(2, 2, 2, updated=1, total=4, rv="40"), [
        [], [],                                                           # quiet twice: two looks at the pods
        [("MODIFIED", deployment(2, 2, 2, updated=2, total=4, rv="41"))],  # a change, then quiet again
        [],
        [("MODIFIED", deployment(2, 2, 2, updated=3, total=3, rv="42"))],
    ])
    status = make_waiter(client).wait(600)
    assert status.done
    first = waiter_mod.QUIET_BEFORE_POD_CHECK
    # the quiet time doubles while the pods look fine, and starts over after a change
    assert client.quiet_timeouts == [first, 2 * first, 4 * first, first, 2 * first]
    assert len([c for c in client.calls if c[0] == "list" and c[1] == "Pod"]) == 3
