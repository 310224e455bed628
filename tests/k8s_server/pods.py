"""A fake kubelet: pod lifecycles and the demo app each pod serves over real HTTP on loopback.

Every pod gets a thread that plays its lifecycle (Pending -> Running -> readiness probes ->
Terminating for its grace period -> gone) and, while running, an HTTP server on 127.0.0.1 with an
ephemeral port (annotation ``zerodown.test/port``) answering like the demo image:
``GET /version`` -> {"version": <image tag>, "host": <pod name>}, ``GET /healthz`` -> ok.

Failure injection by image tag (see docs/testing-kubernetes.md):
  tag contains "broken" -> /healthz answers 404, so an httpGet readiness probe never passes
  tag contains "crash"  -> the container exits after a moment: CrashLoopBackOff, restartCount grows
  tag contains "nopull" -> ErrImagePull, then ImagePullBackOff; the pod stays Pending
Container env knobs: ZD_START_DELAY (seconds from container start until the app listens).
"""
from __future__ import annotations

import collections
import http.client
import http.server
import json
import socket
import threading
import time
import urllib.parse
from typing import Any

from .podutil import is_terminating
from .resources import POD
from .store import NotFound, Store
from .util import image_tag, iso, now

Obj = dict[str, Any]
PORT_ANNOTATION = "zerodown.test/port"
CRASH_RUN_SECONDS = 0.3
MAX_BACKOFF = 2.0
# How often a pod's app server looks for its shutdown request: the longest a stopping pod's port stays open
# after its grace period (each look is a wake-up of an idle thread, so not every 50 ms)
SERVE_POLL_SECONDS = 0.2


class _AppHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server: "_AppServer"

    def log_message(self, fmt: str, *args: Any) -> None:
        self.server.runtime.log(f"{self.address_string()} {fmt % args}")

    def _send(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        rt = self.server.runtime
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/version":
            body = json.dumps({"version": rt.version, "host": rt.name}).encode() + b"\n"
            self._send(200, body, "application/json")
        elif url.path == "/healthz":
            if rt.broken:
                self._send(404, b"404 Not Found\n")
            else:
                self._send(200, b"ok\n")
        elif url.path == "/sleep":
            # lets tests hold a request in flight (bounded to 10 s)
            secs = min(10.0, float((urllib.parse.parse_qs(url.query).get("seconds") or ["1"])[0]))
            time.sleep(secs)
            body = json.dumps({"version": rt.version, "host": rt.name, "slept": secs}).encode() + b"\n"
            self._send(200, body, "application/json")
        elif url.path in ("/", "/index.html"):
            self._send(200, f"App Version {rt.version} on {rt.name}\n".encode(), "text/html")
        else:
            self._send(404, b"404 Not Found\n")

    do_HEAD = do_GET


class _AppServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, runtime: "PodRuntime") -> None:
        self.runtime = runtime
        super().__init__(("127.0.0.1", 0), _AppHandler, bind_and_activate=False)
        self.server_bind()  # bound but not listening: connections are refused until the app starts


def _env(container: Obj, name: str) -> str | None:
    for e in container.get("env") or []:
        if isinstance(e, dict) and e.get("name") == name:
            return str(e.get("value", ""))
    return None


