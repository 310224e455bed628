# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""One run that changes a Docker workload (image_upgrade, rollback), from its lock to its result.

* **The lock** (lock.py) is taken only when the planning found something to change, and then the planning runs
  again from a fresh read under it (:meth:`ChangeRun.locked`). Holding it, the run first removes what an
  interrupted run created and never started, and takes the load balancer's intent from the workload and
  repairs the pool to it; it releases the lock however it ends, once every background stop has ended.
* **The swap** (swap.py) makes the change; the old containers stop in the background.
* **The end**: every stop joined, revisions beyond ``retain`` pruned, the pool repaired a last time, the status
  (and with ``wait``, the wait for it), the result with what was pruned and repaired and the progress.
"""

from __future__ import annotations

import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.docker import standby as standby_mod
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.lock import LockHeld, engine_lock, this_process
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.swap import (
    BackgroundStops,
    BatchSwap,
    batch_limit,
    discard,
    stops_failed,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.workload import DockerWorkload
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    ActionResult,
    ProgressLog,
    RolloutError,
    RolloutFailed,
)


def _retain(params: t.Mapping[str, t.Any]) -> int:
    return int(params["retain"] if params.get("retain") is not None else 2)


class ChangeRun:
    """The changing run of module ``module`` (check mode, warnings) on workload ``docker`` with ``params``."""

    def __init__(self, docker: DockerWorkload, module: t.Any, params: dict[str, t.Any]) -> None:
        self.docker = docker
        self.module = module
        self.params = params
        self.workload = docker.ref
        self.holding_lock = False
        self.half_made_removed: list[str] = []  # containers an interrupted run created and never started
        self.progress = ProgressLog()  # the batches of a swap, then the final wait: returned as progress
        # ``docker stop`` of old containers already out of the load balancer, joined before the module returns
        self.stops = BackgroundStops()
        self._swap: t.Optional[BatchSwap] = None

    @property
    def swap(self) -> BatchSwap:
        """The swap (swap.py), on the engine and the load balancer; used under the lock only."""
        if self._swap is None:
            self._swap = BatchSwap(self.docker.engine, self.docker.balancer, self.params, self.module.warn,
                                   self.docker.repair, self.progress, self.stops)
        return self._swap

    # -- the lock ----------------------------------------------------------------------------------
    def locked(self, operation: str, target: str, images: t.Sequence[str],
               action: t.Callable[[], ActionResult]) -> ActionResult:
        """``action()`` while holding the workload's lock (see lock.py); it must read the workload again.

        ``images`` are image ids already on the engine, tried in turn for the lock container (no pull).
        A lock that stays held fails before anything changed; the lock is released however ``action`` ends.
        """
        if self.holding_lock:
            return action()
        lock = engine_lock(self.docker.engine, self.workload, images, self.module.warn, self.docker.host())
        timeout = float(self.params["lock_timeout"] if self.params.get("lock_timeout") is not None else 300)
        try:
            lock.acquire(this_process(operation, target), timeout)
        except LockHeld as held:
            holder = held.owner.describe() if held.owner else "an unknown owner"
            raise RolloutFailed(
                f"{self.workload.describe()} is locked by another run: {holder} (lock container {lock.name} on "
                f"{self.docker.engine_label()}; {held.why}); gave up after lock_timeout={timeout:g}s and changed nothing. "
                f"Wait for that run to finish and run again (or raise lock_timeout); if you are sure no run is in "
                f"progress, remove the lock with `docker rm {lock.name}`",
                lock=held.owner.to_dict() if held.owner else {"container": lock.name})
        self.holding_lock = True
        try:
            self.docker.begin_changes(self._remove_half_made(self.docker.load()))
            result = action()
            self.stops.settle()  # finish joined them already; this is for any other way out
            return result
        except RolloutError as err:
            failed = self.stops.join()
            if failed:
                err.msg += f"; also {stops_failed(failed)}"
            raise
        finally:
            self.stops.close()  # no stop outlives the lock
            self.holding_lock = False
            self.docker.bound = False
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
            discard(self.docker.engine, rep.id, self.module.warn)
        if not half:
            return history
        self.half_made_removed = sorted(r.name for r in half)
        return self.docker.load()

    def drop_stale_standby(self, history: History) -> None:
        """Under the lock: remove the blue-green standby marker when what it records is no longer true (its
        revision was retired or rolled back to, another revision became current)."""
        if standby_mod.read(self.docker.engine, self.workload.name) is not None and self.docker.standby(history) is None:
            standby_mod.drop(self.docker.engine, self.workload.name)

    # -- results -----------------------------------------------------------------------------------
    def result(self, changed: bool, history: History, revision: t.Optional[int], previous: t.Optional[int],
               before: dict[str, t.Any], after: dict[str, t.Any], message: str) -> ActionResult:
        """The result of a run that changed nothing, or of a check-mode run (which reads no status)."""
        status = None
        if not changed or not self.module.check_mode:
            status = self.docker.status(history) if history.exists else None
        result = ActionResult(
            changed=changed, workload=self.workload, revision=revision, previous_revision=previous,
            images={self.workload.name: after.get("image")} if after else {},
            previous_images={self.workload.name: before.get("image")} if before else {},
            status=status, before=before, after=after, message=message,
        )
        result.extra["lb_repaired"] = list(self.docker.fixes)
        return result

    def nothing_to_swap(self, history: History, number: int, before: dict[str, t.Any], message: str,
                        relock: t.Callable[[], ActionResult]) -> ActionResult:
        """The result of a run with no batch to swap. It still changes (``changed``, under the lock: ``relock()``
        plans again holding it) what an interrupted run left: revisions beyond ``retain`` (killed between its
        last swap and its pruning), containers created and never started, a load balancer out of step."""
        retain = _retain(self.params)
        extra = history.to_prune(retain)
        diverged = [] if self.holding_lock else self.docker.divergence(history)
        half = [] if self.holding_lock else sorted(r.name for r in history.replicas if r.state == "created")
        # started just before the run (adopted, by Compose, by hand): made members once healthy, under the lock,
        # where admit_joining binds the intent again from a fresh read (one may have become healthy since the lock's
        # start bound it) and repairs the pool to it
        joining = [] if self.holding_lock else self.docker.joining(history)
        starting = sorted(r.name for r in joining)
        if self.holding_lock:
            history = self.docker.admit_joining(history, self.module.warn)
        if not extra and not diverged and not self.docker.fixes and not half and not self.half_made_removed \
                and not starting:
            return self.result(False, history, number, number, before, before, message)
        revisions = ", ".join(str(n) for n in sorted({r.revision for r in extra}))
        what = (f"the {len(extra)} stopped container(s) of revision(s) {revisions}, beyond retain={retain}: "
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
            if starting:
                would.append(f"would wait for {', '.join(starting)}, whose HEALTHCHECK has not passed yet (starting, "
                             "or unhealthy for a moment), and make them load balancer members once healthy")
            # one unhealthy all along changes nothing in a real run: it alone is no change
            changed = bool(extra or diverged or half or any(r.health == "starting" for r in joining))
            result = self.result(changed, history, number, number, before, before, "; ".join(would))
            result.extra["lb_repaired"] = diverged  # what it would repair
            return result
        if not self.holding_lock:
            return relock()  # the lock's start repairs the load balancer (DockerWorkload.begin_changes)
        for rep in extra:
            discard(self.docker.engine, rep.id, self.module.warn)
        self.docker.repair(last=True, history=history)  # what was pruned was stopped: the addresses still hold
        history = self.docker.load()
        left = {r.id for r in history.replicas}
        done = [message]
        if extra:
            done.append(f"removed {what}")
        if self.docker.fixes:
            done.append(f"repaired the load balancer ({'; '.join(self.docker.fixes)})")
        if self.half_made_removed:
            done.append(f"removed {len(self.half_made_removed)} container(s) an interrupted run created and never "
                        f"started: {', '.join(self.half_made_removed)}")
        # a replica waited for that did not become healthy changed nothing (it is named in a warning): a run that
        # finds the same is not a change each time
        changed = bool(extra or self.docker.fixes or self.half_made_removed)
        result = self.result(changed, history, number, number, before, before, "; ".join(done))
        result.extra["pruned"] = sorted(r.name for r in extra if r.id not in left) + self.half_made_removed
        return result

    def finish(self, revision: int, previous: t.Optional[int], before: dict[str, t.Any], message: str,
               paused: bool = False) -> ActionResult:
        """The end of a run that swapped: ``revision`` is current (``previous`` was); ``message`` says what was done.
        ``paused``: a steps rollout left the old revision serving on purpose (``partial``, nothing to wait for)."""
        # every old container stopped before pruning counts revisions, and before the final reconcile and status
        failed = self.stops.join()
        if failed:
            raise RolloutFailed(f"{message}, but {stops_failed(failed)}", revision=revision,
                                containers=[f.split(":", 1)[0] for f in failed])
        history = self.docker.load()
        extra = history.to_prune(_retain(self.params))
        for rep in extra:
            discard(self.docker.engine, rep.id, self.module.warn)
        pruned = [r.name for r in extra]
        # a run stopped by max_batches leaves other revisions serving on purpose: nothing to wait for (what was
        # pruned was stopped: the running replicas are the same before and after)
        partial = (paused or batch_limit(self.params) is not None) and any(r.running and r.revision != revision
                                                                           for r in history.replicas)
        waits = bool(self.params.get("wait", True)) and not partial
        # what was pruned was stopped: the addresses still hold. A run that waits next does not wait here for a
        # member this repair adds or moves: its final wait does, up to wait_timeout
        self.docker.repair(last=True, history=history, wait=not waits)
        if pruned:
            history = self.docker.load()
        self.drop_stale_standby(history)
        status = self.docker.status(history, revision)
        if waits and not status.done:
            wait_timeout = self.params.get("wait_timeout")
            timeout = float(wait_timeout if wait_timeout is not None else 300)
            status = self.docker.wait(revision, timeout, progress=self.progress)
        group = history.groups[revision]
        after = {"revision": revision, "image": group.image, "replicas": len(group.running)}
        result = ActionResult(
            changed=True, workload=self.workload, revision=revision, previous_revision=previous,
            images={self.workload.name: group.image},
            previous_images={self.workload.name: before["image"]} if before else {},
            status=status, before=before, after=after, message=message,
        )
        result.extra["pruned"] = pruned + self.half_made_removed
        result.extra["lb_repaired"] = list(self.docker.fixes)
        result.extra["progress"] = list(self.progress.entries)
        if paused or batch_limit(self.params) is not None:
            result.extra["partial"] = partial
        return result
