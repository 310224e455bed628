"""Thread-safe object store: resourceVersion, generation, watch event log.

One lock guards everything; objects are deep-copied in and out so callers never share state with
the store. Every mutation appends an event (ADDED/MODIFIED/DELETED) carrying the new
resourceVersion, and wakes watchers and controllers.
"""
from __future__ import annotations

import collections
import copy
import threading
import uuid
from typing import Any, Callable, Iterable

from .resources import Resource
from .util import fields_match, iso, labels_match

Obj = dict[str, Any]


class StoreError(Exception):
    def __init__(self, code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.causes = causes or []


class NotFound(StoreError):
    def __init__(self, res: Resource, name: str):
        super().__init__(404, "NotFound", f'{res.qualified} "{name}" not found')
        self.res = res
        self.name = name


class Conflict(StoreError):
    def __init__(self, res: Resource, name: str):
        super().__init__(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified} "{name}": the object '
                                          "has been modified; please apply your changes to the latest version and "
                                          "try again")
        self.res = res
        self.name = name


class AlreadyExists(StoreError):
    def __init__(self, res: Resource, name: str):
        super().__init__(409, "AlreadyExists", f'{res.qualified} "{name}" already exists')
        self.res = res
        self.name = name


class Gone(StoreError):
    def __init__(self, message: str):
        super().__init__(410, "Expired", message)


