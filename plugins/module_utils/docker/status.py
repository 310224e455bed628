# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The rollout status of a Docker workload, from what the backend read: its containers (a :class:`History`) and,
with a load balancer that routes, the pool's members. Pure: no engine or load balancer call.

* *updated*: the running replicas of the revision asked about (the current one by default); *ready*: those
  healthy (or running, without a HEALTHCHECK); *available*: those ready and UP in the load balancer (without
  one, the ready ones).
* *desired*: the updated ones, or, while replicas of other revisions still run (a swap in progress or
  interrupted), what the run that created the revision aimed for (``zerodown.replicas``).
* failed when an updated replica is unhealthy, restarting or dead, or none runs; progressing while other
  revisions run, while the pool differs from the workload (``LoadBalancerOutOfStep``) or some updated replica is
  not available yet; complete otherwise.
* a blue-green *standby* (standby.py: the old revision running at weight 0 after the switch, recorded by the run
  that switched) is not "another revision running": the status is complete, and says the standby (``standby``).
"""

from __future__ import annotations

import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Member, Scope, server_name
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.lock import LockOwner
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.standby import Standby
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    STATE_COMPLETE,
    STATE_FAILED,
    STATE_PROGRESSING,
    RolloutStatus,
)


def implied_intent(history: History, scope: Scope, members: t.Mapping[str, Member]) -> dict[str, str]:
    """The members the workload implies for the pool (member name -> address): every running replica with an
    address that is already a member (under its name in ``scope`` or its untagged one), or that is ready and of
    the current revision while no other revision runs. A replica an interrupted run started and never gated stays
    out, and so does an old one it had taken out and was stopping. Mid-rollout (other revisions still running), a
    replica of the current revision that is not a member yet stays out too: the run that goes on admits it as its
    strategy does (a rolling one at full weight, a steps one at weight 0, so that a share is never given unjudged)."""
    intent = {scope.name(rep.name): rep.address for rep in history.replicas
              if rep.running and rep.address and _is_member(rep, scope, members)}
    intent.update((scope.name(rep.name), rep.address) for rep in joining_once_ready(history, scope, members)
                  if rep.ready)
    return intent


def _is_member(rep: t.Any, scope: Scope, members: t.Mapping[str, Member]) -> bool:
    return scope.name(rep.name) in members or server_name(rep.name) in members


def joining_once_ready(history: History, scope: Scope, members: t.Mapping[str, Member]) -> list[t.Any]:
    """The running replicas with an address that are not members yet and join the pool once ready (implied_intent):
    those of the current revision, while no other revision runs."""
    current = history.current if history.exists else None
    if current is None or any(r.running and r.revision != current.number for r in history.replicas):
        return []
    return [rep for rep in current.running if rep.address and not _is_member(rep, scope, members)]


def rollout_status(history: History, workload: str, target: t.Optional[int] = None,
                   members: t.Optional[t.Mapping[str, Member]] = None, scope: t.Optional[Scope] = None,
                   diverged: t.Sequence[str] = (), standby: t.Optional[Standby] = None) -> RolloutStatus:
    """The status of revision ``target`` (None: the current one) of ``workload`` (its name).

    ``members``: the pool as read, with ``scope`` naming this run's members in it; None when no load balancer
    routes (the null driver), and then a ready replica is available. ``diverged``: what differs between the pool
    and the workload (``Balancer.divergence``), which keeps a rollout that is otherwise done progressing.
    ``standby``: the blue-green standby recorded for the workload (valid: standby.valid_for), if any.
    """
    current = history.current
    number = target if target is not None else (current.number if current else None)
    group = history.groups.get(number) if number is not None else None
    running_all = [r for r in history.replicas if r.running]
    updated = group.running if group else []
    ready = [r for r in updated if r.ready]
    if members is None or scope is None:
        available = ready
    else:
        available = [r for r in ready
                     if (m := members.get(scope.name(r.name)) or members.get(server_name(r.name))) is not None
                     and m.up]
    others = [r for r in running_all if group is None or r.revision != group.number]
    standing_by = standing_by_replicas(others, standby, number, members, scope)
    others = [r for r in others if r.id not in {s.id for s in standing_by}]
    desired = len(updated)
    if others:
        # mid-swap: the run that created this revision recorded how many replicas it aimed for
        desired = max((r.desired for r in updated if r.desired), default=len(updated) + len(others))
    name = workload
    extra: dict[str, t.Any] = {
        "replicas": [r.to_dict() for r in sorted(history.replicas, key=lambda r: (r.revision, r.name)) if r.running],
        "image": group.image if group else None,
    }
    if standing_by and standby is not None:
        extra["standby"] = dict(standby.to_dict(), replicas=len(standing_by))
    broken = [r for r in updated if r.health == "unhealthy" or r.state in ("restarting", "dead")]
    counts = dict(desired=desired, updated=len(updated), ready=len(ready), available=len(available),
                  revision=number)
    if broken:
        return RolloutStatus(**counts, state=STATE_FAILED, reason="ReplicaUnhealthy", extra=extra,
                             message=f"Docker workload {name!r} revision {number}: "
                                     f"{', '.join(r.name for r in broken)} unhealthy ({broken[0].health or broken[0].state})")
    if not updated:
        return RolloutStatus(**counts, state=STATE_FAILED, reason="NoReplicaRunning", extra=extra,
                             message=f"Docker workload {name!r}: no container of revision {number} is running")
    if others:
        return RolloutStatus(**counts, state=STATE_PROGRESSING, extra=extra,
                             message=f"Waiting for Docker workload {name!r} rollout to finish: {len(updated)} "
                                     f"replicas run revision {number}, {len(others)} still run revision(s) "
                                     f"{', '.join(sorted({str(r.revision) for r in others}))}...")
    if diverged:
        extra["lb_divergence"] = list(diverged)
        return RolloutStatus(**counts, state=STATE_PROGRESSING, reason="LoadBalancerOutOfStep", extra=extra,
                             message=f"Docker workload {name!r} revision {number}: the load balancer does not "
                                     f"hold what the workload runs ({'; '.join(diverged)}); a run of "
                                     "image_upgrade or rollback with the same options repairs it")
    if len(available) < len(updated):
        # ready, but the load balancer does not send them requests yet (not UP, or not a member): name them
        unserved = sorted(r.name for r in ready if r.id not in {a.id for a in available})
        return RolloutStatus(**counts, state=STATE_PROGRESSING, extra=extra,
                             message=f"Waiting for Docker workload {name!r} rollout to finish: {len(available)} of "
                                     f"{len(updated)} updated replicas are available"
                                     + (f" (not UP on the load balancer yet: {', '.join(unserved)})" if unserved else "")
                                     + "...")
    return RolloutStatus(**counts, state=STATE_COMPLETE, extra=extra,
                         message=f"Docker workload {name!r} successfully rolled out (revision {number}, "
                                 f"{len(updated)} replicas)"
                                 + (f"; {standby.describe()}" if standing_by and standby is not None else ""))


def standing_by_replicas(others: t.Sequence[t.Any], standby: t.Optional[Standby], number: t.Optional[int],
                         members: t.Optional[t.Mapping[str, Member]], scope: t.Optional[Scope]) -> list[t.Any]:
    """The replicas of ``others`` (running, of other revisions than ``number``) that are the blue-green standby:
    of the standby's revision, standing by for ``number``, and, where the pool is read, taking no request (weight 0,
    or drained). A standby whose switch did not end (a member still weighed) is not one: the rollout goes on."""
    if standby is None or number is None or standby.serving != number:
        return []
    reps = [r for r in others if r.revision == standby.revision]
    if members is not None and scope is not None:
        for rep in reps:
            member = members.get(scope.name(rep.name)) or members.get(server_name(rep.name))
            if member is not None and member.takes_requests:
                return []
    return reps


def note_lock(status: RolloutStatus, container: str, labels: t.Optional[dict[str, str]]) -> None:
    """Add to ``status`` that lock container ``container`` (with these labels) is held: a run changing the workload
    right now, or one that died holding the lock, is worth knowing about (``status.lock`` and the message)."""
    owner = LockOwner.from_labels(labels)
    status.extra["lock"] = owner.to_dict() if owner else {"container": container}
    status.message += f"; locked by {owner.describe() if owner else 'a run'} (lock container {container})"
