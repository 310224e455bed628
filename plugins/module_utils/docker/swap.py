# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The start-first batch swap of the Docker backend: every change (create, scale, upgrade, rollback) goes
through it, ``batch_size`` replicas at a time.

Per batch: start the new replicas (:class:`ReplicaFactory`) -> health gate -> add them to the load balancer and
wait until it sends them traffic -> drain the replicas they replace -> take those out of the load balancer ->
:meth:`Balancer.release` (no load balancer process routes to them any more) -> stop them and keep them, in the
background (:class:`BackgroundStops`), so that the next batch need not wait ``stop_timeout``.

A failure before the switch removes what was started and leaves the old replicas serving; batches that had
already completed are swapped back the same way. Without a load balancer the null driver (balancer/none.py)
takes every step and does nothing, so nothing here asks whether there is one.
"""

from __future__ import annotations

import concurrent.futures
import time
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Balancer
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.engine import DockerEngine, EngineNotFound
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import (
    Replica,
    container_name,
    wait_healthy,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    Deadline,
    PlatformUnreachable,
    ProgressLog,
    RolloutError,
    RolloutFailed,
)

# Old containers stopped at once in the background (each ``docker stop`` may take ``stop_timeout``)
STOP_WORKERS = 4

# start(k) -> (ids of the k started containers, those of them that were created rather than restarted)
Starter = t.Callable[[int], t.Tuple[t.List[str], t.List[str]]]
# a create body and the networks (with aliases) to connect the container to before it starts
ConfigMaker = t.Callable[[], t.Tuple[t.Dict[str, t.Any], t.Sequence[t.Tuple[str, t.List[str]]]]]


def health_timeout(params: t.Mapping[str, t.Any]) -> float:
    """``health_timeout``: how long a new replica may take to pass the gate and come UP (default 60)."""
    value = params.get("health_timeout")
    return float(value) if value is not None else 60.0


def drain_timeout(params: t.Mapping[str, t.Any]) -> float:
    """``drain_timeout``: how long an old replica's sessions may take to end (default 30)."""
    value = params.get("drain_timeout")
    return float(value if value is not None else 30)


def stop_timeout(params: t.Mapping[str, t.Any]) -> int:
    """``stop_timeout``: seconds between SIGTERM and SIGKILL of ``docker stop`` (default 10; 0 kills at once)."""
    value = params.get("stop_timeout")
    return int(value) if value is not None else 10


def batch_limit(params: t.Mapping[str, t.Any]) -> t.Optional[int]:
    """``max_batches``: the batches an upgrade swaps before it stops, the rest left serving (None: all)."""
    value = params.get("max_batches")
    return int(value) if value is not None else None


def published_now(engine: DockerEngine, cid: str) -> t.Optional[str]:
    """Where the load balancer reaches container ``cid`` now (its address from a fresh inspect: a restarted dockerd
    publishes it on other host ports); None when it is gone, has no address (not running), or the engine does not
    answer (restarting: the wait goes on, and looks again)."""
    try:
        rep = Replica.from_attrs(engine.inspect_container(cid))
    except (EngineNotFound, PlatformUnreachable):
        return None
    return rep.address if rep.running else None


def discard(engine: DockerEngine, cid: str, warn: t.Callable[[str], None]) -> None:
    """Remove container ``cid`` for good; one that cannot be warns, and the cleanup goes on (a re-run removes what
    is left)."""
    try:
        engine.remove(cid)
    except RolloutError as err:
        warn(f"could not remove container {cid[:12]}: {err.msg}")


def stops_failed(failed: t.Sequence[str]) -> str:
    """What to say about background stops that failed (``"<container>: <why>"`` each)."""
    return (f"could not stop {len(failed)} old container(s) after taking them out of the load balancer "
            f"({'; '.join(failed)}); they take no traffic. Run the task again: it takes them out and stops "
            "them, and converges")


class ReplicaFactory:
    """``start(k)`` of :meth:`BatchSwap.run`: k replicas of revision ``revision`` of ``workload``.

    The ``retained`` (stopped) containers of that revision are restarted first (``docker start``: no pull, no new
    container), in the order given; then each further replica is a container created from ``config()`` (called
    once per container) and started. Returns (the ids started, those of them that were created): an undo removes
    the created ones and stops the restarted ones again.
    """

    def __init__(self, engine: DockerEngine, warn: t.Callable[[str], None], workload: str, revision: int,
                 config: ConfigMaker, retained: t.Sequence[Replica] = (),
                 name: t.Optional[t.Callable[[t.Dict[str, t.Any]], t.Optional[str]]] = None) -> None:
        self._engine = engine
        self._warn = warn
        self._workload = workload
        self._revision = revision
        self._config = config
        self.retained = list(retained)
        self._name = name  # the name a create body asks for (a Compose service's), else None: the workload's own

    def __call__(self, k: int) -> t.Tuple[t.List[str], t.List[str]]:
        ids: list[str] = []
        fresh: list[str] = []
        for _index in range(k):
            if self.retained:
                rep = self.retained.pop(0)
                self._engine.start(rep.id, f"start retained container {rep.name}")
                ids.append(rep.id)
            else:
                config, later = self._config()
                name = (self._name(config) if self._name else None) or container_name(self._workload, self._revision)
                cid = self._create_and_start(config, name, later)
                ids.append(cid)
                fresh.append(cid)
        return ids, fresh

    def _create_and_start(self, config: dict[str, t.Any], name: str,
                          later: t.Sequence[tuple[str, list[str]]]) -> str:
        cid = self._engine.create(config, name)
        try:
            for net, aliases in later:
                self._engine.connect(cid, net, aliases, f"connect {name} to network {net}")
            self._engine.start(cid, f"start container {name}")
        except RolloutError:
            discard(self._engine, cid, self._warn)
            raise
        return cid


