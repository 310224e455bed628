"""What every controller of the test API server shares: the store it works on, the event recorder, and one sync of
each object of its kind per tick."""
from __future__ import annotations

from typing import Any, Callable

from ..resources import Resource
from ..store import AlreadyExists, Conflict, NotFound, Store

Obj = dict[str, Any]


class Controller:
    """Syncs each object of ``kind``; one that changed under the sync (a conflict, gone, a name already taken) is
    left to the next tick, which retries with fresh objects, as upstream requeues it."""

    kind: Resource

    def __init__(self, store: Store, record_event: Callable[..., None]) -> None:
        self.store = store
        self.event = record_event

    def sync_all(self) -> None:
        for obj in self.store.list(self.kind)[0]:
            try:
                self.sync(obj)
            except (Conflict, NotFound, AlreadyExists):
                continue

    def sync(self, obj: Obj, /) -> None:
        """Bring ``obj`` and what it owns one step toward its spec (positional: each controller names it its way)."""
        raise NotImplementedError


class PodController(Controller):
    """A controller that places pods on the fake ``nodes`` and deletes them through ``delete_pod``."""

    def __init__(self, store: Store, record_event: Callable[..., None], nodes: list[str],
                 delete_pod: Callable[[Obj], None]) -> None:
        super().__init__(store, record_event)
        self.nodes = nodes
        self.delete_pod = delete_pod
