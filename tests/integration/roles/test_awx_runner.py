"""The playbooks under ansible-runner (the engine AWX runs jobs with), through the one-line wrapper an AWX
project needs: the upgrade job's set_stats artifacts appear in the runner's artifacts, and a rollback job fed
with exactly those artifacts (as a workflow passes them on) rolls the workload back."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from tests.support.roles_harness import playbook_env
from tests.k8s_server import manifests as m
from tests.k8s_server.testing import Kubectl

pytestmark = pytest.mark.k8s
V1, V2 = f"{m.DEMO_IMAGE}:1.0", f"{m.DEMO_IMAGE}:2.0"
RUNNER = pathlib.Path(sys.executable).parent / "ansible-runner"


def private_data_dir(tmp: pathlib.Path, host_vars: dict) -> pathlib.Path:
    pdd = tmp / "runner"
    (pdd / "project").mkdir(parents=True)
    (pdd / "inventory").mkdir()
    (pdd / "env").mkdir()
    # what an AWX project holds: one-line wrappers, since a job template lists only the project's own files
    (pdd / "project" / "upgrade.yml").write_text("---\n- ansible.builtin.import_playbook: zerodown.rollout.upgrade\n")
    (pdd / "project" / "rollback.yml").write_text("---\n- ansible.builtin.import_playbook: zerodown.rollout.rollback\n")
    (pdd / "inventory" / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": {"cluster-a": host_vars}}}))
    env = {k: v for k, v in playbook_env().items() if k.startswith("ANSIBLE_")}
    (pdd / "env" / "envvars").write_text(yaml.safe_dump(env))
    return pdd


def runner(pdd: pathlib.Path, playbook: str, ident: str, extravars: dict) -> tuple[int, dict, pathlib.Path]:
    (pdd / "env" / "extravars").write_text(yaml.safe_dump(extravars))
    env = playbook_env(PATH=f"{RUNNER.parent}{os.pathsep}{os.environ.get('PATH', '')}")
    proc = subprocess.run([str(RUNNER), "run", str(pdd), "-p", playbook, "--ident", ident],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    artifacts = pdd / "artifacts" / ident
    assert (artifacts / "rc").exists(), proc.stdout[-4000:] + proc.stderr[-2000:]
    stats = [json.loads(p.read_text()) for p in sorted((artifacts / "job_events").glob("*.json"))]
    stats = [e for e in stats if e.get("event") == "playbook_on_stats"]
    assert len(stats) == 1, proc.stdout[-4000:]
    return int((artifacts / "rc").read_text()), stats[0]["event_data"], artifacts


def test_upgrade_artifacts_feed_a_rollback_job(k8s_cluster, k8s_namespace, tmp_path):
    kubectl = Kubectl(k8s_cluster, k8s_namespace)
    kubectl.apply(m.deployment("web", V1, replicas=2, max_surge=1, max_unavailable=0), m.service("web"))
    kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    pdd = private_data_dir(tmp_path, {
        "ansible_connection": "local", "ansible_python_interpreter": os.environ.get("ZD_TARGET_PYTHON") or sys.executable,
        "upgrade_platform": "kubernetes", "upgrade_kubeconfig": k8s_cluster.kubeconfig,
        "upgrade_context": k8s_cluster.context, "upgrade_namespace": k8s_namespace,
        "upgrade_traffic_url": k8s_cluster.service_url("web", namespace=k8s_namespace) + "/version"})

    # survey answers: flat, typed values
    rc, stats, artifacts = runner(pdd, "upgrade.yml", "upgrade-1", {
        "upgrade_workload": "web", "upgrade_image": V2, "upgrade_gate_requests": 30, "upgrade_wait_timeout": 90})
    assert rc == 0, (artifacts / "stdout").read_text()[-4000:]
    data = stats["artifact_data"]
    assert data["zerodown_workload"] == "web" and data["zerodown_platform"] == "kubernetes"
    assert (data["zerodown_previous_revision"], data["zerodown_new_revision"]) == (1, 2)
    assert data["zerodown_upgrade_ok"] is True and data["zerodown_rolled_back"] is False
    assert data["zerodown_host_records"]["cluster-a"]["images_before"] == {"app": V1}
    assert data["zerodown_host_records"]["cluster-a"]["images_after"] == {"app": V2}
    assert json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)[
        "spec"]["template"]["spec"]["containers"][0]["image"] == V2

    # the workflow's rollback node: the artifacts become its extra vars, nothing else is given
    rc, stats, artifacts = runner(pdd, "rollback.yml", "rollback-1", data)
    assert rc == 0, (artifacts / "stdout").read_text()[-4000:]
    after = stats["artifact_data"]
    assert after["zerodown_rollback_from_revision"] == 2 and after["zerodown_rolled_back"] is True
    obj = json.loads(kubectl("get", "deployment", "web", "-o", "json").stdout)
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == V1
    assert "Traffic after the rollback passed" in (artifacts / "stdout").read_text()
