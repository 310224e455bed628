"""Test support for the Docker backend: HAProxy and extra dockerds (other "hosts") started by the tests, playbook runs."""
from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import typing as t
import uuid

import yaml

from tests.support.saved_results import callback_env, save_task

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV_BIN = pathlib.Path(sys.executable).parent
TEST_LABEL = "zerodown-test"
RUN_ID = uuid.uuid4().hex[:8]
IMAGE_V1 = "zerodown/demo-app:1.0"
IMAGE_V2 = "zerodown/demo-app:2.0"
IMAGE_BROKEN = "zerodown/demo-app:broken"
# healthy, but /cgi-bin/version answers 500 to 20 % of requests (a release only a step's analysis catches)
IMAGE_FLAKY = "zerodown/demo-app:flaky"
# the slow app (images/slow-app): PID 1 ignores SIGTERM, so every docker stop lasts stop_timeout; ready 3 s after start
IMAGE_SLOW_V1 = "zerodown/slow-app:1.0"
IMAGE_SLOW_V2 = "zerodown/slow-app:2.0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_ENGINE_TAG = re.compile(r"\.[0-9a-f]{6}$")


def container_of(member: str) -> str:
    """The container a load balancer member stands for: its name without the engine tag the driver appends
    (``<container>.<6 hex digits>``)."""
    return _ENGINE_TAG.sub("", member)


def haproxy_command(line: str, sock_path: str) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(sock_path)
        sock.sendall(line.encode() + b"\n")
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out.decode()


# one line per request: when (ms), worker pid, server, Tq/Tw/Tc/Tr/Ta timers, status, termination state, retries
LOG_FORMAT = "req %Ts.%ms pid=%pid %s %TR/%Tw/%Tc/%Tr/%Ta %ST %tsc retries=%rc %ci:%cp %bi:%bp"


