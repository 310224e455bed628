"""playbooks/fleet_upgrade.yml: waves over 4 test clusters (1, 2, then the rest), a failure injected in
wave 2, and every host back on the old revision afterwards (checked per host on the platform itself)."""
from __future__ import annotations

import json
import os
import tempfile

import pytest
import yaml

from tests.support.roles_harness import ROOT, recording, run_playbook
from tests.k8s_server import manifests as m
from tests.k8s_server.fixture import K8sCluster
from tests.k8s_server.server import K8sTestServer

FLEET = ROOT / "playbooks" / "fleet_upgrade.yml"
V1, V2, BROKEN = f"{m.DEMO_IMAGE}:1.0", f"{m.DEMO_IMAGE}:2.0", f"{m.DEMO_IMAGE}:broken"
CLUSTERS = 4  # waves 1 and 2 (one of them failing) and a third that must never start


@pytest.fixture(scope="module")
def clusters():
    """Four test API servers, each running Deployment 'web' (2 x 1.0) behind Service 'web'."""
    if os.environ.get("ZD_KUBECONFIG") or os.environ.get("ZD_REAL_CLUSTER") == "1":
        pytest.skip("the fleet test starts its own test API servers")
    out: list[K8sCluster] = []
    try:
        for i in range(CLUSTERS):
            server = K8sTestServer().start()
            workdir = tempfile.mkdtemp(prefix=f"zd-fleet{i}-")
            cluster = K8sCluster(kubeconfig=server.write_kubeconfig(os.path.join(workdir, "kubeconfig")),
                                 context="zerodown-test", server=server)
            out.append(cluster)
            cluster.kubectl("apply", "-f", "-", input=m.to_json(
                m.deployment("web", V1, replicas=2, max_surge=1, max_unavailable=0), m.service("web")), check=True)
        for cluster in out:
            cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s", check=True)
        yield out
    finally:
        for cluster in out:
            cluster.close()


def image_of(cluster: K8sCluster) -> str:
    obj = json.loads(cluster.kubectl("get", "deployment", "web", "-o", "json", check=True).stdout)
    return obj["spec"]["template"]["spec"]["containers"][0]["image"]


@pytest.mark.k8s
def test_four_clusters_failure_in_wave_two_rolls_back_every_host(clusters, tmp_path):
    hosts = {}
    for i, cluster in enumerate(clusters):
        hosts[f"cluster{i}"] = {
            "ansible_connection": "local", "upgrade_platform": "kubernetes", "upgrade_kubeconfig": cluster.kubeconfig,
            "upgrade_context": cluster.context, "upgrade_traffic_url": cluster.service_url("web") + "/version",
        }
    hosts["cluster1"]["upgrade_image"] = BROKEN  # the failure injected in wave 2 (a host var: not an extra var)
    inventory = tmp_path / "fleet.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"clusters": {
        "hosts": hosts, "vars": {"upgrade_image": V2, "upgrade_workload": "web"}}}}}))
    record = tmp_path / "run.json"
    watched = clusters[0].service_url("web") + "/version"
    with recording(watched) as timeline:
        proc = run_playbook(FLEET, {
            "zerodown_hosts": "clusters", "zerodown_waves": [1, 2, "100%"], "upgrade_gate_requests": 30, "zerodown_wave_gate_requests": 20,
            "zerodown_run_record": str(record), "upgrade_wait_timeout": 90}, tmp_path, inventory=str(inventory))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-6000:]
    run = json.loads(record.read_text())
    # waves 1 and 2 ran, wave 3 never started
    assert run["waves"] == [["cluster0"], ["cluster1", "cluster2"]], run["waves"]
    assert run["failed_hosts"] == ["cluster1"] and run["ok"] is False
    assert sorted(run["not_reached_hosts"]) == ["cluster3"]
    # cluster0 (wave 1) and cluster2 (wave 2, succeeded) were rolled back by the rollback play,
    # cluster1 rolled itself back; the others were never touched
    assert sorted(run["rolled_back_hosts"]) == ["cluster0", "cluster1", "cluster2"]
    assert run["hosts"]["cluster0"]["previous_revision"] == 1 and run["hosts"]["cluster0"]["ok"] is True
    assert "ReadinessProbeFailing" in run["hosts"]["cluster1"]["failure"]
    for i, cluster in enumerate(clusters):
        assert image_of(cluster) == V1, f"cluster{i}"
        revision = cluster.kubectl("get", "deployment", "web", "-o",
                                   "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}").stdout
        assert revision == ("3" if i in (0, 1, 2) else "1"), (i, revision)
    assert "Fleet upgrade of web to zerodown/demo-app:2.0 failed on cluster1" in output
    # artifacts for a rollback node
    assert '"zerodown_previous_revisions"' in output and '"zerodown_failed_hosts"' in output
    # the wave-1 cluster served without a failed request through its upgrade and rollback
    assert timeline["summary"]["errors"] == 0 and timeline["summary"]["total"] >= 50, timeline["summary"]
    assert {"1.0", "2.0"} <= set(timeline["summary"]["versions"])
