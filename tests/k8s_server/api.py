"""HTTP front end: the Kubernetes REST API paths, verbs, watch streaming and Status errors."""
from __future__ import annotations

import copy
import http.server
import json
import socket
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from . import resources as R
from .patch import PatchError, apply_patch
from .resources import Resource
from .store import Conflict, Gone, NotFound, StoreError
from .tables import to_table
from .util import (SelectorError, fields_match, labels_match, parse_field_selector, parse_label_selector,
                   random_suffix, selector_to_string)

if TYPE_CHECKING:
    from .server import K8sTestServer

Obj = dict[str, Any]

VERSION_INFO = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.4", "compiler": "gc",
    "platform": "linux/amd64",
}


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


# The boolean spellings the API server accepts in a query (Go's strconv.ParseBool): clients up to kubernetes
# 35 send watch=True, newer ones watch=true.
TRUE_VALUES = ("1", "t", "T", "TRUE", "true", "True")


def status_body(code: int, reason: str, message: str, details: Obj | None = None) -> Obj:
    body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                 "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


class ApiHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "zerodown-k8s-test-server/1"
    cluster: "K8sTestServer"  # set on the subclass built by the server

    def log_message(self, fmt: str, *args: Any) -> None:
        if self.cluster.verbose:
            super().log_message(fmt, *args)

    # -- plumbing ------------------------------------------------------------------------------
    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, json.dumps(obj).encode())

    def _error(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        self._json(code, status_body(code, reason, message, details))

    def _body(self) -> Any:
        if "protobuf" in (self.headers.get("Content-Type") or ""):
            raise ApiError(415, "UnsupportedMediaType", "the test server speaks JSON only (protobuf bodies, as sent "
                                                        "by kubectl create <kind> generators, are not supported); use "
                                                        "kubectl apply -f or kubectl create -f")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = self._read_chunked()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            ctype = self.headers.get("Content-Type", "")
            if "yaml" in ctype:
                try:
                    import yaml  # noqa: PLC0415 (only for YAML bodies)
                    return yaml.safe_load(raw)
                except Exception as exc:  # noqa: BLE001
                    raise ApiError(400, "BadRequest", f"invalid YAML body: {exc}") from exc
            raise ApiError(400, "BadRequest", "the request body is not valid JSON") from None

    def _read_chunked(self) -> bytes:
        out = b""
        while True:
            size = int(self.rfile.readline().strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _dispatch(self, verb: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        try:
            self._route(verb, url.path)
        except ApiError as exc:
            self._error(exc.code, exc.reason, exc.message, exc.details)
        except StoreError as exc:
            details: Obj = {}
            res = getattr(exc, "res", None)
            if res is not None:
                details = {"name": getattr(exc, "name", ""), "group": res.group, "kind": res.plural}
            if exc.causes:
                details["causes"] = exc.causes
            self._error(exc.code, exc.reason, exc.message, details or None)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 (report, never drop the connection silently)
            self._error(500, "InternalError", f"Internal error occurred: {type(exc).__name__}: {exc}")

    # -- routing -------------------------------------------------------------------------------
    def _route(self, verb: str, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        if path in ("/healthz", "/livez", "/readyz"):
            return self._send(200, b"ok", "text/plain")
        if path == "/version":
            return self._json(200, VERSION_INFO)
        if path == "/api":
            return self._json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.cluster.port}"}]})
        if path == "/apis":
            return self._json(200, R.api_group_list())
        if parts[:2] == ["openapi", "v3"]:
            doc = R.openapi_v3_root() if len(parts) == 2 else R.openapi_v3_doc("/".join(parts[2:]))
            if doc is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(200, doc)
        if parts[:1] == ["openapi"]:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if len(parts) == 2 and parts[0] == "apis":
            if parts[1] != "apps":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(200, R.api_group_list()["groups"][0] | {"kind": "APIGroup", "apiVersion": "v1"})
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        gv = f"{group}/{version}" if group else version
        if not rest:
            listing = R.api_resource_list(gv)
            if listing is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._json(200, listing)
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and R.lookup(group, version, rest[2]) is not None \
                and R.lookup(group, version, rest[2]).namespaced:
            namespace, rest = rest[1], rest[2:]
        res = R.lookup(group, version, rest[0])
        if res is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = "/".join(rest[2:]) or None
        if sub is not None and sub not in res.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if namespace is None and res.namespaced and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self.dry_run = "dryRun" in self.query and self.query["dryRun"] != ""
        if verb == "GET":
            if name is None:
                if self.query.get("watch") in TRUE_VALUES:
                    return self._watch(res, namespace)
                return self._list(res, namespace)
            if self.query.get("watch") in TRUE_VALUES:
                self.query["fieldSelector"] = f"metadata.name={name}"
                return self._watch(res, namespace)
            return self._get(res, namespace, name, sub)
        if verb == "POST" and name is None:
            return self._create(res, namespace)
        if verb == "PUT" and name is not None:
            return self._update(res, namespace, name, sub)
        if verb == "PATCH" and name is not None:
            return self._patch(res, namespace, name, sub)
        if verb == "DELETE":
            if name is None:
                return self._delete_collection(res, namespace)
            return self._delete(res, namespace, name)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    # -- helpers -------------------------------------------------------------------------------
    def _wants_table(self) -> bool:
        return "as=Table" in (self.headers.get("Accept") or "")

    def _selectors(self) -> tuple[list, list]:
        try:
            return (parse_label_selector(self.query.get("labelSelector")),
                    parse_field_selector(self.query.get("fieldSelector")))
        except SelectorError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc

    def _check_namespace(self, namespace: str | None) -> None:
        if namespace and self.cluster.store.try_get(R.NAMESPACE, None, namespace) is None:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                           {"name": namespace, "kind": "namespaces"})

    def _invalid(self, res: Resource, name: str, causes: list[dict[str, str]]) -> None:
        text = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
        qualified = f"{res.kind}.{res.group}" if res.group else res.kind
        raise ApiError(422, "Invalid", f'{qualified} "{name}" is invalid: {text}',
                       {"name": name, "group": res.group, "kind": res.kind, "causes": causes})

    # -- read verbs ----------------------------------------------------------------------------
    def _get(self, res: Resource, namespace: str | None, name: str, sub: str | None) -> None:
        store = self.cluster.store
        obj = store.get(res, namespace, name)
        if sub == "scale":
            return self._json(200, _scale_of(res, obj))
        if sub == "log":
            return self._send(200, self.cluster.kubelet.pod_logs(namespace or "", name).encode(), "text/plain")
        if self._wants_table():
            return self._json(200, to_table(res, [obj], obj["metadata"]["resourceVersion"]))
        self._json(200, obj)

    def _list(self, res: Resource, namespace: str | None) -> None:
        labels, fields = self._selectors()
        items, rv = self.cluster.store.list(res, namespace, labels, fields)
        if self._wants_table():
            return self._json(200, to_table(res, items, rv))
        self._json(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                         "metadata": {"resourceVersion": rv}, "items": items})

    def _watch(self, res: Resource, namespace: str | None) -> None:
        store = self.cluster.store
        labels, fields = self._selectors()
        timeout = float(self.query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        rv_param = self.query.get("resourceVersion", "")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

        def chunk(event: Obj) -> None:
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def matches(obj: Obj) -> bool:
            if namespace and res.namespaced and obj["metadata"].get("namespace") != namespace:
                return False
            return labels_match(labels, obj["metadata"].get("labels")) and fields_match(fields, obj)

        try:
            if rv_param in ("", "0"):
                items, rv = store.list(res, namespace, labels, fields)
                for obj in items:
                    chunk({"type": "ADDED", "object": obj})
                cursor = int(rv)
            else:
                try:
                    cursor = int(rv_param)
                except ValueError:
                    cursor = 0
            while time.monotonic() < deadline and not self.cluster.stopping:
                try:
                    events = store.events_since(cursor)
                except Gone as exc:
                    chunk({"type": "ERROR", "object": status_body(410, "Expired", exc.message)})
                    break
                sent = False
                for ev_rv, key, etype, obj in events:
                    cursor = ev_rv
                    if key != res.key or not matches(obj):
                        continue
                    chunk({"type": etype, "object": obj})
                    sent = True
                if not sent:
                    store.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            pass
        self.close_connection = True

    # -- write verbs ---------------------------------------------------------------------------
    def _prepare(self, res: Resource, namespace: str | None, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        obj = drop_nulls(body)
        meta = obj.setdefault("metadata", {})
        if res.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                                                  "namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        return obj

    def _create(self, res: Resource, namespace: str | None) -> None:
        if not res.namespaced and namespace:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        obj = self._prepare(res, namespace, self._body())
        meta = obj["metadata"]
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + random_suffix(5)
            else:
                message = f'{res.kind} "" is invalid: metadata.name: Required value: name or generateName is required'
                causes = [{"reason": "FieldValueRequired", "field": "metadata.name", "message": "Required value"}]
                raise ApiError(422, "Invalid", message, {"kind": res.kind, "causes": causes})
        self._check_namespace(namespace if res.namespaced else None)
        R.apply_defaults(res, obj)
        causes = R.validate(res, obj, None)
        if causes:
            self._invalid(res, meta["name"], causes)
        if res.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Service"):
            obj["status"] = {"loadBalancer": {}} if res.kind == "Service" else {}
        self.cluster.before_create(res, obj, self.dry_run)
        created = self.cluster.store.create(res, obj, dry_run=self.dry_run)
        self._json(201, created)

    def _update(self, res: Resource, namespace: str | None, name: str, sub: str | None) -> None:
        store = self.cluster.store
        body = self._body()
        if sub == "scale":
            return self._write_scale(res, namespace, name, body)
        obj = self._prepare(res, namespace, body)
        if obj["metadata"].get("name", name) != name:
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        obj["metadata"]["name"] = name
        old = store.get(res, namespace, name)
        return self._save(res, old, obj, sub)

    def _save(self, res: Resource, old: Obj, obj: Obj, sub: str | None, check_rv: bool = True) -> None:
        store = self.cluster.store
        if sub != "status":
            R.apply_defaults(res, obj)
            causes = R.validate(res, obj, old)
            if causes:
                self._invalid(res, old["metadata"]["name"], causes)
            self.cluster.before_update(res, old, obj)
        saved = store.update(res, obj, check_rv=check_rv, subresource=sub, dry_run=self.dry_run)
        self._json(200, saved)

    def _patch(self, res: Resource, namespace: str | None, name: str, sub: str | None) -> None:
        store = self.cluster.store
        ctype = self.headers.get("Content-Type", "")
        if "apply-patch" in ctype:
            raise ApiError(415, "UnsupportedMediaType", "server-side apply is not supported by the test server; "
                                                        "use client-side kubectl apply")
        body = self._body()
        # as the API server's GuaranteedUpdate: a patch that sets no resourceVersion of its own is applied again
        # to the newest object when a controller wrote the object between the read and the write
        precondition = isinstance(body, dict) and bool((body.get("metadata") or {}).get("resourceVersion"))
        for attempt in range(5):
            try:
                return self._patch_once(res, namespace, name, sub, ctype, body)
            except Conflict:
                if precondition or attempt == 4:
                    raise
        return None

    def _patch_once(self, res: Resource, namespace: str | None, name: str, sub: str | None, ctype: str,
                    body: Any) -> None:
        store = self.cluster.store
        old = store.get(res, namespace, name)
        if sub == "scale":
            try:
                scale = apply_patch(ctype, _scale_of(res, old), body)
            except PatchError as exc:
                raise ApiError(422, "Invalid", str(exc)) from exc
            return self._write_scale(res, namespace, name, scale)
        try:
            patched = apply_patch(ctype, old, body)
        except PatchError as exc:
            raise ApiError(422 if "test operation" not in str(exc) else 422, "Invalid",
                           f"the patch could not be applied: {exc}") from exc
        if not isinstance(patched, dict):
            raise ApiError(422, "Invalid", "the patch did not produce an object")
        patched = drop_nulls(patched)
        patched.setdefault("metadata", {})
        patched["metadata"]["name"] = name
        if res.namespaced:
            patched["metadata"]["namespace"] = namespace
        # the patch result keeps the stored resourceVersion unless the client's patch set one (precondition)
        self._save(res, old, patched, sub, check_rv=True)

    def _write_scale(self, res: Resource, namespace: str | None, name: str, scale: Any) -> None:
        if not isinstance(scale, dict):
            raise ApiError(400, "BadRequest", "a Scale object is required")
        store = self.cluster.store
        old = store.get(res, namespace, name)
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                                           f"{replicas}: must be greater than or equal to 0")
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise Conflict(res, name)
        new = copy.deepcopy(old)
        new["spec"]["replicas"] = replicas
        saved = store.update(res, new, dry_run=self.dry_run)
        self._json(200, _scale_of(res, saved))

    def _delete_options(self) -> Obj:
        opts: Obj = {}
        try:
            body = self._body()
        except ApiError:
            body = None
        if isinstance(body, dict):
            opts.update(body)
        if "gracePeriodSeconds" in self.query:
            opts["gracePeriodSeconds"] = int(self.query["gracePeriodSeconds"])
        if "propagationPolicy" in self.query:
            opts["propagationPolicy"] = self.query["propagationPolicy"]
        if opts.get("dryRun"):
            self.dry_run = True
        return opts

    def _delete(self, res: Resource, namespace: str | None, name: str) -> None:
        opts = self._delete_options()
        obj = self.cluster.store.get(res, namespace, name)
        result = self.cluster.delete_object(res, obj, opts, self.dry_run)
        if result is not None:
            return self._json(200, result)
        self._json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": {"name": name, "group": res.group, "kind": res.plural,
                                     "uid": obj["metadata"]["uid"]}})

    def _delete_collection(self, res: Resource, namespace: str | None) -> None:
        opts = self._delete_options()
        labels, fields = self._selectors()
        items, rv = self.cluster.store.list(res, namespace, labels, fields)
        for obj in items:
            try:
                self.cluster.delete_object(res, obj, opts, self.dry_run)
            except NotFound:
                pass
        self._json(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                         "metadata": {"resourceVersion": rv}, "items": items})


def drop_nulls(value: Any) -> Any:
    """What decoding into the typed API structs does: null fields vanish (e.g. creationTimestamp: null)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


SCALE_METADATA_KEYS = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")


def _scale_of(res: Resource, obj: Obj) -> Obj:
    if "scale" not in res.subresources:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: obj["metadata"][k] for k in SCALE_METADATA_KEYS if k in obj["metadata"]},
        "spec": {"replicas": int(obj["spec"].get("replicas", 1))},
        "status": {"replicas": int((obj.get("status") or {}).get("replicas") or 0),
                   "selector": selector_to_string(obj["spec"].get("selector"))},
    }
