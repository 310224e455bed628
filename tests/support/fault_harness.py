"""Test support for the fault tests: playbooks that can be killed, LB and container invariants, samplers."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import typing as t
import uuid

import yaml

from tests.support.docker_harness import ROOT, VENV_BIN, ExtraDockerd, container_of, haproxy_command
from tests.support.saved_results import callback_env, save_task

SERVING = ("UP", "NOLB")  # statuses under which HAProxy sends new requests to a server ("UP 1/2" too)


def write_playbook(tmp: pathlib.Path, task: dict[str, t.Any], inventory_vars: t.Optional[dict] = None) -> list[str]:
    """One task, registered and written to a result file; returns the ansible-playbook argv."""
    out_dir = tmp / f"pb-{uuid.uuid4().hex[:6]}"
    out_dir.mkdir()
    task = dict(task, register="result", ignore_errors=True)
    playbook = [{"hosts": "all", "gather_facts": False, "connection": "local", "tasks": [
        task,
        save_task("result", out_dir / "result.json"),
    ]}]
    (out_dir / "play.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    (out_dir / "inventory.yml").write_text(yaml.safe_dump({"all": {"hosts": {"localhost": inventory_vars or {}}}}))
    return [str(VENV_BIN / "ansible-playbook"), "-i", str(out_dir / "inventory.yml"), str(out_dir / "play.yml"),
            "-e", f"ansible_python_interpreter={os.environ.get('ZD_TARGET_PYTHON') or sys.executable}"]


def playbook_env() -> dict[str, str]:
    return dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
                ANSIBLE_DEPRECATION_WARNINGS="false", ANSIBLE_NOCOLOR="1", **callback_env())


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (by parent pid, whatever their session)."""
    children: dict[int, list[int]] = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


class PlaybookRun:
    """ansible-playbook and everything it started, killed together on demand.

    Ansible's workers call setsid(), so killing the process group would leave the worker and the module it runs
    going on as orphans; ``kill`` takes down the whole process tree instead, as a controller crash would.
    """

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                     env=playbook_env(), start_new_session=True)
        self.output = ""

    def kill(self) -> None:
        for _round in range(3):  # again for anything forked while the tree was being read
            for pid in process_tree(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.output = self.proc.communicate(timeout=30)[0].decode(errors="replace")

    def finish(self, timeout: float = 240) -> tuple[int, str, t.Optional[dict]]:
        try:
            out = self.proc.communicate(timeout=timeout)[0]
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"ansible-playbook did not finish within {timeout}s:\n{self.output[-3000:]}")
        self.output = out.decode(errors="replace")
        result_file = pathlib.Path(self.argv[self.argv.index("-i") + 1]).parent / "result.json"
        result = json.loads(result_file.read_text()) if result_file.exists() else None
        return self.proc.returncode, self.output, result

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def backend_servers(sock: str, backend: str) -> dict[str, dict[str, str]]:
    """``show stat`` rows of the backend's servers, by the name of the container each stands for."""
    rows = haproxy_command("show stat", sock).splitlines()
    header = rows[0].lstrip("# ").split(",")
    out = {}
    for line in rows[1:]:
        row = dict(zip(header, line.split(",")))
        if row.get("pxname") == backend and row.get("svname") not in ("BACKEND", "FRONTEND", None):
            out[container_of(row["svname"])] = row
    return out


class ServingSampler:
    """Samples how many servers of the backend take new requests, every ``interval`` s, in a thread."""

    def __init__(self, sock: str, backend: str, interval: float = 0.05) -> None:
        self.sock, self.backend, self.interval = sock, backend, interval
        self.samples: list[tuple[float, int, dict[str, str], str]] = []
        self.phase = ""
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "ServingSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                servers = backend_servers(self.sock, self.backend)
                statuses = {name: row["status"] for name, row in servers.items()}
                serving = sum(1 for s in statuses.values() if s.split(" ")[0] in SERVING)
                self.samples.append((time.monotonic(), serving, statuses, self.phase))
            except OSError as exc:  # a reload swaps the socket's listener for a moment
                self.errors.append(str(exc))
            self._stop.wait(self.interval)

    def minimum(self) -> tuple[int, dict[str, str], str]:
        """The fewest serving servers seen, with the statuses and the phase of that sample."""
        worst = min(self.samples, key=lambda s: s[1])
        return worst[1], worst[2], worst[3]


