# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Connection to the Kubernetes API through the official ``kubernetes`` client.

Where the connection comes from, first match wins for every setting:

1. the task's options (``kubeconfig``, ``context``, ``host``, ``api_key``, ``k8s_ca_cert``...);
2. the ``K8S_AUTH_*`` environment variables, which AWX's Kubernetes credential injects;
3. the kubeconfig (``kubeconfig`` option, ``K8S_AUTH_KUBECONFIG``, ``KUBECONFIG``, ``~/.kube/config``);
4. the in-cluster service account, when running in a pod.

Every call returns plain JSON (``dict``) in the API's own camelCase, because the status rules and
revision logic are written against the API documents kubectl reads, not the client's models.
Errors become :class:`RolloutError` subclasses whose messages never contain credentials.
"""

from __future__ import annotations

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


# Option name -> environment variable AWX's "OpenShift or Kubernetes API Bearer Token" credential
# (and kubernetes.core users) set.
ENV_VARS = {
    "kubeconfig": "K8S_AUTH_KUBECONFIG",
    "context": "K8S_AUTH_CONTEXT",
    "host": "K8S_AUTH_HOST",
    "api_key": "K8S_AUTH_API_KEY",
    "k8s_ca_cert": "K8S_AUTH_SSL_CA_CERT",
    "k8s_client_cert": "K8S_AUTH_CERT_FILE",
    "k8s_client_key": "K8S_AUTH_KEY_FILE",
    "k8s_validate_certs": "K8S_AUTH_VERIFY_SSL",
    "k8s_proxy": "K8S_AUTH_PROXY",
}

_TRUE = ("1", "true", "yes", "on", "y", "t")
_FALSE = ("0", "false", "no", "off", "n", "f")

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class Connection(t.NamedTuple):
    """The resolved connection settings. ``api_key`` is a secret: never format this tuple into text."""

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


def resolve_connection(params: dict[str, t.Any], environ: t.Optional[t.Mapping[str, str]] = None) -> Connection:
    """Merge task options over the K8S_AUTH_* environment and work out which source to load."""
    env = os.environ if environ is None else environ
    values: dict[str, t.Any] = {}
    for option, var in ENV_VARS.items():
        value = params.get(option)
        if value is None or value == "":
            raw = env.get(var)
            if raw is not None and raw != "":
                value = _env_bool(var, raw) if option == "k8s_validate_certs" else raw
            else:
                value = None
        values[option] = value
    for option in ("kubeconfig", "k8s_ca_cert", "k8s_client_cert", "k8s_client_key"):
        path = values[option]
        if path is not None:
            path = os.path.expanduser(str(path))
            if not os.path.isfile(path):
                raise InvalidInput(f"{option}: file {path} does not exist or is not a file")
            values[option] = path
    if values["host"] is not None and not str(values["host"]).startswith(("http://", "https://")):
        raise InvalidInput(f"host={values['host']!r} must be a URL such as https://203.0.113.10:6443")
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
        ca_cert=values["k8s_ca_cert"],
        client_cert=values["k8s_client_cert"],
        client_key=values["k8s_client_key"],
        validate_certs=values["k8s_validate_certs"],
        proxy=values["k8s_proxy"],
        request_timeout=float(timeout),
        source=source,
    )


def build_configuration(conn: Connection) -> t.Any:
    """A ``kubernetes.client.Configuration`` for ``conn``; raises InvalidInput when it cannot be loaded."""
    configuration = k8s_client.Configuration()
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
        configuration.api_key = {"BearerToken": f"Bearer {conn.api_key}"}
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

PATCH_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}


class KubeClient:
    """Thin JSON-in/JSON-out access to the few resources the backend needs."""

    def __init__(self, conn: Connection, configuration: t.Any = None) -> None:
        self.conn = conn
        self.configuration = configuration if configuration is not None else build_configuration(conn)
        self.api_client = k8s_client.ApiClient(self.configuration)
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
        """PATCH an object; ``dry_run`` asks the server to validate and answer without persisting."""
        kwargs: dict[str, t.Any] = {"_content_type": PATCH_TYPES[patch_type]}
        if dry_run:
            kwargs["dry_run"] = "All"
        return self._call(f"patch {kind} {namespace}/{name}", self._method("patch", kind), name, namespace, body,
                          **kwargs)

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
