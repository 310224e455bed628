"""The API calls: errors without the token, the patch on both client shapes, impersonation on the wire."""
from __future__ import annotations

import inspect
import json
import socket

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.client import (
    PATCH_TYPES,
    KubeClient,
    takes_keyword,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.connection import resolve_connection
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import PlatformUnreachable, RolloutError

SECRET = "s3cr3t-t0ken-value"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_api_names_the_host_not_the_token():
    port = closed_port()
    client = KubeClient(resolve_connection({"host": f"http://127.0.0.1:{port}", "api_key": SECRET,
                                            "k8s_request_timeout": 5}, {}))
    with pytest.raises(PlatformUnreachable) as err:
        client.get("Deployment", "web", "default")
    assert f"127.0.0.1:{port}" in err.value.msg
    assert SECRET not in err.value.msg and SECRET not in repr(err.value.details)


# ---------------------------------------------------------------------- the client's range (24.2.0 ... newest)
class RecordingApi:
    """Stands in for a generated API method: either the newest shape (declares ``_content_type``) or the
    older one (``**kwargs``, refusing keywords it does not know, as clients before 37 do)."""

    def __init__(self, newest: bool):
        self.calls = []
        if newest:
            def patch_namespaced_deployment(name, namespace, body, *, dry_run=None, _preload_content=True,
                                            _request_timeout=None, _content_type=None):
                return self._record(name, namespace, body, dry_run=dry_run, _content_type=_content_type)
        else:
            def patch_namespaced_deployment(name, namespace, body, **kwargs):
                allowed = {"pretty", "dry_run", "field_manager", "field_validation", "force", "async_req",
                           "_return_http_data_only", "_preload_content", "_request_timeout"}
                unknown = set(kwargs) - allowed
                if unknown:
                    raise TypeError(f"Got an unexpected keyword argument '{unknown.pop()}'")
                return self._record(name, namespace, body, dry_run=kwargs.get("dry_run"))
        self.patch_namespaced_deployment = patch_namespaced_deployment

    def _record(self, name, namespace, body, **kwargs):
        self.calls.append((name, namespace, body, kwargs))

        class Response:
            data = json.dumps({"kind": "Deployment", "metadata": {"name": name}})
        return Response()


@pytest.mark.parametrize("newest", [True, False], ids=["client-37", "client-24-to-35"])
@pytest.mark.parametrize("patch_type, body", [
    ("strategic", {"spec": {"replicas": 2}}),
    ("json", [{"op": "replace", "path": "/spec/replicas", "value": 2}]),
])
@pytest.mark.parametrize("dry_run", [False, True])
def test_patch_sends_its_content_type_on_both_client_shapes(newest, patch_type, body, dry_run):
    client = KubeClient(resolve_connection({"host": "http://127.0.0.1:1"}, {}))
    api = RecordingApi(newest)
    client._apis["AppsV1Api"] = api
    assert client.patch("Deployment", "web", "ns", body, patch_type, dry_run=dry_run)["metadata"]["name"] == "web"
    (name, namespace, sent, kwargs), = api.calls
    assert (name, namespace, sent) == ("web", "ns", body)
    assert kwargs["dry_run"] == ("All" if dry_run else None)
    if newest:
        assert kwargs["_content_type"] == PATCH_TYPES[patch_type][0]
    # older clients choose the type from the body: a list is a JSON patch, a dict a strategic merge patch
    assert isinstance(sent, PATCH_TYPES[patch_type][1])


def test_a_patch_body_of_the_wrong_shape_is_refused_before_any_call():
    client = KubeClient(resolve_connection({"host": "http://127.0.0.1:1"}, {}))
    api = RecordingApi(False)
    client._apis["AppsV1Api"] = api
    with pytest.raises(RolloutError, match="a json patch must be a list, got dict"):
        client.patch("Deployment", "web", "ns", {"spec": {}}, "json")
    assert api.calls == []


def test_takes_keyword_reads_the_real_client():
    from kubernetes import client as k8s
    method = k8s.AppsV1Api(k8s.ApiClient()).patch_namespaced_deployment
    assert takes_keyword(method, "dry_run")
    assert not takes_keyword(method, "surely_not_a_keyword")
    assert not takes_keyword(object(), "x")  # not callable: no signature, no exception


def test_impersonation_headers_reach_the_wire_one_line_per_group():
    """Through the real client and urllib3: one Impersonate-User line, one Impersonate-Group line per group."""
    import http.server
    import threading

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            seen.append(self.headers)
            data = json.dumps({"kind": "Deployment", "metadata": {"name": "web"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = KubeClient(resolve_connection({"host": f"http://127.0.0.1:{server.server_port}", "api_key": SECRET,
                                                "impersonate_user": "deployer",
                                                "impersonate_groups": ["ops", "auditors", "system:authenticated"]},
                                               {}))
        assert client.get("Deployment", "web", "default")["metadata"]["name"] == "web"
    finally:
        server.shutdown()
        server.server_close()
    headers, = seen
    assert headers.get_all("Authorization") == [f"Bearer {SECRET}"]
    assert headers.get_all("Impersonate-User") == ["deployer"]
    assert headers.get_all("Impersonate-Group") == ["ops", "auditors", "system:authenticated"]


class RecordingWrites:
    """create_/delete_namespaced_deployment that record their arguments."""

    def __init__(self):
        self.calls = []

    def create_namespaced_deployment(self, namespace, body, **kwargs):
        self.calls.append(("create", namespace, body, kwargs))
        return self._answer(body["metadata"]["name"])

    def delete_namespaced_deployment(self, name, namespace, **kwargs):
        self.calls.append(("delete", namespace, name, kwargs))
        return self._answer(name)

    @staticmethod
    def _answer(name):
        class Response:
            data = json.dumps({"kind": "Deployment", "metadata": {"name": name}})
        return Response()


@pytest.mark.parametrize("dry_run", [False, True])
def test_create_and_delete_send_dry_run_only_when_asked(dry_run):
    client = KubeClient(resolve_connection({"host": "http://127.0.0.1:1"}, {}))
    api = RecordingWrites()
    client._apis["AppsV1Api"] = api
    body = {"metadata": {"name": "web-canary"}, "spec": {}}
    assert client.create("Deployment", "ns", body, dry_run=dry_run)["metadata"]["name"] == "web-canary"
    client.delete("Deployment", "web-canary", "ns", dry_run=dry_run)
    (verb1, ns1, sent, create_kwargs), (verb2, ns2, name, delete_kwargs) = api.calls
    assert (verb1, ns1, sent, verb2, ns2, name) == ("create", "ns", body, "delete", "ns", "web-canary")
    assert create_kwargs.get("dry_run") == delete_kwargs.get("dry_run") == ("All" if dry_run else None)
    assert delete_kwargs["propagation_policy"] == "Background"


def test_the_real_client_takes_the_write_keywords_used():
    from kubernetes import client as k8s
    api = k8s.AppsV1Api(k8s.ApiClient())
    # newer clients declare them; older ones take **kwargs and check them against the same names
    for method, names in ((api.create_namespaced_deployment, ("dry_run",)),
                          (api.delete_namespaced_deployment, ("dry_run", "propagation_policy"))):
        params = inspect.signature(method).parameters
        assert all(name in params for name in names) or any(p.kind is p.VAR_KEYWORD for p in params.values())
