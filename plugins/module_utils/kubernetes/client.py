# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Connection to the Kubernetes API through the official ``kubernetes`` client.

Where the connection comes from, first match wins for every setting:

1. the task's options, named as in kubernetes.core (``kubeconfig``, ``context``, ``host``, ``api_key``,
   ``ca_cert``, ``validate_certs``, ``proxy``, ``impersonate_user``...); an empty string turns a setting off;
2. the ``K8S_AUTH_*`` environment variables kubernetes.core reads, which AWX's Kubernetes credential injects;
3. the kubeconfig (``kubeconfig`` option, ``K8S_AUTH_KUBECONFIG``, ``KUBECONFIG``, ``~/.kube/config``);
4. the in-cluster service account, when running in a pod.

Every call returns plain JSON (``dict``) in the API's own camelCase, because the status rules and
revision logic are written against the API documents kubectl reads, not the client's models.
Errors become :class:`RolloutError` subclasses whose messages never contain credentials.

The code works with every client from kubernetes 24.2.0 on (``dependencies.FLOORS``): the generated API
methods changed shape in the newest clients, so keywords only some of them take are used behind a check
(see :meth:`KubeClient.patch`).
"""

from __future__ import annotations

import inspect
import json
import os
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    PlatformUnreachable,
    RolloutError,
    WorkloadNotFound,
)

try:
    import urllib3
    import yaml
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes import watch as k8s_watch
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR: t.Optional[str] = None
except ImportError as exc:  # reported by the backend with missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = str(exc)

    class ApiException(Exception):  # type: ignore[no-redef]
        status = 0
        body = None
        reason = None

    class ConfigException(Exception):  # type: ignore[no-redef]
        pass

    class yaml:  # type: ignore[no-redef]  # noqa: N801 (stands in for the module)
        class YAMLError(Exception):
            pass


# Option name -> environment variable, as kubernetes.core reads them (AWX's "OpenShift or Kubernetes API
# Bearer Token" credential sets K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL, K8S_AUTH_SSL_CA_CERT).
ENV_VARS = {
    "kubeconfig": "K8S_AUTH_KUBECONFIG",
    "context": "K8S_AUTH_CONTEXT",
    "host": "K8S_AUTH_HOST",
    "api_key": "K8S_AUTH_API_KEY",
    "ca_cert": "K8S_AUTH_SSL_CA_CERT",
    "client_cert": "K8S_AUTH_CERT_FILE",
    "client_key": "K8S_AUTH_KEY_FILE",
    "validate_certs": "K8S_AUTH_VERIFY_SSL",
    "proxy": "K8S_AUTH_PROXY",
    "no_proxy": "K8S_AUTH_NO_PROXY",
    "impersonate_user": "K8S_AUTH_IMPERSONATE_USER",
    "impersonate_groups": "K8S_AUTH_IMPERSONATE_GROUPS",
}
# proxy_headers suboption -> environment variable, read when the task leaves proxy_headers unset
PROXY_HEADERS_ENV_VARS = {
    "proxy_basic_auth": "K8S_AUTH_PROXY_HEADERS_PROXY_BASIC_AUTH",
    "basic_auth": "K8S_AUTH_PROXY_HEADERS_BASIC_AUTH",
    "user_agent": "K8S_AUTH_PROXY_HEADERS_USER_AGENT",
}
_FILE_OPTIONS = ("kubeconfig", "ca_cert", "client_cert", "client_key")

_TRUE = ("1", "true", "yes", "on", "y", "t")
_FALSE = ("0", "false", "no", "off", "n", "f")

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class Connection(t.NamedTuple):
    """The resolved connection settings. ``api_key`` and ``proxy_headers`` hold secrets: never format this
    tuple into text."""

    kubeconfig: t.Optional[str]
    context: t.Optional[str]
    host: t.Optional[str]
    api_key: t.Optional[str]
    ca_cert: t.Optional[str]
    client_cert: t.Optional[str]
    client_key: t.Optional[str]
    validate_certs: t.Optional[bool]
    proxy: t.Optional[str]
    request_timeout: float
    source: str
    no_proxy: t.Optional[str] = None
    proxy_headers: t.Optional[dict[str, str]] = None
    impersonate_user: t.Optional[str] = None
    impersonate_groups: tuple[str, ...] = ()

    def describe(self) -> str:
        """Where the connection comes from, safe to show (no credential)."""
        parts = [self.source]
        if self.host:
            parts.append(f"host {self.host}")
        if self.context:
            parts.append(f"context {self.context}")
        return ", ".join(parts)


def _env_bool(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise InvalidInput(f"environment variable {name}={value!r} is not a boolean; use true or false")


def _proxy_headers(params: dict[str, t.Any], env: t.Mapping[str, str]) -> t.Optional[dict[str, str]]:
    """The HTTP headers ``proxy_headers`` (or its K8S_AUTH_PROXY_HEADERS_* variables) asks for."""
    given = params.get("proxy_headers")
    if given is None:
        given = {key: env[var] for key, var in PROXY_HEADERS_ENV_VARS.items() if env.get(var) not in (None, "")}
    if not isinstance(given, dict):
        raise InvalidInput("proxy_headers must be a dictionary with proxy_basic_auth, basic_auth and/or user_agent")
    unknown = sorted(set(given) - set(PROXY_HEADERS_ENV_VARS))
    if unknown:
        raise InvalidInput(f"proxy_headers: unknown key(s) {', '.join(unknown)}; "
                           f"the keys are {', '.join(PROXY_HEADERS_ENV_VARS)}")
    values = {key: str(value) for key, value in given.items() if value is not None and value != ""}
    for key in ("proxy_basic_auth", "basic_auth"):
        if key in values and ":" not in values[key]:
            # the value is a credential: name the key, never echo the value
            raise InvalidInput(f"proxy_headers.{key} must be user:password (a colon between them)")
    if not values:
        return None
    # make_headers names them in lower case; the client sends its own "User-Agent". urllib3 2 merges headers
    # case-insensitively, urllib3 1 by exact name: the usual spelling makes both replace the client's.
    return {"-".join(word.capitalize() for word in name.split("-")): value
            for name, value in urllib3.util.make_headers(**values).items()}


def _groups(value: t.Any, source: str) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    groups = tuple(str(item).strip() for item in items)
    if isinstance(value, str):
        groups = tuple(group for group in groups if group)
    elif any(not group for group in groups):
        raise InvalidInput(f"{source}: every group must be a non-empty name, got {list(value)!r}")
    return groups


def resolve_connection(params: dict[str, t.Any], environ: t.Optional[t.Mapping[str, str]] = None) -> Connection:
    """Merge task options over the K8S_AUTH_* environment and work out which source to load.

    An option the task leaves unset (None) falls back to its environment variable; an explicit value wins,
    including an empty string, which turns the setting off (no proxy, no context...).
    """
    env = os.environ if environ is None else environ
    values: dict[str, t.Any] = {}
    for option, var in ENV_VARS.items():
        value = params.get(option)
        if value is None:
            raw = env.get(var)
            if raw is not None and raw != "":
                value = _env_bool(var, raw) if option == "validate_certs" else raw
        values[option] = None if value == "" else value
    for option in _FILE_OPTIONS:
        path = values[option]
        if path is not None:
            path = os.path.expanduser(str(path))
            if not os.path.isfile(path):
                raise InvalidInput(f"{option}: file {path} does not exist or is not a file")
            values[option] = path
    if values["host"] is not None and not str(values["host"]).startswith(("http://", "https://")):
        raise InvalidInput(f"host={values['host']!r} must be a URL such as https://203.0.113.10:6443")
    if values["proxy"] is not None and "://" not in str(values["proxy"]):
        raise InvalidInput(f"proxy={values['proxy']!r} must be a URL such as http://proxy.example.com:3128")
    groups = _groups(values["impersonate_groups"],
                     "impersonate_groups" if params.get("impersonate_groups") is not None
                     else ENV_VARS["impersonate_groups"])
    if groups and not values["impersonate_user"]:
        raise InvalidInput("impersonate_groups needs impersonate_user: the API server impersonates groups only "
                           "together with a user")
    timeout = params.get("k8s_request_timeout")
    if timeout is None:
        timeout = 30
    if timeout <= 0:
        raise InvalidInput(f"k8s_request_timeout must be 1 or more seconds, got {timeout}")

    if values["kubeconfig"]:
        source = "kubeconfig " + values["kubeconfig"]
    elif values["host"] and not values["context"]:
        source = "explicit host"
    elif env.get("KUBECONFIG") or os.path.isfile(os.path.expanduser("~/.kube/config")):
        source = "kubeconfig " + (env.get("KUBECONFIG") or "~/.kube/config")
    elif env.get("KUBERNETES_SERVICE_HOST") and os.path.isfile(SERVICE_ACCOUNT_TOKEN):
        source = "in-cluster service account"
    else:
        raise InvalidInput(
            "no Kubernetes connection configured: set kubeconfig (or K8S_AUTH_KUBECONFIG / KUBECONFIG), or host "
            "with api_key (or K8S_AUTH_HOST / K8S_AUTH_API_KEY), or run in a pod with a service account"
        )
    return Connection(
        kubeconfig=values["kubeconfig"],
        context=values["context"],
        host=values["host"],
        api_key=values["api_key"],
        ca_cert=values["ca_cert"],
        client_cert=values["client_cert"],
        client_key=values["client_key"],
        validate_certs=values["validate_certs"],
        proxy=values["proxy"],
        request_timeout=float(timeout),
        source=source,
        no_proxy=values["no_proxy"],
        proxy_headers=_proxy_headers(params, env),
        impersonate_user=values["impersonate_user"],
        impersonate_groups=groups,
    )


def _kubeconfig_path(conn: Connection) -> t.Optional[str]:
    """The one file the kubeconfig is read from, when it is one file (KUBECONFIG may list several)."""
    if conn.kubeconfig:
        return os.path.expanduser(conn.kubeconfig)
    listed = os.environ.get("KUBECONFIG")
    if listed:
        return listed if os.pathsep not in listed else None
    return os.path.expanduser("~/.kube/config")


def check_kubeconfig(conn: Connection) -> None:
    """Refuse, with what to fix, a kubeconfig that is not one (any YAML loads, plain text included: the client
    then fails with its own internals) or that lacks the context asked for (listing those it has)."""
    path = _kubeconfig_path(conn)
    if not path or not os.path.isfile(path):
        return  # the client says it cannot find the file
    where = f"cannot load the Kubernetes connection from kubeconfig {path}"
    fix = "point kubeconfig (or K8S_AUTH_KUBECONFIG / KUBECONFIG) at a kubeconfig file"
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{where}: it is not YAML ({exc}); {fix}")
    if not isinstance(data, dict) or not any(key in data for key in ("clusters", "contexts", "users")):
        held = f"a {type(data).__name__}" if not isinstance(data, dict) else "a mapping without clusters, contexts or users"
        raise InvalidInput(f"{where}: it is not a kubeconfig (it holds {held}, not a YAML mapping with clusters, users "
                           f"and contexts); {fix}")
    contexts = [c.get("name") for c in data.get("contexts") or [] if isinstance(c, dict) and c.get("name")]
    if conn.context and conn.context not in contexts:
        raise InvalidInput(f"{where}: it has no context {conn.context!r} (it has: "
                           f"{', '.join(repr(c) for c in contexts) or 'none'}); set context to one of them")


def build_configuration(conn: Connection) -> t.Any:
    """A ``kubernetes.client.Configuration`` for ``conn``; raises InvalidInput when it cannot be loaded."""
    configuration = k8s_client.Configuration()
    if conn.source.startswith("kubeconfig"):
        check_kubeconfig(conn)
    try:
        if conn.source.startswith("kubeconfig"):
            k8s_config.load_kube_config(
                config_file=conn.kubeconfig, context=conn.context, client_configuration=configuration,
                persist_config=False,
            )
        elif conn.source.startswith("in-cluster"):
            k8s_config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, yaml.YAMLError, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidInput(
            f"cannot load the Kubernetes connection from {conn.describe()}: {_scrub(str(exc), conn)}"
        )
    # Explicit settings override what the kubeconfig says, as kubernetes.core does.
    if conn.host:
        configuration.host = conn.host.rstrip("/")
    if conn.api_key:
        # Clients up to 35 read the token from api_key["authorization"], newer ones from "BearerToken" first
        # (then "authorization"): set both, so that it also replaces a token the kubeconfig gave.
        token = f"Bearer {conn.api_key}"
        configuration.api_key = {"authorization": token, "BearerToken": token}
        configuration.api_key_prefix = {}
    if conn.ca_cert:
        configuration.ssl_ca_cert = conn.ca_cert
    if conn.client_cert:
        configuration.cert_file = conn.client_cert
    if conn.client_key:
        configuration.key_file = conn.client_key
    if conn.validate_certs is not None:
        configuration.verify_ssl = conn.validate_certs
    if conn.proxy:
        configuration.proxy = conn.proxy
    if conn.no_proxy:
        configuration.no_proxy = conn.no_proxy
    if conn.proxy_headers:
        configuration.proxy_headers = conn.proxy_headers
    # Fail fast on a dead endpoint instead of urllib3's default retries.
    configuration.retries = 1
    return configuration


def _scrub(text: str, conn: t.Optional[Connection]) -> str:
    """Remove the credential from a message that might echo it (defence in depth)."""
    if conn is not None and conn.api_key:
        text = text.replace(conn.api_key, "********")
    return text


def api_error_message(exc: t.Any) -> str:
    """The API server's own explanation of a failed request (Status.message), else the HTTP reason."""
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])
        except (ValueError, TypeError):
            pass
    reason = getattr(exc, "reason", None) or "error"
    return f"HTTP {getattr(exc, 'status', '?')} {reason}"


