# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The per-workload lock of the Docker backend: one changing run at a time per workload and engine.

The lock is a container that is created and never started, named ``zerodown-lock-<workload>``. Container
names are unique per engine, so creating it is atomic: the engine answers 409 Conflict when it exists.
It carries the ``zerodown.lock`` label and labels naming its owner (host, pid and that process's start
time, boot and pid namespace), never ``zerodown.workload``: nothing that lists a workload's replicas
sees it.

A lock is *stale* when its owner ran on this same host (same host name, machine, boot and pid
namespace) and that process is gone, or the pid now belongs to a process that started at another
time. A stale lock is taken over; any other lock is waited for, up to ``lock_timeout``.

:class:`WorkloadLock` takes its engine calls as functions (tested with a fake engine); :func:`engine_lock`
gives it those of a :class:`DockerEngine`.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import socket
import time
import typing as t
from dataclasses import asdict, dataclass

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.engine import DockerEngine, EngineNotFound
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutFailed, WorkloadRef

LOCK_PREFIX = "zerodown-lock-"
LABEL_LOCK = "zerodown.lock"
LABEL_HOST = "zerodown.lock.host"
LABEL_PID = "zerodown.lock.pid"
LABEL_PID_START = "zerodown.lock.pid-start"
LABEL_BOOT_ID = "zerodown.lock.boot-id"
LABEL_MACHINE = "zerodown.lock.machine"
LABEL_PID_NS = "zerodown.lock.pid-ns"
LABEL_OPERATION = "zerodown.lock.operation"
LABEL_TARGET = "zerodown.lock.target"
LABEL_SINCE = "zerodown.lock.since"

# Polling a held lock: start short (a run often ends within seconds), grow to at most this.
POLL_FIRST = 0.5
POLL_MAX = 2.0
PROC = "/proc"


def lock_name(workload: str) -> str:
    """The lock container's name for ``workload``."""
    return f"{LOCK_PREFIX}{workload}"


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or wants) a workload's lock. Empty strings are facts the owner's system did not give."""

    host: str
    pid: int
    pid_start: str = ""
    boot_id: str = ""
    machine: str = ""
    pid_ns: str = ""
    operation: str = ""
    target: str = ""
    since: str = ""

    def to_labels(self, workload: str) -> dict[str, str]:
        """The lock container's labels."""
        return {
            LABEL_LOCK: workload, LABEL_HOST: self.host, LABEL_PID: str(self.pid), LABEL_PID_START: self.pid_start,
            LABEL_BOOT_ID: self.boot_id, LABEL_MACHINE: self.machine, LABEL_PID_NS: self.pid_ns,
            LABEL_OPERATION: self.operation, LABEL_TARGET: self.target, LABEL_SINCE: self.since,
        }

    @classmethod
    def from_labels(cls, labels: t.Optional[dict[str, str]]) -> t.Optional["LockOwner"]:
        """The owner recorded on a lock container; None when the labels are not a lock's."""
        labels = labels or {}
        pid = labels.get(LABEL_PID, "")
        if LABEL_LOCK not in labels or not pid.isdigit():
            return None
        return cls(host=labels.get(LABEL_HOST, ""), pid=int(pid), pid_start=labels.get(LABEL_PID_START, ""),
                   boot_id=labels.get(LABEL_BOOT_ID, ""), machine=labels.get(LABEL_MACHINE, ""),
                   pid_ns=labels.get(LABEL_PID_NS, ""), operation=labels.get(LABEL_OPERATION, ""),
                   target=labels.get(LABEL_TARGET, ""), since=labels.get(LABEL_SINCE, ""))

    def describe(self) -> str:
        """``image_upgrade to shop:2.0 by pid 4242 on host ctl-1 since 2024-06-11T10:00:00Z``."""
        what = self.operation or "a run"
        if self.target:
            what += f" to {self.target}"
        return f"{what} by pid {self.pid} on host {self.host or '?'}" + (f" since {self.since}" if self.since else "")

    def to_dict(self) -> dict[str, t.Any]:
        """For the failure's details."""
        return asdict(self)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def process_start(pid: int, proc: str = PROC) -> t.Optional[str]:
    """When process ``pid`` started (clock ticks since boot, from ``/proc/<pid>/stat``).

    Returns None when no such process lives (a zombie counts as gone: a killed module whose parent was
    killed too may never be reaped in a container), and ``""`` when it lives but its start is unknown
    (no /proc).
    """
    if pid <= 0:
        return None
    stat = _read(f"{proc}/{pid}/stat")
    if stat:
        # the command name (field 2) may hold spaces and parentheses: fields are counted after the last ')'
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 19:
            return None if fields[0] in ("Z", "X", "x") else fields[19]
    if os.path.isdir(proc) and os.path.exists(f"{proc}/self/stat"):
        return None  # /proc works here and has no entry for this pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return ""  # it exists, under another user
    except OSError:
        return ""
    return ""


