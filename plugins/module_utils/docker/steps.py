# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""``strategy: steps`` on a Docker host: the planning the backend hands over (progressive.py runs the steps).

A fresh run starts every replica of the new revision, gates them and admits them at weight 0, then runs the
steps from the first. A re-run (the same image, the old revision still serving) reads the share the pool gives
the new revision and goes on after the step that share shows. The outcome decides the end: ``done`` takes the
old revision out as a rolling upgrade does; ``paused`` ends the run as it is (``partial``); ``failed`` weighs the
new revision 0, takes it out (its created containers removed, restarted ones stopped again), gives the old one
its default weight back and fails with the analysis.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ansible_collections.zerodown.rollout.plugins.module_utils.docker import standby as standby_mod
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History, RevisionGroup
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import Replica
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.swap import ReplicaFactory, batch_limit
from ansible_collections.zerodown.rollout.plugins.module_utils.progressive import (
    Step,
    StepRunner,
    analysis_settings,
    current_share,
    parse_steps,
    resume_at,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import ActionResult, InvalidInput, RolloutFailed
from ansible_collections.zerodown.rollout.plugins.module_utils.sampled_counters import SampledCounters, sample_settings


def steps_strategy(params: t.Mapping[str, t.Any]) -> bool:
    """Whether the run upgrades in steps (``strategy: steps``); the steps options without it are refused."""
    strategy = params.get("strategy") or "rolling"
    if strategy != "steps":
        given = [name for name in ("steps", "analysis") if params.get(name) is not None]
        if given:
            raise InvalidInput(f"{' and '.join(given)} appl{'y' if len(given) > 1 else 'ies'} to strategy=steps only "
                               f"(strategy is {strategy}); set strategy: steps or remove {' and '.join(given)}")
        return False
    return True


def check_steps(params: t.Mapping[str, t.Any], balancer: t.Any) -> list[Step]:
    """The steps of the run, refused before anything changes when they cannot work here."""
    steps = parse_steps(params.get("steps"))
    analysis_settings(params.get("analysis"))
    if params.get("analysis") is not None and not any(s.duration for s in steps):
        raise InvalidInput("analysis is given but no step has a duration, so nothing would be judged: give the steps "
                           "to judge a duration, or remove analysis")
    if batch_limit(params) is not None:
        raise InvalidInput("max_batches applies to strategy=rolling; with strategy=steps a pause step ends the run "
                           "part way ({pause: true})")
    if not balancer.routes or not balancer.weighted:
        why = balancer.unweighted_reason()
        raise InvalidInput(f"strategy=steps needs a load balancer that weighs its members (load_balancer.type haproxy "
                           f"or nginx), not {balancer.kind or 'none'}{f': {why}' if why else ''}")
    sample = sample_settings((params.get("analysis") or {}).get("sample"))
    if any(s.duration for s in steps) and not balancer.counted and sample is None:
        raise InvalidInput(f"{balancer.describe()} keeps no per-server request counters, so a step with a duration "
                           "cannot be analysed from real traffic: give analysis.sample (a path each member is sampled "
                           "on during the step), use load_balancer.type=haproxy, or use steps without duration "
                           "(weights and pauses)")
    return steps


def check_own_pool(docker: t.Any, history: History, strategy: str) -> tuple[t.Any, dict[str, t.Any]]:
    """Refuse a pool that also holds members of other hosts or workloads (``docker``: the DockerWorkload): the
    weights of ``strategy`` give shares of the whole pool, and theirs are not this run's to change. Returns the
    view of the pool and its members as read, for the caller to go on from without reading them again."""
    lb = docker.view(history)
    members = lb.members()
    foreign = sorted(n for n in members if not lb.owns(n))
    if foreign:
        raise InvalidInput(f"strategy={strategy} needs a load-balancer pool of its own: {lb.describe()} also holds "
                           f"{', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''} (other hosts or "
                           "workloads), whose weights would make every share wrong; give this host's workload its "
                           "own backend, or use strategy=rolling")
    return lb, members


@dataclass
class IdleReplicas:
    """Old replicas that take no request (:meth:`StepsPlan._idle`), and the revision of the recorded blue-green
    standby (None: no record), to tell the two kinds apart."""

    replicas: list[Replica]
    standby: t.Optional[int]

    @property
    def ids(self) -> set[str]:
        return {r.id for r in self.replicas}

    def describe(self) -> str:
        """``revision 1 (the blue-green standby) and revision(s) 0 (at weight 0 or drained)``, the parts there are."""
        revisions = sorted({r.revision for r in self.replicas})
        others = ", ".join(str(n) for n in revisions if n != self.standby)
        parts = [f"revision {self.standby} (the blue-green standby)"] if self.standby in revisions else []
        if others:
            parts.append(f"revision(s) {others} (at weight 0 or drained)")
        return " and ".join(parts)


class StepsPlan:
    """The steps part of one run of :class:`~.backend.DockerPlatform` (``platform``)."""

    def __init__(self, platform: t.Any, steps: list[Step]) -> None:
        self.platform = platform
        self.steps = steps
        self.change = platform.change
        self.docker = platform.docker
        self.workload = platform.workload

    def check_pool(self, history: History) -> tuple[t.Any, dict[str, t.Any]]:
        return check_own_pool(self.docker, history, "steps")

    def _idle(self, history: History, stale: t.Sequence[Replica], lb: t.Any,
              members: t.Mapping[str, t.Any]) -> IdleReplicas:
        """The replicas of ``stale`` that take no request: the blue-green standby recorded for the current revision
        (standby.py), and any whose members (``members``, read from the view ``lb``) are all at weight 0 or drained
        (a standby whose record a later run dropped, a replica a killed run left half taken out). A steps rollout
        shares the requests between the new revision and the old side: these would get their part of the old side's
        share and serve again, so they are retired before the first step (:meth:`_retire`), as a rolling upgrade
        takes them out with the rest."""
        record = self.docker.standby(history)
        standby = record.revision if record is not None else None

        def takes_none(rep: Replica) -> bool:
            found = [members[n] for n in lb.member_names(rep.name) if n in members]
            return bool(found) and not any(m.takes_requests for m in found)
        return IdleReplicas([r for r in stale if r.revision == standby or takes_none(r)], standby)

    def _retire(self, idle: IdleReplicas, raise_first: t.Sequence[Replica] = ()) -> None:
        """Retire ``idle`` (:meth:`_idle`): ``raise_first`` gets its default weight first (a blue-green switch cut
        off between recording its standby and its weights left the standby serving and the revision switched to at
        weight 0), ``idle`` weight 0, then ``idle`` is drained, taken out, stopped and kept, and the standby's record
        dropped."""
        if not idle.replicas:
            return
        self.platform._shift_to(raise_first, idle.replicas)
        self.change.swap.take_out(idle.replicas)
        standby_mod.drop(self.docker.engine, self.workload.name)
        self.change.progress.note(f"retired {len(idle.replicas)} replica(s) of {idle.describe()}, taking no request "
                                  "(drained, taken out, stopped and kept): the steps share the requests between the "
                                  "serving revision and the new one only")

    def _names(self, reps: t.Sequence[Replica], members: t.Mapping[str, t.Any]) -> list[str]:
        lb = self.docker.balancer
        return [n for r in reps for n in lb.member_names(r.name) if n in members or n in lb.intent]

    def _outline(self) -> str:
        return ", ".join(s.describe() for s in self.steps)

    def fresh(self, history: History, current: RevisionGroup, stale: list[Replica], number: int, image: str,
              start: t.Optional[ReplicaFactory], desired: int, before: dict[str, t.Any], check_result: t.Callable[[str], ActionResult],
              relock: t.Callable[[], ActionResult]) -> ActionResult:
        """An upgrade to revision ``number`` (``image``), every replica from ``start``, in steps. Old replicas that
        take no request (a blue-green standby: :meth:`_idle`) are retired once the new ones are in at weight 0."""
        lb, members = self.check_pool(history)
        idle = self._idle(history, stale, lb, members)
        if self.platform.module.check_mode:
            result = check_result(f"would upgrade {self.workload.describe()} from {current.image} (revision "
                                  f"{current.number}) to {image} (revision {number}) in steps: {desired} new replica(s) "
                                  "at weight 0, "
                                  + (f"then {idle.describe()} would be retired (they take no request and would get "
                                     "a share of the steps), " if idle.replicas else "")
                                  + f"then {self._outline()}")
            result.extra["partial"] = any(s.pause for s in self.steps)
            return result
        if not self.change.holding_lock:
            return relock()
        if start is None:  # only check mode plans without one, and it returned above
            raise RolloutFailed("internal error: a steps upgrade without its replicas; please report it")
        ids, fresh = start(desired)
        new = self.change.swap.take_in(ids, fresh, weight=0)
        self.change.progress.note(f"{len(new)} replica(s) of revision {number} healthy and in the load balancer at "
                                  "weight 0")
        # after the gate: a new revision that does not become healthy leaves the standby as it was
        self._retire(idle, current.running)
        stale = [r for r in stale if r.id not in idle.ids]
        old = sorted(current.running, key=lambda r: r.name) + sorted(stale, key=lambda r: r.name)
        return self._run(number, current.number, new, old, set(fresh), 0, before, image)

    def resume(self, history: History, current: RevisionGroup, stale: list[Replica], desired: int,
               before: dict[str, t.Any], check_result: t.Callable[[str], ActionResult],
               relock: t.Callable[[], ActionResult]) -> ActionResult:
        """The same upgrade run again while the old revision still serves: on from the share the pool gives."""
        lb, members = self.check_pool(history)
        # old replicas taking no request (:meth:`_idle`) get no share, as long as other old ones serve (else the
        # old side is already out: the rollout ends)
        idle = self._idle(history, stale, lb, members)
        if len(idle.replicas) == len(stale):
            idle = IdleReplicas([], idle.standby)
        if not self.change.holding_lock:
            share = self._share(current.running, [r for r in stale if r.id not in idle.ids], members)
            index = resume_at(self.steps, share)
            if self.platform.module.check_mode:
                result = check_result(f"would go on from step {index + 1} of {len(self.steps)} of the steps rollout of "
                                      f"{self.workload.describe()} to revision {current.number} ({current.image}): the "
                                      f"new revision gets {share:.0f} % of the requests now")
                result.extra["partial"] = any(s.pause for s in self.steps[index:])
                return result
            return relock()
        # replicas the interrupted run started and never admitted join at weight 0, as the fresh run admits them
        self.change.swap.take_in_missing(current.running, weight=0)
        if len(current.running) < desired:
            factory = self.platform.replicas_of(current, desired)
            ids, fresh = factory(desired - len(current.running))
            self.change.swap.take_in(ids, fresh, weight=0)
            history = self.docker.load()
            current = history.groups[current.number]
        self._retire(idle)  # the old side that serves keeps the weights the steps gave it
        stale = [r for r in stale if r.id not in idle.ids]
        members = lb.members()
        index = resume_at(self.steps, self._share(current.running, stale, members))
        self.change.progress.note(f"going on from step {index + 1} of {len(self.steps)}")
        previous = max(r.revision for r in stale)
        # the containers this rollout created (after the old revision's): a failed step removes them, as the fresh
        # run would; a retained revision restarted by it (created before) is stopped and kept instead
        newest_old = max((r.created or "" for r in stale), default="")
        fresh = {r.id for r in current.running if (r.created or "") > newest_old}
        return self._run(current.number, previous, sorted(current.running, key=lambda r: r.name),
                         sorted(stale, key=lambda r: r.name), fresh, index, before, current.image)

    def _share(self, new: t.Sequence[Replica], old: t.Sequence[Replica], members: t.Mapping[str, t.Any]) -> float:
        lb = self.docker.balancer
        weights = {n: m.weight for n, m in members.items()}
        return current_share(weights, self._names(new, members), self._names(old, members), lb.default_weight())

    def _run(self, number: int, previous: t.Optional[int], new: list[Replica], old: list[Replica], fresh: set[str],
             start: int, before: dict[str, t.Any], image: str) -> ActionResult:
        lb = self.docker.balancer
        thresholds, interval, on_inconclusive = analysis_settings(self.platform.params.get("analysis"))
        members = lb.members()
        new_names, old_names = self._names(new, members), self._names(old, members)
        sample = sample_settings((self.platform.params.get("analysis") or {}).get("sample"))
        counters = None
        if sample is not None:
            path, requests, timeout = sample
            targets = {n: lb.intent.get(n) or members[n].address for n in new_names + old_names}
            counters = SampledCounters(targets, path, requests, timeout).counters
        runner = StepRunner(lb, new_names, old_names, thresholds, interval, on_inconclusive, self.change.progress.note,
                            counters=counters)
        outcome = runner.run(self.steps, start)
        records = [r.to_dict() for r in outcome.records]
        what = f"{self.workload.describe()} to revision {number} ({image})"
        if outcome.state == "failed":
            lb.set_weights({**{n: 0 for n in new_names}, **{o: None for o in old_names}})
            self.change.swap.take_out([r for r in new if r.id not in fresh])
            self.change.swap.take_out([r for r in new if r.id in fresh], remove=True)
            back = previous if previous is not None else number
            raise RolloutFailed(f"the steps rollout of {what} failed at {outcome.reason}; the new revision was taken "
                                f"out and the old one serves every request again",
                                revision=back, steps=records,
                                analysis=outcome.verdict.to_dict() if outcome.verdict else None)
        if outcome.state == "paused":
            result = self.change.finish(number, previous, before, f"the steps rollout of {what} {outcome.reason}: the "
                                        "new revision serves its share next to the old one; run the same task again "
                                        "to go on, or roll back", paused=True)
        else:
            self.change.swap.take_out(old)
            result = self.change.finish(number, previous, before, f"{self.workload.describe()} upgraded in steps to "
                                        f"revision {number} ({image}): {self._outline()}")
        result.extra["steps"] = records
        return result
