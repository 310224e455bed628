"""pytest fixtures: ``k8s_cluster`` (session) and ``k8s_namespace`` (a fresh namespace per test).

``k8s_cluster`` starts the test API server in-process, unless ZD_KUBECONFIG is set (or KUBECONFIG
together with ZD_REAL_CLUSTER=1): then it targets that real cluster and starts nothing.

The yielded :class:`K8sCluster` is the stable interface other tests build on:
``.kubeconfig`` (path), ``.context``, ``.namespace``, ``.real`` (bool), ``.server`` (the in-process
server or None), ``.service_url(name, namespace=None, port=None)``, ``.kubectl(*args)`` and
``.api_client()``.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest

from .server import K8sTestServer
from .services import PROXY_PORT, PROXY_PORTS

KUBECTL_TIMEOUT = 60


def real_kubeconfig() -> str | None:
    """The kubeconfig of a real cluster to test against, when the environment asks for one."""
    if os.environ.get("ZD_KUBECONFIG"):
        return os.environ["ZD_KUBECONFIG"]
    if os.environ.get("ZD_REAL_CLUSTER") == "1" and os.environ.get("KUBECONFIG"):
        return os.environ["KUBECONFIG"].split(os.pathsep)[0]
    return None


@dataclass
class K8sCluster:
    kubeconfig: str
    context: str
    namespace: str = "default"
    real: bool = False
    server: K8sTestServer | None = None
    _kubectl_proxy: subprocess.Popen | None = field(default=None, repr=False)
    _kubectl_proxy_url: str | None = field(default=None, repr=False)

    # -- kubectl -------------------------------------------------------------------------------
    def kubectl(self, *args: str, timeout: float = KUBECTL_TIMEOUT, check: bool = False,
                namespace: str | None = None, input: str | None = None) -> subprocess.CompletedProcess:
        """Run kubectl against this cluster (always with a timeout); returns the CompletedProcess."""
        cmd = ["kubectl", "--kubeconfig", self.kubeconfig, "--context", self.context]
        if namespace:
            cmd += ["--namespace", namespace]
        cmd += list(args)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    # -- python client ---------------------------------------------------------------------------
    def api_client(self) -> Any:
        """A kubernetes.client.ApiClient configured from the kubeconfig."""
        from kubernetes import config  # noqa: PLC0415 (optional dependency of the tests)
        return config.new_client_from_config(config_file=self.kubeconfig, context=self.context)

    # -- services ------------------------------------------------------------------------------
    def service_url(self, name: str, namespace: str | None = None, port: int | str | None = None,
                    timeout: float = 10.0) -> str:
        """Base URL (no trailing slash) that reaches a Service, balanced over its ready endpoints.

        Test server: the Service's loopback proxy. Real cluster: the API server's service proxy
        through a ``kubectl proxy`` this fixture starts on a loopback port.
        """
        ns = namespace or self.namespace
        if self.real:
            return f"{self._start_kubectl_proxy()}/api/v1/namespaces/{ns}/services/{name}" + \
                (f":{port}" if port is not None else "") + "/proxy"
        assert self.server is not None
        from .resources import SERVICE  # noqa: PLC0415
        end = time.monotonic() + timeout
        while True:
            svc = self.server.store.try_get(SERVICE, ns, name)
            ann = ((svc or {}).get("metadata") or {}).get("annotations") or {}
            if PROXY_PORT in ann:
                break
            if time.monotonic() > end:
                raise LookupError(f"service {ns}/{name} not found on the test server")
            time.sleep(0.05)
        if port is None:
            return f"http://127.0.0.1:{ann[PROXY_PORT]}"
        ports = json.loads(ann[PROXY_PORTS])
        if str(port) in ports:
            return f"http://127.0.0.1:{ports[str(port)]}"
        for sp in svc["spec"].get("ports") or []:
            if str(sp.get("port")) == str(port) or sp.get("name") == port:
                return f"http://127.0.0.1:{ports[str(sp.get('name') or sp.get('port'))]}"
        raise LookupError(f"service {ns}/{name} has no port {port}")

    def _start_kubectl_proxy(self) -> str:
        if self._kubectl_proxy_url:
            return self._kubectl_proxy_url
        proc = subprocess.Popen(
            ["kubectl", "--kubeconfig", self.kubeconfig, "--context", self.context, "proxy", "--port=0",
             "--address=127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = proc.stdout.readline() if proc.stdout else ""
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        if not m:
            proc.kill()
            raise RuntimeError(f"kubectl proxy did not start: {line!r}")
        self._kubectl_proxy = proc
        self._kubectl_proxy_url = f"http://127.0.0.1:{m.group(1)}"
        return self._kubectl_proxy_url

    def close(self) -> None:
        if self._kubectl_proxy is not None:
            self._kubectl_proxy.terminate()
            try:
                self._kubectl_proxy.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._kubectl_proxy.kill()
            self._kubectl_proxy = None
        if self.server is not None:
            self.server.stop()
            self.server = None

    # -- namespaces ----------------------------------------------------------------------------
    def create_namespace(self, prefix: str = "zd") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        self.kubectl("create", "-f", "-", input=json.dumps(manifest), check=True)
        return name

    def delete_namespace(self, name: str) -> None:
        self.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", timeout=60)


def _current_context(kubeconfig: str) -> str:
    if os.environ.get("ZD_KUBE_CONTEXT"):
        return os.environ["ZD_KUBE_CONTEXT"]
    proc = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "config", "current-context"],
                          capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"no current context in {kubeconfig}; set ZD_KUBE_CONTEXT")
    return proc.stdout.strip()


def start_cluster() -> K8sCluster:
    """Start the in-process test server (or bind to the real cluster the environment names)."""
    real = real_kubeconfig()
    if real:
        return K8sCluster(kubeconfig=real, context=_current_context(real),
                          namespace=os.environ.get("ZD_KUBE_NAMESPACE", "default"), real=True)
    server = K8sTestServer().start()
    workdir = tempfile.mkdtemp(prefix="zd-k8s-")
    path = server.write_kubeconfig(os.path.join(workdir, "kubeconfig"))
    cluster = K8sCluster(kubeconfig=path, context="zerodown-test", namespace="default", real=False, server=server)
    atexit.register(cluster.close)
    return cluster


@pytest.fixture(scope="session")
def k8s_cluster() -> Iterator[K8sCluster]:
    """The Kubernetes cluster the k8s tests run against (test server by default)."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def k8s_namespace(k8s_cluster: K8sCluster) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = k8s_cluster.create_namespace()
    try:
        yield name
    finally:
        k8s_cluster.delete_namespace(name)
