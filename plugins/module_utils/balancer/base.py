# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The load balancer driver interface of the Docker backend.

A driver knows the *members* of one pool (an HAProxy backend, an nginx upstream): named servers at
``host:port``. Several runs may share a pool (one HAProxy in front of several Docker hosts), so a run
only ever touches the members its :class:`Scope` owns: this workload's containers on this engine.

Membership is driven by *intent*: the members of the scope the run has decided the pool must hold
(``name -> address``). The swap changes the intent through ``add`` (then ``wait_up``), ``drain`` (+
``wait_drained``) and ``remove``; each renders what the load balancer loads on a reload from the
intent first, then changes the running load balancer. ``reconcile`` brings the running load balancer
back to the intent whatever happened meanwhile (a reload that loaded an older file, a change by hand):
the swap calls it after every batch and the backend at the end of every run.
"""

from __future__ import annotations

import hashlib
import re
import time
import typing as t
from dataclasses import dataclass

from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutFailed


@dataclass
class Member:
    """One server of the pool as the load balancer sees it."""

    name: str
    address: str
    status: str = "UP"
    sessions: int = 0
    # the weight the load balancer gives it (None: the driver does not say)
    weight: t.Optional[int] = None
    # whether the load balancer's last health check of it passed (None: it runs none, or the driver does not say);
    # False also before the first check: HAProxy shows a server it has just added as UP before checking it
    check_passed: t.Optional[bool] = None

    def to_dict(self) -> dict[str, t.Any]:
        out = {"name": self.name, "address": self.address, "status": self.status, "sessions": self.sessions}
        if self.weight is not None:
            out["weight"] = self.weight
        return out

    @property
    def up(self) -> bool:
        """UP, and where the load balancer checks its health, since a check that passed (HAProxy's ``no check``: a
        server without health checks, in rotation)."""
        return (self.status.startswith("UP") and self.check_passed is not False) or self.status == "no check"

    @property
    def serving(self) -> bool:
        """Whether the load balancer may send it new requests (not drained, not in maintenance)."""
        return not self.status.startswith(("DRAIN", "MAINT"))

    @property
    def takes_requests(self) -> bool:
        """Whether the pool gives it a part of new requests while it is healthy: serving (not drained, not in
        maintenance) at a weight other than 0 (or one the driver does not say). Its health is the check's, not ours."""
        return self.serving and self.weight != 0


def server_name(container_name: str) -> str:
    """A container name kept to the characters every driver accepts (the member name before version 2 of
    the naming, without the engine tag)."""
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in container_name)
    return out[:63]


def engine_tag(identity: str) -> str:
    """Six hex digits naming a Docker engine in member names (from its ``docker info`` ID, name and data root)."""
    return hashlib.sha256((identity or "").encode()).hexdigest()[:6]


class Scope:
    """The pool members one run owns: those of workload ``workload``'s containers on one engine.

    A member is named ``<container name>.<engine tag>``: the workload name alone is not enough when one
    pool fronts several Docker hosts, since every host's containers carry it. ``legacy`` are the untagged
    names (:func:`server_name`) of this engine's containers, which earlier versions used: they are owned too,
    so the first run of this version replaces them by tagged ones.
    """

    def __init__(self, workload: str, tag: str, legacy: t.Iterable[str] = ()) -> None:
        self.workload = workload
        self.tag = tag
        self.legacy = set(legacy)
        self._pattern = re.compile(rf"^{re.escape(workload)}-r\d+-.+\.{re.escape(tag)}$")

    def name(self, container: str) -> str:
        return f"{server_name(container)[:56]}.{self.tag}"

    def owns(self, member: str) -> bool:
        return bool(self._pattern.match(member)) or member in self.legacy


# seconds between looks at where a member's container publishes, while waiting for the member to be up (wait_up)
FOLLOW_EVERY = 1.0


