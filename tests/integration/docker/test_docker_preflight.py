"""Docker pre-flight lint and running without a load balancer, on a real engine."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.backend import DockerPlatform
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import WorkloadRef
from tests.support.docker_harness import IMAGE_V1, IMAGE_V2, container_spec, run_playbook
from tests.support.fake_module import FakeModule

pytestmark = pytest.mark.docker


def _findings(name, **params):
    platform = DockerPlatform(FakeModule(params), WorkloadRef("docker", name))
    return {f.check: f.severity for f in platform.preflight(params)}


def test_preflight_flags_what_would_drop_traffic(engine, haproxy, workload_name, containers, tmp_path):
    assert _findings(workload_name) == {"workload-exists": "warning"}
    no_health = container_spec(healthcheck={"test": ["NONE"]}, restart_policy="no")
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": {"platform": "docker", "name": workload_name, "image": IMAGE_V1,
                                            "replicas": 1, "docker_container": no_health}},
    ])["localhost"]["r0"]
    assert res["changed"], res
    # no load balancer: the change is made, and the module says plainly what that costs
    assert any("Zero downtime needs a load balancer" in w for w in res.get("warnings", [])), res
    found = _findings(workload_name)
    assert found == {"load-balancer": "error", "health-gate": "error", "replicas": "warning",
                     "restart-policy": "warning"}
    # an HTTP probe is a health gate too; an HAProxy that is there clears the load balancer finding
    found = _findings(workload_name, load_balancer=haproxy.lb_options(), health_check={"path": "/healthz"})
    assert found == {"replicas": "warning", "restart-policy": "warning"}
    # the preflight module's skip applies on Docker as on Kubernetes (a singleton by design)
    res = run_playbook(tmp_path, [{"zerodown.rollout.preflight": {
        "platform": "docker", "name": workload_name, "load_balancer": haproxy.lb_options(), "fail_on": "warning",
        "skip": ["replicas", "restart-policy", "health-gate"]}}])["localhost"]["r0"]
    assert not res.get("failed") and res["findings"] == [] and res["ok"], res


def test_without_load_balancer_scale_and_upgrade(engine, workload_name, containers, tmp_path):
    base = {"platform": "docker", "name": workload_name, "load_balancer": {"type": "none"}, "health_timeout": 20}
    res = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": dict(base, image=IMAGE_V1, replicas=3, docker_container=container_spec())},
        {"zerodown.rollout.image_upgrade": dict(base, image=IMAGE_V1, replicas=1)},
        {"zerodown.rollout.image_upgrade": dict(base, image=IMAGE_V2, retain=0)},
    ])["localhost"]
    assert [res[k]["changed"] for k in ("r0", "r1", "r2")] == [True, True, True], res
    assert "from 3 to 1 replicas" in res["r1"]["msg"]
    running = containers(all=False)
    assert [c.labels["zerodown.image"] for c in running] == [IMAGE_V2]
    # retain=0: the stopped revision 1 container was pruned, scaled-down ones were removed outright
    assert res["r2"]["pruned"] and len(containers()) == 1