# kind -> (API class name, method suffix)
_RESOURCES = {
    "Deployment": ("AppsV1Api", "namespaced_deployment"),
    "StatefulSet": ("AppsV1Api", "namespaced_stateful_set"),
    "DaemonSet": ("AppsV1Api", "namespaced_daemon_set"),
    "ReplicaSet": ("AppsV1Api", "namespaced_replica_set"),
    "ControllerRevision": ("AppsV1Api", "namespaced_controller_revision"),
    "Pod": ("CoreV1Api", "namespaced_pod"),
    "Event": ("CoreV1Api", "namespaced_event"),
}

# patch type -> (Content-Type, the body's JSON type)
PATCH_TYPES = {
    "json": ("application/json-patch+json", list),
    "strategic": ("application/strategic-merge-patch+json", dict),
}


def takes_keyword(func: t.Callable[..., t.Any], name: str) -> bool:
    """Whether a generated API method declares the keyword ``name``.

    Newer clients declare their keywords in the signature (pydantic validates them); older ones take
    ``**kwargs`` and refuse any key they do not know with ApiTypeError, so a keyword not declared is
    one not to pass.
    """
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def header_spellings(name: str, count: int) -> list[str]:
    """``count`` spellings of the header ``name`` that differ only in letter case.

    The client keeps its default headers in a dict, one value per key, while the API server wants one
    ``Impersonate-Group`` line per group. Header names are case-insensitive on the wire, so each group goes
    under its own spelling: urllib3 1 sends each key as a line, urllib3 2 folds the keys into one header
    with several values and still sends one line per value.
    """
    letters = [i for i, char in enumerate(name) if char.isalpha()]
    if count > 2 ** len(letters):
        raise InvalidInput(f"at most {2 ** len(letters)} values can be sent in the {name} header")
    spellings = []
    for number in range(count):
        chars = list(name)
        for bit, index in enumerate(letters):
            if number >> bit & 1:
                chars[index] = chars[index].swapcase()
        spellings.append("".join(chars))
    return spellings


