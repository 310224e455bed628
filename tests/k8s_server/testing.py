"""Test helpers on top of the k8s_cluster fixture: a namespaced kubectl runner, a ReplicaSet scale recorder."""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

from . import manifests as m


class Kubectl:
    def __init__(self, cluster: Any, namespace: str) -> None:
        self.cluster = cluster
        self.namespace = namespace

    def __call__(self, *args: str, timeout: float = 60, ok: bool = True, input: str | None = None):
        proc = self.cluster.kubectl(*args, namespace=self.namespace, timeout=timeout, input=input)
        if ok and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc

    def apply(self, *objs: dict) -> str:
        return self("apply", "-f", "-", input=m.to_json(*objs)).stdout

    def lines(self, *args: str, **kw: Any) -> list[str]:
        proc = self(*args, **kw)
        return [line.rstrip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]

    def jsonpath(self, resource: str, path: str) -> str:
        return self("get", resource, "-o", f"jsonpath={path}").stdout

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
        """Poll ``predicate`` until it returns something true, and return that (a check can use what it saw)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")


class ScaleRecorder:
    """Watches the ReplicaSets of a namespace and records every spec.replicas change, in order."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client, watch  # noqa: PLC0415
        self.apps = client.AppsV1Api(api_client)
        self.namespace = namespace
        self.events: list[tuple[str, int]] = []
        self._watch = watch.Watch()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "ScaleRecorder":
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._watch.stop()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        listing = self.apps.list_namespaced_replica_set(self.namespace)
        last: dict[str, int] = {}
        for rs in listing.items:
            last[rs.metadata.name] = rs.spec.replicas
            self.events.append((rs.metadata.name, rs.spec.replicas))
        self._ready.set()
        rv = listing.metadata.resource_version
        while not self._stop.is_set():
            try:
                for ev in self._watch.stream(self.apps.list_namespaced_replica_set, self.namespace,
                                             resource_version=rv, timeout_seconds=5):
                    rs = ev["object"]
                    rv = rs.metadata.resource_version
                    if last.get(rs.metadata.name) != rs.spec.replicas:
                        last[rs.metadata.name] = rs.spec.replicas
                        self.events.append((rs.metadata.name, rs.spec.replicas))
                    if self._stop.is_set():
                        break
            except Exception:  # noqa: BLE001 (a dropped watch resumes from the last resourceVersion)
                if self._stop.is_set():
                    return
                time.sleep(0.1)

    def pairs(self, old: str, new: str) -> list[tuple[int, int]]:
        """The (old, new) spec.replicas states in the order they happened (a missing RS counts 0)."""
        cur = {old: 0, new: 0}
        out: list[tuple[int, int]] = []
        for name, replicas in self.events:
            if name in cur:
                cur[name] = replicas
                state = (cur[old], cur[new])
                if not out or out[-1] != state:
                    out.append(state)
        return out
