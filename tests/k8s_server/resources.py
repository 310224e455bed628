"""The resource types the server knows: discovery data, defaulting and validation."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from .util import image_tag, selector_matches


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    has_generation: bool = False
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def qualified(self) -> str:
        """Name used in error messages: deployments.apps, pods."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: list[Resource] = [
    Resource("", "v1", "Namespace", "namespaces", "namespace", False, ("ns",), ("status",)),
    Resource("", "v1", "Node", "nodes", "node", False, ("no",), ("status",)),
    Resource("", "v1", "Pod", "pods", "pod", True, ("po",), ("status", "log"), categories=("all",)),
    Resource("", "v1", "Service", "services", "service", True, ("svc",), ("status",), categories=("all",)),
    Resource("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",)),
    Resource("", "v1", "Event", "events", "event", True, ("ev",)),
    Resource("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
    Resource("apps", "v1", "Deployment", "deployments", "deployment", True, ("deploy",), ("status", "scale"),
             True, ("all",)),
    Resource("apps", "v1", "ReplicaSet", "replicasets", "replicaset", True, ("rs",), ("status", "scale"),
             True, ("all",)),
    Resource("apps", "v1", "StatefulSet", "statefulsets", "statefulset", True, ("sts",), ("status", "scale"),
             True, ("all",)),
    Resource("apps", "v1", "DaemonSet", "daemonsets", "daemonset", True, ("ds",), ("status",), True, ("all",)),
    Resource("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", True),
]

BY_KEY = {r.key: r for r in RESOURCES}
BY_KIND = {(r.group, r.kind): r for r in RESOURCES}


def lookup(group: str, version: str, plural: str) -> Resource | None:
    r = BY_KEY.get(f"{group}/{plural}")
    if r is None or r.version != version:
        return None
    return r


def by_kind(kind: str, group: str = "apps") -> Resource:
    return BY_KIND[(group, kind)]


POD = BY_KEY["/pods"]
SERVICE = BY_KEY["/services"]
ENDPOINTS = BY_KEY["/endpoints"]
EVENT = BY_KEY["/events"]
NAMESPACE = BY_KEY["/namespaces"]
NODE = BY_KEY["/nodes"]
DEPLOYMENT = BY_KEY["apps/deployments"]
REPLICASET = BY_KEY["apps/replicasets"]
STATEFULSET = BY_KEY["apps/statefulsets"]
DAEMONSET = BY_KEY["apps/daemonsets"]
CONTROLLERREVISION = BY_KEY["apps/controllerrevisions"]


# ---------------------------------------------------------------------------- discovery

