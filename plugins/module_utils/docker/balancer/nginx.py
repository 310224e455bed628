# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""nginx driver: an ``upstream`` file the driver renders, then ``nginx -t`` and a graceful reload.

Open-source nginx has no runtime API: a member is added or taken out by rewriting the upstream and
reloading (new workers get the new upstream, old workers finish the requests they have). There is no
session count, so "drained" means the reload happened and ``drain_grace`` seconds passed.
"""

from __future__ import annotations

import os
import re
import shlex
import tempfile
import time
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.balancer.base import Balancer, Member
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput, RolloutFailed

# runs a command (argv) and returns (rc, stdout, stderr): AnsibleModule.run_command in modules
Runner = t.Callable[[t.List[str]], t.Tuple[int, str, str]]
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def render_upstream(upstream: str, servers: t.Sequence[tuple[str, str]], server_options: str = "") -> str:
    """The upstream block: one ``server host:port`` line per member, its name in a trailing comment."""
    if not servers:
        # nginx refuses an empty upstream; a server marked down keeps the file valid and takes no traffic
        body = ["    server 127.0.0.1:9 down;  # zerodown:placeholder"]
    else:
        opts = f" {server_options.strip()}" if server_options and server_options.strip() else ""
        body = [f"    server {address}{opts};  # zerodown:{name}" for name, address in servers]
    return "\n".join(["# Written by zerodown.rollout; changes made by hand are replaced.",
                      f"upstream {upstream} {{", *body, "}"]) + "\n"


def parse_upstream(text: str) -> list[tuple[str, str]]:
    """The (name, address) members of a file written by :func:`render_upstream`."""
    out = []
    for line in text.splitlines():
        match = re.match(r"^\s*server\s+(\S+)[^#]*#\s*zerodown:(\S+)", line)
        if match and match.group(2) != "placeholder":
            out.append((match.group(2), match.group(1).rstrip(";")))
    return out


class NginxUpstream(Balancer):
    """Renders one upstream file and reloads nginx gracefully."""

    kind = "nginx"

    def __init__(self, upstream_file: str, upstream: str, runner: Runner, reload_command: str = "nginx -s reload",
                 test_command: str = "nginx -t", drain_grace: float = 1.0, server_options: str = "") -> None:
        if not upstream_file:
            raise InvalidInput("load_balancer.upstream_file is required for load_balancer.type=nginx: the file "
                               "holding the upstream block, included by nginx.conf")
        if not _NAME_RE.match(upstream):
            raise InvalidInput(f"load_balancer.upstream={upstream!r} is not a valid nginx upstream name")
        self.upstream_file = upstream_file
        self.upstream = upstream
        self.runner = runner
        self.reload_command = reload_command
        self.test_command = test_command
        self.drain_grace = drain_grace
        self.server_options = server_options

    @classmethod
    def from_spec(cls, spec: dict[str, t.Any], workload: str, runner: Runner) -> "NginxUpstream":
        return cls(
            upstream_file=spec.get("upstream_file") or "",
            upstream=spec.get("upstream") or spec.get("backend") or workload,
            runner=runner,
            reload_command=spec.get("reload_command") or "nginx -s reload",
            test_command=spec.get("test_command") or "nginx -t",
            drain_grace=float(spec.get("drain_grace") if spec.get("drain_grace") is not None else 1.0),
            server_options=spec.get("server_options") or "",
        )

    def describe(self) -> str:
        return f"nginx upstream {self.upstream!r} in {self.upstream_file}"

    def check(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.upstream_file))
        if not os.path.isdir(directory):
            raise InvalidInput(f"load_balancer.upstream_file: directory {directory} does not exist")

    def _read(self) -> list[tuple[str, str]]:
        try:
            with open(self.upstream_file) as handle:
                return parse_upstream(handle.read())
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise RolloutFailed(f"cannot read {self.upstream_file} ({exc})")

    def members(self) -> dict[str, Member]:
        return {name: Member(name, address) for name, address in self._read()}

    def _run(self, command: str) -> None:
        try:
            rc, out, err = self.runner(shlex.split(command))
        except OSError as exc:
            raise RolloutFailed(f"'{command}' could not run ({exc})")
        if rc != 0:
            raise RolloutFailed(f"'{command}' failed (rc={rc}): {(err or out).strip()}")

    def _write(self, servers: list[tuple[str, str]]) -> None:
        previous = None
        if os.path.exists(self.upstream_file):
            with open(self.upstream_file) as handle:
                previous = handle.read()
        directory = os.path.dirname(os.path.abspath(self.upstream_file))
        fd, tmp = tempfile.mkstemp(prefix=".zerodown-", dir=directory)
        with os.fdopen(fd, "w") as handle:
            handle.write(render_upstream(self.upstream, servers, self.server_options))
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.upstream_file)
        try:
            if self.test_command:
                self._run(self.test_command)
            self._run(self.reload_command)
        except RolloutFailed:
            # a config nginx rejects must not stay behind for the next reload to trip over
            if previous is not None:
                with open(self.upstream_file, "w") as handle:
                    handle.write(previous)
            raise

    def add(self, name: str, address: str) -> None:
        servers = [(n, a) for n, a in self._read() if n != name]
        self._write(servers + [(name, address)])

    def drain(self, name: str) -> None:
        servers = self._read()
        if any(member == name for member, _address in servers):
            self._write([(n, a) for n, a in servers if n != name])

    def wait_drained(self, name: str, timeout: float) -> bool:
        time.sleep(min(self.drain_grace, max(timeout, 0.0)))
        return True

    def remove(self, name: str) -> None:
        self.drain(name)