class PodRuntime(threading.Thread):
    """One pod's lifecycle, played by one thread."""

    def __init__(self, kubelet: "Kubelet", pod: Obj) -> None:
        super().__init__(name=f"pod-{pod['metadata']['name']}", daemon=True)
        self.kubelet = kubelet
        self.store = kubelet.store
        self.ns = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        containers = pod["spec"].get("containers") or [{}]
        self.container = containers[0]
        self.containers = containers
        self.image = str(self.container.get("image", ""))
        tag = image_tag(self.image)
        self.version = tag
        self.broken = "broken" in tag
        self.crash = "crash" in tag
        self.nopull = "nopull" in tag
        try:
            self.start_delay = float(_env(self.container, "ZD_START_DELAY") or 0)
        except ValueError:
            self.start_delay = 0.0
        self.grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        self.server: _AppServer | None = None
        self.running = False  # container process running (for deletion shortcuts)
        self.stop_event = threading.Event()
        # set when this pod is written or deleted, or when the kubelet stops it: the lifecycle's waits wake on it
        # instead of reading the pod every tick (a dozen idle pods read 20 times a second cost a tenth of a core)
        self.wake = threading.Event()
        self.logs: collections.deque[str] = collections.deque(maxlen=500)
        self.ready = False
        self.listening = False
        self.started_at = 0.0

    # -- helpers ------------------------------------------------------------------------------
    def log(self, line: str) -> None:
        self.logs.append(line)

    def _pod(self) -> Obj | None:
        pod = self.store.try_get(POD, self.ns, self.name)
        if pod is None or pod["metadata"]["uid"] != self.uid:
            return None
        return pod

    def _mutate(self, fn: Any) -> bool:
        return self.store.mutate(POD, self.ns, self.name, fn, uid=self.uid) is not None

    def halt(self) -> None:
        """Stop this runtime now: no grace period (the kubelet stopping, a forced deletion)."""
        self.stop_event.set()
        self.wake.set()

    def _sleep(self, seconds: float) -> bool:
        """Sleep, waking early on termination; False when the pod is terminating or gone."""
        end = time.monotonic() + seconds
        while True:
            self.wake.clear()  # before the read: a change after it sets the event again, and the wait returns
            pod = self._pod()
            if pod is None or is_terminating(pod) or self.stop_event.is_set():
                return False
            left = end - time.monotonic()
            if left <= 0:
                return True
            self.wake.wait(left)

    def _container_statuses(self, state: Obj, ready: bool, restarts: int = 0, last: Obj | None = None,
                            started: bool | None = None) -> list[Obj]:
        out = []
        for i, c in enumerate(self.containers):
            cs: Obj = {
                "name": c.get("name", f"c{i}"), "image": c.get("image", ""),
                "imageID": "" if "waiting" in state else f"docker-pullable://{c.get('image', '')}",
                "ready": ready, "restartCount": restarts, "state": state, "lastState": last or {},
                "started": bool(started) if started is not None else "running" in state,
            }
            if "waiting" not in state or restarts:
                cs["containerID"] = f"containerd://{self.uid.replace('-', '')}{i}"
            out.append(cs)
        return out

    def _set_status(self, phase: str, state: Obj, ready: bool, restarts: int = 0, last: Obj | None = None) -> None:
        t = iso()

        def fn(pod: Obj) -> None:
            status = pod.setdefault("status", {})
            prev = {c["type"]: c for c in status.get("conditions") or []}

            def cond(ctype: str, value: bool) -> Obj:
                s = "True" if value else "False"
                old = prev.get(ctype)
                ltt = old["lastTransitionTime"] if old and old.get("status") == s else t
                c: Obj = {"type": ctype, "status": s, "lastProbeTime": None, "lastTransitionTime": ltt}
                if not value and ctype in ("Ready", "ContainersReady"):
                    c["reason"] = "ContainersNotReady"
                    c["message"] = f"containers with unready status: [{self.container.get('name', '')}]"
                return c
            status["phase"] = phase
            status["conditions"] = [
                cond("PodReadyToStartContainers", True), cond("Initialized", True), cond("Ready", ready),
                cond("ContainersReady", ready), cond("PodScheduled", True),
            ]
            status["hostIP"] = "127.0.0.1"
            status["hostIPs"] = [{"ip": "127.0.0.1"}]
            status["podIP"] = "127.0.0.1"
            status["podIPs"] = [{"ip": "127.0.0.1"}]
            status.setdefault("startTime", t)
            status["qosClass"] = "BestEffort"
            status["containerStatuses"] = self._container_statuses(state, ready, restarts, last)
            if self.server is not None:
                pod["metadata"].setdefault("annotations", {})[PORT_ANNOTATION] = str(self.server.server_address[1])
        self._mutate(fn)

    # -- lifecycle ----------------------------------------------------------------------------
    def run(self) -> None:
        self.store.watch_object(POD, self.ns, self.name, self.wake)
        try:
            self._lifecycle()
        finally:
            try:
                self._terminate()
            finally:
                self.store.unwatch_object(POD, self.ns, self.name, self.wake)

    def _lifecycle(self) -> None:
        self._set_status("Pending", {"waiting": {"reason": "ContainerCreating"}}, False)
        if not self._sleep(self.kubelet.pull_delay):
            return
        if self.nopull:
            msg = f'Failed to pull image "{self.image}": rpc error: code = NotFound desc = manifest unknown'
            backoff = 0.5
            while True:
                self._set_status("Pending", {"waiting": {"reason": "ErrImagePull", "message": msg}}, False)
                if not self._sleep(0.3):
                    return
                self._set_status("Pending", {"waiting": {
                    "reason": "ImagePullBackOff", "message": f'Back-off pulling image "{self.image}"'}}, False)
                if not self._sleep(backoff):
                    return
                backoff = min(backoff * 2, MAX_BACKOFF)
        if self.crash:
            restarts = 0
            last: Obj = {}
            while True:
                self.running = True
                self._set_status("Running", {"running": {"startedAt": iso()}}, False, restarts, last)
                if not self._sleep(CRASH_RUN_SECONDS):
                    return
                self.running = False
                finished = iso()
                last = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": finished,
                                       "finishedAt": finished}}
                restarts += 1
                self._set_status("Running", {"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off restarting failed container {self.container.get('name', '')} in pod "
                               f"{self.name}_{self.ns}({self.uid})"}}, False, restarts, last)
                if not self._sleep(min(0.5 * 2 ** (restarts - 1), MAX_BACKOFF)):
                    return
        # a normal container: bound port now, listening after the app's start delay
        self.server = _AppServer(self)
        self.running = True
        self.started_at = time.monotonic()
        self.log(f"demo app {self.version} starting on :{self.server.server_address[1]}")
        probe = self.container.get("readinessProbe")
        self.ready = probe is None
        self._set_status("Running", {"running": {"startedAt": iso()}}, self.ready)
        listen_at = self.started_at + self.start_delay
        listening = False
        next_probe = self.started_at + float((probe or {}).get("initialDelaySeconds") or 0)
        successes = failures = 0
        while True:
            t = time.monotonic()
            if not listening and t >= listen_at:
                self.server.server_activate()
                threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": SERVE_POLL_SECONDS},
                                 daemon=True).start()
                listening = True
                self.listening = True
                self.log(f"demo app {self.version} listening on :{self.server.server_address[1]}")
            if probe is not None and t >= next_probe:
                ok = self._probe(probe)
                if ok:
                    successes, failures = successes + 1, 0
                else:
                    successes, failures = 0, failures + 1
                new_ready = self.ready
                if ok and successes >= int(probe.get("successThreshold") or 1):
                    new_ready = True
                if not ok and failures >= int(probe.get("failureThreshold") or 3):
                    new_ready = False
                if new_ready != self.ready:
                    self.ready = new_ready
                    self._set_status("Running", {"running": {"startedAt": iso()}}, self.ready)
                next_probe = t + float(probe.get("periodSeconds") or 10)
            waits = [next_probe - t] if probe is not None else [1.0]
            if not listening:
                waits.append(listen_at - t)
            if not self._sleep(max(0.0, min(waits + [1.0]))):
                return

    def _probe(self, probe: Obj) -> bool:
        port_ref = None
        if "httpGet" in probe:
            port_ref = probe["httpGet"].get("port")
        elif "tcpSocket" in probe:
            port_ref = probe["tcpSocket"].get("port")
        else:
            return True  # exec/grpc probes: nothing to run here, treat as passing
        if not self._port_declared(port_ref):
            return False  # nothing listens on an undeclared port in the demo app
        port = self.server.server_address[1]
        timeout = float(probe.get("timeoutSeconds") or 1)
        try:
            if "tcpSocket" in probe:
                with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                    return True
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                conn.request("GET", probe["httpGet"].get("path") or "/")
                resp = conn.getresponse()
                resp.read()
                return 200 <= resp.status < 400
            finally:
                conn.close()
        except OSError:
            return False

    def _port_declared(self, ref: Any) -> bool:
        ports = [p for c in self.containers for p in (c.get("ports") or []) if isinstance(p, dict)]
        if isinstance(ref, str) and not ref.isdigit():
            return any(p.get("name") == ref for p in ports)
        if not ports:
            return True  # no declared ports: the app's port is the one probed
        return any(str(p.get("containerPort")) == str(ref) for p in ports)

    def _terminate(self) -> None:
        pod = self._pod()
        if pod is not None and is_terminating(pod) and self.running and not self.stop_event.is_set():
            # serve (in-flight and new connections) until the grace period ends, then stop
            grace = pod["metadata"].get("deletionGracePeriodSeconds", self.grace)
            end = time.monotonic() + float(grace or 0)
            self.log("received SIGTERM, serving until the grace period ends")
            while True:
                self.wake.clear()
                left = end - time.monotonic()
                if left <= 0 or self.stop_event.is_set() or self._pod() is None:
                    break
                self.wake.wait(left)
        if self.server is not None:
            try:
                if self.listening:
                    self.server.shutdown()
            finally:
                self.server.server_close()
        self.running = False
        try:
            self.store.delete(POD, self.ns, self.name, uid=self.uid)
        except NotFound:
            pass
        self.kubelet.forget(self.uid)


