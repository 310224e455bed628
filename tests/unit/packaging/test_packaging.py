"""The collection builds, ships only what users need, and declares its EE dependencies."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[3]
BIN = pathlib.Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed in this environment (it is in .venv)")
    return str(path)


def test_galaxy_metadata_matches_the_fqcn():
    meta = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    assert (meta["namespace"], meta["name"]) == ("zerodown", "rollout")
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    modules = {p.stem for p in (ROOT / "plugins" / "modules").glob("*.py")}
    # every module is in the action group, so module_defaults reaches all of them
    assert set(runtime["action_groups"]["rollout"]) == modules


def test_built_artifact_contains_plugins_and_no_local_state(tmp_path):
    out = subprocess.run(
        [_tool("ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stderr
    tarball = next(tmp_path.glob("zerodown-rollout-*.tar.gz"))
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "plugins/modules/image_upgrade.py" in names
    assert "meta/runtime.yml" in names
    for forbidden in (".venv", ".venv-oldest", ".tmp", ".ci"):
        assert not any(n == forbidden or n.startswith(forbidden + "/") for n in names), forbidden


def test_execution_environment_introspection(tmp_path):
    tree = tmp_path / "ansible_collections" / "zerodown"
    tree.mkdir(parents=True)
    shutil.copytree(ROOT / "meta", tree / "rollout" / "meta")
    shutil.copy(ROOT / "galaxy.yml", tree / "rollout" / "galaxy.yml")
    out = subprocess.run([_tool("ansible-builder"), "introspect", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, check=False, env={**os.environ, "NO_COLOR": "1"})
    assert out.returncode == 0, out.stderr
    data = yaml.safe_load(out.stdout.split("\n", 1)[1])
    python = " ".join(data["python"])
    for lib in ("kubernetes", "docker", "requests"):
        assert lib in python
    # certification rules: no pins, no ansible-core in the EE requirements
    for line in (ROOT / "meta" / "ee-requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            assert "==" not in line and "<" not in line and not line.startswith("ansible")
