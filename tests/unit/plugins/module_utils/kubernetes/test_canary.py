"""image_upgrade's canary option: the request checks, the manifest, and present/absent over an in-memory API."""
from __future__ import annotations

import copy

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils import platforms
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes import backend as k8s_backend
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.canary import (
    CANARY_OF_ANNOTATION,
    CanaryRequest,
    canary_manifest,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    RolloutError,
    WaitTimeout,
    WorkloadNotFound,
    WorkloadRef,
)
from tests.k8s_server.patch import json_patch, strategic_merge_patch
from tests.support.fake_module import FakeModule

V1, V2 = "zerodown/demo-app:1.0", "zerodown/demo-app:2.0"
WEB = WorkloadRef(platform="kubernetes", name="web", kind="Deployment", namespace="ns")


def workload(replicas=3, image=V1, sidecar=True):
    containers = [{"name": "app", "image": image, "ports": [{"containerPort": 8080}]}]
    if sidecar:
        containers.append({"name": "log", "image": "busybox:1.36"})
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-web", "generation": 4, "resourceVersion": "40",
                     "labels": {"team": "shop"}, "annotations": {"deployment.kubernetes.io/revision": "2"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                 "minReadySeconds": 2,
                 "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"note": "x"}},
                              "spec": {"containers": containers, "terminationGracePeriodSeconds": 5}}},
        "status": {"observedGeneration": 4, "replicas": replicas, "updatedReplicas": replicas,
                   "readyReplicas": replicas, "availableReplicas": replicas},
    }


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in (p.split("=", 1) for p in selector.split(",") if p))