class Balancer:
    """Base driver; ``kind`` is the ``load_balancer.type`` value.

    Subclasses implement the read (``members``) and the intent-driven changes; the base keeps the intent and
    names the members of containers (:meth:`member_names`, :meth:`admit`).
    """

    kind = ""
    # whether the driver can give members weights (set_weights), and the largest weight it takes
    weighted = False
    MAX_WEIGHT = 256
    # whether counters() gives per-member request counters (what the analysis of a step reads)
    counted = False
    # whether the driver routes traffic to the members it holds: False only for the null driver (none.py), whose
    # pool never holds anything, so that a caller can treat "no load balancer" as one more driver
    routes = True
    # the load_balancer suboptions this driver takes (argument-spec style, without defaults: the driver applies
    # its documented defaults, so that a suboption of another driver can be told apart and refused)
    OPTIONS: t.Dict[str, t.Dict[str, t.Any]] = {}

    @classmethod
    def from_spec(cls, spec: t.Dict[str, t.Any], workload: str, runner: t.Any) -> "Balancer":
        """The driver for the ``load_balancer`` option ``spec`` (validated by the registry); ``runner(argv) ->
        (rc, stdout, stderr)`` runs the commands of drivers that need some."""
        return cls()

    def __init__(self) -> None:
        self.scope: t.Optional[Scope] = None
        self.intent: dict[str, str] = {}
        # weights the run decided for intended members (a member without one has the driver's default weight)
        self.weights: dict[str, int] = {}
        self.drain_timeout = 30.0
        self.up_timeout = 60.0

    def bind(self, scope: Scope, intent: t.Mapping[str, str], drain_timeout: float, up_timeout: float,
             weights: t.Optional[t.Mapping[str, int]] = None) -> None:
        """Start from ``intent`` (members of ``scope`` the pool must hold now) and their ``weights``."""
        self.scope = scope
        self.intent = dict(intent)
        self.weights = {n: w for n, w in (weights or {}).items() if n in self.intent}
        self.drain_timeout = drain_timeout
        self.up_timeout = up_timeout

    def owns(self, name: str) -> bool:
        """Whether ``name`` is this run's to change; a driver not bound to a scope owns its whole pool."""
        return self.scope is None or self.scope.owns(name)

    def check(self) -> None:
        """Raise PlatformUnreachable / InvalidInput when the load balancer cannot be driven."""

    def member_names(self, container: str) -> list[str]:
        """The names ``container`` may have in the pool: its member name in this run's scope (with the engine
        tag), then the untagged one earlier versions gave it. Only once bound to a scope (:meth:`bind`)."""
        if self.scope is None:
            raise RolloutFailed("internal error: the load balancer was changed before the workload's members "
                                "were read; please report it")
        return [self.scope.name(container), server_name(container)]

    def admit(self, container: str, address: t.Optional[str], weight: t.Optional[int] = None) -> list[str]:
        """Intend ``container``, published at ``address``, under its member name and put it in the pool (as
        :meth:`add`), with ``weight`` when given (0: in the pool, health-checked, taking no request); returns the
        member names added, for :meth:`wait_up` and for an undo."""
        if not address:
            raise RolloutFailed(f"container {container} has no address for the load balancer (no published port, or "
                                "no address on its docker_container.lb_network), so the load balancer cannot reach it")
        name = self.member_names(container)[0]
        if weight is not None:
            self.weights[name] = weight
        self.add(name, address)
        return [name]

    def readdress(self, name: str, address: str) -> None:
        """Intend member ``name``, when it is intended, at ``address`` from now on (its container publishes there now);
        the next :meth:`reconcile` moves it. A member not intended stays out."""
        if name in self.intent:
            self.intent[name] = address

    def default_weight(self) -> int:
        """The weight a member has when the run gives it none."""
        return 1

    def members(self) -> dict[str, Member]:
        """The pool's servers by name (all of them, owned or not)."""
        raise NotImplementedError

    def add(self, name: str, address: str) -> None:
        """Intend ``name`` at ``address`` and put it in the pool (taking traffic once healthy)."""
        raise NotImplementedError

    def wait_up(self, name: str, timeout: float, follow: t.Optional[t.Callable[[], t.Optional[str]]] = None) -> None:
        """Block until the server receives traffic; raise RolloutFailed with the reason otherwise. ``follow() ->
        address or None``: where the member's container publishes now, looked at every :data:`FOLLOW_EVERY` seconds
        while the member is not up; the member moves there when it changed (a restarted dockerd publishes the same
        container port on another host port). Drivers that wait for nothing ignore it."""

    def drain(self, name: str) -> None:
        """No longer intend ``name``; stop sending it new requests, in-flight ones finish."""
        raise NotImplementedError

    def wait_drained(self, name: str, timeout: float) -> bool:
        """Wait for the server's sessions to reach zero; False when the timeout passed first."""
        return True

    def remove(self, name: str) -> None:
        """No longer intend ``name`` and take it out of the pool."""
        raise NotImplementedError

    def set_weights(self, weights: t.Mapping[str, t.Optional[int]]) -> list[str]:
        """Intend ``weights`` (0 to :attr:`MAX_WEIGHT`; None: the driver's default weight) for intended members and
        apply them: first what a reload loads, then the running load balancer; returns what changed. Drivers
        without weights refuse."""
        raise RolloutFailed(f"load_balancer.type={self.kind} cannot weigh its members; use haproxy or nginx")

    def unweighted_reason(self) -> str:
        """Why this driver weighs no member (for the refusal of weights and steps); empty when it says nothing more."""
        return ""

    def advisories(self) -> list[str]:
        """What preflight should warn about in how the load balancer is set up here (it works, but a setting of the
        machine it runs on can cost requests); none by default."""
        return []

    def counters(self) -> t.Optional[dict[str, "ServerCounters"]]:
        """The owned members' cumulative request counters by name, or None when the load balancer keeps none."""
        return None

    def _intend_weights(self, weights: t.Mapping[str, t.Optional[int]]) -> None:
        """Record ``weights`` as intended (None: back to the driver's default weight), after check_weights."""
        for name, weight in weights.items():
            if weight is None:
                self.weights.pop(name, None)
            else:
                self.weights[name] = weight

    def _forget(self, name: str) -> None:
        """No longer intend ``name`` (nor its weight)."""
        self.intent.pop(name, None)
        self.weights.pop(name, None)

    def settled_at(self) -> float:
        """The ``time.monotonic()`` after which a reload that read the rendered file before its last rewrite
        has come up: from then on no worker sends requests to a member taken out before, and its container
        may stop."""
        return time.monotonic()

    def settle(self) -> None:
        """Return at :meth:`settled_at`."""
        time.sleep(max(0.0, self.settled_at() - time.monotonic()))

    def release(self, names: t.Sequence[str], timeout: t.Optional[float] = None) -> list[str]:
        """Return once the load balancer sends no new request to ``names`` (taken out before), so that the
        containers behind them may stop; returns warnings when that could not be made sure of in time."""
        if names:
            self.settle()
        return []

    def divergence(self, members: t.Optional[t.Mapping[str, Member]] = None) -> list[str]:
        """What :meth:`reconcile` would fix, read-only (empty when the pool matches the intent); ``members``
        is what :meth:`members` just returned, when the caller has it."""
        return []

    def reconcile(self, settle: bool = False, wait: bool = True) -> list[str]:
        """Make the running pool and what a reload loads match the intent; returns what was fixed. ``settle``:
        the last reconcile of a run, which first lets a reload that read the rendered file before its last rewrite
        come up (:meth:`settle`). ``wait``: a member it adds or puts back is waited for until up (up to the bound
        ``up_timeout``), as after a swap's step; without it, the caller waits (a rollout wait, which polls until
        its own timeout)."""
        return []

    def describe(self) -> str:
        return self.kind


