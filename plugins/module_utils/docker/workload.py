# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""A Docker workload as it is found: its containers on one engine (by the ``zerodown.workload`` label), its
images there, and its members in one load balancer; its rollout status, and the wait for one.

Everything here reads, but for the load balancer's intent, which the swap and the repair of each run drive:

* the run *owns* the members of its :class:`Scope`: this workload's containers on this engine, named with the
  engine's tag (read once from ``docker info``);
* under the lock, before any change, the intent is what the workload implies (status.implied_intent) and the
  pool is repaired to it (:meth:`DockerWorkload.begin_changes`); after each batch and at the end it is repaired
  again (:meth:`DockerWorkload.repair`);
* without a load balancer the null driver (balancer/none.py) stands in: no member is read or named.
"""

from __future__ import annotations

import time
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import (
    Balancer,
    Member,
    Scope,
    engine_tag,
    server_name,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.registry import make_balancer
from ansible_collections.zerodown.rollout.plugins.module_utils.docker import engine as engine_mod
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.adopt import (
    COMPOSE_PROJECT,
    COMPOSE_SERVICE,
    Adoption,
    ComposeScope,
    Copies,
    compose_numbers,
    compose_service_of,
    port_key,
    selector_from_params,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import (
    LABEL_WORKLOAD,
    UNHEALTHY_GRACE,
    Replica,
    health_log,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.docker import standby as standby_mod
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.status import (
    implied_intent,
    joining_once_ready,
    rollout_status,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.swap import drain_timeout, health_timeout
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    Deadline,
    InvalidInput,
    PlatformUnreachable,
    RolloutFailed,
    RolloutStatus,
    WaitTimeout,
    WorkloadNotFound,
    WorkloadRef,
    parse_image_reference,
)

try:
    from ansible.module_utils.basic import missing_required_lib
except ImportError:  # pragma: no cover - always there inside a module
    def missing_required_lib(library: str, **_: t.Any) -> str:
        return f"Failed to import the required Python library ({library})"

WAIT_POLL = 0.5
# the HEALTHCHECK states of a replica that may still become healthy (DockerWorkload.joining)
NOT_YET_HEALTHY = ("starting", "unhealthy")


class DockerWorkload:
    """Workload ``ref`` on the engine and behind the load balancer the module's ``params`` name (read when
    used, so a later ``params.update`` applies). ``run_command(argv)`` runs the commands of drivers that need
    some (nginx)."""

    def __init__(self, ref: WorkloadRef, params: dict[str, t.Any],
                 run_command: t.Callable[[list[str]], tuple[int, str, str]]) -> None:
        self.ref = ref
        self.params = params
        self._run_command = run_command
        self._engine: t.Optional[engine_mod.DockerEngine] = None
        self._balancer: t.Optional[Balancer] = None
        self._engine_tag: t.Optional[str] = None
        self._ensured: dict[str, dict[str, t.Any]] = {}
        self.bound = False  # the balancer holds this run's intent (set under the lock)
        self.fixes: list[str] = []  # what this run repaired in the load balancer
        self._adoption: t.Optional[Adoption] = None
        self._copies: t.Optional[Copies] = None

    # -- connections -------------------------------------------------------------------------------
    @property
    def engine(self) -> engine_mod.DockerEngine:
        """The Docker engine (engine.py: every call it makes, one error mapping), connected on first use."""
        if self._engine is None:
            if not engine_mod.HAS_DOCKER:
                raise PlatformUnreachable(missing_required_lib("docker"), exception=engine_mod.DOCKER_IMPORT_ERROR)
            self._engine = engine_mod.connect(self.params)
        return self._engine

    @property
    def balancer(self) -> Balancer:
        """The load balancer's driver, built and checked on first use; without one, the null driver
        (balancer/none.py), which every step drives the same way and which does nothing."""
        if self._balancer is None:
            spec = self.params.get("load_balancer")
            if ((spec or {}).get("type") or "none") == "none":
                spec = None  # as before the null driver: type none ignores the suboptions given with it
            self._balancer = make_balancer(spec, self.ref.name, self._run_command)
            self._balancer.check()
        return self._balancer

    def engine_label(self) -> str:
        """The engine as the user wrote it (docker_host, DOCKER_HOST or the default socket)."""
        return engine_mod.host_label(self.params)

    def host(self) -> str:
        """The engine as messages name it."""
        return self.params.get("docker_host") or "the default Docker engine"

    # -- adopted containers (adopt.py) ---------------------------------------------------------------
    @property
    def adoption(self) -> Adoption:
        """The containers the workload adopted or adopts (``adopt``, ``compose_project``/``compose_service``)."""
        if self._adoption is None:
            port = (self.params.get("docker_container") or {}).get("port")
            self._adoption = Adoption(self.ref.name, selector_from_params(self.params),
                                      port_key(port) if port is not None else None, self.host())
        return self._adoption

    @property
    def copies(self) -> Copies:
        """What the copies of this run get on top of replicas.clone_config (adopt.Copies)."""
        if self._copies is None:
            def taken(project: str, service: str) -> list[int]:
                found = []
                for summary in self.engine.containers_labelled([f"{COMPOSE_PROJECT}={project}",
                                                                f"{COMPOSE_SERVICE}={service}"]):
                    try:
                        found.append(Replica.from_attrs(self.engine.inspect_container(summary["Id"])))
                    except engine_mod.EngineNotFound:
                        continue
                return compose_numbers(found)
            self._copies = Copies(self.adoption, taken)
        return self._copies

    # -- reading -----------------------------------------------------------------------------------
    def load(self) -> History:
        """All containers of the workload, grouped by revision: its own (labelled) and those it adopted."""
        replicas = []
        for summary in self.engine.containers(f"{LABEL_WORKLOAD}={self.ref.name}"):
            try:
                attrs = self.engine.inspect_container(summary["Id"])
            except engine_mod.EngineNotFound:
                continue  # removed between the list and the inspect
            replicas.append(Replica.from_attrs(attrs))
        replicas += self.adoption.find(self.engine, replicas)
        # a blue-green standby record decides which of its two revisions is current (revisions.History.current)
        found = standby_mod.read(self.engine, self.ref.name) if replicas else None
        record = found[1] if found is not None else None
        return History(replicas, (record.revision, record.serving) if record is not None else None)

    def existing(self) -> History:
        """As :meth:`load`, for a workload that must exist."""
        history = self.load()
        if not history.exists:
            raise WorkloadNotFound(
                f"{self.ref.describe()} does not exist on {self.host()}: no container is labelled "
                f"{LABEL_WORKLOAD}={self.ref.name}. Create it with zerodown.rollout.image_upgrade "
                "(image, replicas and docker_container)"
            )
        return history

    # -- images ------------------------------------------------------------------------------------
    def local_image(self, ref: str) -> t.Optional[dict[str, t.Any]]:
        """The engine's image ``ref`` (inspected), None when it has none."""
        try:
            return self.engine.inspect_image(ref)
        except engine_mod.EngineNotFound:
            return None

    def ensure_image(self, ref: str, pull: str) -> dict[str, t.Any]:
        """Image ``ref`` on the engine, pulled as ``pull`` says (missing, always, never); once per run."""
        if ref in self._ensured:  # planned again under the lock: pull=always pulls once per run
            return self._ensured[ref]
        self._ensured[ref] = self._fetch_image(ref, pull)
        return self._ensured[ref]

    def _fetch_image(self, ref: str, pull: str) -> dict[str, t.Any]:
        image = self.local_image(ref) if pull != "always" else None
        if image is not None:
            return image
        if pull == "never":
            raise RolloutFailed(f"image {ref} is not on {self.host()} and pull=never; load or build it there first")
        parsed = parse_image_reference(ref)
        try:
            self.engine.pull(parsed.repository, parsed.digest or parsed.tag or "latest", f"pull image {ref}")
        except PlatformUnreachable:
            raise
        except RolloutFailed as exc:
            raise RolloutFailed(f"image {ref} is not on {self.host()} and pulling it failed: "
                                f"{exc.msg}. Push it to a registry the host can reach, or load it on the host")
        image = self.local_image(ref)
        if image is None:
            raise RolloutFailed(f"image {ref} is still missing after the pull")
        return image

    def image_config(self, image_id: str) -> t.Optional[dict[str, t.Any]]:
        """The ``Config`` of image ``image_id`` (what a container inherits from it); None when it cannot be read."""
        try:
            return (self.engine.inspect_image(image_id, f"inspect image {image_id[:19]}") or {}).get("Config") or {}
        except PlatformUnreachable:
            raise
        except RolloutFailed:  # only refines the clone; without it the new image's defaults apply
            return None

    # -- networks ----------------------------------------------------------------------------------
    def network(self, ref: str) -> t.Optional[dict[str, t.Any]]:
        """The engine's network ``ref`` (name or id, inspected), None when it has none."""
        try:
            return self.engine.inspect_network(ref)
        except engine_mod.EngineNotFound:
            return None

    def lb_network(self, ref: str) -> str:
        """The name of network ``ref`` (``docker_container.lb_network``), refused when the engine has no such network
        or it gives containers no address of their own."""
        found = self.network(ref)
        if found is None:
            raise InvalidInput(f"docker_container.lb_network={ref}: {self.host()} has no such network; create it "
                               f"(docker network create {ref}) or name one that `docker network ls` lists")
        driver = found.get("Driver") or ""
        if driver in ("host", "null"):
            raise InvalidInput(f"docker_container.lb_network={ref} is a {driver} network, which gives a container no "
                               "address of its own: name a user-defined network (docker network create ...)")
        return str(found.get("Name") or ref)

    # -- load balancer membership ------------------------------------------------------------------
    def scope(self, history: History) -> Scope:
        """The members this run owns: this workload's containers on this engine (see balancer/base.py)."""
        if self._engine_tag is None:
            info = self.engine.info()
            # the ID alone is not unique: it comes from the daemon's key file, which every daemon of a machine
            # (and every machine cloned from one image) shares; host name and data root tell those apart
            identity = "|".join(str(info.get(k) or "") for k in ("ID", "Name", "DockerRootDir"))
            self._engine_tag = engine_tag(identity if identity.strip("|") else self.engine_label())
        # adopted containers and a Compose service's have names of their own: their members are owned by name
        legacy = {server_name(r.name) for r in history.replicas}
        legacy |= {Scope(self.ref.name, self._engine_tag).name(r.name) for r in history.replicas}
        compose = compose_service_of(self.adoption.selector, history.replicas)
        if compose is not None:  # and those of the copies a run names as Compose does, made after the scope was bound
            return ComposeScope(self.ref.name, self._engine_tag, legacy, *compose)
        return Scope(self.ref.name, self._engine_tag, legacy)

    def _view(self, history: History, members: t.Optional[t.Mapping[str, Member]] = None) -> Balancer:
        """The balancer bound to the intent ``history`` implies (status.implied_intent)."""
        lb = self.balancer
        if not lb.routes:
            return lb  # the null driver's pool holds nothing: no member to read or name (no engine identity)
        scope = self.scope(history)
        members = lb.members() if members is None else members
        intent = implied_intent(history, scope, members)
        # the weights a steps rollout gave (those other than the driver's default), kept by every later run
        default = lb.default_weight()
        weights = {n: w for n in intent if n in members and (w := members[n].weight) is not None and w != default}
        lb.bind(scope, intent, drain_timeout(self.params), health_timeout(self.params), weights)
        return lb

    def view(self, history: History) -> Balancer:
        """The balancer bound to this run's intent under the lock, else to the intent ``history`` implies (to read
        the pool by member names, read-only)."""
        return self.balancer if self.bound else self._view(history)

    def begin_changes(self, history: History) -> None:
        """Under the lock, before any change: take the intent from the workload and repair the pool to it."""
        self._view(history)
        self.bound = True
        self.fixes += self.balancer.reconcile()

    def joining(self, history: History) -> list[Replica]:
        """The replicas that join the pool once healthy (status.joining_once_ready) and whose HEALTHCHECK has not
        passed yet: still starting, or unhealthy (a check that timed out on a busy host flips a container that just
        started to unhealthy until its next check passes)."""
        if not history.exists or history.current is None or not self.balancer.routes:
            return []
        return [r for r in joining_once_ready(history, self.scope(history), self.balancer.members())
                if r.health in NOT_YET_HEALTHY]

    def admit_joining(self, history: History, warn: t.Callable[[str], None]) -> History:
        """Under the lock, in a run that keeps the current revision (nothing to swap): wait for the replicas that
        join the pool once healthy and are not healthy yet (:meth:`joining`): up to health_timeout for one still
        starting, up to UNHEALTHY_GRACE for one unhealthy (as the swap's gate forgives a check that failed once);
        then bind the intent again from a fresh read and repair the pool to it, so that a replica that became
        healthy since the lock's start (:meth:`begin_changes`) joins too. Containers started just before the run
        (adopted ones, a Compose service's, a replica started by hand) then become members in this run, instead of
        being left out until a later one; one left out is named in a warning. A run that swaps revisions does not
        wait: it replaces them. Returns the workload as read for the intent."""
        pending = {r.id: r.name for r in self.joining(history)}
        timeout = health_timeout(self.params)
        deadline = time.monotonic() + timeout
        unhealthy: dict[str, tuple[float, str]] = {}  # id -> (unhealthy since, health log), while it reads unhealthy
        failing: dict[str, str] = {}  # name -> its health log, for one that stayed unhealthy
        while pending:
            for cid in list(pending):
                try:
                    attrs = self.engine.inspect_container(cid)
                except engine_mod.EngineNotFound:
                    attrs = {}  # removed meanwhile: nothing to wait for
                rep = Replica.from_attrs(attrs) if attrs else None
                if rep is None or not rep.running or rep.health not in NOT_YET_HEALTHY:
                    pending.pop(cid)
                elif rep.health == "unhealthy":
                    since = unhealthy.get(cid, (time.monotonic(), ""))[0]
                    unhealthy[cid] = (since, "; ".join(health_log(attrs)) or "no health log")
                    if time.monotonic() - since >= UNHEALTHY_GRACE:
                        failing[pending.pop(cid)] = unhealthy[cid][1]
                else:
                    unhealthy.pop(cid, None)
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(WAIT_POLL)
        failing.update((name, unhealthy[cid][1]) for cid, name in pending.items() if cid in unhealthy)  # timed out
        starting = sorted(name for cid, name in pending.items() if cid not in unhealthy)
        if starting:
            warn(f"container(s) {', '.join(starting)}: HEALTHCHECK still 'starting' after health_timeout={timeout:g}s; "
                 "not added to the load balancer in this run (a later run adds them once healthy)")
        for name, log in sorted(failing.items()):
            warn(f"container {name} is unhealthy (its HEALTHCHECK failed: {log}); not added to the load balancer in "
                 "this run (a later run adds it once healthy)")
        history = self.load()
        self._view(history)
        self.fixes += self.balancer.reconcile()
        return history

    def repair(self, last: bool = False, history: t.Optional[History] = None, wait: bool = True) -> None:
        """After a step: bring the pool back to the run's intent (a reload may have loaded an older set), at the
        addresses the intended members' containers publish now (:meth:`_readdress`). ``history``: the workload as
        just read, if the caller has it. ``wait``: wait for a member it adds or moves until up (up to
        health_timeout); the run's own rollout wait does not, it waits for the member as it waits for the rest,
        up to its wait_timeout."""
        if self.bound:
            if self.balancer.routes:
                self._readdress(self.load() if history is None else history)
            self.fixes += self.balancer.reconcile(settle=last, wait=wait)

    def _readdress(self, history: History) -> None:
        """Move each intended member to the address its container publishes now. The run decided which members the
        pool holds; where they are is the engine's to say: a restarted dockerd (or a container restarted by its
        restart policy) publishes the same container port on another host port."""
        lb = self.balancer
        for rep in history.replicas:
            if rep.running and rep.address:
                for name in lb.member_names(rep.name):
                    lb.readdress(name, rep.address)

    def divergence(self, history: History, members: t.Optional[t.Mapping[str, Member]] = None) -> list[str]:
        """What differs between the pool and the workload (read-only): the run's intent while it holds the
        lock, else the intent ``history`` implies. ``members``: the pool as just read, if the caller has it."""
        if not history.exists:
            return []
        lb = self.balancer if self.bound else self._view(history, members)
        return lb.divergence(members)

    # -- blue-green standby ------------------------------------------------------------------------
    def standby(self, history: History) -> t.Optional[standby_mod.Standby]:
        """The blue-green standby recorded for the workload (standby.py), when what it records is still true of
        ``history``: its revision runs and stands by for the current one. None otherwise."""
        if not history.exists:
            return None
        found = standby_mod.read(self.engine, self.ref.name)
        record = found[1] if found is not None else None
        current = history.current
        running = {r.revision for r in history.replicas if r.running}
        if standby_mod.valid_for(record, running, current.number if current else None):
            return record
        return None

    # -- status ------------------------------------------------------------------------------------
    def status(self, history: History, target: t.Optional[int] = None) -> RolloutStatus:
        """status.py's verdict on ``history``, with the pool's members read once (none without a load balancer
        that routes) and the blue-green standby, if one is recorded."""
        lb = self.balancer
        members = lb.members() if lb.routes else None
        diverged = self.divergence(history, members) if members is not None else []
        scope = (lb.scope or self.scope(history)) if members is not None else None
        return rollout_status(history, self.ref.name, target, members, scope, diverged, self.standby(history))

    def wait(self, revision: t.Optional[int], timeout: float, progress: t.Any = None) -> RolloutStatus:
        """Until revision ``revision`` (None: the current one) is rolled out; fails at once when it cannot be any
        more (another revision runs, a replica is unhealthy), and after ``timeout`` seconds."""
        deadline = Deadline(timeout)
        moved = False
        while True:
            history = self.existing()
            if revision is not None and revision not in history.groups:
                known = ", ".join(str(n) for n in history.groups) or "none"
                raise InvalidInput(f"{self.ref.describe()} has no revision {revision} (retained: {known})")
            current = history.current
            if revision is not None and current is not None and current.number != revision and not history.groups[revision].running:
                raise RolloutFailed(f"{self.ref.describe()} runs revision {current.number}, not revision "
                                    f"{revision}: it was rolled back or upgraded again", revision=current.number)
            if self.bound:  # the run's own wait, under the lock: what changed meanwhile is repaired, not waited on
                fixed = len(self.fixes)
                self.repair(history=history, wait=False)
                moved = moved or len(self.fixes) > fixed
            status = self.status(history, revision)
            if progress is not None:
                progress(status)
            if status.done:
                if moved:  # as the last reconcile of a run: a reload that read the file before its rewrite comes up
                    self.balancer.settle()
                return status
            if status.failed:
                raise RolloutFailed(status.message, status=status.to_dict())
            if deadline.expired:
                raise WaitTimeout(f"timed out after {timeout:g}s: {status.message}", status=status.to_dict())
            time.sleep(min(WAIT_POLL, max(deadline.remaining, 0.05)))
