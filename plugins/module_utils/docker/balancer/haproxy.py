# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""HAProxy driver: the runtime API (admin socket) with dynamic servers.

* ``add server <be>/<srv> <addr> <server_options>``, then ``enable health`` and ``enable server``
  (dynamic servers start in maintenance), then wait until ``show stat`` says UP;
* drain: ``set server <be>/<srv> state drain``, then wait for ``scur`` (``show stat``) to reach 0;
* remove: ``set server ... state maint``, ``shutdown sessions server``, ``del server``.

Dynamic servers are lost when HAProxy reloads. With ``servers_file`` set, the driver rewrites that
file (the whole ``backend`` section: its options and one ``server`` line per live member) after every
change, so a reload that loads it (``haproxy -f main.cfg -f <servers_file>``) keeps the membership.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.balancer.base import Balancer, Member
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    PlatformUnreachable,
    RolloutFailed,
)

DEFAULT_SERVER_OPTIONS = "check inter 1s fall 2 rise 1"
DEFAULT_BACKEND_OPTIONS = ("balance roundrobin",)
POLL = 0.2
# words HAProxy's runtime API uses when it refuses a command
REFUSALS = ("unknown", "error", "not found", "no such", "cannot", "can't", "permission denied", "unexpected",
            "invalid", "require")


class HaproxyError(RolloutFailed):
    """HAProxy refused a runtime command."""


def parse_socket(value: str) -> tuple[str, t.Any]:
    """``/path/admin.sock`` -> ("unix", path); ``host:port`` or ``tcp://host:port`` -> ("tcp", (host, port))."""
    text = (value or "").strip()
    if not text:
        raise InvalidInput("load_balancer.socket is required for load_balancer.type=haproxy: the path of the "
                           "admin socket (stats socket ... level admin) or host:port of a TCP one")
    if text.startswith("tcp://"):
        text = text[len("tcp://"):]
    elif text.startswith("unix://"):
        return "unix", text[len("unix://"):]
    if text.startswith("/") or text.startswith("."):
        return "unix", text
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InvalidInput(f"load_balancer.socket={value!r} is neither a socket path nor host:port")
    return "tcp", (host.strip("[]"), int(port))