class Haproxy:
    """An HAProxy (master-worker) on a loopback port, admin socket and config in a temp dir.

    The workload's backend lives in ``servers_file`` (rendered by the driver), loaded after the main file.
    """

    def __init__(self, backend: str) -> None:
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="zd-haproxy-"))
        self.backend = backend
        self.port = free_port()
        self.socket = str(self.dir / "admin.sock")
        self.master_socket = str(self.dir / "master.sock")  # the master CLI, as Debian's unit has (-S)
        self.servers_file = str(self.dir / "servers.cfg")
        self.main = self.dir / "haproxy.cfg"
        self.main.write_text(f"""global
    stats socket {self.socket} mode 600 level admin expose-fd listeners
    server-state-file {self.dir}/state
    log stdout format raw local0
defaults
    mode http
    log global
    log-format "{LOG_FORMAT}"
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    load-server-state-from-file global
    option redispatch
    retries 2
    option idle-close-on-response
frontend fe_{backend}
    bind 127.0.0.1:{self.port}
    default_backend {backend}
""")
        pathlib.Path(self.servers_file).write_text(f"backend {backend}\n    balance roundrobin\n")
        self.log = open(self.dir / "haproxy.log", "wb")
        self.proc = subprocess.Popen(
            ["haproxy", "-W", "-db", "-S", self.master_socket, "-f", str(self.main), "-f", self.servers_file],
            stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_socket()

    def _wait_socket(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if "pxname" in haproxy_command("show stat", self.socket):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"haproxy did not start: {(self.dir / 'haproxy.log').read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lb_options(self) -> dict[str, t.Any]:
        return {"type": "haproxy", "socket": self.socket, "backend": self.backend, "servers_file": self.servers_file,
                "master_socket": self.master_socket, "server_options": "check inter 500 fall 2 rise 1"}

    def servers(self) -> dict[str, str]:
        """Status of the backend's servers, by the name of the container each stands for."""
        return {container_of(name): status for name, status in self.members().items()}

    def members(self) -> dict[str, str]:
        """Status of the backend's servers, by member name (as HAProxy knows them)."""
        rows = haproxy_command("show stat", self.socket).splitlines()
        header = rows[0].lstrip("# ").split(",")
        out = {}
        for line in rows[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == self.backend and row.get("svname") not in ("BACKEND", "FRONTEND", None):
                out[row["svname"]] = row["status"]
        return out

    def failed_requests(self, clients_stopped_at: t.Optional[float] = None) -> list[str]:
        """Log lines (``LOG_FORMAT``) of the requests that did not end normally: a status other than 2xx or a
        termination state other than ``----`` (docs: HAProxy's "Session state at disconnection").

        ``clients_stopped_at`` (``time.time()`` when the test began to stop its clients): a request its client
        abandoned (state ``C...``) that was still open at that moment is left out. wrk, stopped, drops what it has
        in flight; that is the test's client going away, not a request the service failed.
        """
        self.log.flush()
        out = []
        for line in (self.dir / "haproxy.log").read_text(errors="replace").splitlines():
            fields = line.split()
            if len(fields) >= 8 and fields[0] == "req" and (not fields[5].startswith("2") or fields[6] != "----"):
                if clients_stopped_at is not None and fields[6].startswith("C"):
                    # %Ts (the request's start, or earlier on a keep-alive connection) + %Ta (its active time): no
                    # later than when HAProxy saw the client go, so nothing that ended before the stop is left out
                    ended = float(fields[1]) + int(fields[4].split("/")[-1].lstrip("+")) / 1000
                    if ended + 0.001 >= clients_stopped_at:
                        continue
                out.append(line)
        return out

    def worker(self) -> str:
        """The pid of the worker answering on the admin socket ("" between two workers)."""
        try:
            for line in haproxy_command("show info", self.socket).splitlines():
                if line.startswith("Pid:"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return ""

    def old_workers(self) -> list[str]:
        """Pids of the workers earlier reloads replaced that have not exited yet (master CLI ``show proc``)."""
        out, section = [], ""
        for line in haproxy_command("show proc;quit", self.master_socket).splitlines():
            if line.startswith("#"):
                section = line.strip("# ").lower()
                continue
            if section == "old workers" and line.split():
                out.append(line.split()[0])
        return out

    def wait_reloaded(self, before: str, timeout: float = 10) -> None:
        """Wait until the reload signalled after reading worker ``before`` is over: a new worker answers and every
        worker it replaced has exited."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                # the master CLI refuses connections while the master re-executes itself
                if self.worker() not in ("", before) and not self.old_workers():
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise RuntimeError(f"HAProxy's reload was not over within {timeout:g}s (worker before: {before}, "
                                   f"now: {self.worker() or 'none'})")
            time.sleep(0.01)

    def reload(self, wait: bool = True) -> None:
        """Reload the config (master-worker SIGUSR2); with ``wait``, until the reload is over (``wait_reloaded``)."""
        before = self.worker() if wait else ""
        self.proc.send_signal(signal.SIGUSR2)
        if wait:
            self.wait_reloaded(before)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def module_args(name: str, balancer: t.Any, **extra: t.Any) -> dict[str, t.Any]:
    """Arguments of a Docker module task on workload ``name`` behind ``balancer`` (a test HAProxy or nginx):
    the tests' health and drain timeouts, then ``extra``."""
    args = {"platform": "docker", "name": name, "load_balancer": balancer.lb_options(),
            "health_timeout": 20, "drain_timeout": 2}
    args.update(extra)
    return args


def container_spec(**extra: t.Any) -> dict[str, t.Any]:
    spec = {"port": 8080, "labels": {TEST_LABEL: RUN_ID}}
    spec.update(extra)
    return spec


def run_playbook(tmp: pathlib.Path, tasks: list[dict[str, t.Any]], inventory: t.Optional[str] = None,
                 check: bool = False, diff: bool = False, timeout: float = 240,
                 serial: t.Optional[int] = None) -> dict[str, dict[str, t.Any]]:
    """Run ``tasks`` with ansible-playbook (connection local, this venv's python; ``serial`` hosts at a time);
    each task's result is registered (errors ignored) and returned per host as {"r0": ..., "r1": ...}."""
    out_dir = tmp / f"results-{uuid.uuid4().hex[:6]}"
    out_dir.mkdir()
    play_tasks = []
    for i, task in enumerate(tasks):
        task = dict(task)
        task.setdefault("register", f"r{i}")
        task.setdefault("ignore_errors", True)
        play_tasks.append(task)
    names = [task["register"] for task in play_tasks]
    collect = "{" + ", ".join(f"'{n}': {n}" for n in names) + "}"
    play_tasks.append(save_task(collect, f"{out_dir}/{{host}}.json"))
    play: dict[str, t.Any] = {"hosts": "all", "gather_facts": False, "connection": "local"}
    if serial is not None:
        play["serial"] = serial
    playbook = [dict(play, tasks=play_tasks)]
    pb = out_dir / "play.yml"
    pb.write_text(yaml.safe_dump(playbook, sort_keys=False))
    if inventory is None:
        inv = out_dir / "inventory.yml"
        inv.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {}}}}))
        inventory = str(inv)
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", inventory, str(pb), "-e",
           f"ansible_python_interpreter={os.environ.get('ZD_TARGET_PYTHON') or sys.executable}"]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_DEPRECATION_WARNINGS="false", **callback_env())
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT), check=False)
    results = {}
    for path in out_dir.glob("*.json"):
        results[path.stem] = json.loads(path.read_text())
    if not results:
        raise AssertionError(f"ansible-playbook produced no results (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return results


def bridge_mac() -> str:
    """A random locally administered unicast MAC address."""
    octets = bytearray(os.urandom(6))
    octets[0] = (octets[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in octets)


# the third octet of the loopback address an extra dockerd's containers publish on, by its tag (ExtraDockerd)
PUBLISH_OCTETS = {"": 0, "f": 2, "s": 3}
# held while an extra dockerd's bridge gets its subnet: the two streams of make test start dockerds side by side
SUBNET_LOCK = pathlib.Path(tempfile.gettempdir()) / "zd-test-subnets.lock"
# where a subnet is looked for when the preferred one is taken: 172.31.<third octet>.0/24
SPARE_OCTETS = range(239, 150, -1)


def subnets_in_use() -> set[str]:
    """The first three octets of every IPv4 network an interface of this machine is on (``ip -o -4 addr``)."""
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return {".".join(words[3].split("/")[0].split(".")[:3]) for words in (line.split() for line in out.splitlines())
            if len(words) > 3 and words[2] == "inet"}


def claim_bridge(bridge: str, preferred: str) -> str:
    """Create and bring up ``bridge`` on a /24 no interface is on, ``preferred`` when it is free; returns the
    subnet (gateway address/24). A bridge that a killed test run left behind keeps its subnet: a second bridge on
    the same subnet would take its routes, and the containers behind the new one could not be reached."""
    import fcntl

    with open(SUBNET_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        taken = subnets_in_use()
        candidates = [preferred] + [f"172.31.{octet}.1/24" for octet in SPARE_OCTETS]
        subnet = next((c for c in candidates if ".".join(c.split(".")[:3]) not in taken), None)
        if subnet is None:
            raise RuntimeError(f"no free 172.31.x.0/24 subnet for a test dockerd's bridge (in use: {sorted(taken)})")
        subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True, capture_output=True)
        # A fixed MAC, as dockerd gives the bridges it creates: otherwise Linux gives the bridge the lowest MAC
        # of its ports, which changes as containers come and go, and every container's ARP entry for the
        # gateway goes stale: all their traffic (docker-proxy's replies included) stalls for seconds.
        subprocess.run(["ip", "link", "set", bridge, "address", bridge_mac()], check=True, capture_output=True)
        subprocess.run(["ip", "addr", "add", subnet, "dev", bridge], check=True, capture_output=True)
        subprocess.run(["ip", "link", "set", bridge, "up"], check=True, capture_output=True)
        return subnet


class ExtraDockerd:
    """An extra dockerd standing for another host: own socket, data-root, exec-root, pidfile and bridge.

    Instance ``index`` gets bridge ``zd<run><index>`` on subnet 172.31.(251 - index).1/24, or a free one when
    an interface is on that subnet already (:func:`claim_bridge`), so several can run side by side (the fault
    tests' own dockerd prefers 172.31.252.0/24). No iptables rules (published ports go
    through docker-proxy on loopback); the demo images are copied over with save/load (no registry is
    reachable) from ``image_archive`` when given (saved once for a whole fleet), else straight from the
    local engine.
    """

    def __init__(self, images: t.Sequence[str], index: int = 0, image_archive: t.Optional[str] = None,
                 start_timeout: float = 30, subnet: t.Optional[str] = None, tag: str = "") -> None:
        if not 0 <= index < 50:
            raise ValueError(f"dockerd index {index} out of range 0..49")
        self.index = index
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix=f"zd-d{tag}{index}-"))
        self.bridge = f"zd{tag}{RUN_ID[:6]}{index}" if index or tag else f"zd{RUN_ID[:6]}"
        self.subnet = subnet or f"172.31.{251 - index}.1/24"  # preferred: claim_bridge may give another
        # Where its containers publish their ports: a loopback address of its own, as each host of a fleet has
        # its own address. Every dockerd allocates published ports upwards from the same first port and gives
        # up after 10 in use: on one shared address, a new engine fails to publish beside a busy one.
        self.publish_address = f"127.0.{PUBLISH_OCTETS.get(tag, 9)}.{index + 2}"
        self.socket = str(self.dir / "docker.sock")
        self.host = f"unix://{self.socket}"
        self.proc: t.Optional[subprocess.Popen] = None
        self.log: t.Optional[t.IO[bytes]] = None
        try:
            self.subnet = claim_bridge(self.bridge, self.subnet)
            self.log = open(self.dir / "dockerd.log", "ab")
            self._start_daemon(start_timeout)
            if image_archive is not None:
                with open(image_archive, "rb") as archive:
                    subprocess.run(["/usr/bin/docker", "-H", self.host, "load", "-q"], stdin=archive, check=True,
                                   capture_output=True, timeout=120)
            else:
                save = subprocess.Popen(["/usr/bin/docker", "save", *images], stdout=subprocess.PIPE)
                subprocess.run(["/usr/bin/docker", "-H", self.host, "load", "-q"], stdin=save.stdout, check=True,
                               capture_output=True, timeout=120)
                save.wait(60)
        except BaseException:
            self.stop()
            raise

    def _start_daemon(self, timeout: float) -> None:
        self.proc = subprocess.Popen(
            ["dockerd", "--host", self.host, "--data-root", str(self.dir / "data"),
             "--exec-root", str(self.dir / "exec"), "--pidfile", str(self.dir / "dockerd.pid"),
             "--bridge", self.bridge, "--iptables=false", "--ip-masq=false"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_answer(timeout)

    def restart(self, timeout: float = 30) -> float:
        """SIGTERM the daemon (it stops its containers, as a default dockerd does), start it again on the same
        data root; returns the seconds it was down."""
        began = time.monotonic()
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._start_daemon(timeout)
        return time.monotonic() - began

    def _wait_answer(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ping = subprocess.run(["/usr/bin/docker", "-H", self.host, "version", "--format", "{{.Server.Version}}"],
                                  capture_output=True, check=False, timeout=10)
            if ping.returncode == 0:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd {self.index} exited: {(self.dir / 'dockerd.log').read_text()[-2000:]}")
            time.sleep(0.3)
        raise RuntimeError(f"dockerd {self.index} did not answer within {timeout:g}s")

    def stop(self) -> None:
        """Remove its containers, stop it, delete its bridge and directory (safe to call twice)."""
        if self.proc is not None and self.proc.poll() is None:
            ids = subprocess.run(["/usr/bin/docker", "-H", self.host, "ps", "-aq"], capture_output=True, text=True,
                                 check=False, timeout=30).stdout.split()
            if ids:
                subprocess.run(["/usr/bin/docker", "-H", self.host, "rm", "-f", *ids], capture_output=True,
                               check=False, timeout=60)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.log is not None and not self.log.closed:
            self.log.close()
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(self.dir)], capture_output=True, check=False)


class SecondDockerd(ExtraDockerd):
    """The multi-host Docker tests' second host: instance 0 of :class:`ExtraDockerd`."""

    def __init__(self, images: t.Sequence[str]) -> None:
        super().__init__(images, index=0)


def start_dockerds(count: int, images: t.Sequence[str], first_index: int = 1) -> list[ExtraDockerd]:
    """``count`` extra dockerds (indexes ``first_index``...), started side by side; the images are saved once.

    On any failure, those already started are stopped before the error is raised.
    """
    import concurrent.futures

    work = pathlib.Path(tempfile.mkdtemp(prefix="zd-fleet-img-"))
    archive = str(work / "images.tar")
    started: list[ExtraDockerd] = []
    try:
        subprocess.run(["/usr/bin/docker", "save", "-o", archive, *images], check=True, capture_output=True,
                       timeout=120)
        with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
            futures = [pool.submit(ExtraDockerd, images, first_index + i, archive) for i in range(count)]
            errors = []
            for future in futures:
                try:
                    started.append(future.result())
                except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]
        return started
    except BaseException:
        for daemon in started:
            daemon.stop()
        raise
    finally:
        subprocess.run(["rm", "-rf", str(work)], capture_output=True, check=False)