def keep_repeated_headers_through_proxy(api_client: t.Any) -> None:
    """Keep one line per value of a repeated header on requests that go through an HTTP proxy.

    urllib3 2's ProxyManager copies a plain-HTTP request's headers into a dict to add Host and Accept; for a
    request with a body (a PATCH) those headers are already an HTTPHeaderDict, so the copy joins repeated
    headers into one line ("Impersonate-Group: ops, auditors", one group named so). urllib3 1 copies plain dicts
    and keeps them apart. Through a CONNECT tunnel (an https API server) no copy is made.
    """
    pool = getattr(getattr(api_client, "rest_client", None), "pool_manager", None)
    if not isinstance(pool, urllib3.ProxyManager) or parse_version_major(urllib3.__version__) < 2:
        return
    set_proxy_headers = getattr(pool, "_set_proxy_headers", None)
    try:
        from urllib3._collections import HTTPHeaderDict
    except ImportError:
        HTTPHeaderDict = None
    if set_proxy_headers is None or HTTPHeaderDict is None:
        raise InvalidInput(f"urllib3 {urllib3.__version__} would join several impersonate_groups into one header "
                           "through proxy; give one group, or reach the API server without the proxy (no_proxy)")

    def keep_apart(url: str, headers: t.Any = None) -> t.Any:
        result = HTTPHeaderDict(set_proxy_headers(url, None))
        if headers:
            for name in list(headers.keys()):
                result.discard(name)
            result.extend(headers)
        return result

    pool._set_proxy_headers = keep_apart


