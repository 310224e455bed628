"""Playbooks written with kubernetes.core's connection option names and K8S_AUTH_* variables.

The modules reach the test API server through a recording HTTP proxy, so the test sees what went on the
wire: the bearer token, the proxy headers, one Impersonate-Group line per group, and the Content-Type of
each PATCH (the oldest supported client chooses it differently from the newest: `make test` runs this file
with both, see ZD_TARGET_PYTHON in docs/development.md).
"""
from __future__ import annotations

import base64
import json
import socket
import threading
import typing as t
import urllib.parse

import pytest

from tests.k8s_server import manifests as m

pytestmark = pytest.mark.k8s
V1, V2 = f"{m.DEMO_IMAGE}:1.0", f"{m.DEMO_IMAGE}:2.0"
TOKEN = "zd-option-names-token"
PROXY_USER = "zd-proxy:proxy-secret"


class RecordingProxy:
    """A plain-HTTP forward proxy: records each request's method, target and header lines, relays it upstream
    with ``Connection: close`` and streams the answer back (watches included)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, list[tuple[str, str]]]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stopping = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                conn = self._listener.accept()[0]
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head, dummy, rest = data.partition(b"\r\n\r\n")
        return head, rest

    def _relay(self, client: socket.socket) -> None:
        try:
            self._relay_one(client)
        except OSError:  # the client closed a watch it no longer needs: nothing to relay any more
            pass
        finally:
            client.close()

    def _relay_one(self, client: socket.socket) -> None:
        """Relay one request (the proxy answers Connection: close, so one per connection)."""
        head, body = self._read_head(client)
        if not head:
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target = lines[0].split(" ", 2)[:2]
        headers = [(name.strip(), value.strip()) for name, dummy, value in (line.partition(":") for line in lines[1:])]
        self.requests.append((method, target, headers))
        length = int(next((v for n, v in headers if n.lower() == "content-length"), "0"))
        while len(body) < length:
            chunk = client.recv(65536)
            if not chunk:
                break
            body += chunk
        url = urllib.parse.urlsplit(target)
        hop = ("proxy-authorization", "proxy-connection", "connection", "keep-alive")
        out = [f"{method} {url.path}{'?' + url.query if url.query else ''} HTTP/1.1"]
        out += [f"{n}: {v}" for n, v in headers if n.lower() not in hop] + ["Connection: close", "", ""]
        with socket.create_connection((url.hostname, url.port)) as upstream:
            upstream.sendall("\r\n".join(out).encode("latin-1") + body)
            answer_head, answer_rest = self._read_head(upstream)
            answer = [line for line in answer_head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
            client.sendall(b"\r\n".join(answer + [b"Connection: close", b"", b""]) + answer_rest)
            while True:
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                client.sendall(chunk)

    def header_values(self, name: str) -> list[list[str]]:
        """For each recorded request, the values of every ``name`` line (case-insensitive)."""
        return [[v for n, v in request[2] if n.lower() == name.lower()] for request in self.requests]


@pytest.fixture
def proxy() -> t.Iterator[RecordingProxy]:
    recorder = RecordingProxy()
    yield recorder
    recorder.close()


@pytest.fixture
def api_url(k8s_cluster) -> str:
    if k8s_cluster.real:
        pytest.skip("the recording proxy relays plain HTTP: it runs against the test API server only")
    return k8s_cluster.server.url


def deploy(kubectl, name="web"):
    kubectl.apply(m.deployment(name, V1, replicas=2, max_surge=1, max_unavailable=0))
    kubectl("rollout", "status", f"deployment/{name}", "--timeout=60s")


def image_of(kubectl, name="web"):
    return json.loads(kubectl("get", "deployment", name, "-o", "json").stdout)["spec"]["template"]["spec"][
        "containers"][0]["image"]


def test_kubernetes_core_option_names_through_a_proxy(kubectl, play, proxy, api_url, k8s_namespace):
    deploy(kubectl)
    options = {"platform": "kubernetes", "namespace": k8s_namespace, "host": api_url, "api_key": TOKEN,
               "validate_certs": False, "proxy": proxy.url, "no_proxy": "no-such-host.invalid",
               "proxy_headers": {"proxy_basic_auth": PROXY_USER, "user_agent": "zd-option-names/1"},
               "impersonate_user": "deployer", "impersonate_groups": ["ops", "auditors"]}
    info, check, upgrade, back = play(
        ("rollout_info", {"name": "web"}),
        ("image_upgrade", {"name": "web", "image": V2}, True),
        ("image_upgrade", {"name": "web", "image": V2, "wait_timeout": 120}),
        ("rollback", {"name": "web", "to_revision": 1, "wait_timeout": 120}),
        defaults=options)
    for step in (info, check, upgrade, back):
        assert not step.get("failed"), (step, play.last_stdout[-3000:])
    assert [r["revision"] for r in info["revisions"]] == [1]
    assert check["changed"] and (upgrade["revision"], upgrade["status"]["done"]) == (2, True)
    assert back["rolled_back_to"] == 1 and image_of(kubectl) == V1

    assert proxy.requests, "no request went through the proxy"
    assert all(request[1].startswith(api_url + "/") for request in proxy.requests)
    assert proxy.header_values("Authorization") == [[f"Bearer {TOKEN}"]] * len(proxy.requests)
    basic = "Basic " + base64.b64encode(PROXY_USER.encode()).decode()
    assert proxy.header_values("Proxy-Authorization") == [[basic]] * len(proxy.requests)
    assert proxy.header_values("User-Agent") == [["zd-option-names/1"]] * len(proxy.requests)
    assert proxy.header_values("Impersonate-User") == [["deployer"]] * len(proxy.requests)
    assert proxy.header_values("Impersonate-Group") == [["ops", "auditors"]] * len(proxy.requests)
    # image_upgrade sends a strategic merge patch (check mode as a server-side dry run), the Deployment
    # rollback a JSON patch: whatever the client's version, the request says so
    patches = [(urllib.parse.urlsplit(target).query, dict((n.lower(), v) for n, v in headers)["content-type"])
               for method, target, headers in proxy.requests if method == "PATCH"]
    assert patches == [("dryRun=All", "application/strategic-merge-patch+json"),
                       ("", "application/strategic-merge-patch+json"),
                       ("", "application/json-patch+json")], patches


def test_k8s_auth_environment_variables(kubectl, play, proxy, api_url, k8s_namespace):
    deploy(kubectl)
    env = {"K8S_AUTH_HOST": api_url, "K8S_AUTH_API_KEY": TOKEN, "K8S_AUTH_VERIFY_SSL": "no",
           "K8S_AUTH_PROXY": proxy.url, "K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH": PROXY_USER,
           "K8S_AUTH_IMPERSONATE_USER": "deployer", "K8S_AUTH_IMPERSONATE_GROUPS": "ops,auditors"}
    defaults = {"platform": "kubernetes", "namespace": k8s_namespace}
    [upgrade] = play(("image_upgrade", {"name": "web", "image": V2, "wait_timeout": 120}), env=env, defaults=defaults)
    assert not upgrade.get("failed") and upgrade["revision"] == 2, (upgrade, play.last_stdout[-3000:])
    assert image_of(kubectl) == V2
    assert proxy.requests
    assert proxy.header_values("Authorization") == [[f"Bearer {TOKEN}"]] * len(proxy.requests)
    assert proxy.header_values("Impersonate-Group") == [["ops", "auditors"]] * len(proxy.requests)
    basic = "Basic " + base64.b64encode(PROXY_USER.encode()).decode()
    assert proxy.header_values("Proxy-Authorization") == [[basic]] * len(proxy.requests)

    # K8S_AUTH_NO_PROXY covers the API server: nothing goes through the proxy; an explicit empty
    # impersonate_user turns the variable's impersonation off
    seen = len(proxy.requests)
    [info] = play(("rollout_info", {"name": "web", "impersonate_user": "", "impersonate_groups": []}),
                  env=dict(env, K8S_AUTH_NO_PROXY="127.0.0.1,localhost"), defaults=defaults)
    assert not info.get("failed") and info["status"]["done"], (info, play.last_stdout[-3000:])
    assert len(proxy.requests) == seen


def test_deprecated_k8s_names_still_work_and_warn(kubectl, play, proxy, api_url, k8s_namespace):
    deploy(kubectl)
    defaults = {"platform": "kubernetes", "namespace": k8s_namespace, "host": api_url, "api_key": TOKEN,
                "k8s_validate_certs": False, "k8s_proxy": proxy.url}
    [info] = play(("rollout_info", {"name": "web"}), defaults=defaults)
    assert not info.get("failed") and info["revisions"][0]["revision"] == 1, (info, play.last_stdout[-3000:])
    assert proxy.requests
    output = " ".join(play.last_stdout.split())
    assert "k8s_proxy" in output and "k8s_validate_certs" in output and "deprecated" in output.lower()


def test_bad_connection_options_fail_clearly_and_change_nothing(kubectl, play, proxy, api_url, k8s_namespace):
    deploy(kubectl)
    defaults = {"platform": "kubernetes", "namespace": k8s_namespace, "host": api_url, "api_key": TOKEN}
    no_user, bad_proxy, bad_auth = play(
        ("image_upgrade", {"name": "web", "image": V2, "impersonate_groups": ["ops"]}),
        ("image_upgrade", {"name": "web", "image": V2, "proxy": "127.0.0.1:3128"}),
        ("image_upgrade", {"name": "web", "image": V2, "proxy": proxy.url,
                           "proxy_headers": {"proxy_basic_auth": "missing-colon"}}),
        defaults=defaults)
    assert no_user["failed"] and "impersonate_groups needs impersonate_user" in no_user["msg"]
    assert bad_proxy["failed"] and "must be a URL" in bad_proxy["msg"]
    assert bad_auth["failed"] and "proxy_basic_auth must be user:password" in bad_auth["msg"]
    assert "missing-colon" not in play.last_stdout
    assert "Traceback" not in play.last_stdout
    assert proxy.requests == [] and image_of(kubectl) == V1
