"""Placeholder: filled in below."""
from __future__ import annotations


class DaemonSetController:
    def __init__(self, store, record_event, nodes, delete_pod) -> None:
        self.store = store

    def sync_all(self) -> None:
        return None
