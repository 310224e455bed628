"""The Kubernetes backend: repositories, the containers an image applies to, the option checks, history, and the
upgrade/rollback requests it sends, over an in-memory API (no cluster)."""
from __future__ import annotations

import copy

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes import backend as k8s_backend
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.backend import normalize_repository
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    WorkloadRef,
    parse_image_reference,
)
from tests.support.fake_module import FakeModule

V1, V2 = "zerodown/demo-app:1.0", "zerodown/demo-app:2.0"


def template(app_image=V1, init_image=None):
    spec = {"containers": [{"name": "app", "image": app_image}, {"name": "log", "image": "busybox:1.36"}]}
    if init_image:
        spec["initContainers"] = [{"name": "setup", "image": init_image}]
    return {"metadata": {"labels": {"app": "web"}}, "spec": spec}


def deployment(image=V1, replicas=2, paused=False):
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": template(image)}
    if paused:
        spec["paused"] = True
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "uid-web", "generation": 3, "resourceVersion": "30",
                         "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": spec,
            "status": {"observedGeneration": 3, "replicas": replicas, "updatedReplicas": replicas,
                       "readyReplicas": replicas, "availableReplicas": replicas}}


def replica_set(number, pod_hash, image):
    tpl = template(image)
    tpl["metadata"]["labels"]["pod-template-hash"] = pod_hash
    return {"metadata": {"name": f"web-{pod_hash}", "uid": f"uid-rs-{pod_hash}",
                         "labels": {"app": "web", "pod-template-hash": pod_hash},
                         "annotations": {"deployment.kubernetes.io/revision": str(number)},
                         "ownerReferences": [{"kind": "ReplicaSet", "uid": "uid-web", "controller": True}]},
            "spec": {"template": tpl}, "status": {"replicas": 0}}