def parse_version_major(version: str) -> int:
    """The major number of a version string (0 when there is none)."""
    head = str(version).split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def impersonation_headers(conn: Connection) -> list[tuple[str, str]]:
    """The Impersonate-User / Impersonate-Group headers ``conn`` asks for, as (name, value) pairs."""
    if not conn.impersonate_user:
        return []
    headers = [("Impersonate-User", conn.impersonate_user)]
    names = header_spellings("Impersonate-Group", len(conn.impersonate_groups))
    headers.extend(zip(names, conn.impersonate_groups))
    return headers


def manifest_name(body: t.Any) -> str:
    """The metadata.name of a manifest, or '?' when it has none (the server then refuses it)."""
    meta = body.get("metadata") if isinstance(body, dict) else None
    return str((meta or {}).get("name") or "?")


class KubeClient:
    """Thin JSON-in/JSON-out access to the few resources the backend needs."""

    def __init__(self, conn: Connection, configuration: t.Any = None) -> None:
        self.conn = conn
        self.configuration = configuration if configuration is not None else build_configuration(conn)
        self.api_client = k8s_client.ApiClient(self.configuration)
        for header, value in impersonation_headers(conn):
            self.api_client.set_default_header(header, value)
        if len(conn.impersonate_groups) > 1:
            keep_repeated_headers_through_proxy(self.api_client)
        self._apis: dict[str, t.Any] = {}

    @classmethod
    def from_params(cls, params: dict[str, t.Any]) -> "KubeClient":
        """Resolve the connection from module params + environment and build a client."""
        return cls(resolve_connection(params))

    @property
    def timeout(self) -> tuple[float, float]:
        return (min(10.0, self.conn.request_timeout), self.conn.request_timeout)

    def _method(self, verb: str, kind: str) -> t.Callable[..., t.Any]:
        api_name, suffix = _RESOURCES[kind]
        if api_name not in self._apis:
            self._apis[api_name] = getattr(k8s_client, api_name)(self.api_client)
        return getattr(self._apis[api_name], f"{verb}_{suffix}")

    def _call(self, what: str, func: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
        kwargs.setdefault("_request_timeout", self.timeout)
        kwargs["_preload_content"] = False
        try:
            resp = func(*args, **kwargs)
            return json.loads(resp.data)
        except ApiException as exc:
            raise self.translate(exc, what)
        except urllib3.exceptions.HTTPError as exc:
            raise self.unreachable(exc)
        except ValueError as exc:
            raise RolloutError(f"{what}: the API server sent an answer that is not JSON ({exc})")

    def unreachable(self, exc: BaseException) -> PlatformUnreachable:
        """The error for a connection-level failure (refused, DNS, TLS, timeout)."""
        detail = _scrub(str(getattr(exc, "reason", None) or exc), self.conn)
        return PlatformUnreachable(
            f"cannot reach the Kubernetes API at {self.configuration.host} ({self.conn.describe()}): {detail}. "
            "Check host/kubeconfig/context and that the API server is up and reachable from where the task runs"
        )

    def translate(self, exc: t.Any, what: str) -> RolloutError:
        """A user-facing error for an ApiException raised while doing ``what``."""
        status = getattr(exc, "status", 0)
        message = _scrub(api_error_message(exc), self.conn)
        if status == 0:
            return PlatformUnreachable(
                f"{what}: cannot talk to the Kubernetes API at {self.configuration.host}: "
                f"{_scrub(str(getattr(exc, 'reason', '') or ''), self.conn)}"
            )
        if status == 401:
            return RolloutError(
                f"{what}: the API server at {self.configuration.host} rejected the credentials (401 Unauthorized); "
                f"check api_key / client certificate / the kubeconfig user ({self.conn.describe()})"
            )
        if status == 403:
            return RolloutError(f"{what}: forbidden (403): {message}; grant the needed RBAC permission")
        if status == 404:
            return WorkloadNotFound(f"{what}: not found: {message}")
        if status in (400, 415, 422):
            return InvalidInput(f"{what}: the API server refused the request ({status}): {message}")
        if status == 409:
            return RolloutError(f"{what}: conflict (409): {message}; re-run the task")
        return RolloutError(f"{what}: the API server answered {status}: {message}")

    def get(self, kind: str, name: str, namespace: str) -> dict[str, t.Any]:
        """GET one object."""
        return self._call(f"read {kind} {namespace}/{name}", self._method("read", kind), name, namespace)

    def list(self, kind: str, namespace: str, label_selector: t.Optional[str] = None,
             field_selector: t.Optional[str] = None) -> dict[str, t.Any]:
        """LIST objects of a kind in a namespace; returns the List document (items, metadata)."""
        kwargs: dict[str, t.Any] = {}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if field_selector:
            kwargs["field_selector"] = field_selector
        return self._call(f"list {kind}s in namespace {namespace}", self._method("list", kind), namespace, **kwargs)

    def patch(self, kind: str, name: str, namespace: str, body: t.Any, patch_type: str,
              dry_run: bool = False) -> dict[str, t.Any]:
        """PATCH an object; ``dry_run`` asks the server to validate and answer without persisting.

        ``patch_type`` is ``json`` (a list of operations) or ``strategic`` (a partial object). Clients from 37
        on take the Content-Type as ``_content_type``. Older ones refuse that keyword and pick the type from
        the body themselves: their REST layer sends a list as a JSON patch and anything else as a strategic
        merge patch. Checking the body's type here makes both send the same request.
        """
        content_type, body_type = PATCH_TYPES[patch_type]
        if not isinstance(body, body_type):
            raise RolloutError(f"patch {kind} {namespace}/{name}: a {patch_type} patch must be a "
                               f"{body_type.__name__}, got {type(body).__name__}")
        method = self._method("patch", kind)
        kwargs: dict[str, t.Any] = {}
        if takes_keyword(method, "_content_type"):
            kwargs["_content_type"] = content_type
        if dry_run:
            kwargs["dry_run"] = "All"
        return self._call(f"patch {kind} {namespace}/{name}", method, name, namespace, body, **kwargs)

    def create(self, kind: str, namespace: str, body: dict[str, t.Any], dry_run: bool = False) -> dict[str, t.Any]:
        """POST a new object; ``dry_run`` asks the server to validate and answer without persisting."""
        name = manifest_name(body)
        kwargs: dict[str, t.Any] = {"dry_run": "All"} if dry_run else {}
        return self._call(f"create {kind} {namespace}/{name}", self._method("create", kind), namespace, body, **kwargs)

    def delete(self, kind: str, name: str, namespace: str, dry_run: bool = False) -> dict[str, t.Any]:
        """DELETE an object; its dependents (ReplicaSets, pods) are removed by the garbage collector afterwards."""
        kwargs: dict[str, t.Any] = {"propagation_policy": "Background"}
        if dry_run:
            kwargs["dry_run"] = "All"
        return self._call(f"delete {kind} {namespace}/{name}", self._method("delete", kind), name, namespace, **kwargs)

    def watch(self, kind: str, namespace: str, name: t.Optional[str], resource_version: t.Optional[str],
              timeout_seconds: int, quiet_timeout: t.Optional[float] = None,
              label_selector: t.Optional[str] = None) -> t.Iterator[tuple[str, dict[str, t.Any]]]:
        """Watch one named object (or, with ``name`` None, every object ``label_selector`` selects) from
        ``resource_version`` for at most ``timeout_seconds``.

        Yields ``(event type, object)``; raises ApiException (410 when the version expired) or urllib3 errors,
        which the caller turns into a re-list or a fall back to polling. With ``quiet_timeout``, a watch on
        which nothing arrives for that many seconds raises urllib3's ReadTimeoutError.
        """
        # return_type "object" makes the watcher hand back plain dicts while still tracking resourceVersion.
        watcher = k8s_watch.Watch(return_type="object")
        kwargs: dict[str, t.Any] = {
            "timeout_seconds": max(1, int(timeout_seconds)),
            "_request_timeout": (min(10.0, self.conn.request_timeout),
                                 quiet_timeout if quiet_timeout else max(2.0, timeout_seconds + 5.0)),
        }
        if name:
            kwargs["field_selector"] = f"metadata.name={name}"
        if label_selector:
            kwargs["label_selector"] = label_selector
        if resource_version:
            kwargs["resource_version"] = resource_version
        try:
            for event in watcher.stream(self._method("list", kind), namespace, **kwargs):
                yield event.get("type", ""), event.get("raw_object") or event.get("object") or {}
        finally:
            watcher.stop()
