"""Bad inputs across every module (both platforms), the traffic_check lookup and the roles.

One ansible-playbook run (-vvv, so module arguments are echoed) tries each case in a block/rescue. Each case
must fail with a message that names the option or says what to fix; nothing on the Docker engine, in HAProxy
or on the Kubernetes test server may change; no output (stdout, stderr, registered results) may carry a
Python traceback or the recognisable fake secret passed in api_key, headers and docker_client_key.
"""
from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import typing as t

import pytest
import yaml


from tests.support.docker_harness import IMAGE_V1, IMAGE_V2, TEST_LABEL, Haproxy, container_spec, run_playbook  # noqa: E402
from tests.support.fault_harness import backend_servers, playbook_env, workload_state  # noqa: E402
from tests.support.docker_engine import demo_engine  # noqa: E402
from tests.support.saved_results import save_task  # noqa: E402
from tests.k8s_server import manifests as m  # noqa: E402

docker = pytest.importorskip("docker")
pytestmark = [pytest.mark.docker, pytest.mark.k8s]

SECRET = "zdSECRET-4c1f0e9b7a"
ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S_V1, K8S_V2 = f"{m.DEMO_IMAGE}:1.0", f"{m.DEMO_IMAGE}:2.0"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cases(dk: dict[str, t.Any], k8s: dict[str, t.Any], missing_dk: dict[str, t.Any], traffic_url: str,
           port: int) -> list[tuple[str, dict[str, t.Any], list[str]]]:
    """(case id, task, words the error message must contain: the option or the fix)."""
    names = ("image_upgrade", "rollback", "rollout_wait", "rollout_info", "preflight")
    up, rb, wt, info, pf = (f"zerodown.rollout.{n}" for n in names)
    look = "zerodown.rollout.traffic_check"

    def lookup(url: str, **opts: t.Any) -> dict[str, t.Any]:
        args = ", ".join(f"{k}={json.dumps(v)}" for k, v in opts.items())
        return {"ansible.builtin.debug": {"msg": "{{ lookup('%s', '%s'%s) }}" % (look, url, ", " + args if args else "")}}

    def role(name: str, **vars_: t.Any) -> dict[str, t.Any]:
        return {"ansible.builtin.include_role": {"name": f"zerodown.rollout.{name}"}, "vars": vars_}

    return [
        # -- argument spec (both platforms, any module) -----------------------------------------------
        ("platform-choice", {up: {"platform": "nomad", "name": "x", "image": IMAGE_V2}}, ["platform", "docker", "kubernetes"]),
        ("name-missing", {up: {"platform": "docker", "image": IMAGE_V2}}, ["name"]),
        ("image-missing", {up: {**dk}}, ["image"]),
        ("unknown-option", {wt: {**dk, "timout": 5}}, ["timout"]),
        ("kind-choice-k8s", {info: {**k8s, "kind": "CronJob"}}, ["kind", "Deployment"]),
        ("preflight-fail-on", {pf: {**dk, "fail_on": "sometimes"}}, ["fail_on", "error"]),
        ("lb-type-choice", {up: {**dk, "image": IMAGE_V2, "load_balancer": {**dk["load_balancer"], "type": "traefik"}}},
         ["type", "haproxy"]),
        # -- Docker ---------------------------------------------------------------------------------
        ("docker-image-empty", {up: {**dk, "image": ""}}, ["image"]),
        ("docker-image-invalid", {up: {**dk, "image": "Not An Image"}}, ["image", "Not An Image"]),
        ("docker-batch-size-0", {up: {**dk, "image": IMAGE_V2, "batch_size": 0}}, ["batch_size"]),
        ("docker-replicas-negative", {up: {**dk, "image": IMAGE_V2, "replicas": -1}}, ["replicas"]),
        ("docker-lock-timeout-negative", {up: {**dk, "image": IMAGE_V2, "lock_timeout": -1}}, ["lock_timeout"]),
        ("docker-rollback-lock-timeout-text", {rb: {**dk, "lock_timeout": "soon"}}, ["lock_timeout"]),
        ("docker-container-option", {up: {**dk, "image": IMAGE_V2, "container": "web"}}, ["container", "kubernetes"]),
        ("docker-kind", {up: {**dk, "image": IMAGE_V2, "kind": "StatefulSet"}}, ["kind", "kubernetes"]),
        ("docker-kubeconfig", {up: {**dk, "image": IMAGE_V2, "kubeconfig": k8s["kubeconfig"]}},
         ["kubeconfig applies to platform=kubernetes only", "platform=docker"]),
        ("docker-namespace", {info: {**dk, "namespace": "prod"}}, ["namespace applies to platform=kubernetes only"]),
        ("docker-preflight-skip-unknown", {pf: {**dk, "skip": ["single_replica"]}},
         ["single_replica", "the checks of platform=docker are"]),
        ("docker-health-timeout-0", {up: {**dk, "image": IMAGE_V2, "health_timeout": 0}},
         ["health_timeout must be more than 0"]),
        ("docker-lb-socket-missing", {up: {**dk, "image": IMAGE_V2, "load_balancer": {
            **dk["load_balancer"], "socket": "/nonexistent/zd/admin.sock"}}}, ["/nonexistent/zd/admin.sock"]),
        ("docker-lb-backend-missing", {up: {**dk, "image": IMAGE_V2, "load_balancer": {
            **dk["load_balancer"], "backend": "nosuchbackend"}}}, ["nosuchbackend"]),
        ("docker-pull-never-missing-image", {up: {**dk, "image": "zerodown/demo-app:9.9", "pull": "never"}},
         ["zerodown/demo-app:9.9"]),
        ("docker-engine-unreachable", {up: {**dk, "image": IMAGE_V2, "docker_host": "unix:///nonexistent/zd.sock"}},
         ["/nonexistent/zd.sock"]),
        ("docker-tls-client-key-secret", {up: {**dk, "image": IMAGE_V2, "docker_host": f"tcp://127.0.0.1:{port}",
                                               "docker_tls": True, "docker_client_cert": "/nonexistent/cert.pem",
                                               "docker_client_key": f"/nonexistent/{SECRET}.pem"}}, ["docker"]),
        ("docker-create-without-replicas", {up: {**missing_dk, "image": IMAGE_V1}}, ["replicas"]),
        ("docker-rollback-unknown-revision", {rb: {**dk, "to_revision": 99}}, ["99"]),
        ("docker-rollback-missing-workload", {rb: {**missing_dk}}, ["does not exist"]),
        ("docker-wait-unknown-revision", {wt: {**dk, "revision": 42, "timeout": 5}}, ["42"]),
        ("docker-health-status-invalid",
         {up: {**dk, "image": IMAGE_V2, "health_check": {"path": "/healthz", "status": ["ok"]}}}, ["status"]),
        ("docker-healthcheck-without-test", {up: {**missing_dk, "image": IMAGE_V1, "replicas": 1,
                                                  "docker_container": {"port": 8080, "healthcheck": {"interval": 1}}}},
         ["test"]),
        # -- Kubernetes -----------------------------------------------------------------------------
        ("k8s-container-unknown", {up: {**k8s, "image": K8S_V2, "container": "nginx"}}, ["nginx", "app"]),
        ("k8s-image-repo-mismatch", {up: {**k8s, "image": "other/repo:2.0"}}, ["other/repo"]),
        ("k8s-kubeconfig-missing", {up: {**k8s, "image": K8S_V2, "kubeconfig": "/nonexistent/kubeconfig"}},
         ["kubeconfig", "/nonexistent/kubeconfig"]),
        ("k8s-context-unknown", {info: {**k8s, "context": "no-such-context"}}, ["no-such-context"]),
        ("k8s-unreachable-with-token", {info: {**{k: v for k, v in k8s.items() if k not in ("kubeconfig", "context")},
                                               "host": f"http://127.0.0.1:{port}", "api_key": SECRET}},
         [f"127.0.0.1:{port}"]),
        ("k8s-workload-missing", {up: {**k8s, "name": "nosuch", "image": K8S_V2}}, ["nosuch"]),
        ("k8s-namespace-missing", {info: {**k8s, "namespace": "no-such-ns"}}, ["no-such-ns"]),
        ("k8s-rollback-unknown-revision", {rb: {**k8s, "to_revision": 99}}, ["99"]),
        ("k8s-wait-revision-0", {wt: {**k8s, "revision": 0}}, ["revision"]),
        ("k8s-preflight-skip-unknown", {pf: {**k8s, "skip": ["no_such_check"]}}, ["no_such_check"]),
        ("k8s-docker-host", {up: {**k8s, "image": K8S_V2, "docker_host": "unix:///var/run/docker.sock"}},
         ["docker_host applies to platform=docker only", "platform=kubernetes"]),
        ("k8s-load-balancer", {rb: {**k8s, "load_balancer": dk["load_balancer"]}},
         ["load_balancer applies to platform=docker only"]),
        ("k8s-kubeconfig-garbage", {info: {**k8s, "kubeconfig": "{{ playbook_dir }}/play.yml"}},  # a YAML list
         ["is not a kubeconfig"]),
        # -- traffic_check lookup ---------------------------------------------------------------------
        ("lookup-concurrency-0", lookup(traffic_url, concurrency=0), ["concurrency"]),
        ("lookup-url-scheme", lookup("ftp://127.0.0.1/x"), ["ftp://127.0.0.1/x", "http"]),
        ("lookup-bad-regex", lookup(traffic_url, version_regex="("), ["version_regex"]),
        ("lookup-bad-status", lookup(traffic_url, expected_status=["700"]), ["700"]),
        ("lookup-fraction", lookup(traffic_url, expect_version="2.0", min_version_fraction=2), ["min_version_fraction"]),
        ("lookup-unknown-option-with-secret-header", lookup(traffic_url, headers={"Authorization": f"Bearer {SECRET}"},
                                                            concurency=2), ["concurency"]),
        # -- roles ----------------------------------------------------------------------------------
        ("role-upgrade-no-image", role("upgrade", upgrade_workload=dk["name"]), ["upgrade_image"]),
        ("role-upgrade-platform", role("upgrade", upgrade_workload="x", upgrade_image=IMAGE_V2,
                                       upgrade_platform="nomad"), ["upgrade_platform"]),
        ("role-rollback-no-workload", role("rollback"), ["rollback_workload"]),
        ("role-rollback-revision-type", role("rollback", rollback_workload=dk["name"], rollback_to_revision="two"),
         ["rollback_to_revision"]),
        ("role-docker-service-no-image", role("docker_service", docker_service_name="zd-never"), ["docker_service_image"]),
    ]


