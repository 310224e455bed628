"""Test support for the roles and playbooks: run ansible-playbook, read what it recorded, record traffic."""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import typing as t

import yaml

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
from tests.support.saved_results import callback_env, save_task

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent


class Run(t.NamedTuple):
    rc: int
    output: str
    records: dict[str, t.Any]


def playbook_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_DEPRECATION_WARNINGS="false", ANSIBLE_RETRY_FILES_ENABLED="false",
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_SHOW_CUSTOM_STATS="true", **callback_env())
    for var in [k for k in env if k.startswith("K8S_AUTH_")]:
        del env[var]
    env.update(extra)
    return env


def run_playbook(playbook: str | pathlib.Path, extra_vars: dict[str, t.Any], tmp: pathlib.Path,
                 inventory: t.Optional[str] = None, timeout: float = 300) -> subprocess.CompletedProcess:
    vars_file = tmp / f"vars-{len(list(tmp.glob('vars-*.json')))}.json"
    vars_file.write_text(json.dumps(extra_vars))
    if inventory is None:
        inventory = "localhost,"
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", inventory, str(playbook), "-e", f"@{vars_file}",
           "-e", f"ansible_python_interpreter={os.environ.get('ZD_TARGET_PYTHON') or sys.executable}"]
    if inventory == "localhost,":
        cmd += ["-c", "local"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=playbook_env(), cwd=str(ROOT),
                          check=False)


def run_role(tmp: pathlib.Path, role: str, role_vars: dict[str, t.Any], timeout: float = 300) -> Run:
    """Run one role of the collection on localhost; return rc, output and the record fact it left."""
    record = "upgrade_record" if role.endswith(".upgrade") else "rollback_record"
    out = tmp / f"{role.rsplit('.', 1)[-1]}-record.json"
    out.unlink(missing_ok=True)
    play = [{"name": "role under test", "hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "run", "block": [{"name": "role", "ansible.builtin.include_role": {"name": role}}],
        "always": [save_task(record + " | default({})", out)]}]}]
    pb = tmp / "play.yml"
    pb.write_text(yaml.safe_dump(play, sort_keys=False))
    proc = run_playbook(pb, role_vars, tmp, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert out.exists(), f"the play did not reach its end (rc={proc.returncode}):\n{output[-6000:]}"
    return Run(proc.returncode, output, json.loads(out.read_text()))


@contextlib.contextmanager
def recording(url: str, rate: float = 40.0) -> t.Iterator[dict[str, t.Any]]:
    """Record traffic to ``url`` (loopback) for the length of the block; the dict gets the timeline."""
    recorder = TrafficRecorder(SamplerConfig(url=url, concurrency=4, timeout=5), rate=rate).start()
    box: dict[str, t.Any] = {}
    try:
        yield box
    finally:
        box.update(recorder.stop())
