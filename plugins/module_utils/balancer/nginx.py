# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""nginx driver: an ``upstream`` file the driver renders, then ``nginx -t`` and a graceful reload.

Open-source nginx has no runtime API: a member is added or taken out by rewriting the upstream and
reloading (new workers get the new upstream, old workers finish the requests they have). There is no
session count, so "drained" means the reload happened and ``drain_grace`` seconds passed.

The file is rendered from the intent (the members this run owns that it has decided on) plus the
servers other runs own, kept as they are; since nginx only ever runs what the file says, reconciling
is rewriting the file when it differs. A file nginx refuses (``test_command``) or a reload that fails
puts the previous file back.

Weights are ``weight=N`` on a server line; nginx refuses ``weight=0``, so a member weighed 0 is written
``down`` (it takes no request, and stays in the file so that a later weight brings it back).
"""

from __future__ import annotations

import os
import re
import shlex
import time
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import (
    Balancer,
    Member,
    check_weights,
    describe_file_fixes,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.files import (
    file_lock,
    read_text,
    replace_text,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput, RolloutFailed

# runs a command (argv) and returns (rc, stdout, stderr): AnsibleModule.run_command in modules
Runner = t.Callable[[t.List[str]], t.Tuple[int, str, str]]
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def render_upstream(upstream: str, servers: t.Sequence[tuple[str, str]], server_options: str = "",
                    kept: t.Sequence[str] = (), weights: t.Optional[t.Mapping[str, int]] = None) -> str:
    """The upstream block: the ``kept`` server lines (other runs' members), then one ``server host:port``
    line per member, its name in a trailing comment (``weight=N``, or ``down`` for 0, when the run set one)."""
    weights = weights or {}
    opts = f" {server_options.strip()}" if server_options and server_options.strip() else ""
    body = [f"    {line.strip()}" for line in kept]
    body += [f"    server {address}{opts}{_weight_words(weights.get(name))};  # zerodown:{name}"
             for name, address in servers]
    if not body:
        # nginx refuses an empty upstream; a server marked down keeps the file valid and takes no traffic
        body = ["    server 127.0.0.1:9 down;  # zerodown:placeholder"]
    return "\n".join(["# Written by zerodown.rollout; changes made by hand are replaced.",
                      f"upstream {upstream} {{", *body, "}"]) + "\n"


def _weight_words(weight: t.Optional[int]) -> str:
    if weight is None:
        return ""
    return " down" if weight == 0 else f" weight={weight}"


def line_weight(line: str) -> int:
    """The weight nginx gives a ``server`` line: 0 when ``down``, ``weight=N``, else 1."""
    words = line.split("#", 1)[0].replace(";", " ").split()
    if "down" in words:
        return 0
    for word in words:
        if word.startswith("weight=") and word[len("weight="):].isdigit():
            return int(word[len("weight="):])
    return 1


def parse_upstream(text: str) -> list[tuple[str, str]]:
    """The (name, address) members of a file written by :func:`render_upstream`."""
    return [(name, address) for name, address, _line in upstream_lines(text)]


def upstream_lines(text: str) -> list[tuple[str, str, str]]:
    """(name, address, whole line) of the named ``server`` lines of a file written by :func:`render_upstream`."""
    out = []
    for line in text.splitlines():
        match = re.match(r"^\s*server\s+(\S+)[^#]*#\s*zerodown:(\S+)", line)
        if match and match.group(2) != "placeholder":
            out.append((match.group(2), match.group(1).rstrip(";"), line))
    return out


class NginxUpstream(Balancer):
    """Renders one upstream file from the intent and reloads nginx gracefully."""

    kind = "nginx"
    weighted = True
    OPTIONS = {
        "upstream_file": {"type": "path"},
        "upstream": {"type": "str"},
        "backend": {"type": "str"},  # the upstream's name when upstream is unset, as for HAProxy's backend
        "server_options": {"type": "str"},
        "reload_command": {"type": "str"},
        "test_command": {"type": "str"},
        "drain_grace": {"type": "float"},
    }

    def __init__(self, upstream_file: str, upstream: str, runner: Runner, reload_command: str = "nginx -s reload",
                 test_command: str = "nginx -t", drain_grace: float = 1.0, server_options: str = "") -> None:
        super().__init__()
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
        if spec.get("reload_command") is not None and not spec["reload_command"].strip():
            raise InvalidInput("load_balancer.reload_command is empty: nginx must be reloaded for a change of the "
                               "upstream to take effect; leave it unset for 'nginx -s reload'")
        grace = spec.get("drain_grace")
        if grace is not None and grace < 0:
            raise InvalidInput(f"load_balancer.drain_grace must be zero or more seconds, got {grace}")
        return cls(
            upstream_file=spec.get("upstream_file") or "",
            upstream=spec.get("upstream") or spec.get("backend") or workload,
            runner=runner,
            reload_command=spec.get("reload_command") or "nginx -s reload",
            # "" is documented as "no test": only an unset test_command means the default
            test_command="nginx -t" if spec.get("test_command") is None else spec["test_command"],
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
        return parse_upstream(read_text(self.upstream_file) or "")

    def members(self) -> dict[str, Member]:
        return {name: Member(name, address, "DOWN" if line_weight(line) == 0 else "UP", 0, line_weight(line))
                for name, address, line in upstream_lines(read_text(self.upstream_file) or "")}

    def _run(self, command: str) -> None:
        try:
            rc, out, err = self.runner(shlex.split(command))
        except OSError as exc:
            raise RolloutFailed(f"'{command}' could not run ({exc})")
        if rc != 0:
            raise RolloutFailed(f"'{command}' failed (rc={rc}): {(err or out).strip()}")

    def _plan(self) -> tuple[t.Optional[str], str]:
        """(the upstream file's text now, the text the intent renders)."""
        old = read_text(self.upstream_file)
        kept = [line for name, _address, line in upstream_lines(old or "") if not self.owns(name)]
        return old, render_upstream(self.upstream, sorted(self.intent.items()), self.server_options, kept,
                                    self.weights)

    def _fixes(self, old: t.Optional[str]) -> list[str]:
        lines = [(n, a, line) for n, a, line in upstream_lines(old or "") if self.owns(n)]
        listed = {n: a for n, a, _line in lines}
        where = f"nginx upstream {self.upstream} ({self.upstream_file})"
        out = describe_file_fixes(listed, self.intent, where, "took out", "added")
        for name, address, line in lines:
            weight = self.weights.get(name)
            if self.intent.get(name) == address and weight is not None and line_weight(line) != weight:
                out.append(f"{where}: set {name}'s weight to {weight} (it was {line_weight(line)})")
        return out

    def _apply(self) -> list[str]:
        """Render the file from the intent and reload nginx when it changed; the previous file comes back
        when nginx refuses the new one. Returns what changed."""
        with file_lock(self.upstream_file):
            old, new = self._plan()
            if old == new:
                return []
            try:
                replace_text(self.upstream_file, new)
            except OSError as exc:
                raise RolloutFailed(f"cannot write load_balancer.upstream_file {self.upstream_file} ({exc})")
            try:
                if self.test_command:
                    self._run(self.test_command)
                self._run(self.reload_command)
            except RolloutFailed:
                # a config nginx rejects must not stay behind for the next reload to trip over
                try:
                    if old is None:
                        os.unlink(self.upstream_file)
                    else:
                        replace_text(self.upstream_file, old)
                except OSError:
                    pass
                raise
        return self._fixes(old)

    def add(self, name: str, address: str) -> None:
        self.intent[name] = address
        self._apply()

    def drain(self, name: str) -> None:
        self._forget(name)
        self._apply()

    def set_weights(self, weights: t.Mapping[str, t.Optional[int]]) -> list[str]:
        check_weights(weights, self.intent, self.MAX_WEIGHT)
        self._intend_weights(weights)
        return self._apply()

    def wait_drained(self, name: str, timeout: float) -> bool:
        time.sleep(min(self.drain_grace, max(timeout, 0.0)))
        return True

    def remove(self, name: str) -> None:
        self.drain(name)

    def divergence(self, members: t.Optional[t.Mapping[str, Member]] = None) -> list[str]:
        old, new = self._plan()
        return [] if old == new else self._fixes(old)

    def reconcile(self, settle: bool = False, wait: bool = True) -> list[str]:
        return self._apply()
