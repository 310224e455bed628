# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Calls to the Kubernetes API through the official ``kubernetes`` client.

The connection comes from :mod:`.connection` (task options, ``K8S_AUTH_*`` environment, kubeconfig, in-cluster).
Every call returns plain JSON (``dict``) in the API's own camelCase, because the status rules and
revision logic are written against the API documents kubectl reads, not the client's models.
Errors become :class:`RolloutError` subclasses (:mod:`.api_errors`) whose messages never contain credentials.

The code works with every client from kubernetes 24.2.0 on (``dependencies.FLOORS``): the generated API
methods changed shape in the newest clients, so keywords only some of them take are used behind a check
(see :meth:`KubeClient.patch`).
"""

from __future__ import annotations

import inspect
import json
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes import api_errors
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.connection import (
    Connection,
    build_configuration,
    impersonation_headers,
    keep_repeated_headers_through_proxy,
    resolve_connection,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.library import (
    HAS_KUBERNETES,
    ApiException,
    k8s_client,
    k8s_watch,
    urllib3,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    PlatformUnreachable,
    RolloutError,
)

# HAS_KUBERNETES: the backend asks the client layer whether the library is there
__all__ = ["HAS_KUBERNETES", "PATCH_TYPES", "KubeClient", "takes_keyword"]

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
        return api_errors.unreachable(exc, self.configuration.host, self.conn)

    def translate(self, exc: t.Any, what: str) -> RolloutError:
        """A user-facing error for an ApiException raised while doing ``what``."""
        return api_errors.translate(exc, what, self.configuration.host, self.conn)

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