@dataclass
class RequestCounters:
    """Request counters: of one member as the load balancer counts them (:class:`ServerCounters`), or of a set of
    members in a window (``analysis.Totals``)."""

    requests: int = 0
    responses_5xx: int = 0
    responses_4xx: int = 0
    connection_errors: int = 0
    response_errors: int = 0
    # the average response time over the last requests (ms), as the load balancer gives it
    response_ms: t.Optional[float] = None


@dataclass
class ServerCounters(RequestCounters):
    """Cumulative request counters of one member as the load balancer counts them (since the worker started)."""

    worker: str = ""


def weight_fixes(weights: t.Mapping[str, int], members: t.Mapping[str, Member]) -> list[str]:
    """Intended members the load balancer gives another weight than the one intended."""
    return sorted(n for n, w in weights.items() if n in members and members[n].weight is not None
                  and members[n].weight != w)


def check_weights(weights: t.Mapping[str, t.Optional[int]], intent: t.Mapping[str, str], maximum: int) -> None:
    """Refuse weights of members not intended or out of range (a bug of the caller, said plainly)."""
    for name, weight in weights.items():
        if name not in intent:
            raise RolloutFailed(f"cannot weigh {name}: it is not a member this run keeps in the pool")
        if weight is None:
            continue
        if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= maximum:
            raise RolloutFailed(f"weight {weight!r} of {name} is not an integer from 0 to {maximum}")


def plan_fixes(intent: t.Mapping[str, str], members: t.Mapping[str, Member],
               owns: t.Callable[[str], bool]) -> tuple[list[str], list[str], list[str]]:
    """(owned members to take out, intended members to add, intended members to put back in rotation)."""
    stale = sorted(n for n in members if owns(n) and n not in intent)
    missing = sorted(n for n, address in intent.items()
                     if n not in members or members[n].address != address)
    parked = sorted(n for n in intent if n in members and members[n].address == intent[n]
                    and not members[n].serving)
    return stale, missing, parked


def describe_fixes(stale: t.Sequence[str], missing: t.Sequence[str], parked: t.Sequence[str],
                   members: t.Mapping[str, Member], intent: t.Mapping[str, str], where: str) -> list[str]:
    out = [f"{where}: took out {n} ({members[n].address}, {members[n].status}), which no running replica "
           "of this workload on this engine backs" for n in stale]
    for n in missing:
        if n in members:
            out.append(f"{where}: moved {n} from {members[n].address} to {intent[n]}")
        else:
            out.append(f"{where}: added the missing {n} ({intent[n]})")
    out += [f"{where}: put {n} back in rotation (it was {members[n].status})" for n in parked]
    return out


def describe_file_fixes(listed: t.Mapping[str, str], intent: t.Mapping[str, str], where: str, dropped: str,
                        written: str) -> list[str]:
    """What rewriting a rendered file fixes: owned members it ``listed`` that are not intended (``dropped``),
    intended ones it lacked or listed at another address (``written``)."""
    out = [f"{where}: {dropped} {n} ({a})" for n, a in sorted(listed.items()) if n not in intent]
    out += [f"{where}: {written} {n} ({a})" for n, a in sorted(intent.items()) if listed.get(n) != a]
    return out