class Api:
    """One workload and its ReplicaSets; writes are recorded and answered with the object as patched."""

    def __init__(self, obj, replica_sets=()):
        self.obj = obj
        self.replica_sets = list(replica_sets)
        self.calls = []

    def writes(self):
        return [c for c in self.calls if c[0] in ("patch", "create", "delete")]

    def get(self, kind, name, namespace):
        self.calls.append(("get", kind, name, namespace))
        return copy.deepcopy(self.obj)

    def list(self, kind, namespace, label_selector=None, field_selector=None):
        self.calls.append(("list", kind, label_selector))
        return {"items": copy.deepcopy(self.replica_sets) if kind == "ReplicaSet" else []}

    def patch(self, kind, name, namespace, body, patch_type, dry_run=False):
        self.calls.append(("patch", kind, name, patch_type, dry_run, copy.deepcopy(body)))
        answer = copy.deepcopy(self.obj)
        answer["metadata"]["generation"] += 1
        for change in ((body.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers", []):
            for container in answer["spec"]["template"]["spec"]["containers"]:
                if container["name"] == change["name"]:
                    container["image"] = change["image"]
        return answer


def platform(monkeypatch, api, kind="Deployment", namespace="ns", check_mode=False, **params):
    monkeypatch.setattr(k8s_backend.KubeClient, "from_params", classmethod(lambda cls, p: api))
    module = FakeModule(dict(params), check_mode=check_mode)
    return k8s_backend.KubernetesPlatform(module, WorkloadRef("kubernetes", "web", kind, namespace))


# ------------------------------------------------------------------------------------------ repositories
@pytest.mark.parametrize("given, expected", [
    ("nginx", "nginx"),
    ("docker.io/library/nginx", "nginx"),
    ("index.docker.io/library/nginx", "nginx"),
    ("registry-1.docker.io/library/nginx", "nginx"),
    ("docker.io/zerodown/demo-app", "zerodown/demo-app"),
    ("library/nginx", "nginx"),
    # only Docker Hub's implicit prefixes: another registry, or a deeper library path, stays as it is
    ("ghcr.io/library/nginx", "ghcr.io/library/nginx"),
    ("docker.io/library/team/app", "library/team/app"),
    ("quay.io/docker.io/x", "quay.io/docker.io/x"),
])
def test_normalize_repository(given, expected):
    assert normalize_repository(given) == expected


# ------------------------------------------------------------------------------------------ option checks
def test_an_empty_namespace_is_refused(monkeypatch):
    with pytest.raises(InvalidInput, match="namespace must be the non-empty name"):
        platform(monkeypatch, Api(deployment()), namespace="")


def test_readiness_failure_limit_zero_is_honoured_and_a_negative_one_refused(monkeypatch):
    assert platform(monkeypatch, Api(deployment()), readiness_failure_limit=0).waiter().readiness_failure_limit == 0
    assert platform(monkeypatch, Api(deployment())).waiter().readiness_failure_limit == 10
    with pytest.raises(InvalidInput, match="readiness_failure_limit must be 0 .off. or more, got -1"):
        platform(monkeypatch, Api(deployment()), readiness_failure_limit=-1)


def test_wait_old_pods_gone_reaches_the_waiter(monkeypatch):
    assert platform(monkeypatch, Api(deployment()), wait_old_pods_gone=True).waiter().wait_old_pods_gone is True
    assert platform(monkeypatch, Api(deployment())).waiter().wait_old_pods_gone is False


@pytest.mark.parametrize("kind, given, message", [
    ("Deployment", {"wait_timeout": -1}, "wait_timeout must be zero or more seconds, got -1"),
    ("Deployment", {"replicas": -1}, "replicas must be zero or more, got -1"),
    ("DaemonSet", {"replicas": 2}, "replicas does not apply to a DaemonSet"),
    ("Deployment", {"image": "Bad Image!"}, "is not a valid image reference"),
])
def test_a_bad_upgrade_request_is_refused_before_any_request(monkeypatch, kind, given, message):
    api = Api(deployment())
    plat = platform(monkeypatch, api, kind=kind)
    with pytest.raises(InvalidInput, match=message):
        plat.upgrade(dict({"image": V2, "wait": False}, **given))
    assert api.calls == []


@pytest.mark.parametrize("given, message", [
    ({"to_revision": -1}, "to_revision must be a revision number .1 or more., got -1"),
    ({"wait_timeout": -5}, "wait_timeout must be zero or more seconds, got -5"),
])
def test_a_bad_rollback_request_is_refused_before_any_request(monkeypatch, given, message):
    api = Api(deployment())
    with pytest.raises(InvalidInput, match=message):
        platform(monkeypatch, api).rollback(dict({"wait": False}, **given))
    assert api.calls == []


def test_a_paused_deployment_is_not_rolled_back_unless_allowed(monkeypatch):
    api = Api(deployment(V2, paused=True), [replica_set(1, "aaa", V1), replica_set(2, "bbb", V2)])
    with pytest.raises(InvalidInput, match="is paused; a rollback would not roll out.*allow_paused=true"):
        platform(monkeypatch, api).rollback({"wait": False})
    assert api.writes() == []


# ------------------------------------------------------------------------------------------ matching_containers
def test_matching_containers_by_repository_includes_init_containers(monkeypatch):
    plat = platform(monkeypatch, Api(deployment()))
    tpl = template(V1, init_image="docker.io/zerodown/demo-app:0.9")
    found = plat.matching_containers(tpl, parse_image_reference(V2), None)
    assert [(key, c["name"]) for key, c in found] == [("containers", "app"), ("initContainers", "setup")]


def test_matching_containers_docker_hub_names_are_one_repository(monkeypatch):
    plat = platform(monkeypatch, Api(deployment()))
    found = plat.matching_containers(template(V1), parse_image_reference("docker.io/library/busybox:1.37"), None)
    assert [c["name"] for dummy, c in found] == ["log"]


def test_matching_containers_by_name_even_with_another_repository(monkeypatch):
    plat = platform(monkeypatch, Api(deployment()))
    found = plat.matching_containers(template(V1), parse_image_reference("other/log:2"), "log")
    assert [c["name"] for dummy, c in found] == ["log"]


def test_matching_containers_names_the_containers_when_none_matches(monkeypatch):
    plat = platform(monkeypatch, Api(deployment()))
    with pytest.raises(InvalidInput) as err:
        plat.matching_containers(template(V1), parse_image_reference("other/thing:2"), None)
    assert "no container of" in err.value.msg and "repository 'other/thing'" in err.value.msg
    assert f"app ({V1}), log (busybox:1.36)" in err.value.msg and "Set container" in err.value.msg
    with pytest.raises(InvalidInput, match="has no container named 'sidecar'; its containers are: app"):
        plat.matching_containers(template(V1), parse_image_reference(V2), "sidecar")
    with pytest.raises(InvalidInput, match="its containers are: none"):
        plat.matching_containers({}, parse_image_reference(V2), None)


# ------------------------------------------------------------------------------------------ history
def test_history_marks_the_running_revision(monkeypatch):
    api = Api(deployment(V2), [replica_set(2, "bbb", V2), replica_set(1, "aaa", V1)])
    revisions = platform(monkeypatch, api).history()
    assert [(r.number, r.current, r.source) for r in revisions] == [
        (1, False, "ReplicaSet/web-aaa"), (2, True, "ReplicaSet/web-bbb")]
    assert revisions[0].images == {"app": V1, "log": "busybox:1.36"}


# ------------------------------------------------------------------------------------------ upgrade requests
def test_upgrade_in_check_mode_is_a_dry_run_patch_of_the_matching_container(monkeypatch):
    api = Api(deployment(V1), [replica_set(1, "aaa", "zerodown/demo-app:0.9"), replica_set(2, "bbb", V1)])
    result = platform(monkeypatch, api, check_mode=True).upgrade({"image": V2, "wait": True})
    [write] = api.writes()
    assert write[:5] == ("patch", "Deployment", "web", "strategic", True)
    assert write[5]["spec"] == {"template": {"spec": {"containers": [{"name": "app", "image": V2}]}}}
    assert write[5]["metadata"]["annotations"]["kubernetes.io/change-cause"] == f"zerodown.rollout.image_upgrade app={V2}"
    assert result.changed and result.revision == 3 and result.previous_revision == 2
    assert result.images == {"app": V2, "log": "busybox:1.36"} and result.previous_images["app"] == V1
    assert result.before["template"]["spec"]["containers"][0]["image"] == V1
    assert result.after["template"]["spec"]["containers"][0]["image"] == V2
    assert "would be upgraded (app=" in result.message


def test_upgrade_to_the_running_image_changes_nothing(monkeypatch):
    api = Api(deployment(V2), [replica_set(2, "bbb", V2)])
    result = platform(monkeypatch, api).upgrade({"image": V2, "wait": False})
    assert not result.changed and api.writes() == []
    assert result.revision == 2 and result.message.endswith(f"already runs {V2}")


def test_upgrade_of_replicas_only_to_zero_is_a_change_and_is_honoured(monkeypatch):
    api = Api(deployment(V2, replicas=2), [replica_set(2, "bbb", V2)])
    result = platform(monkeypatch, api, check_mode=True).upgrade({"image": V2, "replicas": 0, "wait": False})
    [write] = api.writes()
    assert write[5] == {"spec": {"replicas": 0}}
    assert result.changed and result.revision == 2  # no new template: no new revision