def _spec_part(obj: Obj) -> Any:
    """What bumps metadata.generation: everything except metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "kind", "apiVersion")}


class Store:
    EVENT_LOG_SIZE = 100_000

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._rv = 0
        self._events: collections.deque[tuple[int, str, str, Obj]] = collections.deque()
        self._oldest_rv = 0
        self.on_change: list[Callable[[], None]] = []
        # threads waiting on one object (a pod's runtime): set when that object changes or goes
        self._object_waiters: dict[tuple[str, str, str], set[threading.Event]] = {}

    # -- internals -------------------------------------------------------------------------
    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _emit(self, res: Resource, etype: str, obj: Obj) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        self._events.append((rv, res.key, etype, copy.deepcopy(obj)))
        while len(self._events) > self.EVENT_LOG_SIZE:
            self._oldest_rv = self._events.popleft()[0]
        self.changed.notify_all()
        meta = obj["metadata"]
        for waiter in self._object_waiters.get(self._k(res, meta.get("namespace"), meta["name"]), ()):
            waiter.set()
        for cb in self.on_change:
            cb()

    @staticmethod
    def _k(res: Resource, namespace: str | None, name: str) -> tuple[str, str, str]:
        return (res.key, namespace or "" if res.namespaced else "", name)

    @property
    def resource_version(self) -> str:
        with self.lock:
            return str(self._rv)

    # -- reads -----------------------------------------------------------------------------
    def get(self, res: Resource, namespace: str | None, name: str) -> Obj:
        with self.lock:
            obj = self._objects.get(self._k(res, namespace, name))
            if obj is None:
                raise NotFound(res, name)
            return copy.deepcopy(obj)

    def try_get(self, res: Resource, namespace: str | None, name: str) -> Obj | None:
        try:
            return self.get(res, namespace, name)
        except NotFound:
            return None

    def list(self, res: Resource, namespace: str | None = None, label_selector: list | None = None,
             field_selector: list | None = None) -> tuple[list[Obj], str]:
        with self.lock:
            out = []
            for (key, ns, _name), obj in self._objects.items():
                if key != res.key:
                    continue
                if namespace and res.namespaced and ns != namespace:
                    continue
                if label_selector and not labels_match(label_selector, obj["metadata"].get("labels")):
                    continue
                if field_selector and not fields_match(field_selector, obj):
                    continue
                out.append(copy.deepcopy(obj))
            out.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            return out, str(self._rv)

    def iter_raw(self, res: Resource, namespace: str | None = None) -> Iterable[Obj]:
        """Objects without copying; callers must hold `lock` and must not mutate them."""
        for (key, ns, _name), obj in list(self._objects.items()):
            if key == res.key and (not namespace or ns == namespace):
                yield obj

    # -- writes ----------------------------------------------------------------------------
    def create(self, res: Resource, obj: Obj, dry_run: bool = False) -> Obj:
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            name = meta.get("name")
            key = self._k(res, meta.get("namespace"), name)
            if key in self._objects:
                raise AlreadyExists(res, name)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = iso()
            if res.has_generation:
                meta["generation"] = 1
            for k in ("deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(k, None)
            obj["kind"] = res.kind
            obj["apiVersion"] = res.api_version
            if dry_run:
                meta["resourceVersion"] = str(self._rv)
                return obj
            meta["resourceVersion"] = str(self._next_rv())
            self._objects[key] = obj
            self._emit(res, "ADDED", obj)
            return copy.deepcopy(obj)

    def update(self, res: Resource, obj: Obj, *, check_rv: bool = True, subresource: str | None = None,
               dry_run: bool = False) -> Obj:
        """Replace an object. The main resource ignores status; /status changes only status."""
        with self.lock:
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            name = meta.get("name")
            key = self._k(res, meta.get("namespace"), name)
            old = self._objects.get(key)
            if old is None:
                raise NotFound(res, name)
            rv = meta.get("resourceVersion")
            if check_rv and rv and rv != old["metadata"]["resourceVersion"]:
                raise Conflict(res, name)
            if subresource == "status":
                new = copy.deepcopy(old)
                if "status" in obj:
                    new["status"] = obj["status"]
                else:
                    new.pop("status", None)
            else:
                new = obj
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                elif subresource is None:
                    new.pop("status", None)
                for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                          "generation"):
                    if k in old["metadata"]:
                        new["metadata"][k] = old["metadata"][k]
                    else:
                        new["metadata"].pop(k, None)
                if res.has_generation and _spec_part(new) != _spec_part(old):
                    new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            new["kind"] = res.kind
            new["apiVersion"] = res.api_version
            if new == old or (dry_run is False and _same_but_rv(new, old)):
                return copy.deepcopy(old)
            if dry_run:
                return new
            new["metadata"]["resourceVersion"] = str(self._next_rv())
            self._objects[key] = new
            self._emit(res, "MODIFIED", new)
            return copy.deepcopy(new)

    def internal_update(self, res: Resource, obj: Obj) -> Obj:
        """Controller/kubelet write of the whole object (metadata, spec and status) without rv checks."""
        with self.lock:
            meta = obj["metadata"]
            key = self._k(res, meta.get("namespace"), meta["name"])
            old = self._objects.get(key)
            if old is None:
                raise NotFound(res, meta["name"])
            if old.get("metadata", {}).get("uid") != meta.get("uid"):
                raise Conflict(res, meta["name"])
            new = copy.deepcopy(obj)
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if new == old:
                return copy.deepcopy(old)
            if res.has_generation and _spec_part(new) != _spec_part(old):
                new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            new["metadata"]["resourceVersion"] = str(self._next_rv())
            self._objects[key] = new
            self._emit(res, "MODIFIED", new)
            return copy.deepcopy(new)

    def mutate(self, res: Resource, namespace: str | None, name: str, fn: Callable[[Obj], None],
               uid: str | None = None) -> Obj | None:
        """Atomic read-modify-write used by controllers (no conflicts). None if the object is gone."""
        with self.lock:
            old = self._objects.get(self._k(res, namespace, name))
            if old is None or (uid and old["metadata"]["uid"] != uid):
                return None
            new = copy.deepcopy(old)
            fn(new)
            return self.internal_update(res, new)

    def delete(self, res: Resource, namespace: str | None, name: str, uid: str | None = None,
               dry_run: bool = False) -> Obj:
        with self.lock:
            key = self._k(res, namespace, name)
            old = self._objects.get(key)
            if old is None or (uid and old["metadata"]["uid"] != uid):
                raise NotFound(res, name)
            if dry_run:
                return copy.deepcopy(old)
            del self._objects[key]
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(self._next_rv())
            self._emit(res, "DELETED", gone)
            return gone

    # -- watch -----------------------------------------------------------------------------
    def events_since(self, rv: int) -> list[tuple[int, str, str, Obj]]:
        with self.lock:
            if rv < self._oldest_rv:
                raise Gone(f"too old resource version: {rv} ({self._oldest_rv})")
            if not self._events or self._events[-1][0] <= rv:
                return []
            out = []
            for ev in reversed(self._events):
                if ev[0] <= rv:
                    break
                out.append(ev)
            out.reverse()
            return out

    def wait(self, timeout: float) -> None:
        with self.changed:
            self.changed.wait(timeout)

    @property
    def revision(self) -> int:
        """The newest resource version, as a number: pass it to :meth:`wait_for_change`."""
        with self.lock:
            return self._rv

    def wait_for_change(self, since: int, timeout: float) -> None:
        """Return once anything changed after resource version ``since``, or after ``timeout`` seconds.

        Unlike :meth:`wait`, a change made between reading ``since`` and this call is not missed."""
        with self.changed:
            if self._rv == since:
                self.changed.wait(timeout)

    def watch_object(self, res: Resource, namespace: str | None, name: str, event: threading.Event) -> None:
        """Set ``event`` whenever that object is written or deleted, until :meth:`unwatch_object`."""
        with self.lock:
            self._object_waiters.setdefault(self._k(res, namespace, name), set()).add(event)

    def unwatch_object(self, res: Resource, namespace: str | None, name: str, event: threading.Event) -> None:
        with self.lock:
            key = self._k(res, namespace, name)
            waiters = self._object_waiters.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._object_waiters[key]


def _same_but_rv(a: Obj, b: Obj) -> bool:
    a2 = copy.deepcopy(a)
    b2 = copy.deepcopy(b)
    a2["metadata"].pop("resourceVersion", None)
    b2["metadata"].pop("resourceVersion", None)
    return a2 == b2
