"""The anchors' virtualenv: what users would otherwise use, installed apart from our own venv.

    .venv/bin/python -m bench.anchors        # create or update .venv-anchors, print its ansible-playbook

PyPI's ``ansible`` package carries kubernetes.core and community.docker but pins its own ansible-core, so
it lives in ``.venv-anchors`` (never in ``.venv``). Creating it is idempotent: an existing venv whose pinned
packages are installed is reused as it is.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv-anchors"
# the anchors as users install them; kubernetes/docker/requests match requirements/newest.txt
PINS = ["ansible==14.5.0", "kubernetes==37.0.2", "docker==7.2.0", "requests==2.34.2"]
MARKER = VENV / ".zerodown-pins"


def ensure_venv(python: str = sys.executable) -> pathlib.Path:
    """Create or update .venv-anchors with PINS; return its bin directory."""
    bindir = VENV / "bin"
    wanted = "\n".join(PINS)
    if MARKER.exists() and MARKER.read_text() == wanted and (bindir / "ansible-playbook").exists():
        return bindir
    if not (bindir / "python").exists():
        subprocess.run([python, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(bindir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS],
                   check=True, env=dict(os.environ, PIP_NO_INPUT="1"))
    MARKER.write_text(wanted)
    return bindir


def collection_version(bindir: pathlib.Path, name: str) -> str:
    """Version of a collection shipped in the anchors venv (from its MANIFEST.json)."""
    code = ("import json, pathlib, ansible_collections as a; "
            f"p = pathlib.Path(a.__path__[0]) / {name.split('.')[0]!r} / {name.split('.')[1]!r} / 'MANIFEST.json'; "
            "print(json.loads(p.read_text())['collection_info']['version'])")
    out = subprocess.run([str(bindir / "python"), "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


if __name__ == "__main__":
    path = ensure_venv()
    print(path / "ansible-playbook")
    for coll in ("kubernetes.core", "community.docker"):
        print(coll, collection_version(path, coll))
