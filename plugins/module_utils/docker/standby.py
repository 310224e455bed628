# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The standby of a ``strategy: blue_green`` upgrade on a Docker host, and its record.

After the switch the old revision's containers keep running, members of the pool at weight 0, so that a rollback
is one switch back with no container started. A module does not run in the background, so nothing stops them
when ``standby_seconds`` have passed: the run that switched records the standby (which revision stands by for
which, and until when) on a *standby marker*, a container that is created and never started, named
``zerodown-standby-<workload>`` (as the lock is a container: labels are the one thing the engine keeps for us,
and a running container's labels cannot change). Like the lock, it never carries ``zerodown.workload``: nothing
that lists the workload's replicas sees it. A later ``image_upgrade`` retires an expired standby; rollout_info
and rollout_wait report it.

A marker is *valid* only while what it says is true: its standby revision runs and the revision it stands by for
is the current one. Any changing run removes a marker that is no longer valid (:func:`drop_stale`).
"""

from __future__ import annotations

import datetime
import typing as t
from dataclasses import dataclass

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.engine import DockerEngine, EngineNotFound
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutFailed

STANDBY_PREFIX = "zerodown-standby-"
LABEL_STANDBY = "zerodown.standby"
LABEL_REVISION = "zerodown.standby.revision"
LABEL_FOR = "zerodown.standby.for"
LABEL_SINCE = "zerodown.standby.since"
LABEL_UNTIL = "zerodown.standby.until"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def marker_name(workload: str) -> str:
    """The standby marker's container name for ``workload``."""
    return f"{STANDBY_PREFIX}{workload}"


def _iso(when: datetime.datetime) -> str:
    return when.astimezone(datetime.timezone.utc).strftime(TIME_FORMAT)


def _parse(text: str) -> t.Optional[datetime.datetime]:
    try:
        return datetime.datetime.strptime(text, TIME_FORMAT).replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class Standby:
    """Revision ``revision`` stands by (running, at weight 0) for revision ``serving`` from ``since`` to ``until``."""

    workload: str
    revision: int
    serving: int
    since: datetime.datetime
    until: datetime.datetime

    @classmethod
    def starting(cls, workload: str, revision: int, serving: int, seconds: float,
                 now: t.Optional[datetime.datetime] = None) -> "Standby":
        """A standby of ``seconds`` from ``now`` (whole seconds: the record keeps no fraction, so it rounds up)."""
        start = (now or utc_now()).replace(microsecond=0)
        return cls(workload, revision, serving, start, start + datetime.timedelta(seconds=-(-seconds // 1)))

    @classmethod
    def from_labels(cls, labels: t.Optional[t.Mapping[str, str]]) -> t.Optional["Standby"]:
        """The standby a marker's labels record; None when they are not a marker's (or are damaged)."""
        labels = labels or {}
        revision, serving = labels.get(LABEL_REVISION, ""), labels.get(LABEL_FOR, "")
        since, until = _parse(labels.get(LABEL_SINCE, "")), _parse(labels.get(LABEL_UNTIL, ""))
        if not labels.get(LABEL_STANDBY) or not revision.isdigit() or not serving.isdigit() or since is None \
                or until is None:
            return None
        return cls(labels[LABEL_STANDBY], int(revision), int(serving), since, until)

    def to_labels(self) -> dict[str, str]:
        return {LABEL_STANDBY: self.workload, LABEL_REVISION: str(self.revision), LABEL_FOR: str(self.serving),
                LABEL_SINCE: _iso(self.since), LABEL_UNTIL: _iso(self.until)}

    def expired(self, now: t.Optional[datetime.datetime] = None) -> bool:
        """Whether its ``standby_seconds`` have passed (a run retires it then)."""
        return (now or utc_now()) >= self.until

    def to_dict(self, now: t.Optional[datetime.datetime] = None) -> dict[str, t.Any]:
        """What results and statuses report: ``revision`` (standing by), ``serving``, ``until``, ``expired``."""
        return {"revision": self.revision, "serving": self.serving, "since": _iso(self.since),
                "until": _iso(self.until), "expired": self.expired(now)}

    def describe(self, now: t.Optional[datetime.datetime] = None) -> str:
        when = "since" if self.expired(now) else "until"
        state = "expired " if self.expired(now) else ""
        return (f"revision {self.revision} stands by at weight 0 ({state}standby {when} "
                f"{_iso(self.until)})")


def valid_for(standby: t.Optional[Standby], running: t.Iterable[int], current: t.Optional[int]) -> bool:
    """Whether ``standby`` still says what is true: its revision runs (revisions with a running replica:
    ``running``), and the revision it stands by for is ``current``."""
    return (standby is not None and current is not None and standby.serving == current
            and standby.revision != current and standby.revision in set(running))


def read(engine: DockerEngine, workload: str) -> t.Optional[tuple[str, t.Optional[Standby]]]:
    """The marker of ``workload`` as (container id, the standby it records or None when damaged); None when the
    workload has no marker."""
    name = marker_name(workload)
    try:
        attrs = engine.inspect_container(name, f"inspect the standby marker {name}")
    except EngineNotFound:
        return None
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    standby = Standby.from_labels(labels)
    if standby is not None and standby.workload != workload:
        standby = None
    return attrs["Id"], standby


def write(engine: DockerEngine, standby: Standby, images: t.Sequence[str]) -> None:
    """Record ``standby`` (replacing any marker of the workload). ``images``: image ids on the engine, tried in turn
    for the marker (never pulled, never started: the image is only what ``create`` requires)."""
    drop(engine, standby.workload)
    name = marker_name(standby.workload)
    candidates = [i for i in dict.fromkeys(images) if i]
    for index, image in enumerate(candidates):
        config = {"Image": image, "Labels": standby.to_labels(), "Entrypoint": ["/zerodown-standby"], "Cmd": [],
                  "HostConfig": {"NetworkMode": "none", "RestartPolicy": {"Name": "no"}}}
        try:
            if engine.create_unless_taken(config, name, f"create the standby marker {name}") is None:
                raise RolloutFailed(f"the standby marker {name} was created by another run meanwhile; run the task "
                                    "again")
            return
        except EngineNotFound:
            if index == len(candidates) - 1:
                raise
    raise RolloutFailed(f"no image of Docker workload {standby.workload!r} is on the engine to create the standby "
                        f"marker {name} from")


def drop(engine: DockerEngine, workload: str) -> bool:
    """Remove the marker of ``workload``; whether there was one."""
    found = read(engine, workload)
    if found is None:
        return False
    # with its anonymous volumes (one per VOLUME of the app image it was created from; it never started and
    # nothing else mounts them)
    engine.remove(found[0], volumes=True, what=f"remove the standby marker {marker_name(workload)}")
    return True