def api_resource_list(group_version: str) -> dict[str, Any] | None:
    items = [r for r in RESOURCES if r.api_version == group_version]
    if not items:
        return None
    out = []
    for r in items:
        entry: dict[str, Any] = {
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        out.append(entry)
        for sub in r.subresources:
            if sub == "scale":
                out.append({"name": f"{r.plural}/scale", "singularName": "", "namespaced": r.namespaced,
                            "group": "autoscaling", "version": "v1", "kind": "Scale",
                            "verbs": ["get", "patch", "update"]})
            elif sub == "log":
                out.append({"name": f"{r.plural}/log", "singularName": "", "namespaced": True, "kind": "Pod",
                            "verbs": ["get"]})
            else:
                out.append({"name": f"{r.plural}/{sub}", "singularName": "", "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": out}


def api_group_list() -> dict[str, Any]:
    gv = {"groupVersion": "apps/v1", "version": "v1"}
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [{"name": "apps", "versions": [gv], "preferredVersion": gv}]}


# ---------------------------------------------------------------------------- defaulting

def _default_probe(probe: dict[str, Any] | None) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("scheme", "HTTP")
        probe["httpGet"].setdefault("path", "/")


def default_pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if not isinstance(c, dict):
            continue
        image = str(c.get("image", ""))
        c.setdefault("imagePullPolicy", "Always" if image_tag(image) == "latest" else "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
        for p in c.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
        for name in ("readinessProbe", "livenessProbe", "startupProbe"):
            _default_probe(c.get(name))


def _default_template(obj: dict[str, Any]) -> None:
    tpl = obj.setdefault("spec", {}).setdefault("template", {})
    tpl.setdefault("metadata", {})
    default_pod_spec(tpl.setdefault("spec", {}))


def apply_defaults(res: Resource, obj: dict[str, Any]) -> None:
    """The apps/v1 and core/v1 defaults kubectl and the controllers rely on."""
    no_spec = ("Event", "Endpoints", "ControllerRevision", "ConfigMap")
    spec = obj.setdefault("spec", {}) if res.kind not in no_spec else None
    if res.kind == "Deployment":
        spec.setdefault("replicas", 1)
        strat = spec.setdefault("strategy", {})
        strat.setdefault("type", "RollingUpdate")
        if strat["type"] == "RollingUpdate":
            ru = strat.setdefault("rollingUpdate", {})
            ru.setdefault("maxSurge", "25%")
            ru.setdefault("maxUnavailable", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        _default_template(obj)
    elif res.kind == "ReplicaSet":
        spec.setdefault("replicas", 1)
        _default_template(obj)
    elif res.kind == "StatefulSet":
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        us = spec.setdefault("updateStrategy", {})
        us.setdefault("type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            us.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("persistentVolumeClaimRetentionPolicy",
                        {"whenDeleted": "Retain", "whenScaled": "Retain"})
        _default_template(obj)
    elif res.kind == "DaemonSet":
        us = spec.setdefault("updateStrategy", {})
        us.setdefault("type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            ru = us.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        _default_template(obj)
    elif res.kind == "Pod":
        default_pod_spec(spec)
    elif res.kind == "Service":
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                p.setdefault("targetPort", p.get("port"))
    elif res.kind == "Namespace":
        obj.setdefault("status", {"phase": "Active"})
        obj["spec"].setdefault("finalizers", ["kubernetes"])


# ---------------------------------------------------------------------------- validation

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def validate(res: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> list[dict[str, str]]:
    """Return field errors as Status causes (reason/message/field); empty when valid."""
    causes: list[dict[str, str]] = []
    name = obj.get("metadata", {}).get("name", "")
    if res.kind != "Event" and name and (not _DNS1123.match(name) or len(name) > 253):
        causes.append({"reason": "FieldValueInvalid", "field": "metadata.name",
                       "message": f"Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of "
                                  "lower case alphanumeric characters, '-' or '.', and must start and end with "
                                  "an alphanumeric character"})
    spec = obj.get("spec") or {}
    if res.kind in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet"):
        sel = spec.get("selector")
        labels = (spec.get("template") or {}).get("metadata", {}).get("labels") or {}
        if not sel:
            causes.append({"reason": "FieldValueRequired", "field": "spec.selector",
                           "message": "Required value"})
        elif not selector_matches(sel, labels):
            causes.append({"reason": "FieldValueInvalid", "field": "spec.template.metadata.labels",
                           "message": f"Invalid value: {labels}: `selector` does not match template `labels`"})
        if old is not None and (old.get("spec") or {}).get("selector") != sel:
            causes.append({"reason": "FieldValueInvalid", "field": "spec.selector",
                           "message": f"Invalid value: {sel}: field is immutable"})
        replicas = spec.get("replicas")
        if replicas is not None and (not isinstance(replicas, int) or replicas < 0):
            causes.append({"reason": "FieldValueInvalid", "field": "spec.replicas",
                           "message": f"Invalid value: {replicas}: must be greater than or equal to 0"})
        causes += _validate_pod_spec((spec.get("template") or {}).get("spec") or {}, "spec.template.spec")
    elif res.kind == "Pod":
        causes += _validate_pod_spec(spec, "spec")
    return causes


def _validate_pod_spec(spec: dict[str, Any], path: str) -> list[dict[str, str]]:
    causes = []
    containers = spec.get("containers")
    if not containers:
        causes.append({"reason": "FieldValueRequired", "field": f"{path}.containers", "message": "Required value"})
        return causes
    seen = set()
    for i, c in enumerate(containers):
        if not isinstance(c, dict):
            continue
        if not c.get("name"):
            causes.append({"reason": "FieldValueRequired", "field": f"{path}.containers[{i}].name",
                           "message": "Required value"})
        elif c["name"] in seen:
            causes.append({"reason": "FieldValueDuplicate", "field": f"{path}.containers[{i}].name",
                           "message": f"Duplicate value: \"{c['name']}\""})
        seen.add(c.get("name"))
        if not c.get("image"):
            causes.append({"reason": "FieldValueRequired", "field": f"{path}.containers[{i}].image",
                           "message": "Required value"})
    return causes


def strip_for_compare(obj: Any) -> Any:
    return copy.deepcopy(obj)


@dataclass
class ClusterConfig:
    """Server-wide knobs (fake nodes, default pod timings)."""
    nodes: list[str] = field(default_factory=lambda: ["zd-node-1", "zd-node-2", "zd-node-3"])
    pull_delay: float = 0.05
    tick: float = 0.05


# ---------------------------------------------------------------------------- OpenAPI v3 (minimal)
# kubectl (apply/create with --validate) asks the OpenAPI v3 document whether the server accepts the
# fieldValidation query parameter for a kind's PATCH; answering yes makes kubectl leave validation to
# the server instead of downloading the full schema. Nothing else of OpenAPI is served.

def _gv_path(gv: str) -> str:
    return f"apis/{gv}" if "/" in gv else f"api/{gv}"


def openapi_v3_root() -> dict[str, Any]:
    gvs = sorted({r.api_version for r in RESOURCES})
    return {"paths": {_gv_path(gv): {"serverRelativeURL": f"/openapi/v3/{_gv_path(gv)}?hash=zerodown1"}
                      for gv in gvs}}


def openapi_v3_doc(path: str) -> dict[str, Any] | None:
    gv = path[len("apis/"):] if path.startswith("apis/") else path[len("api/"):] if path.startswith("api/") else ""
    items = [r for r in RESOURCES if r.api_version == gv]
    if not items:
        return None
    params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for n in ("dryRun", "fieldManager", "fieldValidation", "pretty")]
    paths = {}
    for r in items:
        prefix = f"/{_gv_path(gv)}" + ("/namespaces/{namespace}" if r.namespaced else "")
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        paths[f"{prefix}/{r.plural}/{{name}}"] = {
            "parameters": params,
            "patch": {"operationId": f"patch{r.kind}", "x-kubernetes-action": "patch", "parameters": params,
                      "x-kubernetes-group-version-kind": gvk,
                      "responses": {"200": {"description": "OK"}}},
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths,
            "components": {"schemas": {}}}
