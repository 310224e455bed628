"""Shared pytest setup: make the checkout importable as ansible_collections.zerodown.rollout."""
from __future__ import annotations

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / ".tmp" / "collections"
LINK = COLLECTIONS / "ansible_collections" / "zerodown" / "rollout"


def _ensure_collection_link() -> None:
    LINK.parent.mkdir(parents=True, exist_ok=True)
    if LINK.is_symlink() and LINK.resolve() == ROOT:
        return
    if LINK.is_symlink() or LINK.exists():
        LINK.unlink()
    LINK.symlink_to(ROOT, target_is_directory=True)


_ensure_collection_link()
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
os.environ.setdefault("ANSIBLE_FORCE_COLOR", "0")

# Install Ansible's collection finder before any test imports ansible_collections.*, as ansible-test's unit
# runner does: a plain namespace-package import first would hide the collection from the plugin loaders.
from ansible.plugins.loader import init_plugin_loader  # noqa: E402

init_plugin_loader([str(COLLECTIONS)])

# Kubernetes fixtures (k8s_cluster, k8s_namespace) for every test directory: see docs/testing-kubernetes.md.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.k8s_server.fixture import k8s_cluster, k8s_namespace  # noqa: E402,F401  pylint: disable=unused-import


# ZD_TARGET_PYTHON: the interpreter the modules run under in the integration tests (ansible_python_interpreter);
# ansible-playbook itself always runs from this venv. `make test` sets it for its oldest-target pass.
TARGET_PYTHON = os.environ.get("ZD_TARGET_PYTHON") or sys.executable


def pytest_report_header(config):
    return f"modules run under (ZD_TARGET_PYTHON): {TARGET_PYTHON}"


def pytest_configure(config):
    target = os.environ.get("ZD_TARGET_PYTHON")
    if target and not (os.path.isfile(target) and os.access(target, os.X_OK)):
        raise pytest.UsageError(f"ZD_TARGET_PYTHON={target} is not an executable file; point it at a Python "
                                "(for example .venv-target-oldest/bin/python) or unset it")
    config.addinivalue_line("markers", "docker: needs a Docker engine and HAProxy")
    config.addinivalue_line("markers", "k8s: needs the Kubernetes test API server or a real cluster")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "exclusive: needs the machine to itself (a load it must hold); `make test` "
                            "runs these alone, after the two streams (scripts/test.sh)")
