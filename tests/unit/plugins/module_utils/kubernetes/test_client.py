"""Connection resolution (options, K8S_AUTH_* environment, kubeconfig) and error messages without secrets."""
from __future__ import annotations

import json
import socket

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.client import (
    KubeClient,
    api_error_message,
    build_configuration,
    resolve_connection,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    PlatformUnreachable,
    RolloutError,
    WorkloadNotFound,
)

SECRET = "s3cr3t-t0ken-value"

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {{server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}
- name: b
  cluster: {{server: "http://127.0.0.2:8080"}}
users:
- name: u
  user: {{token: {token}}}
contexts:
- name: ctx-a
  context: {{cluster: a, user: u}}
- name: ctx-b
  context: {{cluster: b, user: u}}
current-context: ctx-a
"""


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG.format(token="file-token"))
    return str(path)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_awx_environment_is_used_when_options_are_unset():
    env = {"K8S_AUTH_HOST": "https://198.51.100.7:6443", "K8S_AUTH_API_KEY": SECRET,
           "K8S_AUTH_VERIFY_SSL": "no"}
    conn = resolve_connection({}, env)
    assert (conn.host, conn.api_key, conn.validate_certs, conn.source) == (
        "https://198.51.100.7:6443", SECRET, False, "explicit host")
    config = build_configuration(conn)
    assert config.host == "https://198.51.100.7:6443"
    assert config.api_key == {"BearerToken": f"Bearer {SECRET}"}
    assert config.verify_ssl is False
    assert SECRET not in conn.describe()


def test_task_options_win_over_environment(kubeconfig):
    env = {"K8S_AUTH_HOST": "https://198.51.100.7:6443", "K8S_AUTH_CONTEXT": "ctx-a",
           "K8S_AUTH_KUBECONFIG": "/nonexistent"}
    conn = resolve_connection({"kubeconfig": kubeconfig, "context": "ctx-b", "host": None}, env)
    assert conn.kubeconfig == kubeconfig and conn.context == "ctx-b"
    config = build_configuration(conn)
    # host from the environment overrides the kubeconfig's cluster, as kubernetes.core does
    assert config.host == "https://198.51.100.7:6443"


def test_kubeconfig_context_and_token(kubeconfig):
    config = build_configuration(resolve_connection({"kubeconfig": kubeconfig, "context": "ctx-b"}, {}))
    assert config.host == "http://127.0.0.2:8080"
    assert config.api_key["BearerToken"] == "Bearer file-token"
    config = build_configuration(resolve_connection({"kubeconfig": kubeconfig}, {}))
    assert config.host == "https://127.0.0.1:6443" and config.verify_ssl is False
    # validate_certs=true from the environment re-enables verification the kubeconfig turned off
    config = build_configuration(resolve_connection({"kubeconfig": kubeconfig}, {"K8S_AUTH_VERIFY_SSL": "true"}))
    assert config.verify_ssl is True


def test_verification_is_on_by_default():
    config = build_configuration(resolve_connection({"host": "https://198.51.100.7:6443"}, {}))
    assert config.verify_ssl is True


def test_bad_inputs_are_clear(kubeconfig, tmp_path):
    with pytest.raises(InvalidInput, match="kubeconfig: file /no/such/kubeconfig does not exist"):
        resolve_connection({"kubeconfig": "/no/such/kubeconfig"}, {})
    with pytest.raises(InvalidInput, match="K8S_AUTH_VERIFY_SSL='maybe' is not a boolean"):
        resolve_connection({"host": "https://x:1"}, {"K8S_AUTH_VERIFY_SSL": "maybe"})
    with pytest.raises(InvalidInput, match="must be a URL"):
        resolve_connection({"host": "10.0.0.1:6443"}, {})
    with pytest.raises(InvalidInput, match="context"):
        build_configuration(resolve_connection({"kubeconfig": kubeconfig, "context": "nope"}, {}))
    broken = tmp_path / "broken"
    broken.write_text("this: [is not a kubeconfig")
    with pytest.raises(InvalidInput, match="cannot load the Kubernetes connection"):
        build_configuration(resolve_connection({"kubeconfig": str(broken)}, {}))


def test_nothing_configured(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(InvalidInput, match="no Kubernetes connection configured"):
        resolve_connection({}, {})


def test_unreachable_api_names_the_host_not_the_token():
    port = closed_port()
    client = KubeClient(resolve_connection({"host": f"http://127.0.0.1:{port}", "api_key": SECRET,
                                            "k8s_request_timeout": 5}, {}))
    with pytest.raises(PlatformUnreachable) as err:
        client.get("Deployment", "web", "default")
    assert f"127.0.0.1:{port}" in err.value.msg
    assert SECRET not in err.value.msg and SECRET not in repr(err.value.details)


class FakeApiException(Exception):
    def __init__(self, status, message, reason="Reason"):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.body = json.dumps({"kind": "Status", "message": message})


@pytest.mark.parametrize("status, cls, text", [
    (404, WorkloadNotFound, 'deployments.apps "web" not found'),
    (422, InvalidInput, "spec.template.spec.containers[0].image: Required value"),
    (401, RolloutError, "rejected the credentials"),
    (403, RolloutError, "forbidden"),
    (500, RolloutError, "answered 500"),
])
def test_api_errors_are_translated_and_scrubbed(status, cls, text):
    client = KubeClient(resolve_connection({"host": "http://127.0.0.1:1", "api_key": SECRET}, {}))
    # A server echoing the token back (misbehaving proxy) must not leak it into the message.
    err = client.translate(FakeApiException(status, f'deployments.apps "web" not found {SECRET}'
                                            if status != 422 else
                                            "spec.template.spec.containers[0].image: Required value"), "read")
    assert isinstance(err, cls)
    assert text in err.msg
    assert SECRET not in err.msg


def test_api_error_message_falls_back_to_reason():
    exc = FakeApiException(502, "x", reason="Bad Gateway")
    exc.body = "<html>"
    assert api_error_message(exc) == "HTTP 502 Bad Gateway"