def pid_namespace(proc: str = PROC) -> str:
    """The inode of this process's pid namespace (pids are only comparable within one)."""
    try:
        link = os.readlink(f"{proc}/self/ns/pid")
    except OSError:
        return ""
    return link[link.find("[") + 1:link.rfind("]")] if "[" in link else link


def machine_fingerprint() -> str:
    """A digest of the machine id: tells two machines of the same host name apart, without publishing the id."""
    ident = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")
    return hashlib.sha256(ident.encode()).hexdigest()[:16] if ident else ""


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def this_process(operation: str, target: str, proc: str = PROC) -> LockOwner:
    """The owner record of the running process."""
    pid = os.getpid()
    return LockOwner(host=socket.gethostname(), pid=pid, pid_start=process_start(pid, proc) or "",
                     boot_id=_read(f"{proc}/sys/kernel/random/boot_id"), machine=machine_fingerprint(),
                     pid_ns=pid_namespace(proc), operation=operation, target=target, since=now_iso())


def judge(owner: LockOwner, me: LockOwner, probe: t.Callable[[int], t.Optional[str]]) -> tuple[bool, str]:
    """(stale, why) for a lock held by ``owner``, seen by ``me``; ``probe(pid)`` is :func:`process_start`.

    Only an owner on this very host can be judged: same host name, and wherever both record them, the same
    machine, boot and pid namespace. Anything else may still be running, so it is never stale.
    """
    if not owner.host or owner.host != me.host:
        return False, f"it is held from host {owner.host or '(unknown)'}"
    if owner.machine and me.machine and owner.machine != me.machine:
        return False, f"it is held from another machine named {owner.host}"
    if owner.boot_id and me.boot_id and owner.boot_id != me.boot_id:
        if owner.machine and owner.machine == me.machine:
            return True, f"host {owner.host} has rebooted since it was taken"
        return False, f"it is held from host {owner.host} in another boot or another machine of that name"
    if owner.pid_ns and me.pid_ns and owner.pid_ns != me.pid_ns:
        return False, f"it is held from another pid namespace (container) on host {owner.host}"
    started = probe(owner.pid)
    if started is None:
        return True, f"process {owner.pid} is gone"
    if owner.pid_start and started and started != owner.pid_start:
        return True, f"pid {owner.pid} now belongs to another process"
    return False, f"process {owner.pid} is still running"


class LockHeld(Exception):
    """The lock stayed held by a live (or unjudgeable) owner for the whole timeout."""

    def __init__(self, owner: t.Optional[LockOwner], why: str) -> None:
        super().__init__(why)
        self.owner = owner
        self.why = why