class BackgroundStops:
    """``docker stop`` of old containers already out of the load balancer, up to STOP_WORKERS at once in the
    background: they take no traffic, so the next batch need not wait ``stop_timeout`` for an app that ignores
    SIGTERM. The backend joins them before it prunes, reports or releases the lock; a failed batch joins them
    before it restarts anything."""

    def __init__(self) -> None:
        self._pool: t.Optional[concurrent.futures.ThreadPoolExecutor] = None
        self.pending: list[tuple[Replica, concurrent.futures.Future]] = []

    def submit(self, rep: Replica, stop: t.Callable[..., None], *args: t.Any) -> None:
        """Run ``stop(*args)``, the stop of ``rep``, in the background."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=STOP_WORKERS,
                                                               thread_name_prefix="zerodown-stop")
        self.pending.append((rep, self._pool.submit(stop, *args)))

    def join(self) -> list[str]:
        """Wait for every stop; returns those that failed, as "<container>: <why>"."""
        stops, self.pending = self.pending, []
        failed = []
        for rep, future in stops:
            try:
                future.result()
            except EngineNotFound:
                pass  # removed meanwhile: nothing left to stop
            except RolloutError as err:
                failed.append(f"{rep.name}: {err.msg}")
        return failed

    def settle(self) -> None:
        """Join the stops; one that failed fails the run, once all the others have ended."""
        failed = self.join()
        if failed:
            raise RolloutFailed(stops_failed(failed), containers=[f.split(":", 1)[0] for f in failed])

    def close(self) -> None:
        """Join the stops and end the threads: no stop outlives the lock."""
        self.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


class _Step(t.NamedTuple):
    """One batch that completed: what it started (and of that, created) and what it stopped."""

    started: list[str]
    fresh: list[str]
    stopped: list[Replica]


class BatchSwap:
    """The swap of one run, on ``engine`` behind ``lb`` (bound to the run's intent; the null driver without a load
    balancer). ``params`` are the module's (read when used: batch_size, batch_interval, health_timeout,
    health_check, drain_timeout, stop_timeout); ``sync()`` brings the pool back to the intent after each batch;
    each batch is noted in ``progress``; old containers stop through ``stops``."""

    def __init__(self, engine: DockerEngine, lb: Balancer, params: t.Mapping[str, t.Any], warn: t.Callable[[str], None],
                 sync: t.Callable[[], None], progress: ProgressLog, stops: BackgroundStops) -> None:
        self.engine = engine
        self.lb = lb
        self.params = params
        self.warn = warn
        self.sync = sync
        self.progress = progress
        self.stops = stops

    def run(self, old: list[Replica], desired: int, start: Starter, cap: t.Optional[int] = None) -> int:
        """Replace ``old`` by ``desired`` replicas from ``start(k)`` (a :class:`ReplicaFactory`), ``batch_size`` at
        a time; returns the number of batches. On failure, swaps completed batches back.

        With ``cap``, stops once that many new replicas are in (each batch replacing as many old ones):
        what is left of ``old`` keeps serving next to the new replicas (a canary); a later run finishes."""
        batch = int(self.params.get("batch_size") or 1)
        interval = float(self.params.get("batch_interval") or 0)
        remaining_old = list(old)
        started = 0
        steps: list[_Step] = []
        batches = 0
        while started < desired or remaining_old:
            if cap is not None and started >= cap:
                break
            if batches and interval:
                time.sleep(interval)
            batches += 1
            k = min(batch, desired - started, (cap - started) if cap is not None else batch)
            ids: list[str] = []
            fresh: list[str] = []
            if k > 0:
                try:
                    ids, fresh = start(k)
                    self.take_in(ids, fresh)
                except RolloutError as err:
                    self._revert(steps, err)
                    raise
                started += k
            out_count = len(remaining_old) if started >= desired else min(len(ids), len(remaining_old))
            if k <= 0:
                out_count = min(batch, len(remaining_old))
            going, remaining_old = remaining_old[:out_count], remaining_old[out_count:]
            try:
                self.take_out(going)
                self.sync()
            except RolloutError as err:
                self._revert(steps + [_Step(ids, fresh, [])], err)
                raise
            steps.append(_Step(ids, fresh, going))
            self.progress.note(f"batch {batches}: {started} of {desired} new replica(s) healthy"
                               f"{' and in the load balancer' if self.lb.routes else ''}, "
                               f"{len(remaining_old)} old one(s) left")
        return batches

    def take_in(self, ids: list[str], fresh: list[str], weight: t.Optional[int] = None) -> list[Replica]:
        """Gate started containers and add them to the load balancer (with ``weight`` when given); on failure undo
        them and raise."""
        timeout = health_timeout(self.params)
        added: list[str] = []
        try:
            attrs = wait_healthy(self.engine, ids, timeout, self.params.get("health_check"))
            # the addresses as inspected after the start: a restarted container may have another one on its network
            reps = [Replica.from_attrs(attrs[cid]) for cid in ids]
            admitted = []
            for rep in reps:
                if not rep.address and self.lb.routes:
                    raise RolloutFailed(rep.no_address())
                names = self.lb.admit(rep.name, rep.address, weight)
                added += names
                admitted += [(name, rep.id) for name in names]
            for name, cid in admitted:
                self.lb.wait_up(name, timeout, follow=lambda cid=cid: published_now(self.engine, cid))
            return reps
        except RolloutError:
            self._undo_started(ids, fresh, added)
            raise

    def take_in_missing(self, running: t.Sequence[Replica], weight: t.Optional[int] = None) -> None:
        """Gate and add the ``running`` replicas the load balancer does not have (started by an interrupted run,
        never gated), with ``weight`` when given."""
        members = self.lb.members()
        # a replica with member names (the null driver gives none: nothing to take in) of which the pool has none
        missing = [r.id for r in running
                   if (names := self.lb.member_names(r.name)) and not any(n in members for n in names)]
        if missing:
            self.take_in(missing, [], weight)

    def take_out(self, reps: t.Sequence[Replica], remove: bool = False) -> None:
        """Drain old replicas, take them out of the load balancer, then stop (and keep, unless ``remove``) them."""
        lb = self.lb
        drain = drain_timeout(self.params)
        members = lb.members()
        names = {r.id: [n for n in lb.member_names(r.name) if n in members or n in lb.intent] for r in reps}
        taken = [n for r in reps for n in names[r.id]]
        for name in taken:
            lb.drain(name)
        deadline = Deadline(drain)
        for name in taken:
            if not lb.wait_drained(name, deadline.remaining):
                self.warn(f"{name} still had sessions after drain_timeout={drain:g}s; they are cut")
        for name in taken:
            lb.remove(name)
        # a container stops once no process of the load balancer routes to it: a reload that parsed the file
        # before the take-out, and old workers finishing their connections, may still do (Balancer.release)
        for rep in reps:
            if remove:
                self._release(names[rep.id])
                discard(self.engine, rep.id, self.warn)
            else:
                self.stops.submit(rep, self._stop_released, rep, names[rep.id])

    def _release(self, names: t.Sequence[str]) -> None:
        """Wait until no load balancer process routes to ``names`` any more (see Balancer.release)."""
        for warning in self.lb.release(names):
            self.warn(warning)

    def _stop_released(self, rep: Replica, names: t.Sequence[str]) -> None:
        self._release(names)
        self.engine.stop(rep.id, stop_timeout(self.params), f"stop container {rep.name}")

    def _undo_started(self, ids: t.Sequence[str], fresh: t.Sequence[str], in_lb: t.Sequence[str]) -> None:
        for name in in_lb:
            try:
                self.lb.drain(name)
                self.lb.remove(name)
            except RolloutError as err:
                self.warn(f"could not take {name} out of the load balancer: {err.msg}")
        try:
            self._release(in_lb)
        except RolloutError as err:
            self.warn(f"could not make sure the load balancer no longer routes to {', '.join(in_lb)}: {err.msg}")
        for cid in ids:
            if cid in fresh:
                discard(self.engine, cid, self.warn)
            else:
                try:
                    self.engine.stop(cid, stop_timeout(self.params))
                except RolloutError as err:  # undo goes on with the rest; the original error is raised
                    self.warn(f"could not stop container {cid[:12]} while undoing the batch: {err.msg}")

    def _revert(self, steps: list[_Step], err: RolloutError) -> None:
        """Put back what completed batches replaced (start-first again), then remove what they started."""
        failed = self.stops.join()  # a container is restarted only once its stop has ended
        if failed:
            err.msg += f"; also {stops_failed(failed)}"
        if not steps:
            return
        old = [rep for step in steps for rep in step.stopped]
        new_ids = [cid for step in steps for cid in step.started]
        fresh = {cid for step in steps for cid in step.fresh}
        try:
            if old:
                for rep in old:
                    self.engine.start(rep.id, f"restart container {rep.name}")
                self.take_in([r.id for r in old], [])
            new_reps = [Replica.from_attrs(self.engine.inspect_container(cid)) for cid in new_ids]
            self.take_out([r for r in new_reps if r.id not in fresh])
            self.take_out([r for r in new_reps if r.id in fresh], remove=True)
            err.msg += "; the batches that had completed were swapped back, so the workload runs what it ran before"
        except RolloutError as err_undo:
            err.msg += f"; swapping the completed batches back failed too ({err_undo.msg}): check the workload"
