"""Connection resolution (options, K8S_AUTH_* environment, kubeconfig) and error messages without secrets."""
from __future__ import annotations

import inspect
import json
import socket

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.client import (
    PATCH_TYPES,
    KubeClient,
    api_error_message,
    build_configuration,
    header_spellings,
    resolve_connection,
    takes_keyword,
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
    assert config.api_key == {"BearerToken": f"Bearer {SECRET}", "authorization": f"Bearer {SECRET}"}
    assert config.auth_settings()["BearerToken"]["value"] == f"Bearer {SECRET}"
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


@pytest.mark.parametrize("text, held", [("just some words\n", "a str"), ("- a\n- b\n", "a list"),
                                        ("kind: Config\n", "a mapping without clusters, contexts or users")])
def test_a_file_that_is_not_a_kubeconfig_is_named_as_such(tmp_path, text, held):
    garbage = tmp_path / "garbage"
    garbage.write_text(text)
    with pytest.raises(InvalidInput) as err:
        build_configuration(resolve_connection({"kubeconfig": str(garbage)}, {}))
    assert f"kubeconfig {garbage}: it is not a kubeconfig (it holds {held}" in err.value.msg
    assert "point kubeconfig (or K8S_AUTH_KUBECONFIG / KUBECONFIG) at a kubeconfig file" in err.value.msg


def test_an_unknown_context_lists_the_contexts_there_are(kubeconfig):
    with pytest.raises(InvalidInput) as err:
        build_configuration(resolve_connection({"kubeconfig": kubeconfig, "context": "nope"}, {}))
    assert "it has no context 'nope' (it has: 'ctx-a', 'ctx-b'); set context to one of them" in err.value.msg


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


# ---------------------------------------------------------------------- kubernetes.core's option names
def test_every_kubernetes_core_variable_is_read(kubeconfig):
    env = {"K8S_AUTH_HOST": "https://198.51.100.7:6443", "K8S_AUTH_API_KEY": SECRET,
           "K8S_AUTH_VERIFY_SSL": "false", "K8S_AUTH_PROXY": "http://192.0.2.1:3128",
           "K8S_AUTH_NO_PROXY": "localhost,.svc", "K8S_AUTH_IMPERSONATE_USER": "deployer",
           "K8S_AUTH_IMPERSONATE_GROUPS": "ops, auditors,,", "K8S_AUTH_PROXY_HEADERS_USER_AGENT": "zd-test/1",
           "K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH": "proxyuser:proxypass"}
    conn = resolve_connection({}, env)
    assert (conn.host, conn.api_key, conn.validate_certs) == ("https://198.51.100.7:6443", SECRET, False)
    assert (conn.proxy, conn.no_proxy) == ("http://192.0.2.1:3128", "localhost,.svc")
    assert (conn.impersonate_user, conn.impersonate_groups) == ("deployer", ("ops", "auditors"))
    assert conn.proxy_headers["User-Agent"] == "zd-test/1"
    assert conn.proxy_headers["Proxy-Authorization"].startswith("Basic ")
    config = build_configuration(conn)
    assert (config.proxy, config.no_proxy, config.verify_ssl) == ("http://192.0.2.1:3128", "localhost,.svc", False)
    assert config.proxy_headers == conn.proxy_headers
    conn = resolve_connection({}, {"K8S_AUTH_KUBECONFIG": kubeconfig, "K8S_AUTH_CONTEXT": "ctx-b"})
    assert (conn.kubeconfig, conn.context) == (kubeconfig, "ctx-b")
    assert build_configuration(conn).host == "http://127.0.0.2:8080"


def test_file_variables_are_read(tmp_path):
    files = {name: tmp_path / name for name in ("ca.pem", "cert.pem", "key.pem")}
    for path in files.values():
        path.write_text("x")
    env = {"K8S_AUTH_HOST": "https://198.51.100.7:6443", "K8S_AUTH_SSL_CA_CERT": str(files["ca.pem"]),
           "K8S_AUTH_CERT_FILE": str(files["cert.pem"]), "K8S_AUTH_KEY_FILE": str(files["key.pem"])}
    conn = resolve_connection({}, env)
    assert (conn.ca_cert, conn.client_cert, conn.client_key) == tuple(str(p) for p in files.values())
    config = build_configuration(conn)
    assert (config.ssl_ca_cert, config.cert_file, config.key_file) == tuple(str(p) for p in files.values())


def test_explicit_values_win_over_the_environment_even_false_and_empty():
    env = {"K8S_AUTH_VERIFY_SSL": "true", "K8S_AUTH_PROXY": "http://192.0.2.1:3128",
           "K8S_AUTH_IMPERSONATE_USER": "deployer", "K8S_AUTH_IMPERSONATE_GROUPS": "ops",
           "K8S_AUTH_PROXY_HEADERS_USER_AGENT": "from-env"}
    conn = resolve_connection({"host": "https://198.51.100.7:6443", "validate_certs": False, "proxy": "",
                               "impersonate_user": "", "impersonate_groups": [],
                               "proxy_headers": {"user_agent": "from-task", "basic_auth": None,
                                                 "proxy_basic_auth": None}}, env)
    assert conn.validate_certs is False
    assert conn.proxy is None and conn.impersonate_user is None and conn.impersonate_groups == ()
    assert conn.proxy_headers == {"User-Agent": "from-task"}
    assert build_configuration(conn).proxy is None


@pytest.mark.parametrize("params, env, match", [
    ({"host": "https://x:1", "proxy": "192.0.2.1:3128"}, {}, "proxy='192.0.2.1:3128' must be a URL"),
    ({"host": "https://x:1", "impersonate_groups": ["ops"]}, {}, "impersonate_groups needs impersonate_user"),
    ({"host": "https://x:1", "impersonate_user": "u", "impersonate_groups": ["ops", ""]}, {},
     "every group must be a non-empty name"),
    ({"host": "https://x:1", "proxy_headers": {"proxy_basic_auth": "no-colon-" + SECRET}}, {},
     r"proxy_headers\.proxy_basic_auth must be user:password"),
    ({"host": "https://x:1", "proxy_headers": {"colour": "blue"}}, {}, "proxy_headers: unknown key"),
    ({"host": "https://x:1"}, {"K8S_AUTH_IMPERSONATE_GROUPS": "ops"}, "impersonate_groups needs impersonate_user"),
])
def test_bad_connection_options_are_clear_and_never_echo_secrets(params, env, match):
    with pytest.raises(InvalidInput, match=match) as err:
        resolve_connection(params, env)
    assert SECRET not in err.value.msg


def test_the_argument_spec_uses_kubernetes_core_names_and_keeps_the_old_ones_as_deprecated_aliases():
    from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.args import KUBERNETES_ARGS
    for name in ("kubeconfig", "context", "host", "api_key", "validate_certs", "ca_cert", "client_cert",
                 "client_key", "proxy", "proxy_headers", "no_proxy", "impersonate_user", "impersonate_groups"):
        assert name in KUBERNETES_ARGS, name
    for old, new in (("k8s_ca_cert", "ca_cert"), ("k8s_client_cert", "client_cert"),
                     ("k8s_client_key", "client_key"), ("k8s_validate_certs", "validate_certs"),
                     ("k8s_proxy", "proxy")):
        assert old in KUBERNETES_ARGS[new]["aliases"]
        assert [d["name"] for d in KUBERNETES_ARGS[new]["deprecated_aliases"]] == [old]


@pytest.mark.parametrize("module_name", ["image_upgrade", "rollout_wait", "rollback", "rollout_info", "preflight"])
def test_no_option_name_or_alias_is_taken_twice(module_name):
    import importlib
    import ast
    import inspect
    module = importlib.import_module(f"ansible_collections.zerodown.rollout.plugins.modules.{module_name}")
    from ansible_collections.zerodown.rollout.plugins.module_utils import platforms
    source = inspect.getsource(module)
    # the groups and module options the module passes to argument_spec(...)
    call = next(node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)
                and getattr(node.func, "id", None) == "argument_spec")
    groups = [ast.literal_eval(arg) for arg in call.args]
    own = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    spec = platforms.argument_spec(*groups, **own)
    seen: dict[str, str] = {}
    for option, definition in spec.items():
        for name in [option, *definition.get("aliases", [])]:
            assert name not in seen, f"{module_name}: {name} is both {seen[name]} and {option}"
            seen[name] = option
    sizes = len(platforms.COMMON_ARGS) + len(platforms._backend_args(groups)) + len(own)
    assert len(spec) == sizes, f"{module_name}: a module option has the name of a backend option"


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


def test_header_spellings_are_distinct_and_case_insensitively_equal():
    names = header_spellings("Impersonate-Group", 5)
    assert names[0] == "Impersonate-Group"
    assert len(set(names)) == 5 and {n.lower() for n in names} == {"impersonate-group"}


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
