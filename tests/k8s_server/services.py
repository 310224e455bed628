"""Services: an Endpoints controller and a kube-proxy-like TCP proxy per Service port.

Each Service port gets a real listener on 127.0.0.1 (annotation ``zerodown.test/proxy-port`` for
the first port, ``zerodown.test/proxy-ports`` = JSON {port name or number: proxy port} for all).
Like kube-proxy, balancing is per connection, over the *ready* addresses of the Endpoints object
only; a pod that leaves the endpoints (not ready, or terminating) gets no new connections, while
connections it already has continue until the pod stops serving at the end of its grace period.
"""
from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from typing import Any

from .podutil import is_ready, is_terminating
from .pods import PORT_ANNOTATION
from .resources import ENDPOINTS, POD, SERVICE
from .store import NotFound, Store
from .util import selector_matches

Obj = dict[str, Any]
PROXY_PORT = "zerodown.test/proxy-port"
PROXY_PORTS = "zerodown.test/proxy-ports"
_cluster_ips = itertools.count(10)


def _port_key(p: Obj) -> str:
    return str(p.get("name") or p.get("port"))


class _Proxy(threading.Thread):
    def __init__(self, store: Store, namespace: str, service: str, port_name: str) -> None:
        super().__init__(name=f"proxy-{namespace}-{service}-{port_name}", daemon=True)
        self.store = store
        self.namespace = namespace
        self.service = service
        self.port_name = port_name
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.closed = threading.Event()
        self._rr = itertools.count()

    def close(self) -> None:
        self.closed.set()
        try:
            self.sock.close()
        except OSError:
            pass

    def backends(self) -> list[tuple[str, int]]:
        ep = self.store.try_get(ENDPOINTS, self.namespace, self.service)
        out = []
        for subset in (ep or {}).get("subsets") or []:
            ports = [p for p in subset.get("ports") or [] if str(p.get("name") or "") in (self.port_name, "")
                     or str(p.get("name")) == self.port_name]
            if not ports:
                continue
            for addr in subset.get("addresses") or []:
                out.append((addr["ip"], int(ports[0]["port"])))
        return out

    def run(self) -> None:
        while not self.closed.is_set():
            try:
                client, _addr = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self.closed.is_set():
                    return
                time.sleep(0.05)  # e.g. ECONNABORTED or a transient fd shortage: keep serving
                continue
            threading.Thread(target=self._serve_client, args=(client,), daemon=True).start()

    def _serve_client(self, client: socket.socket) -> None:
        backends = self.backends()
        if not backends:
            client.close()  # like kube-proxy's REJECT for a Service without ready endpoints
            return
        target = backends[next(self._rr) % len(backends)]
        try:
            upstream = socket.create_connection(target, timeout=2)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        client.settimeout(None)
        t = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
        t.start()
        _pipe(client, upstream)
        t.join(timeout=30)
        for s in (client, upstream):
            try:
                s.close()
            except OSError:
                pass


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


class ServiceProxies:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._proxies: dict[tuple[str, str], dict[str, _Proxy]] = {}
        self._born: dict[tuple[str, str], float] = {}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        with self._lock:
            for group in self._proxies.values():
                for p in group.values():
                    p.close()
            self._proxies.clear()

    def prepare_service(self, obj: Obj, old: Obj | None, dry_run: bool) -> None:
        """Allocate a cluster IP and the loopback proxy listeners; publish them as annotations."""
        spec = obj.setdefault("spec", {})
        if old is not None and old.get("spec", {}).get("clusterIP"):
            spec["clusterIP"] = old["spec"]["clusterIP"]
        if not spec.get("clusterIP") or spec.get("clusterIP") == "":
            spec["clusterIP"] = "None" if spec.get("clusterIP") == "None" else f"10.96.0.{next(_cluster_ips) % 250 + 2}"
        spec["clusterIPs"] = [spec["clusterIP"]]
        if dry_run:
            return
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        wanted = [_port_key(p) for p in spec.get("ports") or []]
        with self._lock:
            if key not in self._proxies:
                self._born[key] = time.monotonic()
            group = self._proxies.setdefault(key, {})
            for name in list(group):
                if name not in wanted:
                    group.pop(name).close()
            for name in wanted:
                if name not in group:
                    proxy = _Proxy(self.store, key[0], key[1], name)
                    proxy.start()
                    group[name] = proxy
            ports = {name: group[name].port for name in wanted}
        ann = obj["metadata"].setdefault("annotations", {})
        if wanted:
            ann[PROXY_PORT] = str(ports[wanted[0]])
            ann[PROXY_PORTS] = json.dumps(ports, sort_keys=True)

    def release(self, obj: Obj) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        with self._lock:
            for p in self._proxies.pop(key, {}).values():
                p.close()

    # -- endpoints controller -------------------------------------------------------------------
    def sync_endpoints(self) -> None:
        services, _rv = self.store.list(SERVICE)
        live = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in services}
        with self._lock:
            # a group allocated by a create still in flight is not in the store yet: give it time
            stale = [k for k in self._proxies if k not in live and time.monotonic() - self._born.get(k, 0) > 5]
            for key in stale:
                self._born.pop(key, None)
                for p in self._proxies.pop(key).values():
                    p.close()
        pods_by_ns: dict[str, list[Obj]] = {}
        for svc in services:
            selector = svc["spec"].get("selector")
            if not selector:
                continue
            ns = svc["metadata"]["namespace"]
            if ns not in pods_by_ns:
                pods_by_ns[ns] = self.store.list(POD, ns)[0]
            pods = [p for p in pods_by_ns[ns] if selector_matches({"matchLabels": selector}, p["metadata"].get("labels"))]
            subsets = []
            for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
                if is_terminating(pod) or not (pod.get("status") or {}).get("podIP"):
                    continue
                actual = (pod["metadata"].get("annotations") or {}).get(PORT_ANNOTATION)
                ports = []
                for sp in svc["spec"].get("ports") or []:
                    port = int(actual) if actual else _target_port(sp, pod)
                    entry = {"port": port, "protocol": sp.get("protocol", "TCP")}
                    if sp.get("name"):
                        entry["name"] = sp["name"]
                    ports.append(entry)
                addr = {"ip": pod["status"]["podIP"], "nodeName": pod["spec"].get("nodeName"),
                        "targetRef": {"kind": "Pod", "namespace": ns, "name": pod["metadata"]["name"],
                                      "uid": pod["metadata"]["uid"]}}
                key = "addresses" if is_ready(pod) else "notReadyAddresses"
                subsets.append({key: [addr], "ports": ports})
            current = self.store.try_get(ENDPOINTS, ns, svc["metadata"]["name"])
            desired = {"metadata": {"name": svc["metadata"]["name"], "namespace": ns,
                                    "labels": dict(svc["metadata"].get("labels") or {})}}
            if subsets:
                desired["subsets"] = subsets
            if current is None:
                self.store.create(ENDPOINTS, desired)
            elif current.get("subsets") != desired.get("subsets") or \
                    current["metadata"].get("labels") != desired["metadata"]["labels"]:
                current["subsets"] = subsets
                if not subsets:
                    current.pop("subsets")
                current["metadata"]["labels"] = desired["metadata"]["labels"]
                try:
                    self.store.internal_update(ENDPOINTS, current)
                except NotFound:
                    pass


def _target_port(sp: Obj, pod: Obj) -> int:
    tp = sp.get("targetPort", sp.get("port"))
    if isinstance(tp, int):
        return tp
    for c in pod["spec"].get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == tp:
                return int(p["containerPort"])
    return int(sp.get("port") or 0)
