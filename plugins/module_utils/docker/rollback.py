# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The rollback of a Docker workload, planned for :class:`~.backend.DockerPlatform` (``platform``).

To a named revision or the previous one; read-only until the first change, then planned again under the lock.
A blue-green standby of the target that can take every request is switched back to (no container starts);
otherwise, and for every other target, the swap runs start-first: the target's retained containers restarted
(or copies of its newest one), gated, admitted, the others drained and taken out batch by batch.
"""

from __future__ import annotations

import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import Replica
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History, assert_group
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.swap import health_timeout, published_now
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    ActionResult,
    InvalidInput,
    RolloutError,
    RolloutFailed,
)


class RollbackPlan:
    """One rollback of ``platform``'s workload."""

    def __init__(self, platform: t.Any) -> None:
        self.platform = platform
        self.change = platform.change
        self.docker = platform.docker
        self.workload = platform.workload
        self.module = platform.module

    def plan(self, history: History) -> ActionResult:
        """As the upgrade's planning: read-only until the first change, then planned again under the lock."""
        p = self.platform.params
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
        # mid-rollout (other revisions still running: partial, paused or interrupted), the count the rollout aimed at
        others = [r for r in history.replicas if r.running and r.revision != current.number]
        aimed = max((r.desired for r in current.running if r.desired), default=None) if others else None
        desired = aimed or len(current.running) or len(current.replicas)
        if target.number == current.number and len(target.running) >= desired and not [
                r for r in history.replicas if r.running and r.revision != current.number]:
            return self.change.nothing_to_swap(history, current.number, before,
                                               f"{self.workload.describe()} already runs revision {current.number} ({current.image})",
                                               lambda: self.change.locked("rollback", f"revision {current.number} ({current.image})",
                                                                          [current.newest.image_id],
                                                                          lambda: self.plan(self.docker.existing())))
        after = {"revision": target.number, "image": target.image, "replicas": desired}
        # a blue-green standby of the target: the rollback is one switch back, no container starts
        standby = self.docker.standby(history)
        switch_back = (standby is not None and standby.revision == target.number
                       and len(target.running) >= desired)
        how = (f" by switching back to it: it stood by at weight 0, so no container starts, and revision "
               f"{current.number} is drained, taken out and stopped" if switch_back else "")
        if self.module.check_mode:
            unfit = self.unfit_standby(history, target.running, wait=False) if switch_back else []
            if unfit:
                how = f" rolling (start-first), not by switching back: {'; '.join(unfit)}"
            return self.change.result(True, history, target.number, current.number, before, after,
                                      f"would roll {self.workload.describe()} back from revision {current.number} to "
                                      f"revision {target.number} ({target.image}){how}")
        if not self.change.holding_lock:
            return self.change.locked("rollback", f"revision {target.number} ({target.image})",
                                      [current.newest.image_id, target.newest.image_id],
                                      lambda: self.plan(self.docker.existing()))
        # a switch back gives every request to the standby at once: only when each of its replicas can take them;
        # otherwise the rolling rollback (new replicas of it started and gated first), the standby's taken out
        unfit = self.unfit_standby(history, target.running, wait=True) if switch_back else []
        standing = list(target.running) if unfit else []
        if unfit:
            switch_back = False
            self.module.warn(f"revision {target.number} stood by for a switch back but cannot take the requests "
                             f"({'; '.join(unfit)}); rolling back start-first instead: new replicas of it are "
                             f"started and gated, and its standby replicas taken out")
        if self.docker.local_image(target.newest.attrs.get("Image", "")) is None:
            raise RolloutFailed(f"the image of revision {target.number} ({target.image}) is no longer on "
                                f"{self.docker.host()}; a rollback does not pull. Load it, or upgrade to it instead")
        start = self.platform.replicas_of(target, desired)
        old = sorted([r for r in history.replicas if r.running and r.revision != target.number], key=lambda r: r.name)
        # replicas of the target that still run (an unfinished or paused rollout) stay as they are, at their default
        # weight, and the others stop taking requests at once; a target with none running takes the requests batch
        # by batch as it starts, so until then the others serve at their weight (a blue-green standby's weight 0
        # stays 0: it goes out with them). An unfit standby of the target counts as not running, taken out first.
        running = [r for r in target.running if r not in standing]
        old = sorted(standing, key=lambda r: r.name) + old
        desired = max(desired - len(running), 0)
        if running:
            self.platform._shift_to(running, old)
        else:
            self.platform._shift_to(old, (), raise_zero=False)
        with self.platform._failure_says_what(f"rollback of {self.workload.describe()} to revision {target.number}", current.number):
            batches = self.change.swap.run(old, desired, start)
        return self.change.finish(target.number, current.number, before,
                                  f"{self.workload.describe()} rolled back from revision {current.number} ({current.image}) "
                                  f"to revision {target.number} ({target.image})"
                                  + (how if switch_back else f" in {batches} batch(es)"))

    def unfit_standby(self, history: History, standby: t.Sequence[Replica], wait: bool) -> list[str]:
        """Why the ``standby`` replicas (at weight 0) cannot take every request at once, empty when they can: each
        running and not unhealthy, in the load balancer, and (``wait``, under the lock) its member UP there within
        health_timeout. Check mode (not ``wait``) judges the containers and the members' presence only: how a
        driver says UP for a member at weight 0 differs (nginx renders it ``down``), and its wait_up is the test."""
        unfit = [f"container {r.name} is {'unhealthy' if r.running else r.state}"
                 for r in sorted(standby, key=lambda r: r.name) if not r.running or r.health == "unhealthy"]
        if unfit or not standby:
            return unfit or ["no replica of it runs"]
        lb = self.docker.view(history)
        if not lb.routes:
            return []
        timeout = health_timeout(self.platform.params)
        for rep in sorted(standby, key=lambda r: r.name):
            names = [n for n in lb.member_names(rep.name) if n in lb.intent]
            if not names:
                unfit.append(f"container {rep.name} is not in the load balancer")
            for name in names if wait else ():
                try:
                    lb.wait_up(name, timeout, follow=lambda cid=rep.id: published_now(self.docker.engine, cid))
                except RolloutError as err:
                    unfit.append(err.msg)
        return unfit
