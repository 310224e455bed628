"""Connection resolution (options, K8S_AUTH_* environment, kubeconfig), the client configuration, and errors
without secrets."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.connection import (
    build_configuration,
    header_spellings,
    impersonation_headers,
    resolve_connection,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput

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


def test_header_spellings_are_distinct_and_case_insensitively_equal():
    names = header_spellings("Impersonate-Group", 5)
    assert names[0] == "Impersonate-Group"
    assert len(set(names)) == 5 and {n.lower() for n in names} == {"impersonate-group"}


def test_impersonation_headers_name_the_user_and_each_group_once():
    conn = resolve_connection({"host": "https://x:1", "impersonate_user": "deployer",
                               "impersonate_groups": ["ops", "auditors"]}, {})
    headers = impersonation_headers(conn)
    assert headers[0] == ("Impersonate-User", "deployer")
    assert [value for _name, value in headers[1:]] == ["ops", "auditors"]
    assert {name.lower() for name, _value in headers[1:]} == {"impersonate-group"}
    assert len({name for name, _value in headers}) == 3
    assert impersonation_headers(resolve_connection({"host": "https://x:1"}, {})) == []
