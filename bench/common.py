"""Shared pieces of the benchmarks: paths, statistics, running a playbook with task timestamps."""
from __future__ import annotations

import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
import typing as t

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# the venv running the bench (``make bench`` runs it with .venv/bin/python)
VENV_BIN = pathlib.Path(sys.executable).parent
COLLECTIONS = ROOT / ".tmp" / "collections"


def ensure_importable() -> None:
    """Make the checkout importable as ansible_collections.zerodown.rollout, and tests.* importable."""
    link = COLLECTIONS / "ansible_collections" / "zerodown" / "rollout"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT, target_is_directory=True)
    for path in (str(COLLECTIONS), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)


def machine() -> dict[str, t.Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def summary(values: t.Sequence[float]) -> dict[str, t.Any]:
    """n, median, p90, min, max of a sample (seconds or counts), rounded."""
    vals = sorted(values)
    if not vals:
        return {"n": 0}
    p90 = vals[min(len(vals) - 1, max(0, int(round(0.9 * len(vals))) - 1))]
    return {"n": len(vals), "median": round(statistics.median(vals), 4), "p90": round(p90, 4),
            "min": round(vals[0], 4), "max": round(vals[-1], 4)}


def write_result(name: str, data: dict[str, t.Any]) -> pathlib.Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = dict(data, when=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), machine=machine())
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps(data, indent=2) + "\n")
    return out


class Playbook:
    """A playbook file plus what it takes to run it with the timing callback, with our venv or the anchors'."""

    def __init__(self, workdir: pathlib.Path, plays: list[dict[str, t.Any]], bindir: pathlib.Path = VENV_BIN,
                 inventory: t.Optional[dict[str, t.Any]] = None, forks: int = 5) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.bindir = bindir
        self.path = workdir / f"play-{time.monotonic_ns()}.yml"
        self.path.write_text(yaml.safe_dump(plays, sort_keys=False))
        self.inventory = workdir / f"inv-{time.monotonic_ns()}.yml"
        self.inventory.write_text(yaml.safe_dump(inventory or {"all": {"hosts": {"localhost": {}}}}))
        self.times = workdir / f"times-{time.monotonic_ns()}.jsonl"
        self.forks = forks

    def env(self) -> dict[str, str]:
        env = dict(os.environ, ZD_BENCH_TIMES=str(self.times), ANSIBLE_CALLBACKS_ENABLED="zd_bench_times",
                   ANSIBLE_CALLBACK_PLUGINS=str(ROOT / "bench" / "callback_plugins"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_DEPRECATION_WARNINGS="false",
                   ANSIBLE_INVENTORY_UNPARSED_WARNING="false", ANSIBLE_FORKS=str(self.forks))
        if self.bindir == VENV_BIN:
            env["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
        else:  # the anchors' own collections (kubernetes.core, community.docker) from their ansible package
            env.pop("ANSIBLE_COLLECTIONS_PATH", None)
        return env

    def start(self) -> subprocess.Popen:
        return subprocess.Popen([str(self.bindir / "ansible-playbook"), "-i", str(self.inventory), str(self.path),
                                 "-e", f"ansible_python_interpreter={self.bindir / 'python'}"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env(), cwd=str(ROOT))

    def run(self, timeout: float = 600) -> tuple[int, str, list[dict[str, t.Any]]]:
        proc = self.start()
        out = proc.communicate(timeout=timeout)[0].decode(errors="replace")
        return proc.returncode, out, self.events()

    def events(self) -> list[dict[str, t.Any]]:
        if not self.times.exists():
            return []
        return [json.loads(line) for line in self.times.read_text().splitlines() if line.strip()]