@pytest.fixture
def docker_workload(tmp_path):
    client = demo_engine((IMAGE_V1,))
    name = f"zdbad-{os.urandom(3).hex()}"
    proxy = Haproxy(name)
    try:
        created = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": {
            "platform": "docker", "name": name, "image": IMAGE_V1, "replicas": 2, "docker_container": container_spec(),
            "load_balancer": proxy.lb_options(), "health_timeout": 30}}])["localhost"]["r0"]
        assert not created.get("failed"), created
        yield client, proxy, name
    finally:
        proxy.stop()
        for c in client.containers.list(all=True, filters={"label": TEST_LABEL}):
            if c.labels.get("zerodown.workload", "").startswith(name[:12]) or c.name.startswith("zd-never"):
                c.remove(force=True)
        client.close()


def _k8s_state(api, namespace):
    deps = api.list_namespaced_deployment(namespace).items
    rss = api.list_namespaced_replica_set(namespace).items
    return ({d.metadata.name: (d.metadata.generation, d.metadata.annotations, d.spec.template.to_dict()) for d in deps},
            sorted((r.metadata.name, r.spec.replicas) for r in rss))


def test_bad_inputs_fail_clearly_change_nothing_leak_nothing(docker_workload, k8s_cluster, k8s_namespace, tmp_path):
    from kubernetes import client as kclient

    engine, proxy, name = docker_workload
    apps = kclient.AppsV1Api(k8s_cluster.api_client())
    apps.create_namespaced_deployment(k8s_namespace, m.deployment("web", K8S_V1, replicas=2))
    k8s_cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s", namespace=k8s_namespace)

    dk = {"platform": "docker", "name": name, "load_balancer": proxy.lb_options()}
    missing_dk = dict(dk, name=f"{name}-none")
    k8s = {"platform": "kubernetes", "name": "web", "namespace": k8s_namespace, "kubeconfig": k8s_cluster.kubeconfig,
           "context": k8s_cluster.context}
    cases = _cases(dk, k8s, missing_dk, f"{proxy.url}/version", _closed_port())
    assert len(cases) >= 30 and len({c[0] for c in cases}) == len(cases)

    docker_before = workload_state(engine, name)
    lb_before = {n: r["status"] for n, r in backend_servers(proxy.socket, proxy.backend).items()}
    servers_file_before = pathlib.Path(proxy.servers_file).read_text()
    k8s_before = _k8s_state(apps, k8s_namespace)

    out_file = tmp_path / "bad.json"
    tasks: list[dict[str, t.Any]] = [{"ansible.builtin.set_fact": {"bad": {}}}]
    for case_id, task, _words in cases:
        tasks.append({"name": case_id, "block": [dict(task, name=f"{case_id} task"), {
            "ansible.builtin.set_fact": {"bad": "{{ bad | combine({'%s': {'failed': false}}) }}" % case_id}}],
            "rescue": [{"ansible.builtin.set_fact": {
                "bad": "{{ bad | combine({'%s': ansible_failed_result}) }}" % case_id}}]})
    tasks.append(save_task("bad", out_file))
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "connection": "local",
                                     "tasks": tasks}], sort_keys=False))
    proc = subprocess.run([str(pathlib.Path(sys.executable).parent / "ansible-playbook"), "-vvv", "-i", "localhost,",
                           str(play), "-e", f"ansible_python_interpreter={sys.executable}"],
                          capture_output=True, text=True, timeout=420, cwd=str(ROOT), env=playbook_env(), check=False)
    assert out_file.exists(), proc.stdout[-4000:] + proc.stderr[-4000:]
    results = json.loads(out_file.read_text())

    problems = []
    for case_id, _task, words in cases:
        res = results.get(case_id)
        msg = str((res or {}).get("msg", ""))
        if not res or not res.get("failed", False):
            problems.append(f"{case_id}: did not fail ({res})")
        elif res.get("changed"):
            problems.append(f"{case_id}: reported changed: {msg}")
        elif missing := [w for w in words if w.lower() not in msg.lower()]:
            problems.append(f"{case_id}: message lacks {missing}: {msg!r}")
        if "Traceback" in json.dumps(res) or "exception" in (res or {}) and "Traceback" in str(res["exception"]):
            problems.append(f"{case_id}: traceback in result")
    print("\n".join(f"{c[0]}: {results.get(c[0], {}).get('msg')}" for c in cases))
    assert not problems, "\n".join(problems)

    everything = proc.stdout + proc.stderr + out_file.read_text()
    assert SECRET not in everything, [line for line in everything.splitlines() if SECRET in line][:5]
    assert "Traceback (most recent call last)" not in everything

    assert workload_state(engine, name) == docker_before
    assert {n: r["status"] for n, r in backend_servers(proxy.socket, proxy.backend).items()} == lb_before
    assert pathlib.Path(proxy.servers_file).read_text() == servers_file_before
    assert not engine.containers.list(all=True, filters={"label": f"zerodown.workload={name}-none"})
    assert _k8s_state(apps, k8s_namespace) == k8s_before
