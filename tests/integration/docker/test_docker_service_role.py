"""The docker_service role: HAProxy front end + N replicas on a host, idempotent, then upgradable."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from tests.support.docker_harness import IMAGE_V1, IMAGE_V2, ROOT, RUN_ID, TEST_LABEL, VENV_BIN, free_port, run_playbook

pytestmark = pytest.mark.docker


def _role_play(tmp_path, role_vars):
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "roles": [{"role": "zerodown.rollout.docker_service", "vars": role_vars}],
             "post_tasks": [{"name": "save", "ansible.builtin.copy": {
                 "content": "{{ {'result': docker_service_result, 'url': docker_service_url,"
                            " 'lb': docker_service_load_balancer} | to_json }}",
                 "dest": str(tmp_path / "role.json"), "mode": "0600"}, "changed_when": False}]}]
    path = tmp_path / "role.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(path), "-e",
                           f"ansible_python_interpreter={sys.executable}"], capture_output=True, text=True, check=False,
                          timeout=240, cwd=str(ROOT), env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false"))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return json.loads((tmp_path / "role.json").read_text()), proc.stdout


def _version(url):
    with urllib.request.urlopen(f"{url}/version", timeout=5) as resp:
        return json.load(resp)["version"]


def test_role_sets_up_service_idempotently(engine, workload_name, containers, tmp_path):
    config_dir = tmp_path / "svc"
    listen = f"127.0.0.1:{free_port()}"
    role_vars = {"docker_service_name": workload_name, "docker_service_image": IMAGE_V1,
                 "docker_service_replicas": 3, "docker_service_listen": listen,
                 "docker_service_config_dir": str(config_dir), "docker_service_check_interval_ms": 500,
                 "docker_service_health_path": "/healthz", "docker_service_health_timeout": 20,
                 "docker_service_labels": {TEST_LABEL: RUN_ID}}
    try:
        first, _output = _role_play(tmp_path, role_vars)
        assert first["result"]["changed"] and first["result"]["revision"] == 1
        assert _version(first["url"]) == "1.0"
        assert len(containers(all=False)) == 3
        ids = sorted(c.id for c in containers())
        second, out = _role_play(tmp_path, role_vars)
        assert not second["result"]["changed"], second["result"]
        assert "changed=0" in out, out[-1500:]
        assert sorted(c.id for c in containers()) == ids
        # the load balancer the role publishes is what image_upgrade needs for the next release
        res = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": {
            "platform": "docker", "name": workload_name, "image": IMAGE_V2, "load_balancer": second["lb"],
            "health_timeout": 20, "drain_timeout": 2}}])["localhost"]["r0"]
        assert res["changed"] and res["revision"] == 2, res
        assert _version(first["url"]) == "2.0"
    finally:
        pidfile = config_dir / "haproxy.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
            time.sleep(0.3)
