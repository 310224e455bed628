# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Revisions of a Docker workload, worked out from its containers' labels and states.

* A revision number is given once, when containers of a new image (or a rebuilt tag) are created:
  the highest number any container of the workload carries, plus one. It is never renumbered: a rollback,
  or an upgrade to the image and configuration of a retained revision, restarts that revision's containers
  and it is current again under its own number.
* The *current* revision is the one whose containers run (if several run, after an interrupted
  rollout, the one started last). While a blue-green standby is recorded (standby.py) and exactly its two
  revisions run, the one it stands by for is current, whichever started last: a standby container that
  restarts (a crash under a restart policy, ``docker restart``, a daemon restart) does not make its revision
  current.
* The *previous* revision is the one whose containers were stopped last: the one that was current
  before the current one, what a rollback without ``to_revision`` goes back to. Two rollbacks in a
  row therefore toggle between two revisions, as two ``kubectl rollout undo`` do.
* Retention keeps the current revision and the ``retain`` revisions stopped most recently.
* An upgrade to the image and configuration of a retained revision restarts that revision
  (:func:`reusable`) rather than creating one more.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import (
    LABEL_CAUSE,
    LABEL_CREATED,
    LABEL_REPLICAS,
    LABEL_REVISION,
    Replica,
    clone_config,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import Revision, WorkloadNotFound


@dataclass
class RevisionGroup:
    """The containers of one revision."""

    number: int
    replicas: list[Replica] = field(default_factory=list)

    @property
    def image(self) -> str:
        return self.newest.image if self.replicas else ""

    @property
    def newest(self) -> Replica:
        return max(self.replicas, key=lambda r: (r.created or "", r.started_at))

    @property
    def running(self) -> list[Replica]:
        return [r for r in self.replicas if r.running]

    @property
    def stopped(self) -> list[Replica]:
        """Retained (not running) containers, most recently stopped first."""
        return sorted((r for r in self.replicas if not r.running), key=lambda r: r.finished_at, reverse=True)

    @property
    def last_started(self) -> str:
        return max((r.started_at for r in self.replicas), default="")

    @property
    def last_stopped(self) -> str:
        return max((r.finished_at for r in self.replicas if not r.running), default="")

    @property
    def created(self) -> t.Optional[str]:
        return min((r.created for r in self.replicas if r.created), default=None)


class History:
    """All revisions of one workload."""

    def __init__(self, replicas: t.Sequence[Replica], standby: t.Optional[tuple[int, int]] = None) -> None:
        """``standby``: (standby revision, revision it stands by for) as the workload's standby marker records,
        or None."""
        groups: dict[int, RevisionGroup] = {}
        for rep in replicas:
            groups.setdefault(rep.revision, RevisionGroup(rep.revision)).replicas.append(rep)
        self.groups = dict(sorted(groups.items()))
        self.replicas = list(replicas)
        self.standby = standby

    @property
    def exists(self) -> bool:
        return bool(self.replicas)

    @property
    def running_groups(self) -> list[RevisionGroup]:
        return [g for g in self.groups.values() if g.running]

    @property
    def current(self) -> t.Optional[RevisionGroup]:
        running = self.running_groups
        pool = running or list(self.groups.values())
        if not pool:
            return None
        if self.standby is not None:
            revision, serving = self.standby
            # the recorded standby and the revision it stands by for run, and nothing else: the record says which
            # serves (StartedAt does not: a standby container that restarted started last)
            if revision != serving and {g.number for g in running} == {revision, serving}:
                return self.groups[serving]
        key = (lambda g: max(r.started_at for r in g.running)) if running else (lambda g: g.last_started)
        return max(pool, key=key)

    @property
    def previous(self) -> t.Optional[RevisionGroup]:
        current = self.current
        others = [g for g in self.groups.values() if current is None or g.number != current.number]
        # a revision that still serves next to the current one (an unfinished or paused rollout from it) comes first
        serving = [g for g in others if g.running]
        if serving:
            return max(serving, key=lambda g: (max(r.started_at for r in g.running), g.number))
        others = [g for g in others if g.stopped]
        if not others:
            return None
        return max(others, key=lambda g: (g.last_stopped, g.number))

    @property
    def next_number(self) -> int:
        return max(self.groups, default=0) + 1

    def to_prune(self, retain: int, keep: t.Sequence[int] = ()) -> list[Replica]:
        """Containers of the revisions beyond ``retain`` (never the current one nor those in ``keep``)."""
        current = self.current
        keep_set = set(keep)
        if current is not None:
            keep_set.add(current.number)
        old = [g for g in self.groups.values() if g.number not in keep_set and not g.running]
        old.sort(key=lambda g: (g.last_stopped, g.number), reverse=True)
        out: list[Replica] = []
        for group in old[retain:]:
            out.extend(group.replicas)
        return out

    def revisions(self, workload: str) -> list[Revision]:
        """The history in the model's shape, oldest first."""
        current = self.current
        out = []
        for number, group in self.groups.items():
            out.append(Revision(
                number=number,
                images={workload: group.image},
                current=current is not None and number == current.number,
                change_cause=group.newest.change_cause,
                created=group.created,
                source=", ".join(sorted(r.name for r in group.replicas)),
                replicas=len(group.running),
            ))
        return out


def _comparable(attrs: dict[str, t.Any], image: str,
                image_config: t.Callable[[str], t.Optional[dict[str, t.Any]]]) -> tuple[t.Any, ...]:
    """What a container copied from ``attrs`` with ``image`` would be created with, bookkeeping labels
    (revision, creation time, change cause, replicas) left out: equal for two containers of the same
    configuration, whichever revision they belong to."""
    config, later = clone_config(attrs, image_config(attrs.get("Image", "")), image, 0, None)
    labels = config.get("Labels") or {}
    config["Labels"] = {k: v for k, v in labels.items()
                        if k not in (LABEL_REVISION, LABEL_CREATED, LABEL_CAUSE, LABEL_REPLICAS)}
    return config, sorted(later)


def reusable(history: History, current: RevisionGroup, image: str, image_id: t.Optional[str],
             image_config: t.Callable[[str], t.Optional[dict[str, t.Any]]]) -> t.Optional[RevisionGroup]:
    """The retained revision whose containers are what a new revision of ``image`` (image id ``image_id``) would
    run: stopped, of that image reference and image id, configured as a copy of the current revision's newest
    container with ``image`` would be. An upgrade restarts it instead of creating one more revision (as Kubernetes
    reuses the ReplicaSet whose template matches). ``image_config(image id)``: the image's own ``Config``, which
    a copy leaves out (None when unknown)."""
    if not image_id:
        return None
    candidates = [g for g in history.groups.values()
                  if g.number != current.number and g.replicas and not g.running and g.image == image
                  and all(r.image_id == image_id for r in g.replicas)]
    if not candidates:
        return None
    wanted = _comparable(current.newest.attrs, image, image_config)
    for group in sorted(candidates, key=lambda g: (g.last_stopped, g.number), reverse=True):
        if all(_comparable(r.attrs, image, image_config) == wanted for r in group.replicas):
            return group
    return None


def assert_group(group: t.Optional[RevisionGroup]) -> None:
    """Narrow an Optional current revision (a workload that exists always has one)."""
    if group is None:
        raise WorkloadNotFound("the workload has no containers")