class Kubelet:
    """Starts a PodRuntime per pod and handles graceful deletion."""

    def __init__(self, store: Store, tick: float = 0.05, pull_delay: float = 0.05) -> None:
        self.store = store
        self.tick = tick  # the shortest time between two looks at the pods
        self.pull_delay = pull_delay
        self.runtimes: dict[str, PodRuntime] = {}
        self.logs: dict[tuple[str, str], collections.deque[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kubelet", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            runtimes = list(self.runtimes.values())
        for rt in runtimes:
            rt.halt()
        with self.store.changed:
            self.store.changed.notify_all()  # the loop's wait
        for rt in runtimes:
            rt.join(timeout=2)

    def forget(self, uid: str) -> None:
        with self._lock:
            self.runtimes.pop(uid, None)

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            seen = self.store.revision
            pods, _rv = self.store.list(POD)
            with self._lock:
                for pod in pods:
                    uid = pod["metadata"]["uid"]
                    if uid not in self.runtimes and not is_terminating(pod):
                        rt = PodRuntime(self, pod)
                        self.runtimes[uid] = rt
                        self.logs[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = rt.logs
                        rt.start()
                    elif uid not in self.runtimes and is_terminating(pod):
                        # terminating pod without a runtime (e.g. deleted before it started)
                        try:
                            self.store.delete(POD, pod["metadata"]["namespace"], pod["metadata"]["name"], uid=uid)
                        except NotFound:
                            pass
            # a new or deleted pod is a change; without one, look again after a second all the same
            self.store.wait_for_change(seen, 1.0)
            self._stop.wait(max(0.0, began + self.tick - time.monotonic()))

    def delete_pod(self, pod: Obj, grace: int | None = None, dry_run: bool = False) -> Obj:
        """Graceful deletion: mark the pod terminating; its runtime removes it after the grace period."""
        ns, name, uid = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"]
        if grace is None:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        with self._lock:
            rt = self.runtimes.get(uid)
        if dry_run:
            return pod
        if grace <= 0 or rt is None or not rt.running:
            if rt is not None:
                rt.halt()
            try:
                return self.store.delete(POD, ns, name, uid=uid)
            except NotFound:
                return pod

        def mark(p: Obj) -> None:
            if not p["metadata"].get("deletionTimestamp"):
                p["metadata"]["deletionTimestamp"] = iso(now() + grace)
                p["metadata"]["deletionGracePeriodSeconds"] = grace
        return self.store.mutate(POD, ns, name, mark, uid=uid) or pod

    def pod_logs(self, namespace: str, name: str) -> str:
        lines = self.logs.get((namespace, name))
        return "".join(f"{line}\n" for line in (lines or []))