def workload_state(client: t.Any, name: str) -> dict[str, t.Any]:
    """Containers of the workload by state and revision."""
    out: dict[str, t.Any] = {"running": {}, "stopped": {}, "other": {}}
    # one listing call, no inspect per container: right after a kill the engine may still be removing a
    # container the killed module asked it to, which an inspect after the listing would not find
    for c in client.api.containers(all=True, filters={"label": f"zerodown.workload={name}"}):
        status, labels = c["State"], c.get("Labels") or {}
        bucket = "running" if status == "running" else "stopped" if status == "exited" else "other"
        out[bucket][c["Names"][0].lstrip("/")] = {
            "revision": int(labels["zerodown.revision"]), "image": labels["zerodown.image"], "status": status,
            # where the load balancer reaches it: the host addresses its ports are published on
            "published": {f"{_reachable(p.get('IP'))}:{p['PublicPort']}" for p in c.get("Ports") or []
                          if p.get("PublicPort")}}
    return out


def _reachable(ip: t.Optional[str]) -> str:
    """The address a port published on ``ip`` is reached at from this host (all addresses: loopback)."""
    return "127.0.0.1" if ip in (None, "", "0.0.0.0", "::") else f"[{ip}]" if ":" in ip else ip


def servers_file_members(path: str) -> set[str]:
    return set(servers_file_addresses(path))


def servers_file_addresses(path: str) -> dict[str, str]:
    """The address of each member the servers file lists, by the name of the container it stands for."""
    found = {}
    for line in pathlib.Path(path).read_text().splitlines():
        words = line.split()
        if words[:1] == ["server"] and len(words) > 2:
            found[container_of(words[1])] = words[2]
    return found


def check_converged(client: t.Any, haproxy: t.Any, name: str, image: str, replicas: int,
                    retain: int = 2) -> t.Optional[int]:
    """Assert the workload runs ``replicas`` containers of ``image`` (one revision), each UP in HAProxy and in
    the persisted backend file, with no other member, no half-made container, and no more than ``retain``
    stopped revisions. Returns the revision."""
    state = workload_state(client, name)
    running = state["running"]
    revisions = {c["revision"] for c in running.values()}
    images = {c["image"] for c in running.values()}
    assert len(running) == replicas and len(revisions) == 1 and images == {image}, state
    revision = revisions.pop()
    assert state["other"] == {}, f"containers neither running nor stopped: {state['other']}"
    stale = {n: c for n, c in state["stopped"].items() if c["revision"] == revision}
    assert stale == {}, f"stopped containers of the current revision {revision} (orphans): {stale}"
    assert len({c["revision"] for c in state["stopped"].values()}) <= retain, state["stopped"]
    servers = backend_servers(haproxy.socket, haproxy.backend)
    statuses = {n: row["status"] for n, row in servers.items()}
    assert set(statuses) == set(running), f"LB members {statuses} != running containers {sorted(running)}"
    assert all(s == "UP" for s in statuses.values()), statuses
    listed = servers_file_addresses(haproxy.servers_file)
    assert set(listed) == set(running), pathlib.Path(haproxy.servers_file).read_text()
    # each member at the address its container publishes now (a restarted dockerd publishes on other host ports)
    wrong = {n: (row["addr"], listed[n], sorted(running[n]["published"])) for n, row in servers.items()
             if row["addr"] not in running[n]["published"] or listed[n] not in running[n]["published"]}
    assert not wrong, f"members not at their container's published address (runtime, file, published): {wrong}"
    return revision


def restartable_dockerd(images: t.Sequence[str]) -> ExtraDockerd:
    """A dockerd of the restart test's own, which it can restart mid-run (restarting the shared engine would
    disturb every other test); its own subnet, apart from the fleet tests' extra dockerds."""
    return ExtraDockerd(images, subnet="172.31.252.1/24", tag="f")


def wait_until(predicate: t.Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
