"""Run the collection's modules through a real ansible-playbook against the k8s_cluster fixture."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import typing as t

import pytest

from tests.k8s_server.testing import Kubectl
from tests.support.saved_results import callback_env, save_task

PLAYBOOK_TIMEOUT = 300


class Play:
    """Builds one playbook from module steps and returns every step's registered result."""

    def __init__(self, cluster: t.Any, namespace: str, workdir: pathlib.Path) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.workdir = workdir
        self.runs = 0
        self.last_stdout = ""

    def defaults(self) -> dict[str, t.Any]:
        return {"platform": "kubernetes", "kubeconfig": self.cluster.kubeconfig, "context": self.cluster.context,
                "namespace": self.namespace}

    def __call__(self, *steps: tuple[str, dict[str, t.Any]] | tuple[str, dict[str, t.Any], bool],
                 env: t.Optional[dict[str, str]] = None, defaults: t.Optional[dict[str, t.Any]] = None
                 ) -> list[dict[str, t.Any]]:
        """Each step is (module, args) or (module, args, check_mode). Steps that fail do not stop the play."""
        self.runs += 1
        out = self.workdir / f"results-{self.runs}.json"
        tasks = []
        for i, step in enumerate(steps):
            module, args = step[0], step[1]
            check = bool(step[2]) if len(step) > 2 else False
            tasks.append({"name": f"step {i} {module}", f"zerodown.rollout.{module}": args, "register": f"step{i}",
                          "check_mode": check, "diff": True, "ignore_errors": True})
        names = ", ".join(f"step{i}" for i in range(len(steps)))
        tasks.append(save_task("[" + names + "]", out))
        play = [{"hosts": "localhost", "gather_facts": False,
                 "module_defaults": {"group/zerodown.rollout.rollout": defaults or self.defaults()},
                 "tasks": tasks}]
        path = self.workdir / f"play-{self.runs}.yml"
        path.write_text(json.dumps(play, indent=1))  # JSON is YAML
        binary = pathlib.Path(sys.executable).parent / "ansible-playbook"
        run_env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_LOCALHOST_WARNING="false",
                       ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_RETRY_FILES_ENABLED="false",
                       **callback_env())
        for var in [k for k in run_env if k.startswith("K8S_AUTH_")]:
            del run_env[var]
        run_env.update(env or {})
        proc = subprocess.run([str(binary), "-i", "localhost,", "-c", "local", str(path),
                               "-e", f"ansible_python_interpreter={os.environ.get('ZD_TARGET_PYTHON') or sys.executable}"],
                              capture_output=True, text=True, env=run_env, timeout=PLAYBOOK_TIMEOUT, check=False)
        self.last_stdout = proc.stdout + proc.stderr
        assert out.exists(), f"playbook did not finish:\n{self.last_stdout[-4000:]}"
        return json.loads(out.read_text())


@pytest.fixture
def kubectl(k8s_cluster, k8s_namespace) -> Kubectl:
    return Kubectl(k8s_cluster, k8s_namespace)


@pytest.fixture
def play(k8s_cluster, k8s_namespace, tmp_path) -> Play:
    return Play(k8s_cluster, k8s_namespace, tmp_path)
