# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""``strategy: blue_green`` on a Docker host: the whole new set at weight 0, one switch, the old set as a standby.

A fresh run starts every replica of the new revision, gates them and admits them at weight 0 (as steps.py does),
records the standby (standby.py), then switches: the new members get their default weight first (for that instant
both revisions serve, so the pool is never without a weighed member), then the old ones weight 0. The old
revision keeps running at weight 0, the *standby*, until a later run retires it: one that finds its
``standby_seconds`` passed, or is given ``promote: true``. ``standby_seconds: 0``, or ``promote: true`` given to
the switching run itself, retires it at the end of the switching run. A rollback inside the window is a switch back (backend.py: no container starts).

A re-run of the same upgrade (the new revision current, another still running) converges from what it finds
(:func:`plan_rerun`): a switch that did not end is ended, a standby nobody recorded or whose time has passed is
retired, and a valid one is left as it is (unchanged).
"""

from __future__ import annotations

import datetime
import math
import typing as t
from dataclasses import dataclass, field

from ansible_collections.zerodown.rollout.plugins.module_utils.docker import standby as standby_mod
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import Replica
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History, RevisionGroup
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.steps import check_own_pool
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.swap import ReplicaFactory, batch_limit
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import ActionResult, InvalidInput, RolloutFailed

DEFAULT_STANDBY_SECONDS = 300.0
# the longest standby: its end must be a date the record can hold (an infinite or huge one overflows it)
MAX_STANDBY_SECONDS = 10 * 366 * 24 * 3600
OPTIONS = ("standby_seconds", "promote")


def blue_green_strategy(params: t.Mapping[str, t.Any]) -> bool:
    """Whether the run upgrades blue-green (``strategy: blue_green``); its options without it are refused."""
    strategy = params.get("strategy") or "rolling"
    if strategy != "blue_green":
        given = [name for name in OPTIONS if params.get(name) is not None]
        if given:
            raise InvalidInput(f"{' and '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to strategy=blue_green "
                               f"only (strategy is {strategy}); set strategy: blue_green or remove "
                               f"{' and '.join(given)}")
        return False
    return True


def check_blue_green(params: t.Mapping[str, t.Any], balancer: t.Any) -> float:
    """The seconds the old revision stands by, the run's options refused before anything changes when they cannot
    work here. (``steps`` and ``analysis`` with this strategy are refused by steps.steps_strategy.)"""
    seconds = params.get("standby_seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                or not math.isfinite(seconds) or seconds < 0 or seconds > MAX_STANDBY_SECONDS):
        raise InvalidInput(f"standby_seconds must be zero or more seconds, at most {MAX_STANDBY_SECONDS} (10 years; "
                           f"0: no standby, the old revision is taken out at the end of the switching run), got "
                           f"{seconds!r}")
    if batch_limit(params) is not None:
        raise InvalidInput("max_batches applies to strategy=rolling; strategy=blue_green switches every replica at "
                           "once (remove max_batches, or use strategy=steps for a part of the traffic)")
    if not balancer.routes or not balancer.weighted:
        raise InvalidInput(f"strategy=blue_green needs a load balancer that weighs its members (load_balancer.type "
                           f"haproxy or nginx), not {balancer.kind or 'none'}")
    return float(seconds if seconds is not None else DEFAULT_STANDBY_SECONDS)


@dataclass
class Rerun:
    """What a re-run of the same blue-green upgrade does: end the ``switch`` (new revision to its default weight,
    the others to 0) and record ``record`` as the standby, and ``retire`` revisions (drain, out, stop, kept)."""

    switch: bool = False
    record: t.Optional[int] = None
    retire: list[int] = field(default_factory=list)
    reason: str = ""

    @property
    def changes(self) -> bool:
        return self.switch or self.record is not None or bool(self.retire)


def plan_rerun(serving: t.Sequence[int], previous: t.Optional[int], switched: bool,
               standby: t.Optional[standby_mod.Standby], promote: bool, seconds: float,
               now: t.Optional[datetime.datetime] = None) -> Rerun:
    """What a re-run does, the new revision current and the revisions ``serving`` (running, other than it) next to
    it; ``previous``: the one of them that was current last (the standby a switch leaves). ``switched``: the pool
    gives every request to the new revision; ``standby``: the valid standby record (standby.valid_for), or None."""
    others = sorted(set(serving))
    if not others:
        return Rerun(reason="no other revision runs")
    if not switched:
        keep = standby.revision if standby is not None else previous
        if seconds <= 0 or promote or keep is None:
            return Rerun(switch=True, retire=others,
                         reason="the switch had not ended; ending it, and no standby "
                                f"({'promote: true' if promote else 'standby_seconds=0'})")
        return Rerun(switch=True, record=None if standby is not None else keep,
                     retire=[n for n in others if n != keep],
                     reason=f"the switch had not ended; ending it, revision {keep} to stand by")
    if standby is None:
        return Rerun(retire=others, reason="revision(s) " + ", ".join(map(str, others)) + " ran at weight 0 with "
                     "no standby recorded; retiring them")
    if promote:
        return Rerun(retire=others, reason=f"promote: retiring the standby revision {standby.revision}")
    if standby.expired(now):
        return Rerun(retire=others, reason=f"the standby of revision {standby.revision} expired at "
                                           f"{standby.to_dict(now)['until']}; retiring it")
    extra = [n for n in others if n != standby.revision]
    if extra:
        return Rerun(retire=extra, reason="retiring revision(s) " + ", ".join(map(str, extra)) + ", which are not "
                                          "the standby")
    return Rerun(reason=f"{standby.describe(now)}; promote: true retires it now")


class BlueGreenPlan:
    """The blue-green part of one run of :class:`~.backend.DockerPlatform` (``platform``)."""

    def __init__(self, platform: t.Any, seconds: float) -> None:
        self.platform = platform
        self.seconds = seconds
        self.change = platform.change
        self.docker = platform.docker
        self.workload = platform.workload
        # promote: true on the switching run keeps no standby, as standby_seconds: 0 (there is nothing to wait for)
        self.promote = bool(platform.params.get("promote"))

    def _names(self, reps: t.Sequence[Replica]) -> list[str]:
        lb = self.docker.balancer
        return [n for r in reps for n in lb.member_names(r.name) if n in lb.intent]

    def _standing(self) -> str:
        if self.promote:
            return "is taken out at once (promote: true)"
        if self.seconds <= 0:
            return "is taken out at once (standby_seconds=0)"
        return f"stands by at weight 0 for {self.seconds:g}s (or until a run with promote: true)"

    def fresh(self, history: History, current: RevisionGroup, stale: list[Replica], number: int, image: str,
              start: t.Optional[ReplicaFactory], desired: int, before: dict[str, t.Any],
              check_result: t.Callable[[str], ActionResult], relock: t.Callable[[], ActionResult]) -> ActionResult:
        """An upgrade to revision ``number`` (``image``), every replica from ``start``, blue-green."""
        check_own_pool(self.docker, history, "blue_green")
        standby = self.docker.standby(history)
        before = dict(before, standby=standby.revision if standby is not None else None)
        if self.platform.module.check_mode:
            return check_result(f"would upgrade {self.workload.describe()} from {current.image} (revision "
                                f"{current.number}) to {image} (revision {number}) blue-green: {desired} new "
                                f"replica(s) at weight 0, then every request switched at once; revision "
                                f"{current.number} {self._standing()}")
        if not self.change.holding_lock:
            return relock()
        if start is None:  # only check mode plans without one, and it returned above
            raise RolloutFailed("internal error: a blue-green upgrade without its replicas; please report it")
        ids, fresh = start(desired)
        new = self.change.swap.take_in(ids, fresh, weight=0)
        self.change.progress.note(f"{len(new)} replica(s) of revision {number} healthy and in the load balancer at "
                                  "weight 0")
        record = current.number if self.seconds > 0 and not self.promote else None
        retire = list(stale) if record is not None else list(stale) + list(current.running)
        return self._converge(number, current.number, new, list(current.running) + list(stale), record, retire,
                              before, f"{self.workload.describe()} upgraded blue-green from revision {current.number} "
                                      f"({current.image}) to revision {number} ({image})")

    def resume(self, history: History, current: RevisionGroup, stale: list[Replica], desired: int,
               before: dict[str, t.Any], check_result: t.Callable[[str], ActionResult],
               relock: t.Callable[[], ActionResult]) -> ActionResult:
        """The same upgrade run again while another revision still runs: end an unfinished switch, retire a standby
        whose time has passed (or with ``promote``), or leave a valid one as it is."""
        _lb, members = check_own_pool(self.docker, history, "blue_green")
        standby = self.docker.standby(history)
        switched = len(current.running) >= desired and self._switched(current.running, stale, members)
        previous = history.previous
        plan = plan_rerun([r.revision for r in stale], previous.number if previous is not None else None, switched,
                          standby, self.promote, self.seconds)
        before = dict(before, standby=standby.revision if standby is not None else None)
        what = f"{self.workload.describe()} revision {current.number} ({current.image})"
        if not plan.changes:
            result = self.change.nothing_to_swap(history, current.number, before,
                                                 f"{what} serves every request; {plan.reason}", relock)
            result.extra["standby"] = standby.to_dict() if standby is not None else None
            return result
        if self.platform.module.check_mode:
            return check_result(f"would converge the blue-green upgrade of {what}: {plan.reason}")
        if not self.change.holding_lock:
            return relock()
        # replicas an interrupted run started and never admitted join at weight 0 (nothing unswitched takes requests)
        self.change.swap.take_in_missing(current.running, weight=None if switched else 0)
        running = list(current.running)
        if len(running) < desired:
            factory = self.platform.replicas_of(current, desired)
            ids, fresh = factory(desired - len(running))
            running += self.change.swap.take_in(ids, fresh, weight=None if switched else 0)
        retire = [r for r in stale if r.revision in plan.retire]
        return self._converge(current.number, previous.number if previous is not None else None, running, stale,
                              plan.record, retire, before, f"converged the blue-green upgrade of {what}: {plan.reason}",
                              switch=plan.switch)

    def _switched(self, new: t.Sequence[Replica], old: t.Sequence[Replica], members: t.Mapping[str, t.Any]) -> bool:
        """Whether the pool gives every request to ``new``: each of its members in, serving, at the default weight,
        and each member of ``old`` at weight 0 or not serving."""
        lb = self.docker.balancer
        default = lb.default_weight()
        for rep in new:
            member = next((members[n] for n in lb.member_names(rep.name) if n in members), None)
            if member is None or not member.serving or (member.weight is not None and member.weight != default):
                return False
        for rep in old:
            for name in lb.member_names(rep.name):
                member = members.get(name)
                if member is not None and member.takes_requests:
                    return False
        return True

    def _converge(self, number: int, previous: t.Optional[int], new: t.Sequence[Replica], old: t.Sequence[Replica],
                  record: t.Optional[int], retire: t.Sequence[Replica], before: dict[str, t.Any], message: str,
                  switch: bool = True) -> ActionResult:
        """Record ``record`` as the standby, switch every request to ``new`` (``old`` to weight 0), retire
        ``retire``, and end the run."""
        lb = self.docker.balancer
        if record is not None:
            images = [r.image_id for r in new] + [r.image_id for r in old if r.revision == record]
            standby_mod.write(self.docker.engine,
                              standby_mod.Standby.starting(self.workload.name, record, number, self.seconds), images)
        if switch:
            # raise first, lower second: for the instant between the two both revisions serve, never neither (a kill
            # there leaves both serving, and a re-run ends the switch)
            lb.set_weights({n: None for n in self._names(new)})
            lb.set_weights({n: 0 for n in self._names(old)})
            self.change.progress.note(f"switched: revision {number} takes every request, revision(s) "
                                      f"{', '.join(sorted({str(r.revision) for r in old}))} none")
        if retire:
            self.change.swap.take_out(list(retire))
            self.change.progress.note(f"retired revision(s) {', '.join(sorted({str(r.revision) for r in retire}))}: "
                                      "drained, taken out of the load balancer, stopped and kept")
        result = self.change.finish(number, previous, before, message)
        standby = result.status.extra.get("standby") if result.status is not None else None
        result.extra["standby"] = standby
        if result.after is not None:
            result.after["standby"] = standby["revision"] if standby else None
        if standby:
            result.message += (f"; revision {standby['revision']} stands by at weight 0 until {standby['until']} "
                               "(a rollback switches back to it; promote: true retires it)")
        return result