class WrkLoad:
    """A steady, bounded HTTP load from ``wrk`` (C, so it holds its rate on a busy machine).

    Each of ``connections`` keep-alive connections waits ``delay_ms`` between requests (a Lua ``delay``
    hook), which bounds the rate at about connections * 1000 / (delay_ms + latency). Runs until
    ``stop()`` (SIGINT, after which wrk prints its summary) or ``max_seconds``.
    """

    def __init__(self, url: str, connections: int = 16, delay_ms: int = 40, max_seconds: int = 300,
                 timeout_s: int = 5) -> None:
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="zd-wrk-"))
        script = self.dir / "pace.lua"
        script.write_text(f"function delay()\n  return {int(delay_ms)}\nend\n")
        self.out = open(self.dir / "wrk.out", "w+")
        # a request unanswered after ``timeout_s`` counts as failed: 5 s, the recorder's own timeout, so that both
        # clients of a test call the same thing a failure (wrk's default, 2 s, counted answers a saturated 2-core
        # machine delivered in 2.3 s, with HAProxy logging them 200, as failed)
        self.proc = subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{max_seconds}s", "--timeout", f"{timeout_s}s",
                                      "-s", str(script), url],
                                     stdout=self.out, stderr=subprocess.STDOUT)

    def stop(self) -> dict[str, t.Any]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.out.seek(0)
        text = self.out.read()
        self.out.close()
        return parse_wrk(text)


def parse_wrk(text: str) -> dict[str, t.Any]:
    """Requests, rate and every kind of failure from wrk's summary."""
    import re

    def number(pattern: str) -> float:
        match = re.search(pattern, text)
        return float(match.group(1)) if match else 0.0

    if "Requests/sec" not in text:
        raise AssertionError(f"wrk printed no summary:\n{text}")
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "requests": int(number(r"(\d+) requests in")),
        "requests_per_s": number(r"Requests/sec:\s+([\d.]+)"),
        "socket_errors": sum(int(x) for x in socket_errors.groups()) if socket_errors else 0,
        "non_2xx_3xx": int(number(r"Non-2xx or 3xx responses: (\d+)")),
        "text": text,
    }
