"""The test API server: wires the store, the HTTP API, the controllers, the kubelet and the proxies."""
from __future__ import annotations

import http.server
import os
import threading
import time
from typing import Any

from . import resources as R
from .api import ApiHandler
from .controllers.daemonset import DaemonSetController
from .controllers.deployment import DeploymentController
from .controllers.replicaset import ReplicaSetController
from .controllers.statefulset import StatefulSetController
from .pods import Kubelet
from .services import ServiceProxies
from .store import NotFound, Store
from .util import iso, random_suffix

Obj = dict[str, Any]
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
MAX_EVENTS = 5000
# the longest the controllers go without a pass: what changes with time alone is seen this late at most
RESYNC_SECONDS = 0.25


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class K8sTestServer:
    """A small Kubernetes API server with the workload controllers, for tests.

    >>> srv = K8sTestServer(); srv.start(); srv.write_kubeconfig("kubeconfig"); ...; srv.stop()
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, nodes: int = 3, tick: float = 0.05,
                 pull_delay: float = 0.05, verbose: bool = False) -> None:
        self.host = host
        self.requested_port = port
        self.tick = tick
        self.verbose = verbose
        self.stopping = False
        self.nodes = [f"zd-node-{i + 1}" for i in range(max(1, nodes))]
        self.store = Store()
        self.kubelet = Kubelet(self.store, tick=tick, pull_delay=pull_delay)
        self.proxies = ServiceProxies(self.store)
        self.deployments = DeploymentController(self.store, self.record_event)
        self.replicasets = ReplicaSetController(self.store, self.record_event, self.nodes, self._controller_delete_pod)
        self.statefulsets = StatefulSetController(self.store, self.record_event, self.nodes,
                                                  self._controller_delete_pod)
        self.daemonsets = DaemonSetController(self.store, self.record_event, self.nodes, self._controller_delete_pod)
        self._httpd: _HTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._events_lock = threading.Lock()
        self.errors: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "K8sTestServer":
        for ns in DEFAULT_NAMESPACES:
            obj = {"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {}}
            R.apply_defaults(R.NAMESPACE, obj)
            self.store.create(R.NAMESPACE, obj)
        for node in self.nodes:
            status = {"conditions": [{"type": "Ready", "status": "True"}],
                      "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}
            meta = {"name": node, "labels": {"kubernetes.io/hostname": node}}
            self.store.create(R.NODE, {"metadata": meta, "spec": {}, "status": status})
        handler = type("BoundApiHandler", (ApiHandler,), {"cluster": self})
        self._httpd = _HTTPServer((self.host, self.requested_port), handler)
        self._spawn("api", self._httpd.serve_forever)
        self._spawn("controllers", self._controller_loop)
        self.kubelet.start()
        self.proxies.start()
        return self

    def stop(self) -> None:
        self.stopping = True
        self._stop.set()
        with self.store.changed:
            self.store.changed.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        self.proxies.stop()
        self.kubelet.stop()
        for t in self._threads:
            t.join(timeout=3)

    def _spawn(self, name: str, target: Any) -> None:
        t = threading.Thread(target=target, name=f"k8s-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    def write_kubeconfig(self, path: str, context: str = "zerodown-test", namespace: str = "default") -> str:
        text = (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: {context}\n  cluster:\n    server: {self.url}\n"
            f"users:\n- name: {context}-user\n  user:\n    token: zerodown-test-token\n"
            f"contexts:\n- name: {context}\n  context:\n    cluster: {context}\n    user: {context}-user\n"
            f"    namespace: {namespace}\n"
            f"current-context: {context}\npreferences: {{}}\n"
        )
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        return path

    # -- controllers -------------------------------------------------------------------------
    def _controller_loop(self) -> None:
        # A pass runs when the store changed since the last one began (a write by anyone, the controllers' own
        # included: the pass after them finds nothing to do), at most one per tick, and at least one per
        # RESYNC_SECONDS for what only time changes (minReadySeconds, progressDeadlineSeconds). Passes on every tick
        # cost an idle server with a dozen pods about 0.15 of a core.
        while not self._stop.is_set():
            began = time.monotonic()
            seen = self.store.revision
            for name, fn in (("deployment", self.deployments.sync_all), ("replicaset", self.replicasets.sync_all),
                             ("statefulset", self.statefulsets.sync_all), ("daemonset", self.daemonsets.sync_all),
                             ("endpoints", self.proxies.sync_endpoints), ("gc", self._garbage_collect)):
                try:
                    fn()
                except Exception as exc:  # noqa: BLE001 (a controller bug must not kill the loop)
                    msg = f"{name} controller: {type(exc).__name__}: {exc}"
                    if not self.errors or self.errors[-1] != msg:
                        self.errors.append(msg)
                        if self.verbose:
                            import traceback
                            traceback.print_exc()
            if self._stop.is_set():
                break
            self.store.wait_for_change(seen, RESYNC_SECONDS)
            self._stop.wait(max(0.0, began + self.tick - time.monotonic()))

    def _controller_delete_pod(self, pod: Obj) -> None:
        self.kubelet.delete_pod(pod)

    def _garbage_collect(self) -> None:
        """Delete dependents whose controller owner is gone (background propagation)."""
        with self.store.lock:
            uids = set()
            for res in R.RESOURCES:
                for obj in self.store.iter_raw(res):
                    uids.add(obj["metadata"]["uid"])
            orphans = []
            for res in (R.REPLICASET, R.POD, R.CONTROLLERREVISION, R.ENDPOINTS):
                for obj in self.store.iter_raw(res):
                    refs = obj["metadata"].get("ownerReferences") or []
                    if refs and all(r.get("uid") not in uids for r in refs):
                        orphans.append((res, obj))
        for res, obj in orphans:
            try:
                if res is R.POD:
                    if not obj["metadata"].get("deletionTimestamp"):
                        self.kubelet.delete_pod(obj)
                else:
                    self.store.delete(res, obj["metadata"].get("namespace"), obj["metadata"]["name"],
                                      uid=obj["metadata"]["uid"])
            except NotFound:
                pass

    def record_event(self, obj: Obj, etype: str, reason: str, message: str) -> None:
        ns = obj["metadata"].get("namespace") or "default"
        t = iso()
        kind = obj.get("kind") or ""
        component = {"Deployment": "deployment-controller", "ReplicaSet": "replicaset-controller",
                     "StatefulSet": "statefulset-controller", "DaemonSet": "daemonset-controller"}.get(kind, "kubelet")
        event = {
            "metadata": {"name": f"{obj['metadata']['name']}.{random_suffix(10)}", "namespace": ns},
            "involvedObject": {"kind": kind, "namespace": ns, "name": obj["metadata"]["name"],
                               "uid": obj["metadata"]["uid"], "apiVersion": obj.get("apiVersion", ""),
                               "resourceVersion": obj["metadata"].get("resourceVersion", "")},
            "reason": reason, "message": message, "type": etype, "count": 1,
            "firstTimestamp": t, "lastTimestamp": t, "source": {"component": component},
            "reportingComponent": component, "reportingInstance": "",
        }
        try:
            self.store.create(R.EVENT, event)
        except Exception:  # noqa: BLE001 (events are best effort, as upstream)
            return
        with self._events_lock:
            events, _rv = self.store.list(R.EVENT)
            if len(events) > MAX_EVENTS:
                events.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
                for e in events[: len(events) - MAX_EVENTS]:
                    try:
                        self.store.delete(R.EVENT, e["metadata"]["namespace"], e["metadata"]["name"])
                    except NotFound:
                        pass

    # -- hooks used by the API handler -------------------------------------------------------
    def before_create(self, res: R.Resource, obj: Obj, dry_run: bool) -> None:
        if res is R.SERVICE:
            self.proxies.prepare_service(obj, None, dry_run)
        elif res is R.POD:
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
            if not obj["spec"].get("nodeName"):
                obj["spec"]["nodeName"] = self.nodes[0]

    def before_update(self, res: R.Resource, old: Obj, obj: Obj) -> None:
        if res is R.SERVICE:
            self.proxies.prepare_service(obj, old, False)

    def delete_object(self, res: R.Resource, obj: Obj, opts: Obj, dry_run: bool) -> Obj | None:
        """Delete per the API semantics; returns the object when it still exists (terminating pod)."""
        ns, name, uid = obj["metadata"].get("namespace"), obj["metadata"]["name"], obj["metadata"]["uid"]
        if res is R.POD:
            grace = opts.get("gracePeriodSeconds")
            result = self.kubelet.delete_pod(obj, None if grace is None else int(grace), dry_run)
            return result if self.store.try_get(R.POD, ns, name) is not None else None
        if dry_run:
            return None
        if opts.get("propagationPolicy") == "Orphan":
            for dep_res in (R.REPLICASET, R.POD, R.CONTROLLERREVISION):
                for dep in self.store.list(dep_res, ns)[0]:
                    refs = dep["metadata"].get("ownerReferences") or []
                    if any(r.get("uid") == uid for r in refs):
                        self.store.mutate(dep_res, ns, dep["metadata"]["name"], lambda o: o["metadata"].update(
                            ownerReferences=[r for r in o["metadata"].get("ownerReferences") or []
                                             if r.get("uid") != uid]))
        if res is R.NAMESPACE:
            for other in R.RESOURCES:
                if other.namespaced:
                    for item in self.store.list(other, name)[0]:
                        try:
                            if other is R.POD:
                                self.kubelet.delete_pod(item, 0)
                            else:
                                self.store.delete(other, name, item["metadata"]["name"])
                        except NotFound:
                            pass
        if res is R.SERVICE:
            self.proxies.release(obj)
        self.store.delete(res, ns, name, uid=uid)
        return None


def wait_for_port(server: K8sTestServer, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if server._httpd is not None:
            return
        time.sleep(0.01)