def parse_csv_table(text: str) -> list[dict[str, str]]:
    """Rows of ``show stat`` (CSV with a ``# name,...`` header) as dicts."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("#"):
        return []
    header = lines[0].lstrip("# ").split(",")
    return [dict(zip(header, line.split(","))) for line in lines[1:]]


def parse_servers_state(text: str) -> list[dict[str, str]]:
    """Rows of ``show servers state`` (a version line, a ``# name ...`` header, space separated rows)."""
    rows: list[dict[str, str]] = []
    header: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            header = line.lstrip("# ").split()
        elif header and line.strip() and not line.strip().isdigit():
            rows.append(dict(zip(header, line.split())))
    return rows


def render_backend(backend: str, backend_options: t.Sequence[str], servers: t.Sequence[tuple[str, str]],
                   server_options: str) -> str:
    """The backend section persisted for reloads: options, then one ``server`` line per member."""
    lines = [
        "# Written by zerodown.rollout: the live members of this backend, so that a reload keeps them.",
        f"backend {backend}",
    ]
    lines += [f"    {opt}" for opt in backend_options]
    lines += [f"    server {name} {address} {server_options}".rstrip() for name, address in servers]
    return "\n".join(lines) + "\n"


class HaproxyRuntime(Balancer):
    """Drives one backend through HAProxy's runtime API."""

    kind = "haproxy"
    can_drain = True

    def __init__(self, socket_spec: str, backend: str, server_options: str = DEFAULT_SERVER_OPTIONS,
                 servers_file: t.Optional[str] = None,
                 backend_options: t.Sequence[str] = DEFAULT_BACKEND_OPTIONS, timeout: float = 5.0) -> None:
        self.family, self.address = parse_socket(socket_spec)
        self.socket_spec = socket_spec
        self.backend = backend
        self.server_options = server_options
        self.servers_file = servers_file
        self.backend_options = list(backend_options)
        self.timeout = timeout

    @classmethod
    def from_spec(cls, spec: dict[str, t.Any], workload: str) -> "HaproxyRuntime":
        return cls(
            socket_spec=spec.get("socket") or "",
            backend=spec.get("backend") or workload,
            server_options=spec.get("server_options") or DEFAULT_SERVER_OPTIONS,
            servers_file=spec.get("servers_file"),
            backend_options=spec.get("backend_options") or DEFAULT_BACKEND_OPTIONS,
            timeout=float(spec.get("timeout") or 5.0),
        )

    def describe(self) -> str:
        return f"HAProxy backend {self.backend!r} at {self.socket_spec}"

    # -- runtime API -------------------------------------------------------------------------------
    def command(self, line: str) -> str:
        """Send one runtime API command and return its answer."""
        family = socket.AF_UNIX if self.family == "unix" else socket.AF_INET
        if self.family == "tcp" and ":" in self.address[0]:
            family = socket.AF_INET6
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.address)
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
        except (OSError, socket.timeout) as exc:
            raise PlatformUnreachable(
                f"cannot talk to HAProxy's runtime API at {self.socket_spec} ({exc}); check load_balancer.socket "
                "and that haproxy runs with 'stats socket <path> level admin'"
            )
        return b"".join(chunks).decode(errors="replace")

    def _checked(self, line: str, ok: t.Sequence[str] = ()) -> str:
        answer = self.command(line).strip()
        lowered = answer.lower()
        if any(word in lowered for word in REFUSALS) and not any(o.lower() in lowered for o in ok):
            raise HaproxyError(f"HAProxy refused '{line}': {answer}")
        return answer

    def stat_rows(self) -> list[dict[str, str]]:
        return [r for r in parse_csv_table(self.command("show stat")) if r.get("pxname") == self.backend]

    def check(self) -> None:
        rows = parse_csv_table(self.command("show stat"))
        if not rows:
            raise PlatformUnreachable(f"HAProxy at {self.socket_spec} did not answer 'show stat'; is it an admin socket?")
        backend = [r for r in rows if r.get("pxname") == self.backend and r.get("svname") == "BACKEND"]
        if not backend:
            names = sorted({r.get("pxname", "") for r in rows if r.get("svname") == "BACKEND"})
            raise InvalidInput(f"HAProxy has no backend {self.backend!r} (it has: {', '.join(names) or 'none'}); "
                               "set load_balancer.backend")

    def members(self) -> dict[str, Member]:
        addresses: dict[str, str] = {}
        for row in parse_servers_state(self.command(f"show servers state {self.backend}")):
            if row.get("be_name") == self.backend:
                addresses[row.get("srv_name", "")] = f"{row.get('srv_addr')}:{row.get('srv_port')}"
        out: dict[str, Member] = {}
        for row in self.stat_rows():
            name = row.get("svname", "")
            if name in ("BACKEND", "FRONTEND"):
                continue
            try:
                sessions = int(row.get("scur") or 0)
            except ValueError:
                sessions = 0
            out[name] = Member(name, addresses.get(name, row.get("addr", "")), row.get("status", ""), sessions)
        return out

    def add(self, name: str, address: str) -> None:
        current = self.members().get(name)
        if current is not None and current.address != address:
            self.remove(name)
            current = None
        if current is None:
            self._checked(f"add server {self.backend}/{name} {address} {self.server_options}".rstrip())
        if "check" in self.server_options.split():
            self._checked(f"enable health {self.backend}/{name}")
        self._checked(f"set server {self.backend}/{name} state ready")
        self.persist()

    def wait_up(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        status = "missing"
        while True:
            member = self.members().get(name)
            status = member.status if member else "missing"
            if status.startswith("UP") or status == "no check":
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        raise RolloutFailed(f"HAProxy did not mark server {self.backend}/{name} UP within {timeout:g}s "
                            f"(status {status}); check load_balancer.server_options and the app's port")

    def drain(self, name: str) -> None:
        self._checked(f"set server {self.backend}/{name} state drain")

    def wait_drained(self, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            member = self.members().get(name)
            if member is None or member.sessions <= 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    def remove(self, name: str) -> None:
        if name not in self.members():
            self.persist()
            return
        self._checked(f"set server {self.backend}/{name} state maint")
        self._checked(f"shutdown sessions server {self.backend}/{name}")
        # del server refuses while connections are still attached; they close right after shutdown
        deadline = time.monotonic() + max(self.timeout, 2.0)
        while True:
            answer = self.command(f"del server {self.backend}/{name}").strip()
            if "deleted" in answer.lower() or name not in self.members():
                break
            if time.monotonic() >= deadline:
                raise HaproxyError(f"HAProxy refused 'del server {self.backend}/{name}': {answer}")
            time.sleep(POLL)
        self.persist()

    # -- reload survival ---------------------------------------------------------------------------
    def persist(self) -> None:
        """Rewrite ``servers_file`` with the members that take traffic (atomically)."""
        if not self.servers_file:
            return
        live = [(m.name, m.address) for m in self.members().values()
                if not m.status.startswith("MAINT") and not m.status.startswith("DRAIN")]
        text = render_backend(self.backend, self.backend_options, sorted(live), self.server_options)
        directory = os.path.dirname(os.path.abspath(self.servers_file))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".zerodown-", dir=directory)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            if os.path.exists(self.servers_file):
                os.chmod(tmp, os.stat(self.servers_file).st_mode & 0o7777)
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, self.servers_file)
        except OSError as exc:
            raise RolloutFailed(f"cannot write load_balancer.servers_file {self.servers_file} ({exc}); "
                                "HAProxy is updated but a reload would lose the new members")
