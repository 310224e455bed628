"""The API surface the collection relies on, spoken to by the official Python client."""
from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.k8s_server import manifests as m

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, dynamic, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.k8s


def _wait_complete(apps, name: str, ns: str, timeout: float = 30) -> dict:
    """kubectl's rule for a finished Deployment rollout, polled (bounded)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        d = apps.read_namespaced_deployment(name, ns)
        s = d.status
        if (s.observed_generation or 0) >= d.metadata.generation and (s.updated_replicas or 0) >= d.spec.replicas \
                and (s.replicas or 0) <= (s.updated_replicas or 0) and (s.available_replicas or 0) >= (s.updated_replicas or 0):
            return d
        time.sleep(0.1)
    raise AssertionError(f"deployment {name} did not complete: {d.status}")


@pytest.fixture
def api(k8s_cluster):
    api_client = k8s_cluster.api_client()
    yield api_client
    api_client.close()


def test_deployment_creates_owned_replicaset_and_pods(api, k8s_namespace, k8s_cluster):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(k8s_namespace, m.deployment("web", f"{m.DEMO_IMAGE}:1.0", replicas=2))
    d = _wait_complete(apps, "web", k8s_namespace)
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert d.status.observed_generation == d.metadata.generation == 1
    conds = {c.type: c.reason for c in d.status.conditions}
    assert conds == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
    rss = apps.list_namespaced_replica_set(k8s_namespace, label_selector="app=web").items
    assert len(rss) == 1
    rs = rss[0]
    assert rs.metadata.owner_references[0].uid == d.metadata.uid and rs.metadata.owner_references[0].controller
    pth = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{pth}"
    assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == "2"
    assert rs.metadata.annotations["deployment.kubernetes.io/max-replicas"] == "3"
    pods = core.list_namespaced_pod(k8s_namespace, label_selector=f"pod-template-hash={pth}").items
    assert len(pods) == 2 and all(p.status.phase == "Running" for p in pods)
    if not k8s_cluster.real:
        # each pod serves the demo app on its loopback port: the image tag is the version
        pod = pods[0]
        port = pod.metadata.annotations["zerodown.test/port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=5) as resp:
            assert json.loads(resp.read()) == {"version": "1.0", "host": pod.metadata.name}


def test_strategic_merge_patch_merges_containers_by_name(api, k8s_namespace):
    apps = client.AppsV1Api(api)
    dep = m.deployment("two", f"{m.DEMO_IMAGE}:1.0", replicas=1)
    side = m.container(f"{m.DEMO_IMAGE}:1.0", name="side", readiness=False)
    side["ports"] = [{"containerPort": 9090}]
    dep["spec"]["template"]["spec"]["containers"].append(side)
    apps.create_namespaced_deployment(k8s_namespace, dep)
    out = apps.patch_namespaced_deployment(
        "two", k8s_namespace, {"spec": {"template": {"spec": {"containers": [
            {"name": "side", "image": f"{m.DEMO_IMAGE}:2.0"}]}}}})
    images = {c.name: c.image for c in out.spec.template.spec.containers}
    assert images == {"app": f"{m.DEMO_IMAGE}:1.0", "side": f"{m.DEMO_IMAGE}:2.0"}
    assert out.metadata.generation == 2
    # JSON merge patch replaces lists wholesale; JSON patch addresses by index
    apps.patch_namespaced_deployment(
        "two", k8s_namespace,
        [{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": f"{m.DEMO_IMAGE}:3.0"}])
    out = apps.read_namespaced_deployment("two", k8s_namespace)
    assert [c.image for c in out.spec.template.spec.containers] == [f"{m.DEMO_IMAGE}:3.0", f"{m.DEMO_IMAGE}:2.0"]
    assert out.metadata.generation == 3
    apps.patch_namespaced_deployment(
        "two", k8s_namespace, {"metadata": {"labels": {"tier": "web"}}, "spec": {"paused": True}},
        _content_type="application/merge-patch+json")
    out = apps.read_namespaced_deployment("two", k8s_namespace)
    assert out.metadata.labels == {"app": "two", "tier": "web"} and out.spec.paused is True
    assert len(out.spec.template.spec.containers) == 2


def test_server_side_dry_run_changes_nothing(api, k8s_namespace):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(k8s_namespace, m.deployment("dry", f"{m.DEMO_IMAGE}:1.0", replicas=1))
    before = apps.read_namespaced_deployment("dry", k8s_namespace)
    out = apps.patch_namespaced_deployment(
        "dry", k8s_namespace, {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": f"{m.DEMO_IMAGE}:2.0"}]}}}}, dry_run="All")
    assert out.spec.template.spec.containers[0].image == f"{m.DEMO_IMAGE}:2.0"
    assert out.metadata.generation == 2  # what the write would produce
    after = apps.read_namespaced_deployment("dry", k8s_namespace)
    assert after.spec.template.spec.containers[0].image == f"{m.DEMO_IMAGE}:1.0"
    assert after.metadata.generation == before.metadata.generation == 1
    apps.create_namespaced_deployment(k8s_namespace, m.deployment("ghost", f"{m.DEMO_IMAGE}:1.0"), dry_run="All")
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment("ghost", k8s_namespace)
    assert exc.value.status == 404


def test_errors_use_the_status_format(api, k8s_namespace):
    apps = client.AppsV1Api(api)
    with pytest.raises(ApiException) as exc:
        apps.read_namespaced_deployment("nope", k8s_namespace)
    body = json.loads(exc.value.body)
    assert exc.value.status == 404
    assert body["kind"] == "Status" and body["reason"] == "NotFound"
    assert body["message"] == 'deployments.apps "nope" not found'
    apps.create_namespaced_deployment(k8s_namespace, m.deployment("dup", f"{m.DEMO_IMAGE}:1.0", replicas=1))
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment(k8s_namespace, m.deployment("dup", f"{m.DEMO_IMAGE}:1.0"))
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "AlreadyExists"
    stale = apps.read_namespaced_deployment("dup", k8s_namespace)
    apps.patch_namespaced_deployment("dup", k8s_namespace, {"metadata": {"labels": {"x": "1"}}})
    stale.metadata.labels["y"] = "2"
    with pytest.raises(ApiException) as exc:
        apps.replace_namespaced_deployment("dup", k8s_namespace, stale)
    assert exc.value.status == 409 and json.loads(exc.value.body)["reason"] == "Conflict"
    bad = m.deployment("bad", f"{m.DEMO_IMAGE}:1.0")
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    with pytest.raises(ApiException) as exc:
        apps.create_namespaced_deployment(k8s_namespace, bad)
    body = json.loads(exc.value.body)
    assert exc.value.status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"


def test_list_selectors(api, k8s_namespace):
    apps = client.AppsV1Api(api)
    for name, tier in (("a", "front"), ("b", "back"), ("c", "front")):
        d = m.deployment(name, f"{m.DEMO_IMAGE}:1.0", replicas=0)
        d["metadata"]["labels"]["tier"] = tier
        apps.create_namespaced_deployment(k8s_namespace, d)

    def names(lst):
        return sorted(i.metadata.name for i in lst.items)

    assert names(apps.list_namespaced_deployment(k8s_namespace, label_selector="tier=front")) == ["a", "c"]
    assert names(apps.list_namespaced_deployment(k8s_namespace, label_selector="tier!=front")) == ["b"]
    assert names(apps.list_namespaced_deployment(k8s_namespace, label_selector="tier in (back,x),app")) == ["b"]
    assert names(apps.list_namespaced_deployment(k8s_namespace, field_selector="metadata.name=c")) == ["c"]


def test_watch_streams_from_a_resource_version_and_times_out(api, k8s_namespace):
    apps = client.AppsV1Api(api)
    created = apps.create_namespaced_deployment(
        k8s_namespace, m.deployment("w", f"{m.DEMO_IMAGE}:1.0", replicas=1))
    rv = created.metadata.resource_version
    seen: list[tuple[str, int]] = []
    started = time.monotonic()
    w = watch.Watch()
    for ev in w.stream(apps.list_namespaced_deployment, k8s_namespace, field_selector="metadata.name=w",
                       resource_version=rv, timeout_seconds=3):
        seen.append((ev["type"], ev["object"].metadata.generation))
        if ev["object"].status and ev["object"].status.available_replicas == 1 and \
                ev["object"].status.observed_generation == 1:
            w.stop()
    assert seen and all(t == "MODIFIED" for t, _obj in seen)  # nothing replayed from before rv
    assert time.monotonic() - started < 20
    # a watch with nothing happening ends at timeoutSeconds
    started = time.monotonic()
    events = list(watch.Watch().stream(apps.list_namespaced_deployment, k8s_namespace,
                                       field_selector="metadata.name=nothing-here", timeout_seconds=1))
    assert events == [] and time.monotonic() - started < 10


def test_dynamic_client_discovers_and_scales(api, k8s_namespace):
    dyn = dynamic.DynamicClient(api)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    deployments.create(body=m.deployment("dyn", f"{m.DEMO_IMAGE}:1.0", replicas=1), namespace=k8s_namespace)
    apps = client.AppsV1Api(api)
    scale = apps.patch_namespaced_deployment_scale("dyn", k8s_namespace, {"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3
    _wait_complete(apps, "dyn", k8s_namespace)
    got = deployments.get(name="dyn", namespace=k8s_namespace)
    assert got.status.availableReplicas == 3


def test_deployment_status_subresource_is_separate(api, k8s_namespace):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(k8s_namespace, m.deployment("st", f"{m.DEMO_IMAGE}:1.0", replicas=0))
    out = apps.patch_namespaced_deployment_status("st", k8s_namespace, {"spec": {"replicas": 5}})
    assert out.spec.replicas == 0 and out.metadata.generation == 1  # /status ignores spec