class WorkloadLock:
    """Takes and releases the lock container of one workload.

    ``create(name, labels) -> id or None`` makes the lock container (None on 409 Conflict);
    ``inspect(name) -> (id, labels) or None`` reads it (None when it is gone); ``remove(id)`` deletes one
    (a missing one is fine). :func:`engine_lock` gives it a Docker engine's.
    """

    def __init__(self, workload: str, create: t.Callable[[str, dict[str, str]], t.Optional[str]],
                 inspect: t.Callable[[str], t.Optional[tuple[str, dict[str, str]]]],
                 remove: t.Callable[[str], None], warn: t.Callable[[str], None],
                 probe: t.Callable[[int], t.Optional[str]] = process_start,
                 sleep: t.Callable[[float], None] = time.sleep, clock: t.Callable[[], float] = time.monotonic) -> None:
        self.workload = workload
        self.name = lock_name(workload)
        self._create, self._inspect, self._remove, self._warn = create, inspect, remove, warn
        self._probe, self._sleep, self._clock = probe, sleep, clock
        self.held_id: t.Optional[str] = None

    def acquire(self, me: LockOwner, timeout: float) -> str:
        """Take the lock for ``me`` within ``timeout`` seconds (0: one try); returns the lock container's id.

        Raises :class:`LockHeld` naming the holder when it stays held.
        """
        deadline = self._clock() + max(timeout, 0)
        interval = POLL_FIRST
        vanished = 0
        while True:
            cid = self._create(self.name, me.to_labels(self.workload))
            if cid is not None:
                self.held_id = cid
                return cid
            found = self._inspect(self.name)
            if found is None:
                # released between our create and our inspect: try again, but never spin forever
                vanished += 1
                if vanished <= 20:
                    continue
                holder, why = None, "it was taken and released again many times in a row"
            else:
                holder_id, labels = found
                holder = LockOwner.from_labels(labels)
                if holder is None:
                    why = f"container {self.name} exists but is not a zerodown lock"
                else:
                    stale, why = judge(holder, me, self._probe)
                    if stale:
                        self._remove(holder_id)
                        self._warn(f"took over the stale lock of Docker workload {self.workload!r} left by "
                                   f"{holder.describe()}: {why}")
                        continue
            if self._clock() >= deadline:
                raise LockHeld(holder, why)
            self._sleep(min(interval, max(deadline - self._clock(), 0.0)))
            interval = min(interval * 2, POLL_MAX)

    def release(self) -> None:
        """Remove the lock container this object created (by id: never a lock someone else took since)."""
        if self.held_id is not None:
            cid, self.held_id = self.held_id, None
            self._remove(cid)


def lock_container(engine: DockerEngine, name: str) -> t.Optional[tuple[str, dict[str, str]]]:
    """The lock container ``name`` on ``engine`` as (id, labels); None when there is none."""
    try:
        attrs = engine.inspect_container(name, f"inspect the lock container {name}")
    except EngineNotFound:
        return None
    return attrs["Id"], (attrs.get("Config") or {}).get("Labels") or {}


def engine_lock(engine: DockerEngine, workload: WorkloadRef, images: t.Sequence[str], warn: t.Callable[[str], None],
                host: str) -> WorkloadLock:
    """The lock of ``workload`` on ``engine`` (``host`` in messages). ``images`` are image ids already on the
    engine, tried in turn for the lock container: it is never pulled."""

    def create(name: str, labels: dict[str, str]) -> t.Optional[str]:
        candidates = [i for i in dict.fromkeys(images) if i]
        for index, image in enumerate(candidates):
            # never started: no command runs, no network, no port; the image is only what create requires
            config = {"Image": image, "Labels": labels, "Entrypoint": ["/zerodown-lock"], "Cmd": [],
                      "HostConfig": {"NetworkMode": "none", "RestartPolicy": {"Name": "no"}}}
            try:
                return engine.create_unless_taken(config, name, f"create the lock container {name}")
            except EngineNotFound:
                if index == len(candidates) - 1:
                    raise
        raise RolloutFailed(f"no image of {workload.describe()} is on {host} to create the lock container {name} from")

    def remove(cid: str) -> None:
        # with its anonymous volumes: created from an app image, it got one for each of the image's VOLUMEs, and
        # nothing else uses them (it never started, nothing mounts them)
        engine.remove(cid, volumes=True, what=f"remove the lock container {cid[:12]}")

    return WorkloadLock(workload.name, create, lambda name: lock_container(engine, name), remove, warn)