class FakeApi:
    """Deployments and pods in memory. Its controller is instant: a stored Deployment is rolled out at once, and
    watching a Deployment yields its stored state; watching pods yields the deletion of every pod left."""

    def __init__(self, *objects, pods=()):
        self.objects = {o["metadata"]["name"]: copy.deepcopy(o) for o in objects}
        self.pods = [copy.deepcopy(p) for p in pods]
        self.calls = []
        self.rv = 100

    def writes(self):
        return [c for c in self.calls if c[0] in ("create", "patch", "delete")]

    def _store(self, obj):
        self.rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.rv)
        replicas = obj["spec"]["replicas"]
        stored = copy.deepcopy(obj)
        stored["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = "1"
        stored["status"] = {"observedGeneration": meta["generation"], "replicas": replicas, "updatedReplicas": replicas,
                            "readyReplicas": replicas, "availableReplicas": replicas}
        self.objects[meta["name"]] = stored
        return obj  # the answer to a write: the spec, before the controller saw it

    def get(self, kind, name, namespace):
        self.calls.append(("get", name))
        if kind != "Deployment" or name not in self.objects:
            raise WorkloadNotFound(f"read {kind} {namespace}/{name}: not found")
        return copy.deepcopy(self.objects[name])

    def list(self, kind, namespace, label_selector=None, field_selector=None):
        self.calls.append(("list", kind, label_selector))
        items = [p for p in self.pods if matches(label_selector or "", p["metadata"]["labels"])] if kind == "Pod" else []
        return {"metadata": {"resourceVersion": str(self.rv)}, "items": copy.deepcopy(items)}

    def create(self, kind, namespace, body, dry_run=False):
        self.calls.append(("create", body["metadata"]["name"], dry_run))
        obj = copy.deepcopy(body)
        obj["metadata"].update(generation=1, uid="uid-" + obj["metadata"]["name"])
        return copy.deepcopy(obj) if dry_run else self._store(obj)

    def patch(self, kind, name, namespace, body, patch_type, dry_run=False):
        self.calls.append(("patch", name, patch_type, dry_run))
        old = self.get(kind, name, namespace)
        new = json_patch(old, body) if patch_type == "json" else strategic_merge_patch(old, body)
        if new["spec"] != old["spec"]:
            new["metadata"]["generation"] += 1
        return copy.deepcopy(new) if dry_run else self._store(new)

    def delete(self, kind, name, namespace, dry_run=False):
        self.calls.append(("delete", name, dry_run))
        if name not in self.objects:
            raise WorkloadNotFound("gone")
        del self.objects[name]
        return {}

    def watch(self, kind, namespace, name, resource_version, timeout_seconds, quiet_timeout=None,
              label_selector=None):
        self.calls.append(("watch", kind))
        if kind == "Deployment":
            yield "MODIFIED", copy.deepcopy(self.objects[name])
            return
        while self.pods:
            yield "DELETED", self.pods.pop(0)


def canary_pod(name, deleting=False):
    meta = {"name": name, "labels": {"app": "web", "track": "canary", "pod-template-hash": "h"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


def params(**given):
    spec = platforms.argument_spec("docker_rollout", "docker_container", "kubernetes_canary",
                                   image={"type": "str"}, container={"type": "str"}, change_cause={"type": "str"},
                                   replicas={"type": "int"}, wait={"type": "bool", "default": True},
                                   wait_timeout={"type": "int", "default": 300})
    out = {name: option.get("default") for name, option in spec.items()}
    out.update(platform="kubernetes", name="web", kind="Deployment", namespace="ns")
    out.update(given)
    if isinstance(out.get("canary"), dict):  # as AnsibleModule fills in the suboptions
        suboptions = spec["canary"]["options"]
        out["canary"] = {name: out["canary"].get(name, option.get("default")) for name, option in suboptions.items()}
    return out


def platform(api, monkeypatch, check_mode=False, **given):
    module = FakeModule(params(**given))
    module.check_mode = check_mode
    monkeypatch.setattr(k8s_backend.KubeClient, "from_params", classmethod(lambda cls, p: api))
    kind = given.get("kind", "Deployment")
    return k8s_backend.KubernetesPlatform(module, WorkloadRef("kubernetes", "web", kind, "ns")), module.params


def run(api, monkeypatch, check_mode=False, **given):
    plat, p = platform(api, monkeypatch, check_mode, **given)
    return plat.upgrade(p).to_module_result(True)


# ------------------------------------------------------------------------------------------ the manifest
def test_manifest_copies_the_template_with_the_new_image_and_a_canary_track():
    body = canary_manifest(workload(), "web-canary", V2, ["app"], 1, "why")
    spec = body["spec"]
    assert body["metadata"]["name"] == "web-canary" and body["metadata"]["namespace"] == "ns"
    assert body["metadata"]["annotations"][CANARY_OF_ANNOTATION] == "web"
    assert body["metadata"]["annotations"]["kubernetes.io/change-cause"] == "why"
    assert spec["replicas"] == 1
    assert spec["selector"] == {"matchLabels": {"app": "web", "track": "canary"}}
    assert spec["template"]["metadata"]["labels"] == {"app": "web", "track": "canary"}
    assert spec["template"]["metadata"]["annotations"] == {"note": "x"}
    assert [(c["name"], c["image"]) for c in spec["template"]["spec"]["containers"]] == \
        [("app", V2), ("log", "busybox:1.36")]
    assert spec["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 8080}]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0} and spec["minReadySeconds"] == 2
    assert "progressDeadlineSeconds" not in spec  # only what the workload sets is copied


def test_manifest_leaves_the_workload_document_as_it_was():
    source = workload()
    before = copy.deepcopy(source)
    canary_manifest(source, "web-canary", V2, ["app"], 1, "why")
    assert source == before


# ------------------------------------------------------------------------------------------ bad requests
@pytest.mark.parametrize("given, message", [
    ({"canary": {"replicas": 0}}, "canary.replicas must be 1 or more, got 0"),
    ({"canary": {"replicas": -2}}, "canary.replicas must be 1 or more, got -2"),
    ({"canary": {"name_suffix": ""}}, "canary.name_suffix must not be empty"),
    ({"canary": {"name_suffix": "_Canary"}}, "makes the canary's name 'web_Canary', which is not a valid"),
    ({"canary": {}, "replicas": 3}, "replicas sets the workload's replicas"),
    ({"canary": {"state": "absent"}, "image": V2}, "image cannot be given with canary.state=absent"),
    ({"canary": {"state": "absent", "replicas": 1}, "container": "app"},
     "container, canary.replicas cannot be given with canary.state=absent"),
    ({"canary": {}, "kind": "StatefulSet"}, "canary needs kind=Deployment, and this task has kind=StatefulSet"),
    ({"canary": {}, "kind": "DaemonSet"}, "canary needs kind=Deployment, and this task has kind=DaemonSet"),
    ({"canary": {}, "image": None}, "image is required with canary.state=present"),
    ({"canary": {}, "wait_timeout": -1}, "wait_timeout must be zero or more seconds, got -1"),
])
def test_a_request_that_cannot_work_is_refused_and_nothing_is_written(monkeypatch, given, message):
    given = dict({"image": V2}, **given)
    api = FakeApi(workload())
    with pytest.raises(InvalidInput) as err:
        run(api, monkeypatch, **given)
    assert message in err.value.msg
    assert api.writes() == [] and "web-canary" not in api.objects


@pytest.mark.parametrize("given", [
    {"canary": {}, "kind": "StatefulSet"},
    {"canary": {"replicas": 0}},
    {"canary": {"state": "absent"}, "image": V2},
])
def test_a_refused_request_reads_nothing_either(monkeypatch, given):
    api = FakeApi(workload())
    with pytest.raises(InvalidInput):
        run(api, monkeypatch, **dict({"image": V2}, **given))
    assert api.calls == []


def test_a_canary_larger_than_the_workload_is_refused(monkeypatch):
    api = FakeApi(workload(replicas=3))
    with pytest.raises(InvalidInput) as err:
        run(api, monkeypatch, image=V2, canary={"replicas": 4})
    assert "canary.replicas=4 is more than the 3 replica(s) of Deployment ns/web" in err.value.msg
    assert "Give 3 or fewer" in err.value.msg
    assert api.writes() == []
    # as many as the workload is the limit, and allowed
    assert run(api, monkeypatch, image=V2, canary={"replicas": 3})["canary"]["replicas"] == 3


def test_an_image_no_container_runs_is_refused_with_the_containers_listed(monkeypatch):
    api = FakeApi(workload())
    with pytest.raises(InvalidInput) as err:
        run(api, monkeypatch, image="other/thing:2", canary={})
    assert "no container of Deployment ns/web runs an image of repository 'other/thing'" in err.value.msg
    assert "app (zerodown/demo-app:1.0), log (busybox:1.36)" in err.value.msg
    assert api.writes() == []


def test_a_deployment_of_the_canary_name_that_is_not_our_canary_is_left_alone(monkeypatch):
    stranger = workload()
    stranger["metadata"]["name"] = "web-canary"
    api = FakeApi(workload(), stranger)
    for given in ({"image": V2, "canary": {}}, {"canary": {"state": "absent"}}):
        with pytest.raises(InvalidInput) as err:
            run(api, monkeypatch, **given)
        assert "Deployment ns/web-canary exists and is not the canary of Deployment ns/web" in err.value.msg
    assert api.writes() == [] and api.objects["web-canary"]["spec"]["replicas"] == 3


def test_canary_on_a_docker_host_is_refused_pointing_at_max_batches(monkeypatch):
    module = FakeModule(dict(params(canary={"replicas": 1}), platform="docker", namespace=None, kind=None))
    with pytest.raises(SystemExit):
        platforms.run(module, lambda _platform: pytest.fail("the action ran"))
    assert "canary applies to platform=kubernetes only, and this task has platform=docker" in module.failed["msg"]
    assert "max_batches" in module.failed["msg"]


# ------------------------------------------------------------------------------------------ present
def test_present_creates_waits_and_then_is_idempotent(monkeypatch):
    api = FakeApi(workload())
    first = run(api, monkeypatch, image=V2, canary={"replicas": 2}, change_cause="release 2.0")
    assert first["changed"] is True
    assert first["canary"]["name"] == "web-canary" and first["canary"]["replicas"] == 2
    assert first["canary"]["image"] == V2 and first["canary"]["images"] == {"app": V2, "log": "busybox:1.36"}
    assert first["canary"]["status"]["done"] is True and first["canary"]["status"]["ready"] == 2
    assert first["diff"] == {"before": {}, "after": {"name": "web-canary", "replicas": 2, "image": V2,
                                                     "images": {"app": V2, "log": "busybox:1.36"}}}
    stored = api.objects["web-canary"]
    assert stored["metadata"]["annotations"]["kubernetes.io/change-cause"] == "release 2.0"
    assert ("watch", "Deployment") in api.calls  # it waited for the canary's rollout
    # the workload was only read, and the result speaks of it
    assert api.objects["web"] == workload()
    assert first["images"] == first["previous_images"] == {"app": V1, "log": "busybox:1.36"}
    assert first["revision"] == first["previous_revision"] == 2

    api.calls.clear()
    again = run(api, monkeypatch, image=V2, canary={"replicas": 2})
    assert again["changed"] is False and api.writes() == []
    assert again["canary"]["replicas"] == 2 and again["canary"]["status"]["done"] is True


def test_present_updates_a_canary_whose_image_or_replicas_differ(monkeypatch):
    api = FakeApi(workload())
    run(api, monkeypatch, image=V2, canary={"replicas": 1})
    bigger = run(api, monkeypatch, image=V2, canary={"replicas": 2})
    assert bigger["changed"] is True and api.objects["web-canary"]["spec"]["replicas"] == 2
    assert bigger["diff"]["before"]["replicas"] == 1 and bigger["diff"]["after"]["replicas"] == 2
    newer = run(api, monkeypatch, image="zerodown/demo-app:3.0", canary={"replicas": 2})
    assert newer["changed"] is True
    stored = api.objects["web-canary"]
    assert stored["spec"]["template"]["spec"]["containers"][0]["image"] == "zerodown/demo-app:3.0"
    assert stored["metadata"]["annotations"]["zerodown.rollout/canary-image"] == "zerodown/demo-app:3.0"
    assert [c[2] for c in api.writes() if c[0] == "patch"] == ["json", "json"]


def test_present_with_container_changes_only_that_container(monkeypatch):
    api = FakeApi(workload())
    result = run(api, monkeypatch, image="busybox:1.37", container="log", canary={})
    assert result["canary"]["images"] == {"app": V1, "log": "busybox:1.37"}


def test_present_in_check_mode_is_a_server_side_dry_run(monkeypatch):
    api = FakeApi(workload())
    result = run(api, monkeypatch, check_mode=True, image=V2, canary={})
    assert result["changed"] is True and "would be created" in result["msg"]
    assert result["diff"]["after"]["images"]["app"] == V2
    assert ("create", "web-canary", True) in api.calls and "web-canary" not in api.objects
    run(api, monkeypatch, image=V2, canary={})
    check = run(api, monkeypatch, check_mode=True, image=V2, canary={})
    assert check["changed"] is False


def test_present_without_wait_does_not_wait(monkeypatch):
    api = FakeApi(workload())
    result = run(api, monkeypatch, image=V2, canary={}, wait=False)
    assert result["changed"] is True and "status" not in result["canary"]
    assert not any(c[0] == "watch" for c in api.calls)


def test_a_failed_wait_says_that_the_canary_was_created(monkeypatch):
    api = FakeApi(workload())
    plat, p = platform(api, monkeypatch, image=V2, canary={})

    def failing_wait(*_args, **_kwargs):
        raise WaitTimeout("timed out after 1s waiting for Deployment ns/web-canary")
    monkeypatch.setattr(k8s_backend.RolloutWaiter, "wait", failing_wait)
    with pytest.raises(RolloutError) as err:
        plat.upgrade(p)
    assert err.value.details["changed"] is True
    assert err.value.details["canary"] == {"name": "web-canary", "state": "present", "replicas": 1, "image": V2}


# ------------------------------------------------------------------------------------------ absent
def test_absent_scales_to_zero_waits_for_the_pods_then_deletes(monkeypatch):
    api = FakeApi(workload())
    run(api, monkeypatch, image=V2, canary={"replicas": 2})
    api.pods = [canary_pod("web-canary-a"), canary_pod("web-canary-b", deleting=True),
                {"metadata": {"name": "web-x", "labels": {"app": "web"}}}]
    api.calls.clear()
    result = run(api, monkeypatch, canary={"state": "absent"})
    assert result["changed"] is True and "web-canary" not in api.objects
    assert result["canary"] == {"name": "web-canary", "state": "absent", "replicas": 0, "image": V2,
                                "images": {"app": V2, "log": "busybox:1.36"}}
    assert result["diff"]["after"] == {} and result["diff"]["before"]["replicas"] == 2
    writes = api.writes()
    assert writes[0] == ("patch", "web-canary", "strategic", False) and writes[-1] == ("delete", "web-canary", False)
    # the pods were listed by the canary's own selector, and the workload's pod was never waited for
    assert ("list", "Pod", "app=web,track=canary") in api.calls
    assert [p["metadata"]["name"] for p in api.pods] == ["web-x"]
    assert [line["message"] for line in result["progress"]][-1] == "Deployment ns/web-canary deleted"

    api.calls.clear()
    gone = run(api, monkeypatch, canary={"state": "absent"})
    assert gone["changed"] is False and api.writes() == [] and "no canary" in gone["msg"]
    assert gone["canary"]["image"] is None and gone["canary"]["replicas"] == 0


def test_absent_gives_up_at_the_timeout_and_leaves_the_canary_scaled_to_zero(monkeypatch):
    api = FakeApi(workload())
    run(api, monkeypatch, image=V2, canary={})
    api.pods = [canary_pod("web-canary-a", deleting=True)]
    with pytest.raises(WaitTimeout) as err:
        run(api, monkeypatch, canary={"state": "absent"}, wait_timeout=0)
    assert "waiting for the pods of Deployment ns/web-canary to be gone: 1 still present: web-canary-a (terminating)" \
        in err.value.msg
    assert "scaled to 0 and left in place" in err.value.msg
    assert err.value.details["changed"] is True and err.value.details["pods"] == ["web-canary-a"]
    assert api.objects["web-canary"]["spec"]["replicas"] == 0
    assert not any(c[0] == "delete" for c in api.calls)


def test_absent_in_check_mode_predicts_and_writes_nothing(monkeypatch):
    api = FakeApi(workload())
    run(api, monkeypatch, image=V2, canary={})
    api.calls.clear()
    result = run(api, monkeypatch, check_mode=True, canary={"state": "absent"})
    assert result["changed"] is True and "would be removed" in result["msg"]
    assert api.writes() == [] and api.objects["web-canary"]["spec"]["replicas"] == 1


def test_absent_without_wait_deletes_at_once(monkeypatch):
    api = FakeApi(workload())
    run(api, monkeypatch, image=V2, canary={})
    api.pods = [canary_pod("web-canary-a")]
    api.calls.clear()
    result = run(api, monkeypatch, canary={"state": "absent"}, wait=False)
    assert result["changed"] is True and "web-canary" not in api.objects
    assert not any(c[0] in ("watch", "list") for c in api.calls), api.calls


def test_absent_removes_the_canary_of_a_workload_that_is_gone(monkeypatch):
    api = FakeApi(workload())
    run(api, monkeypatch, image=V2, canary={})
    del api.objects["web"]
    result = run(api, monkeypatch, canary={"state": "absent"})
    assert result["changed"] is True and "web-canary" not in api.objects and result["revision"] is None


def test_request_defaults_apply_when_the_suboptions_are_left_out():
    unset = {"state": None, "replicas": None, "name_suffix": None}
    request = CanaryRequest.from_params({"image": V2, "canary": unset}, WEB)
    assert (request.state, request.name, request.replicas) == ("present", "web-canary", 1)
    absent = CanaryRequest.from_params({"canary": {"state": "absent", "name_suffix": "-try"}}, WEB)
    assert (absent.state, absent.name, absent.replicas) == ("absent", "web-try", 0)
