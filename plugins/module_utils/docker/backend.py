# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The Docker-host backend: a workload is a labelled set of containers behind a load balancer.

Every change (create, scale, upgrade, rollback) goes through one start-first batch swap (swap.py), fed by one
replica factory: start the new replicas -> health gate -> add them to the load balancer -> drain the replicas
they replace -> take those out -> stop them (in the background) and keep them.
"""

from __future__ import annotations

import contextlib
import time
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.docker import engine as engine_mod
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import (
    Balancer,
    Member,
    Scope,
    engine_tag,
    server_name,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.none import NO_BALANCER_WARNING
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.registry import make_balancer
from ansible_collections.zerodown.rollout.plugins.module_utils.docker import preflight as preflight_mod
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.lock import (
    LockHeld,
    engine_lock,
    lock_container,
    lock_name,
    this_process,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import (
    LABEL_REVISION,
    LABEL_WORKLOAD,
    Replica,
    check_workload_name,
    clone_config,
    creation_config,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History, RevisionGroup, reusable
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.status import (
    implied_intent,
    note_lock,
    rollout_status,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.swap import (
    BackgroundStops,
    BatchSwap,
    ReplicaFactory,
    discard,
    drain_timeout,
    health_timeout,
    stops_failed,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    ActionResult,
    Deadline,
    Finding,
    InvalidInput,
    Platform,
    PlatformUnreachable,
    ProgressLog,
    RolloutError,
    RolloutFailed,
    RolloutStatus,
    WaitTimeout,
    WorkloadNotFound,
    check_non_negative,
    check_positive,
    parse_image_reference,
)

try:
    from ansible.module_utils.basic import missing_required_lib
except ImportError:  # pragma: no cover - always there inside a module
    def missing_required_lib(library: str, **_: t.Any) -> str:
        return f"Failed to import the required Python library ({library})"

WAIT_POLL = 0.5


class DockerPlatform(Platform):
    """The Docker-host implementation of :class:`Platform`."""

    name = "docker"

    def __init__(self, module: t.Any, workload: t.Any) -> None:
        super().__init__(module, workload)
        check_workload_name(workload.name)
        self.params: dict[str, t.Any] = dict(module.params)
        self._engine: t.Optional[engine_mod.DockerEngine] = None
        self._balancer: t.Optional[Balancer] = None
        self._holding_lock = False
        self._ensured: dict[str, dict[str, t.Any]] = {}
        self._engine_tag: t.Optional[str] = None
        self._lb_bound = False  # the balancer holds this run's intent (set under the lock)
        self._lb_fixes: list[str] = []  # what this run repaired in the load balancer
        self._half_made_removed: list[str] = []  # containers an interrupted run created and never started
        self._progress = ProgressLog()  # the batches of a swap, then the final wait: returned as progress
        # ``docker stop`` of old containers already out of the load balancer, joined before the module returns
        self._stops = BackgroundStops()
        self._swap: t.Optional[BatchSwap] = None

    # -- connections -------------------------------------------------------------------------------
    @property
    def engine(self) -> engine_mod.DockerEngine:
        """The Docker engine (docker/engine.py: every call it makes, one error mapping), connected on first use."""
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
            self._balancer = make_balancer(spec, self.workload.name, self._run_command)
            self._balancer.check()
        return self._balancer

    @property
    def _batch_swap(self) -> BatchSwap:
        """This run's swap (docker/swap.py), on the engine and the load balancer; used under the lock only."""
        if self._swap is None:
            self._swap = BatchSwap(self.engine, self.balancer, self.params, self.module.warn, self._lb_sync,
                                   self._progress, self._stops)
        return self._swap

    def _run_command(self, argv: list[str]) -> tuple[int, str, str]:
        rc, out, err = self.module.run_command(argv)
        return rc, out, err

    def _engine_label(self) -> str:
        return engine_mod.host_label(self.params)

    # -- reading -----------------------------------------------------------------------------------
    def load(self) -> History:
        """All containers of the workload, grouped by revision."""
        replicas = []
        for summary in self.engine.containers(f"{LABEL_WORKLOAD}={self.workload.name}"):
            try:
                attrs = self.engine.inspect_container(summary["Id"])
            except engine_mod.EngineNotFound:
                continue  # removed between the list and the inspect
            replicas.append(Replica.from_attrs(attrs))
        return History(replicas)

    def _existing(self) -> History:
        history = self.load()
        if not history.exists:
            raise WorkloadNotFound(
                f"{self.workload.describe()} does not exist on {self._host()}: no container is labelled "
                f"{LABEL_WORKLOAD}={self.workload.name}. Create it with zerodown.rollout.image_upgrade "
                "(image, replicas and docker_container)"
            )
        return history

    def _host(self) -> str:
        return self.params.get("docker_host") or "the default Docker engine"

    # -- load balancer membership ------------------------------------------------------------------
    def _scope(self, history: History) -> Scope:
        """The members this run owns: this workload's containers on this engine (see balancer/base.py)."""
        if self._engine_tag is None:
            info = self.engine.info()
            # the ID alone is not unique: it comes from the daemon's key file, which every daemon of a machine
            # (and every machine cloned from one image) shares; host name and data root tell those apart
            identity = "|".join(str(info.get(k) or "") for k in ("ID", "Name", "DockerRootDir"))
            self._engine_tag = engine_tag(identity if identity.strip("|") else self._engine_label())
        return Scope(self.workload.name, self._engine_tag, {server_name(r.name) for r in history.replicas})

    def _lb_view(self, history: History, members: t.Optional[t.Mapping[str, Member]] = None) -> Balancer:
        """The balancer bound to the intent ``history`` implies (status.implied_intent)."""
        lb = self.balancer
        if not lb.routes:
            return lb  # the null driver's pool holds nothing: no member to read or name (no engine identity)
        scope = self._scope(history)
        members = lb.members() if members is None else members
        lb.bind(scope, implied_intent(history, scope, members), drain_timeout(self.params), health_timeout(self.params))
        return lb

    def _lb_begin(self, history: History) -> None:
        """Under the lock, before any change: take the intent from the workload and repair the pool to it."""
        self._lb_view(history)
        self._lb_bound = True
        self._lb_fixes += self.balancer.reconcile()

    def _lb_sync(self, last: bool = False) -> None:
        """After a step: bring the pool back to the run's intent (a reload may have loaded an older set)."""
        if self._lb_bound:
            self._lb_fixes += self.balancer.reconcile(settle=last)

    def _lb_divergence(self, history: History, members: t.Optional[t.Mapping[str, Member]] = None) -> list[str]:
        """What differs between the pool and the workload (read-only): the run's intent while it holds the
        lock, else the intent ``history`` implies. ``members``: the pool as just read, if the caller has it."""
        if not history.exists:
            return []
        lb = self.balancer if self._lb_bound else self._lb_view(history, members)
        return lb.divergence(members)

    def status(self) -> RolloutStatus:
        status = self._status(self._existing())
        name = lock_name(self.workload.name)
        found = lock_container(self.engine, name)
        if found is not None:
            note_lock(status, name, found[1])
        return status

    def _status(self, history: History, target: t.Optional[int] = None) -> RolloutStatus:
        """docker/status.py's verdict on ``history``, with the pool's members read once (none without a load
        balancer that routes)."""
        lb = self.balancer
        members = lb.members() if lb.routes else None
        diverged = self._lb_divergence(history, members) if members is not None else []
        scope = (lb.scope or self._scope(history)) if members is not None else None
        return rollout_status(history, self.workload.name, target, members, scope, diverged)

    def history(self) -> list:
        return self._existing().revisions(self.workload.name)

    def wait(self, revision: t.Optional[int], timeout: float, progress: t.Any = None) -> RolloutStatus:
        deadline = Deadline(timeout)
        while True:
            history = self._existing()
            if revision is not None and revision not in history.groups:
                known = ", ".join(str(n) for n in history.groups) or "none"
                raise InvalidInput(f"{self.workload.describe()} has no revision {revision} (retained: {known})")
            current = history.current
            if revision is not None and current is not None and current.number != revision and not history.groups[revision].running:
                raise RolloutFailed(f"{self.workload.describe()} runs revision {current.number}, not revision "
                                    f"{revision}: it was rolled back or upgraded again", revision=current.number)
            status = self._status(history, revision)
            if progress is not None:
                progress(status)
            if status.done:
                return status
            if status.failed:
                raise RolloutFailed(status.message, status=status.to_dict())
            if deadline.expired:
                raise WaitTimeout(f"timed out after {timeout:g}s: {status.message}", status=status.to_dict())
            time.sleep(min(WAIT_POLL, max(deadline.remaining, 0.05)))

    # -- validation --------------------------------------------------------------------------------
    def _validate_rollout_params(self) -> None:
        p = self.params
        check_positive(p, "batch_size", "replicas", "max_batches")
        check_non_negative(p, "batch_interval", "health_timeout", "drain_timeout", "stop_timeout", "retain",
                           "wait_timeout", "lock_timeout")
        if p.get("health_timeout") == 0:
            raise InvalidInput("health_timeout must be more than 0: the seconds a new container may take to become "
                               "healthy (and UP in the load balancer); no container is healthy the instant it starts")

    def _check_balancer(self) -> None:
        """Before any change: fail on a load balancer that cannot be driven; warn when there is none."""
        if not self.balancer.routes:
            self.module.warn(NO_BALANCER_WARNING)

    # -- image handling ----------------------------------------------------------------------------
    def _local_image(self, ref: str) -> t.Optional[dict[str, t.Any]]:
        try:
            return self.engine.inspect_image(ref)
        except engine_mod.EngineNotFound:
            return None

    def _ensure_image(self, ref: str, pull: str) -> dict[str, t.Any]:
        if ref in self._ensured:  # planned again under the lock: pull=always pulls once per run
            return self._ensured[ref]
        self._ensured[ref] = self._fetch_image(ref, pull)
        return self._ensured[ref]

    def _fetch_image(self, ref: str, pull: str) -> dict[str, t.Any]:
        image = self._local_image(ref) if pull != "always" else None
        if image is not None:
            return image
        if pull == "never":
            raise RolloutFailed(f"image {ref} is not on {self._host()} and pull=never; load or build it there first")
        parsed = parse_image_reference(ref)
        try:
            self.engine.pull(parsed.repository, parsed.digest or parsed.tag or "latest", f"pull image {ref}")
        except PlatformUnreachable:
            raise
        except RolloutFailed as exc:
            raise RolloutFailed(f"image {ref} is not on {self._host()} and pulling it failed: "
                                f"{exc.msg}. Push it to a registry the host can reach, or load it on the host")
        image = self._local_image(ref)
        if image is None:
            raise RolloutFailed(f"image {ref} is still missing after the pull")
        return image

    def _image_config(self, image_id: str) -> t.Optional[dict[str, t.Any]]:
        try:
            return (self.engine.inspect_image(image_id, f"inspect image {image_id[:19]}") or {}).get("Config") or {}
        except PlatformUnreachable:
            raise
        except RolloutFailed:  # only refines the clone; without it the new image's defaults apply
            return None

    # -- the lock ----------------------------------------------------------------------------------
    def _locked(self, operation: str, target: str, images: t.Sequence[str],
                action: t.Callable[[], ActionResult]) -> ActionResult:
        """``action()`` while holding the workload's lock (see lock.py); it must read the workload again.

        ``images`` are image ids already on the engine, tried in turn for the lock container (no pull).
        A lock that stays held fails before anything changed; the lock is released however ``action`` ends.
        """
        if self._holding_lock:
            return action()
        lock = engine_lock(self.engine, self.workload, images, self.module.warn, self._host())
        timeout = float(self.params["lock_timeout"] if self.params.get("lock_timeout") is not None else 300)
        try:
            lock.acquire(this_process(operation, target), timeout)
        except LockHeld as held:
            holder = held.owner.describe() if held.owner else "an unknown owner"
            raise RolloutFailed(
                f"{self.workload.describe()} is locked by another run: {holder} (lock container {lock.name} on "
                f"{self._engine_label()}; {held.why}); gave up after lock_timeout={timeout:g}s and changed nothing. "
                f"Wait for that run to finish and run again (or raise lock_timeout); if you are sure no run is in "
                f"progress, remove the lock with `docker rm {lock.name}`",
                lock=held.owner.to_dict() if held.owner else {"container": lock.name})
        self._holding_lock = True
        try:
            self._lb_begin(self._remove_half_made(self.load()))
            result = action()
            self._stops.settle()  # _finish joined them already; this is for any other way out
            return result
        except RolloutError as err:
            failed = self._stops.join()
            if failed:
                err.msg += f"; also {stops_failed(failed)}"
            raise
        finally:
            self._stops.close()  # no stop outlives the lock
            self._holding_lock = False
            self._lb_bound = False
            try:
                lock.release()
            except RolloutError as err:  # the outcome stands; a later run on this host takes the lock over
                self.module.warn(f"could not remove the lock container {lock.name}: {err.msg}. A later run from "
                                 f"this host takes it over; from elsewhere, remove it with `docker rm {lock.name}`")

    def _remove_half_made(self, history: History) -> History:
        """Under the lock: remove the workload's containers that were created and never started (a run cut off
        between create and start, by a kill or an engine restart, could not remove them); they hold nothing a
        rollback could use. Returns the history without them."""
        half = [r for r in history.replicas if r.state == "created"]
        for rep in half:
            discard(self.engine, rep.id, self.module.warn)
        if not half:
            return history
        self._half_made_removed = sorted(r.name for r in half)
        return self.load()

    # -- upgrade -----------------------------------------------------------------------------------
    def upgrade(self, params: dict[str, t.Any]) -> ActionResult:
        result = self._upgrade(params)
        result.extra.setdefault("partial", False)
        return result

    def _batch_limit(self) -> t.Optional[int]:
        value = self.params.get("max_batches")
        return int(value) if value is not None else None

    def _upgrade(self, params: dict[str, t.Any]) -> ActionResult:
        self.params.update(params)
        p = self.params
        image = str(parse_image_reference(p.get("image")))
        self._validate_rollout_params()
        if p.get("container"):
            raise InvalidInput("container applies to platform=kubernetes only; a Docker workload runs one "
                               "container per replica")
        history = self.load()
        self._check_balancer()
        return self._plan_upgrade(image, history)

    def _plan_upgrade(self, image: str, history: History) -> ActionResult:
        """Decide from ``history`` and act. Read-only until the first change; that takes the lock and plans
        again from a fresh read, so that a run that waited for another acts on what that one left."""
        p = self.params
        if not history.exists:
            return self._create(image, p)
        current = history.current
        assert_group(current)
        # containers of other revisions still running: an earlier run was interrupted mid-swap
        stale = [r for r in history.replicas if r.running and r.revision != current.number]
        aimed = max((r.desired for r in current.running if r.desired), default=None) if stale else None
        desired = p.get("replicas") or aimed or len(current.running) or len(current.replicas)
        pull = p.get("pull") or "missing"
        local = self._local_image(image)
        same_image = current.image == image and (local is None or local.get("Id") == current.newest.image_id)
        before = {"revision": current.number, "image": current.image, "replicas": len(current.running)}
        cause = p.get("change_cause") or f"image_upgrade to {image}"
        if same_image and len(current.running) == desired and not stale:
            return self._nothing_to_swap(history, current.number, before,
                                         f"{self.workload.describe()} already runs {image} (revision {current.number}) "
                                         f"with {desired} replicas",
                                         lambda: self._upgrade_under_lock(image, [current.newest.image_id]))
        limit = self._batch_limit()
        if same_image and stale and limit is not None:
            return self._continue_partial(history, current, stale, desired, limit, before)
        if same_image:
            after = dict(before, replicas=desired)
            what = f"{self.workload.describe()} from {len(current.running)} to {desired} replicas"
            if stale:
                what = (f"the rollout of {self.workload.describe()} to revision {current.number}: swap the "
                        f"{len(stale)} replica(s) of older revisions still serving, {desired} replicas in the end")
            if self.module.check_mode:
                return self._result(True, history, current.number, current.number, before, after,
                                    f"would {'finish' if stale else 'scale'} {what}")
            if not self._holding_lock:
                return self._upgrade_under_lock(image, [current.newest.image_id])
            if not stale:
                self._scale(current, desired)
                return self._finish(current.number, current.number, before, f"scaled {what}")
            # a canary or an interrupted run left old replicas serving: swap them out batch by batch, as the
            # upgrade itself would have
            self._batch_swap.take_in_missing(current.running)
            running = len(current.running)
            batches = 0
            with self._failure_says_what(f"finishing the rollout of {self.workload.describe()} to revision {current.number}",
                                         current.number):
                if running < desired:
                    batches = self._batch_swap.run(sorted(stale, key=lambda r: r.name), desired - running,
                                                   self._replicas_of(current, desired))
                else:
                    if running > desired:
                        self._scale(current, desired)
                    self._batch_swap.take_out(stale)
            return self._finish(current.number, current.number, before,
                                f"finished the rollout of {self.workload.describe()} to revision {current.number} "
                                f"({current.image}): {desired} replicas"
                                + (f", {batches} more batch(es)" if batches else ""))
        batch = int(p.get("batch_size") or 1)
        partial = limit is not None and limit * batch < desired
        image_id = (local or {}).get("Id")
        if pull == "always" and not self.module.check_mode:
            image_id = self._ensure_image(image, pull).get("Id")
        reuse = reusable(history, current, image, image_id, self._image_config)
        if reuse is not None:
            return self._upgrade_to_retained(history, current, stale, reuse, desired, before, partial)
        number = history.next_number
        after = {"revision": number, "image": image, "replicas": desired}
        if partial:
            after["replicas"] = min(limit * batch, desired)
        if self.module.check_mode:
            result = self._result(True, history, number, current.number, before, after,
                                  f"would upgrade {self.workload.describe()} from {current.image} (revision "
                                  f"{current.number}) to {image} (revision {number})"
                                  + (f", {after['replicas']} of {desired} replicas in the first {limit} batch(es)"
                                     if partial else "")
                                  + ("" if local is not None else f"; {image} would be pulled"))
            result.extra["partial"] = partial
            return result
        info = self._ensure_image(image, pull)
        if not self._holding_lock:
            return self._upgrade_under_lock(image, [current.newest.image_id, info.get("Id", "")])
        start = self._copies(number, image, current.newest.attrs, cause, desired)
        old = sorted(current.running, key=lambda r: r.name) + sorted(stale, key=lambda r: r.name)
        with self._failure_says_what(f"upgrade of {self.workload.describe()} to {image}", current.number):
            batches = self._batch_swap.run(old, desired, start, limit * batch if limit is not None else None)
        return self._finish(number, current.number, before,
                            f"{self.workload.describe()} upgraded from revision {current.number} ({current.image}) to "
                            f"revision {number} ({image}) in {batches} batch(es)")

    def _upgrade_to_retained(self, history: History, current: RevisionGroup, stale: list[Replica],
                             target: RevisionGroup, desired: int, before: dict[str, t.Any],
                             partial: bool) -> ActionResult:
        """An upgrade to the image and configuration of the retained revision ``target``: its stopped containers
        are restarted (no pull, no new container) and swapped in as a rollback does; it keeps its number."""
        limit = self._batch_limit()
        batch = int(self.params.get("batch_size") or 1)
        after = {"revision": target.number, "image": target.image, "replicas": desired}
        if partial:
            after["replicas"] = min((limit or 0) * batch, desired)
        kept = min(len(target.stopped), after["replicas"])
        how = f"restarting the {kept} retained container(s) of revision {target.number}"
        if after["replicas"] > kept:
            how += f" and creating {after['replicas'] - kept} more"
        what = (f"{self.workload.describe()} from {current.image} (revision {current.number}) to {target.image}, "
                f"the image and configuration of retained revision {target.number}")
        if self.module.check_mode:
            result = self._result(True, history, target.number, current.number, before, after,
                                  f"would upgrade {what}: it would restart revision {target.number} ({how}), which "
                                  "keeps its number; no pull, no new revision"
                                  + (f", {after['replicas']} of {desired} replicas in the first {limit} batch(es)"
                                     if partial else ""))
            result.extra["partial"] = partial
            return result
        if not self._holding_lock:
            return self._upgrade_under_lock(target.image, [current.newest.image_id, target.newest.image_id])
        old = sorted(current.running, key=lambda r: r.name) + sorted(stale, key=lambda r: r.name)
        with self._failure_says_what(f"upgrade of {self.workload.describe()} to {target.image} (revision {target.number})",
                                     current.number):
            batches = self._batch_swap.run(old, desired, self._replicas_of(target, desired),
                                           limit * batch if limit is not None else None)
        return self._finish(target.number, current.number, before,
                            f"{self.workload.describe()} upgraded from revision {current.number} ({current.image}) to "
                            f"{target.image} by {how} in {batches} batch(es): revision {target.number} is current "
                            "again under its own number")

    @contextlib.contextmanager
    def _failure_says_what(self, what: str, revision: int) -> t.Iterator[None]:
        """A failed swap says what failed and the revision the workload is back on (for a rescue)."""
        try:
            yield
        except RolloutError as err:
            err.details.setdefault("revision", revision)
            err.msg = f"{what} failed: {err.msg}"
            raise

    def _upgrade_under_lock(self, image: str, images: t.Sequence[str]) -> ActionResult:
        return self._locked("image_upgrade", image, images, lambda: self._plan_upgrade(image, self.load()))

    def _continue_partial(self, history: History, current: RevisionGroup, stale: list[Replica], desired: int,
                          limit: int, before: dict[str, t.Any]) -> ActionResult:
        """An upgrade with ``max_batches`` on a workload a partial run left half-swapped to the same image:
        nothing to do when the new revision already covers ``limit`` batches, else swap up to that."""
        batch = int(self.params.get("batch_size") or 1)
        target = min(limit * batch, desired)
        running = len(current.running)
        what = f"{self.workload.describe()} revision {current.number} ({current.image})"
        if running >= target:
            result = self._nothing_to_swap(history, current.number, before,
                                           f"{what} already runs {running} of {desired} replicas, at least max_batches="
                                           f"{limit} batch(es) of {batch}; run without max_batches to finish the upgrade",
                                           lambda: self._upgrade_under_lock(current.image, [current.newest.image_id]))
            result.extra["partial"] = True
            return result
        more = target - running
        after = dict(before, replicas=target)
        if self.module.check_mode:
            result = self._result(True, history, current.number, current.number, before, after,
                                  f"would swap {more} more replica(s) of {what}, {target} of {desired}")
            result.extra["partial"] = target < desired
            return result
        if not self._holding_lock:
            return self._upgrade_under_lock(current.image, [current.newest.image_id])
        self._batch_swap.take_in_missing(current.running)
        old = sorted(stale, key=lambda r: r.name)
        # the swap runs until ``more`` new replicas are in (no batch beyond them): old ones left keep serving
        with self._failure_says_what(f"upgrade of {what}", current.number):
            batches = self._batch_swap.run(old, desired - running, self._replicas_of(current, desired), more)
        return self._finish(current.number, current.number, before,
                            f"swapped {batches} more batch(es) of {what}, {target} of {desired} replicas")

    def _create(self, image: str, p: dict[str, t.Any]) -> ActionResult:
        replicas = p.get("replicas")
        if not replicas:
            raise WorkloadNotFound(
                f"{self.workload.describe()} does not exist on {self._host()}; to create it, set replicas "
                "(and docker_container: port, env...)"
            )
        after = {"revision": 1, "image": image, "replicas": replicas}
        if self.module.check_mode:
            return ActionResult(changed=True, workload=self.workload, revision=1, previous_revision=None,
                                images={self.workload.name: image}, before={}, after=after,
                                message=f"would create {self.workload.describe()} with {replicas} replicas of {image}")
        info = self._ensure_image(image, p.get("pull") or "missing")
        if not self._holding_lock:  # a run that waited finds the workload created: it plans as for any other
            return self._upgrade_under_lock(image, [info.get("Id", "")])
        cause = p.get("change_cause") or f"created with {image}"
        config, later_names = creation_config(image, self.workload.name, 1, cause, p.get("docker_container") or {},
                                              info.get("Config") or {}, replicas)
        start = ReplicaFactory(self.engine, self.module.warn, self.workload.name, 1,
                               lambda: (dict(config), [(n, []) for n in later_names]))
        self._batch_swap.run([], replicas, start)
        return self._finish(1, None, {}, f"created {self.workload.describe()} with {replicas} replicas of {image}")

    def _scale(self, current: RevisionGroup, desired: int) -> None:
        running = sorted(current.running, key=lambda r: (r.created or "", r.name))
        if desired < len(running):
            self._batch_swap.take_out(running[desired:], remove=True)
            return
        self._batch_swap.run([], desired - len(running), self._replicas_of(current, desired, restart=False))

    def _replicas_of(self, group: RevisionGroup, desired: int, restart: bool = True) -> ReplicaFactory:
        """Replicas of ``group`` for the swap: its retained (stopped) containers restarted first (unless not
        ``restart``: a scale-up only adds copies), then copies of its newest container if it kept fewer."""
        newest = group.newest
        return self._copies(group.number, group.image, newest.attrs, newest.change_cause, desired,
                            group.stopped if restart else ())

    def _copies(self, revision: int, image: str, template: dict[str, t.Any], cause: t.Optional[str], desired: int,
                retained: t.Sequence[Replica] = ()) -> ReplicaFactory:
        """Replicas of ``revision`` for the swap: ``retained`` containers restarted first, then copies of the
        container ``template`` (inspected) with ``image``; what it got from its own image is left out."""
        image_config = self._image_config(template.get("Image", ""))
        return ReplicaFactory(self.engine, self.module.warn, self.workload.name, revision,
                              lambda: clone_config(template, image_config, image, revision, cause, desired), retained)

    # -- rollback ----------------------------------------------------------------------------------
    def rollback(self, params: dict[str, t.Any]) -> ActionResult:
        self.params.update(params)
        p = self.params
        self._validate_rollout_params()
        check_non_negative(p, "to_revision")
        history = self._existing()
        self._check_balancer()
        return self._plan_rollback(history)

    def _plan_rollback(self, history: History) -> ActionResult:
        """As :meth:`_plan_upgrade`: read-only until the first change, then planned again under the lock."""
        p = self.params
        current = history.current
        assert_group(current)
        wanted = p.get("to_revision") or None  # 0: the previous revision, as kubectl's --to-revision=0
        if wanted is not None:
            target = history.groups.get(wanted)
            if target is None:
                known = ", ".join(str(n) for n in history.groups)
                raise InvalidInput(f"{self.workload.describe()} has no revision {wanted} to roll back to "
                                   f"(retained: {known})")
        else:
            target = history.previous
            if target is None:
                raise InvalidInput(f"{self.workload.describe()} has no previous revision to roll back to: only "
                                   f"revision {current.number} is retained")
        before = {"revision": current.number, "image": current.image, "replicas": len(current.running)}
        desired = len(current.running) or len(current.replicas)
        if target.number == current.number and len(target.running) >= desired and not [
                r for r in history.replicas if r.running and r.revision != current.number]:
            return self._nothing_to_swap(history, current.number, before,
                                         f"{self.workload.describe()} already runs revision {current.number} ({current.image})",
                                         lambda: self._locked("rollback", f"revision {current.number} ({current.image})",
                                                              [current.newest.image_id],
                                                              lambda: self._plan_rollback(self._existing())))
        after = {"revision": target.number, "image": target.image, "replicas": desired}
        if self.module.check_mode:
            return self._result(True, history, target.number, current.number, before, after,
                                f"would roll {self.workload.describe()} back from revision {current.number} to "
                                f"revision {target.number} ({target.image})")
        if not self._holding_lock:
            return self._locked("rollback", f"revision {target.number} ({target.image})",
                                [current.newest.image_id, target.newest.image_id],
                                lambda: self._plan_rollback(self._existing()))
        if self._local_image(target.newest.attrs.get("Image", "")) is None:
            raise RolloutFailed(f"the image of revision {target.number} ({target.image}) is no longer on "
                                f"{self._host()}; a rollback does not pull. Load it, or upgrade to it instead")
        start = self._replicas_of(target, desired)
        old = sorted([r for r in history.replicas if r.running and r.revision != target.number], key=lambda r: r.name)
        if target.number == current.number:
            desired = max(desired - len(target.running), 0)
        with self._failure_says_what(f"rollback of {self.workload.describe()} to revision {target.number}", current.number):
            batches = self._batch_swap.run(old, desired, start)
        return self._finish(target.number, current.number, before,
                            f"{self.workload.describe()} rolled back from revision {current.number} ({current.image}) "
                            f"to revision {target.number} ({target.image}) in {batches} batch(es)")

    # -- results -----------------------------------------------------------------------------------
    def _result(self, changed: bool, history: History, revision: t.Optional[int], previous: t.Optional[int],
                before: dict[str, t.Any], after: dict[str, t.Any], message: str) -> ActionResult:
        status = None
        if not changed or not self.module.check_mode:
            status = self._status(history) if history.exists else None
        result = ActionResult(
            changed=changed, workload=self.workload, revision=revision, previous_revision=previous,
            images={self.workload.name: after.get("image")} if after else {},
            previous_images={self.workload.name: before.get("image")} if before else {},
            status=status, before=before, after=after, message=message,
        )
        result.extra["lb_repaired"] = list(self._lb_fixes)
        return result

    def _retain(self) -> int:
        return int(self.params["retain"] if self.params.get("retain") is not None else 2)

    def _nothing_to_swap(self, history: History, number: int, before: dict[str, t.Any], message: str,
                         relock: t.Callable[[], ActionResult]) -> ActionResult:
        """The result of a run with no batch to swap. It still changes (``changed``, under the lock: ``relock()``
        plans again holding it) what an interrupted run left: revisions beyond ``retain`` (killed between its
        last swap and its pruning), containers created and never started, a load balancer out of step."""
        extra = history.to_prune(self._retain())
        diverged = [] if self._holding_lock else self._lb_divergence(history)
        half = [] if self._holding_lock else sorted(r.name for r in history.replicas if r.state == "created")
        if not extra and not diverged and not self._lb_fixes and not half and not self._half_made_removed:
            return self._result(False, history, number, number, before, before, message)
        revisions = ", ".join(str(n) for n in sorted({r.revision for r in extra}))
        what = (f"the {len(extra)} stopped container(s) of revision(s) {revisions}, beyond retain={self._retain()}: "
                f"{', '.join(sorted(r.name for r in extra))}")
        if self.module.check_mode:
            would = [message]
            if extra:
                would.append(f"would remove {what}")
            if diverged:
                would.append(f"would repair the load balancer ({'; '.join(diverged)})")
            if half:
                would.append(f"would remove {len(half)} container(s) an interrupted run created and never started: "
                             f"{', '.join(half)}")
            result = self._result(True, history, number, number, before, before, "; ".join(would))
            result.extra["lb_repaired"] = diverged  # what it would repair
            return result
        if not self._holding_lock:
            return relock()  # the lock's start repairs the load balancer (_lb_begin)
        for rep in extra:
            discard(self.engine, rep.id, self.module.warn)
        self._lb_sync(last=True)
        history = self.load()
        left = {r.id for r in history.replicas}
        done = [message]
        if extra:
            done.append(f"removed {what}")
        if self._lb_fixes:
            done.append(f"repaired the load balancer ({'; '.join(self._lb_fixes)})")
        if self._half_made_removed:
            done.append(f"removed {len(self._half_made_removed)} container(s) an interrupted run created and never "
                        f"started: {', '.join(self._half_made_removed)}")
        result = self._result(True, history, number, number, before, before, "; ".join(done))
        result.extra["pruned"] = sorted(r.name for r in extra if r.id not in left) + self._half_made_removed
        return result

    def _finish(self, revision: int, previous: t.Optional[int], before: dict[str, t.Any], message: str) -> ActionResult:
        # every old container stopped before pruning counts revisions, and before the final reconcile and status
        failed = self._stops.join()
        if failed:
            raise RolloutFailed(f"{message}, but {stops_failed(failed)}", revision=revision,
                                containers=[f.split(":", 1)[0] for f in failed])
        history = self.load()
        extra = history.to_prune(self._retain())
        for rep in extra:
            discard(self.engine, rep.id, self.module.warn)
        pruned = [r.name for r in extra]
        self._lb_sync(last=True)
        if pruned:
            history = self.load()
        status = self._status(history, revision)
        # a run stopped by max_batches leaves other revisions serving on purpose: nothing to wait for
        partial = self._batch_limit() is not None and any(r.running and r.revision != revision
                                                          for r in history.replicas)
        if self.params.get("wait", True) and not status.done and not partial:
            wait_timeout = self.params.get("wait_timeout")
            timeout = float(wait_timeout if wait_timeout is not None else 300)
            status = self.wait(revision, timeout, progress=self._progress)
        group = history.groups[revision]
        after = {"revision": revision, "image": group.image, "replicas": len(group.running)}
        result = ActionResult(
            changed=True, workload=self.workload, revision=revision, previous_revision=previous,
            images={self.workload.name: group.image},
            previous_images={self.workload.name: before["image"]} if before else {},
            status=status, before=before, after=after, message=message,
        )
        result.extra["pruned"] = pruned + self._half_made_removed
        result.extra["lb_repaired"] = list(self._lb_fixes)
        result.extra["progress"] = list(self._progress.entries)
        if self._batch_limit() is not None:
            result.extra["partial"] = partial
        return result

    # -- pre-flight --------------------------------------------------------------------------------
    checks = preflight_mod.CHECKS

    def preflight(self, params: dict[str, t.Any]) -> list[Finding]:
        self.params.update(params)
        history = self.load()
        balancer: t.Optional[str] = None
        if history.exists:
            try:
                lb = self.balancer  # built and checked on first use: an unusable one is a finding, not a failure
                lb.check()
                balancer = "" if lb.routes else None
            except RolloutError as err:
                balancer = err.msg
        return preflight_mod.lint(history, self.workload.describe(), self._host(), balancer,
                                  (self.params.get("health_check") or {}).get("path"))


def assert_group(group: t.Optional[RevisionGroup]) -> None:
    """Narrow an Optional current revision (a workload that exists always has one)."""
    if group is None:
        raise WorkloadNotFound("the workload has no containers")


__all__ = ["DockerPlatform", "LABEL_REVISION"]
