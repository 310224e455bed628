# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""HAProxy driver: the runtime API (admin socket) with dynamic servers.

* ``add server <be>/<srv> <addr> <server_options>``, then ``enable health`` and ``set server ... state
  ready`` (dynamic servers start in maintenance), then wait until ``show stat`` says UP;
* drain: ``set server <be>/<srv> state drain``, then wait for ``scur`` (``show stat``) to reach 0;
* remove: ``set server ... state maint``, ``shutdown sessions server``, ``del server``;
* weights: ``set server ... weight <0-256>`` (0 takes no new request; the member stays UP and health-checked).

Dynamic servers are lost when HAProxy reloads. With ``servers_file`` set, the driver renders that file
(the whole ``backend`` section: its options, the servers it does not own as they are, one ``server``
line per member it intends) *before* each runtime change, so a reload at any moment loads the intended
membership. A reload whose new worker parsed the file just before a rewrite can still come up with the
older set: ``reconcile`` (after every batch and at the end of a run) compares the running backend with
the intent and repairs it, again if the worker changed meanwhile (``show info``'s Pid).

Before the container behind a member taken out stops, ``release`` makes sure no HAProxy process still sends it
requests: the current worker (a reload that parsed the file before the take-out brings it back: it is taken out
again) and, with ``master_socket`` (the master CLI, ``-S``), the old workers a reload left finishing their
connections, which route from the servers they loaded and run no health checks: it waits for those that still
have the member in rotation to exit (each of their keep-alive connections closes after its next response).
"""

from __future__ import annotations

import time
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import (
    FOLLOW_EVERY,
    Balancer,
    Member,
    ServerCounters,
    check_weights,
    describe_file_fixes,
    describe_fixes,
    plan_fixes,
    weight_fixes,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.haproxy_cli import (
    HaproxyCli,
    parse_csv_table,
    parse_proc,
    parse_servers_state,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.files import (
    file_lock,
    read_text,
    replace_text,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    PlatformUnreachable,
    RolloutFailed,
)

DEFAULT_SERVER_OPTIONS = "check inter 1s fall 2 rise 1"
DEFAULT_BACKEND_OPTIONS = ("balance roundrobin",)
POLL = 0.2
# how long a reload may take from reading its config to its new worker answering on the socket: the last
# reconcile of a run waits that long after the last rewrite of servers_file before it trusts what it reads
SETTLE = 0.5
# how often release() reads the workers while old ones finish their connections (they do within a request gap)
RELEASE_POLL = 0.05
# rounds of reconcile before giving up on a backend that keeps changing under it
ROUNDS = 10
# words HAProxy's runtime API uses when it refuses a command
REFUSALS = ("unknown", "error", "not found", "no such", "cannot", "can't", "permission denied", "unexpected",
            "invalid", "require")


class HaproxyError(RolloutFailed):
    """HAProxy refused a runtime command."""


def render_backend(backend: str, backend_options: t.Sequence[str], servers: t.Sequence[tuple[str, str]],
                   server_options: str, kept: t.Sequence[str] = (), weights: t.Optional[t.Mapping[str, int]] = None) -> str:
    """The backend section persisted for reloads: options, the ``kept`` server lines (members other runs
    own), then one ``server`` line per intended member (with its weight when the run set one)."""
    weights = weights or {}
    lines = [
        "# Written by zerodown.rollout: the intended members of this backend, so that a reload keeps them.",
        f"backend {backend}",
    ]
    lines += [f"    {opt}" for opt in backend_options]
    lines += [f"    {line.strip()}" for line in kept]
    lines += [f"    server {name} {address} {_with_weight(server_options, weights.get(name))}".rstrip()
              for name, address in servers]
    return "\n".join(lines) + "\n"


def _with_weight(server_options: str, weight: t.Optional[int]) -> str:
    """``server_options`` with ``weight <n>`` last (HAProxy takes the last of a repeated keyword)."""
    if weight is None:
        return server_options
    return f"{server_options} weight {weight}".strip()


def int_field(row: t.Mapping[str, str], key: str) -> int:
    """A counter of a ``show stat`` row; an empty or missing field (a column a row type lacks) is 0."""
    try:
        return int(row.get(key) or 0)
    except ValueError:
        return 0


# ``show stat``'s check_status values of a check that passed: layer 4, 6 or 7, an external check (PROCOK), and
# L7OKC, the conditional pass of ``disable-on-404`` (HAProxy then shows the server NOLB, which is not UP anyway)
CHECK_PASSED = frozenset(("L4OK", "L6OK", "L7OK", "L7OKC", "PROCOK"))


def check_passed(row: t.Mapping[str, str]) -> t.Optional[bool]:
    """Whether the server's last health check passed, from its ``show stat`` row; None when it has no checks.

    ``check_status`` is ``INI`` until a new server's first check has run, and carries a ``* `` prefix while a
    check is in progress (the result shown is still the last one)."""
    result = (row.get("check_status") or "").strip().lstrip("* ").strip()
    if not result:
        return None
    return result in CHECK_PASSED


def file_servers(text: str) -> list[tuple[str, str, str]]:
    """(name, address, whole line) of every ``server`` line of a servers file."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "server":
            out.append((words[1], words[2], line))
    return out


class HaproxyRuntime(Balancer):
    """Drives one backend through HAProxy's runtime API."""

    kind = "haproxy"
    weighted = True
    counted = True
    OPTIONS = {
        "socket": {"type": "str"},
        "master_socket": {"type": "str"},
        "backend": {"type": "str"},
        "server_options": {"type": "str"},
        "backend_options": {"type": "list", "elements": "str"},
        "servers_file": {"type": "path"},
        "timeout": {"type": "float"},
    }

    def __init__(self, socket_spec: str, backend: str, server_options: str = DEFAULT_SERVER_OPTIONS,
                 servers_file: t.Optional[str] = None,
                 backend_options: t.Sequence[str] = DEFAULT_BACKEND_OPTIONS, timeout: float = 5.0,
                 master_socket: t.Optional[str] = None) -> None:
        super().__init__()
        self.cli = HaproxyCli(socket_spec, master_socket, timeout)
        self.socket_spec = socket_spec
        self.master_spec = master_socket
        self.backend = backend
        self.server_options = server_options
        self.servers_file = servers_file
        self.backend_options = list(backend_options)
        self.timeout = timeout
        self._written_at: t.Optional[float] = None

    @classmethod
    def from_spec(cls, spec: dict[str, t.Any], workload: str, runner: t.Any = None) -> "HaproxyRuntime":
        timeout = spec.get("timeout")
        if timeout is not None and timeout <= 0:
            raise InvalidInput(f"load_balancer.timeout must be more than 0 (seconds an answer of HAProxy may take), "
                               f"got {timeout}")
        return cls(
            socket_spec=spec.get("socket") or "",
            backend=spec.get("backend") or workload,
            server_options=spec.get("server_options") or DEFAULT_SERVER_OPTIONS,
            servers_file=spec.get("servers_file"),
            backend_options=spec.get("backend_options") or DEFAULT_BACKEND_OPTIONS,
            timeout=float(timeout if timeout is not None else 5.0),
            master_socket=spec.get("master_socket"),
        )

    def describe(self) -> str:
        return f"HAProxy backend {self.backend!r} at {self.socket_spec}"

    # -- runtime API (haproxy_cli.py) ---------------------------------------------------------------
    def command(self, line: str) -> str:
        """Send one runtime API command and return its answer."""
        return self.cli.command(line)

    def master_command(self, line: str) -> str:
        """Send one command to the master CLI (``@!<pid> <command>`` reaches one worker, old ones included)."""
        return self.cli.master_command(line)

    def _checked(self, line: str, ok: t.Sequence[str] = ()) -> str:
        answer = self.command(line).strip()
        lowered = answer.lower()
        if any(word in lowered for word in REFUSALS) and not any(o.lower() in lowered for o in ok):
            raise HaproxyError(f"HAProxy refused '{line}': {answer}")
        return answer

    def stat_rows(self) -> list[dict[str, str]]:
        return [r for r in parse_csv_table(self.command("show stat")) if r.get("pxname") == self.backend]

    def worker(self) -> str:
        """The pid of the worker answering on the socket (it changes when HAProxy reloads)."""
        for line in self.command("show info").splitlines():
            key, _sep, value = line.partition(":")
            if key.strip() == "Pid":
                return value.strip()
        return ""

    def check(self) -> None:
        rows = parse_csv_table(self.command("show stat"))
        if not rows:
            raise PlatformUnreachable(f"HAProxy at {self.socket_spec} did not answer 'show stat'; is it an admin socket?")
        backend = [r for r in rows if r.get("pxname") == self.backend and r.get("svname") == "BACKEND"]
        if not backend:
            names = sorted({r.get("pxname", "") for r in rows if r.get("svname") == "BACKEND"})
            raise InvalidInput(f"HAProxy has no backend {self.backend!r} (it has: {', '.join(names) or 'none'}); "
                               "set load_balancer.backend")
        if self.cli.has_master and "workers" not in parse_proc(self.master_command("show proc")):
            raise PlatformUnreachable(f"load_balancer.master_socket={self.master_spec} did not answer 'show proc' "
                                      "with HAProxy's workers; is it the master CLI (haproxy -S <path>)?")

    def old_workers(self) -> list[str]:
        """Pids of the workers that reloads replaced and that still finish their connections (master CLI)."""
        return parse_proc(self.master_command("show proc")).get("old workers", [])

    def old_routing(self, names: t.Collection[str]) -> dict[str, list[str]]:
        """Old workers that still have one of ``names`` in rotation (any state but maintenance), by pid."""
        out: dict[str, list[str]] = {}
        for pid in self.old_workers():
            for row in parse_csv_table(self.master_command(f"@!{pid} show stat")):
                # an old worker that exited meanwhile answers no table: it routes nothing any more
                if row.get("pxname") == self.backend and row.get("svname") in names and \
                        not row.get("status", "").startswith("MAINT"):
                    out.setdefault(pid, []).append(row["svname"])
        return out

    def release(self, names: t.Sequence[str], timeout: t.Optional[float] = None) -> list[str]:
        """Return once no HAProxy process sends new requests to ``names`` (taken out of the intent), so that
        their containers may stop; at most ``timeout`` seconds (``drain_timeout``) after the reloads settled.

        The current worker is read after :meth:`settle`: one that parsed the file before the take-out has the
        members back, and they are taken out again. With ``master_socket``, old workers that still have them in
        rotation are waited for. Returns warnings when the time ran out first."""
        names = [n for n in names if n not in self.intent]
        if not names:
            return []
        self.settle()
        limit = self.drain_timeout if timeout is None else timeout
        deadline = time.monotonic() + max(0.0, limit)
        while True:
            pid = self.worker()
            back = [n for n in names if n in self.members()]
            for name in back:
                self._runtime_take_out(name)
            old = self.old_routing(names) if self.cli.has_master else {}
            if not back and not old and self.worker() == pid:
                return []
            if time.monotonic() >= deadline:
                break
            time.sleep(RELEASE_POLL)
        if old:
            held = "; ".join(f"worker {p}: {', '.join(n)}" for p, n in sorted(old.items()))
            return [f"HAProxy's old workers still routed to members taken out after {limit:g}s ({held}); their "
                    "containers stop now, and a request those workers send there fails. Raise drain_timeout, or "
                    "lower HAProxy's 'timeout client' / 'hard-stop-after' so that old workers end sooner"]
        return [f"HAProxy backend {self.backend} kept bringing back {', '.join(names)} after {limit:g}s (is it "
                "reloading without end?); their containers stop now"]

    def members(self) -> dict[str, Member]:
        addresses: dict[str, str] = {}
        weights: dict[str, int] = {}
        for row in parse_servers_state(self.command(f"show servers state {self.backend}")):
            if row.get("be_name") == self.backend:
                addresses[row.get("srv_name", "")] = f"{row.get('srv_addr')}:{row.get('srv_port')}"
                if (row.get("srv_uweight") or "").isdigit():
                    weights[row.get("srv_name", "")] = int(row["srv_uweight"])
        out: dict[str, Member] = {}
        for row in self.stat_rows():
            name = row.get("svname", "")
            if name in ("BACKEND", "FRONTEND"):
                continue
            try:
                sessions = int(row.get("scur") or 0)
            except ValueError:
                sessions = 0
            out[name] = Member(name, addresses.get(name, row.get("addr", "")), row.get("status", ""), sessions,
                               weights.get(name), check_passed(row))
        return out

    def counters(self) -> dict[str, ServerCounters]:
        """``show stat``'s counters of the owned members (cumulative since the worker started: a reload starts
        them again from 0, which :func:`~..analysis.delta` takes into account through ``worker``)."""
        pid = self.worker()
        out: dict[str, ServerCounters] = {}
        for row in self.stat_rows():
            name = row.get("svname", "")
            if name in ("BACKEND", "FRONTEND") or not self.owns(name):
                continue
            rtime = row.get("rtime") or ""
            out[name] = ServerCounters(
                requests=int_field(row, "req_tot") or int_field(row, "stot"),
                responses_5xx=int_field(row, "hrsp_5xx"),
                responses_4xx=int_field(row, "hrsp_4xx"),
                connection_errors=int_field(row, "econ"),
                response_errors=int_field(row, "eresp"),
                response_ms=float(rtime) if rtime.isdigit() else None,
                worker=pid,
            )
        return out

    def _runtime_add(self, name: str, address: str) -> None:
        """Put ``name`` at ``address`` in the running backend, in rotation (health checks on)."""
        current = self.members().get(name)
        if current is not None and current.address != address:
            self._runtime_delete(name)  # the old address has nothing behind it any more: no drain
            current = None
        if current is None:
            # "already exists": a reload loaded it from servers_file since the read above
            options = _with_weight(self.server_options, self.weights.get(name))
            self._checked(f"add server {self.backend}/{name} {address} {options}".rstrip(), ok=("already exists",))
        self._runtime_ready(name)

    def _runtime_ready(self, name: str) -> None:
        # "no such server": a reload whose worker parsed the file before the member was written came up since
        # the add; wait_up, which follows every add, puts it back
        if "check" in self.server_options.split():
            self._checked(f"enable health {self.backend}/{name}", ok=("no such server",))
        self._checked(f"set server {self.backend}/{name} state ready", ok=("no such server",))

    def _runtime_take_out(self, name: str) -> None:
        """Drain ``name`` if it still takes traffic, then delete it from the running backend."""
        member = self.members().get(name)
        if member is None:
            return
        if member.serving:
            self._checked(f"set server {self.backend}/{name} state drain", ok=("no such server",))
            self.wait_drained(name, self.drain_timeout)
        self._runtime_delete(name)

    def _runtime_delete(self, name: str) -> None:
        if name not in self.members():
            return
        self._checked(f"set server {self.backend}/{name} state maint", ok=("no such server",))
        self._checked(f"shutdown sessions server {self.backend}/{name}", ok=("no such server",))
        # del server refuses while connections are still attached; they close right after shutdown
        deadline = time.monotonic() + max(self.timeout, 2.0)
        while True:
            answer = self.command(f"del server {self.backend}/{name}").strip()
            if "deleted" in answer.lower() or name not in self.members():
                return
            if time.monotonic() >= deadline:
                raise HaproxyError(f"HAProxy refused 'del server {self.backend}/{name}': {answer}")
            time.sleep(POLL)

    # -- the swap's steps: the servers file first, then the running backend ----------------------------
    def add(self, name: str, address: str) -> None:
        self.intent[name] = address
        self.persist()
        self._runtime_add(name, address)

    def wait_up(self, name: str, timeout: float, follow: t.Optional[t.Callable[[], t.Optional[str]]] = None) -> None:
        deadline = time.monotonic() + timeout
        look = time.monotonic() + FOLLOW_EVERY
        status = "missing"
        while True:
            if follow is not None and name in self.intent and time.monotonic() >= look:
                look = time.monotonic() + FOLLOW_EVERY
                moved = follow()
                if moved and moved != self.intent[name]:
                    self.add(name, moved)  # its container came back elsewhere: nothing is behind the old address
            member = self.members().get(name)
            if member is None and name in self.intent:
                # a reload loaded an older servers file: put the member back
                self._runtime_add(name, self.intent[name])
                member = self.members().get(name)
            status = member.status if member else "missing"
            # UP alone is not enough: a server just added shows UP ("UP 1/2" with rise 1, fall 2) until its first
            # check, and one at a port where nothing listens shows it too, then DOWN once the check fails
            if member is not None and member.up:
                return
            if member is not None and status.startswith("UP"):
                status = f"{status} without a passed health check"
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        raise RolloutFailed(f"HAProxy did not mark server {self.backend}/{name} UP within {timeout:g}s "
                            f"(status {status}); check load_balancer.server_options and the app's port")

    def drain(self, name: str) -> None:
        self._forget(name)
        self.persist()
        member = self.members().get(name)
        if member is not None and member.serving:
            self._checked(f"set server {self.backend}/{name} state drain", ok=("no such server",))

    def wait_drained(self, name: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            member = self.members().get(name)
            if member is None or member.sessions <= 0:
                return True
            if member.serving and name not in self.intent:
                # a reload loaded an older servers file and put it back in rotation: drain it again
                self._checked(f"set server {self.backend}/{name} state drain", ok=("no such server",))
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)

    def remove(self, name: str) -> None:
        self._forget(name)
        self.persist()
        self._runtime_take_out(name)

    def default_weight(self) -> int:
        """The weight ``server_options`` gives (HAProxy's default is 1)."""
        words = self.server_options.split()
        for i in range(len(words) - 2, -1, -1):
            if words[i] == "weight" and words[i + 1].isdigit():
                return int(words[i + 1])
        return 1

    def set_weights(self, weights: t.Mapping[str, t.Optional[int]]) -> list[str]:
        check_weights(weights, self.intent, self.MAX_WEIGHT)
        changed = [n for n, w in sorted(weights.items()) if self.weights.get(n) != w]
        self._intend_weights(weights)
        self.persist()
        members = self.members()
        for name in sorted(weights):
            if name in members and members[name].weight != self._weight(name):
                self._runtime_weight(name)
        return [f"HAProxy backend {self.backend}: {n} weight {self._weight(n)}" for n in changed]

    def _weight(self, name: str) -> int:
        return self.weights.get(name, self.default_weight())

    def _runtime_weight(self, name: str) -> None:
        # "no such server": a reload that parsed the file before the member was written came up; reconcile adds
        # it back with its weight
        self._checked(f"set server {self.backend}/{name} weight {self._weight(name)}", ok=("no such server",))

    # -- convergence -------------------------------------------------------------------------------
    def _file_plan(self) -> tuple[t.Optional[str], str]:
        """(the servers file's text now, the text the intent renders)."""
        old = read_text(self.servers_file) if self.servers_file else None
        kept = [line for name, _address, line in file_servers(old or "") if not self.owns(name)]
        new = render_backend(self.backend, self.backend_options, sorted(self.intent.items()), self.server_options,
                             kept, self.weights)
        return old, new

    def _file_fixes(self, old: t.Optional[str]) -> list[str]:
        lines = [(n, a, line) for n, a, line in file_servers(old or "") if self.owns(n)]
        listed = {n: a for n, a, _line in lines}
        out = describe_file_fixes(listed, self.intent, f"servers_file {self.servers_file}", "dropped",
                                  "wrote the missing")
        for name, _address, line in lines:
            rendered = f"server {name} {listed[name]} {_with_weight(self.server_options, self.weights.get(name))}"
            if name in self.intent and listed[name] == self.intent[name] and line.strip() != rendered.rstrip():
                out.append(f"servers_file {self.servers_file}: rewrote the line of {name} (weight {self._weight(name)})")
        return out

    def persist(self) -> list[str]:
        """Render ``servers_file`` from the intent (atomically, under the file's lock); what it fixed."""
        if not self.servers_file:
            return []
        try:
            with file_lock(self.servers_file):
                old, new = self._file_plan()
                if old == new:
                    return []
                replace_text(self.servers_file, new)
        except OSError as exc:
            raise RolloutFailed(f"cannot write load_balancer.servers_file {self.servers_file} ({exc}); "
                                "a reload of HAProxy would not find the intended members")
        self._written_at = time.monotonic()
        return self._file_fixes(old)

    def _describe_weights(self, names: t.Sequence[str], members: t.Mapping[str, Member]) -> list[str]:
        return [f"HAProxy backend {self.backend}: set {n}'s weight back to {self.weights[n]} (it was "
                f"{members[n].weight})" for n in names]

    def settled_at(self) -> float:
        return self._written_at + SETTLE if self._written_at is not None else time.monotonic()

    def divergence(self, members: t.Optional[t.Mapping[str, Member]] = None) -> list[str]:
        members = self.members() if members is None else members
        stale, missing, parked = plan_fixes(self.intent, members, self.owns)
        out = describe_fixes(stale, missing, parked, members, self.intent, f"HAProxy backend {self.backend}")
        out += self._describe_weights(weight_fixes(self.weights, members), members)
        if self.servers_file:
            old, new = self._file_plan()
            if old != new:
                out += self._file_fixes(old)
        return out

    def reconcile(self, settle: bool = False, wait: bool = True) -> list[str]:
        """Make the running backend and ``servers_file`` match the intent; returns what was fixed.

        With ``settle`` (the last reconcile of a run), it first lets a reload that may have read the file
        before its last rewrite come up, so that what it reads is what stays. With ``wait``, a member added or
        put back is waited for until UP (``up_timeout``); without it, the caller waits."""
        fixes = self.persist()
        if settle:
            self.settle()
        where = f"HAProxy backend {self.backend}"
        for _round in range(ROUNDS):
            pid = self.worker()
            members = self.members()
            stale, missing, parked = plan_fixes(self.intent, members, self.owns)
            reweigh = [n for n in weight_fixes(self.weights, members) if n not in missing]
            if not (stale or missing or parked or reweigh):
                if self.worker() == pid:
                    return fixes
                continue  # reloaded while it was read: read the new worker
            fixes += describe_fixes(stale, missing, parked, members, self.intent, where)
            fixes += self._describe_weights(reweigh, members)
            for name in reweigh:
                self._runtime_weight(name)
            for name in stale:
                self._runtime_take_out(name)
            for name in missing:
                self._runtime_add(name, self.intent[name])
            for name in parked:
                self._runtime_ready(name)
            if wait:
                for name in missing + parked:
                    self.wait_up(name, self.up_timeout)
        raise RolloutFailed(f"{where} kept changing while it was being brought to the intended members "
                            f"({ROUNDS} rounds): is something else changing it, or is HAProxy reloading "
                            "without end?")
