# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""HAProxy's two command lines as the HAProxy driver speaks them: the runtime API (``stats socket ... level
admin``) and the master CLI (``haproxy -S``), over a unix or TCP socket, one command per connection; and the
tables they answer with (``show stat``, ``show servers state``, ``show proc``).
"""

from __future__ import annotations

import os
import socket
import stat
import time
import typing as t
from dataclasses import dataclass

from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput, PlatformUnreachable

# pause between two tries of the master CLI while the master re-executes itself (a reload)
MASTER_RETRY = 0.02


class _Refused(Exception):
    """The master CLI refused or dropped the connection (it re-executes itself on a reload); tried again."""


def parse_socket(value: str, option: str = "load_balancer.socket") -> tuple[str, t.Any]:
    """``/path/admin.sock`` -> ("unix", path); ``host:port`` or ``tcp://host:port`` -> ("tcp", (host, port))."""
    text = (value or "").strip()
    if not text:
        raise InvalidInput(f"{option} is required for load_balancer.type=haproxy: the path of the "
                           "admin socket (stats socket ... level admin) or host:port of a TCP one")
    if text.startswith("tcp://"):
        text = text[len("tcp://"):]
    elif text.startswith("unix://"):
        return "unix", text[len("unix://"):]
    if text.startswith("/") or text.startswith("."):
        return "unix", text
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InvalidInput(f"{option}={value!r} is neither a socket path nor host:port")
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


def parse_proc(text: str) -> dict[str, list[str]]:
    """Pids by section of the master CLI's ``show proc`` (``workers``, ``old workers``, ``programs``)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("#"):
            section = line.strip("# ").lower()
            if section.startswith("<pid>"):  # the column header
                section = ""
            continue
        words = line.split()
        if section and words and words[0].isdigit():
            out.setdefault(section, []).append(words[0])
    return out


@dataclass(frozen=True)
class Endpoint:
    """One of HAProxy's command lines: where it is, the option that gave it, and what to say when it fails."""

    kind: str  # unix or tcp
    address: t.Any
    spec: str
    option: str
    what: str
    hint: str  # what HAProxy must run with for it to answer
    socket_hint: str  # what the option must name when it names a file that is not a socket


class HaproxyCli:
    """The runtime API at ``socket_spec`` and, when given, the master CLI at ``master_spec``; ``timeout`` bounds
    each answer (and the retries of the master CLI while a reload re-executes it)."""

    def __init__(self, socket_spec: str, master_spec: t.Optional[str], timeout: float) -> None:
        kind, address = parse_socket(socket_spec)
        self.runtime = Endpoint(kind, address, socket_spec, "load_balancer.socket", "HAProxy's runtime API",
                                "haproxy runs with 'stats socket <path> level admin'",
                                "admin socket (stats socket <path> level admin)")
        self.master: t.Optional[Endpoint] = None
        if master_spec:
            kind, address = parse_socket(master_spec, "load_balancer.master_socket")
            self.master = Endpoint(kind, address, master_spec, "load_balancer.master_socket", "HAProxy's master CLI",
                                   "haproxy runs with -S <path> (Debian's unit has it)", "master CLI (haproxy -S <path>)")
        self.timeout = timeout

    @property
    def has_master(self) -> bool:
        return self.master is not None

    def command(self, line: str) -> str:
        """One runtime API command; its answer."""
        return self._send(self.runtime, line)

    def master_command(self, line: str) -> str:
        """One master CLI command (``@!<pid> <command>`` reaches one worker, old ones included); its answer."""
        if self.master is None:
            raise InvalidInput("load_balancer.master_socket is not set")
        # the master re-executes itself on every reload: meanwhile it refuses connections or drops the one it
        # had accepted (an empty answer); both are tried again
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                last = time.monotonic() >= deadline
                answer = self._send(self.master, f"{line};quit", refused_raises=last)
                if answer.strip() or last:
                    return answer
            except _Refused:
                pass
            time.sleep(MASTER_RETRY)

    def _send(self, end: Endpoint, line: str, refused_raises: bool = True) -> str:
        if end.kind == "unix":
            try:
                mode = os.stat(end.address).st_mode
            except OSError:
                mode = None
            if mode is not None and not stat.S_ISSOCK(mode):
                raise InvalidInput(f"{end.option}={end.spec} is not a socket; give the path of HAProxy's {end.socket_hint}")
        family = socket.AF_UNIX if end.kind == "unix" else socket.AF_INET
        if end.kind == "tcp" and ":" in end.address[0]:
            family = socket.AF_INET6
        failed = f"cannot talk to {end.what} at {end.spec}"
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(end.address)
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while True:
                    data = sock.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
        except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError) as exc:
            if not refused_raises:
                raise _Refused() from exc
            raise PlatformUnreachable(f"{failed} ({exc}); check {end.option} and that {end.hint}")
        except (OSError, socket.timeout) as exc:
            raise PlatformUnreachable(f"{failed} ({exc}); check {end.option} and that {end.hint}")
        return b"".join(chunks).decode(errors="replace")
