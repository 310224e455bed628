"""Server-side printing (meta.k8s.io/v1 Table) so `kubectl get` shows upstream's columns."""
from __future__ import annotations

from typing import Any

from .podutil import is_terminating, restarts
from .resources import Resource
from .util import human_duration, now, parse_time, selector_to_string

Obj = dict[str, Any]


def _age(obj: Obj) -> str:
    created = parse_time(obj["metadata"].get("creationTimestamp"))
    return human_duration(now() - created) if created else "<unknown>"


def _s(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def _images(obj: Obj) -> tuple[str, str]:
    cs = ((obj.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def pod_status_text(pod: Obj) -> str:
    if is_terminating(pod):
        return "Terminating"
    status = pod.get("status") or {}
    reason = status.get("phase") or "Pending"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated", {}).get("reason"):
            reason = state["terminated"]["reason"]
    return reason


def _row(res: Resource, obj: Obj) -> list[Any]:
    name = obj["metadata"]["name"]
    kind = res.kind
    if kind == "Deployment":
        return [name, f"{_s(obj, 'readyReplicas')}/{int(obj['spec'].get('replicas', 1))}",
                _s(obj, "updatedReplicas"), _s(obj, "availableReplicas"), _age(obj), *_images(obj),
                selector_to_string(obj["spec"].get("selector"))]
    if kind == "ReplicaSet":
        return [name, int(obj["spec"].get("replicas", 1)), _s(obj, "replicas"), _s(obj, "readyReplicas"), _age(obj),
                *_images(obj), selector_to_string(obj["spec"].get("selector"))]
    if kind == "StatefulSet":
        return [name, f"{_s(obj, 'readyReplicas')}/{int(obj['spec'].get('replicas', 1))}", _age(obj), *_images(obj)]
    if kind == "DaemonSet":
        return [name, _s(obj, "desiredNumberScheduled"), _s(obj, "currentNumberScheduled"), _s(obj, "numberReady"),
                _s(obj, "updatedNumberScheduled"), _s(obj, "numberAvailable"), "<none>", _age(obj), *_images(obj),
                selector_to_string(obj["spec"].get("selector"))]
    if kind == "Pod":
        css = (obj.get("status") or {}).get("containerStatuses") or []
        total = len(obj["spec"].get("containers") or [])
        ready = sum(1 for c in css if c.get("ready"))
        return [name, f"{ready}/{total}", pod_status_text(obj), restarts(obj), _age(obj),
                (obj.get("status") or {}).get("podIP") or "<none>", obj["spec"].get("nodeName") or "<none>"]
    if kind == "Service":
        ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in obj["spec"].get("ports") or [])
        return [name, obj["spec"].get("type", "ClusterIP"), obj["spec"].get("clusterIP") or "<none>", "<none>",
                ports or "<none>", _age(obj)]
    if kind == "Endpoints":
        eps = []
        for sub in obj.get("subsets") or []:
            for a in sub.get("addresses") or []:
                for p in sub.get("ports") or []:
                    eps.append(f"{a.get('ip')}:{p.get('port')}")
        return [name, ",".join(eps) or "<none>", _age(obj)]
    if kind == "Namespace":
        return [name, (obj.get("status") or {}).get("phase", "Active"), _age(obj)]
    if kind == "Node":
        return [name, "Ready", "<none>", _age(obj), "v1.32.0"]
    if kind == "ControllerRevision":
        owner = next((f"{r['kind'].lower()}.apps/{r['name']}" for r in obj["metadata"].get("ownerReferences") or []
                      if r.get("controller")), "<none>")
        return [name, owner, obj.get("revision", 0), _age(obj)]
    if kind == "Event":
        return [obj.get("lastTimestamp") or "", obj.get("type", ""), obj.get("reason", ""),
                f"{(obj.get('involvedObject') or {}).get('kind', '').lower()}/"
                f"{(obj.get('involvedObject') or {}).get('name', '')}", obj.get("message", "")]
    return [name, _age(obj)]


_COLUMNS: dict[str, list[tuple[str, str, int]]] = {
    "Deployment": [("Name", "string", 0), ("Ready", "string", 0), ("Up-to-date", "integer", 0),
                   ("Available", "integer", 0), ("Age", "string", 0), ("Containers", "string", 1),
                   ("Images", "string", 1), ("Selector", "string", 1)],
    "ReplicaSet": [("Name", "string", 0), ("Desired", "integer", 0), ("Current", "integer", 0),
                   ("Ready", "integer", 0), ("Age", "string", 0), ("Containers", "string", 1),
                   ("Images", "string", 1), ("Selector", "string", 1)],
    "StatefulSet": [("Name", "string", 0), ("Ready", "string", 0), ("Age", "string", 0),
                    ("Containers", "string", 1), ("Images", "string", 1)],
    "DaemonSet": [("Name", "string", 0), ("Desired", "integer", 0), ("Current", "integer", 0),
                  ("Ready", "integer", 0), ("Up-to-date", "integer", 0), ("Available", "integer", 0),
                  ("Node Selector", "string", 0), ("Age", "string", 0), ("Containers", "string", 1),
                  ("Images", "string", 1), ("Selector", "string", 1)],
    "Pod": [("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "string", 0),
            ("Age", "string", 0), ("IP", "string", 1), ("Node", "string", 1)],
    "Service": [("Name", "string", 0), ("Type", "string", 0), ("Cluster-IP", "string", 0),
                ("External-IP", "string", 0), ("Port(s)", "string", 0), ("Age", "string", 0)],
    "Endpoints": [("Name", "string", 0), ("Endpoints", "string", 0), ("Age", "string", 0)],
    "Namespace": [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
    "Node": [("Name", "string", 0), ("Status", "string", 0), ("Roles", "string", 0), ("Age", "string", 0),
             ("Version", "string", 0)],
    "ControllerRevision": [("Name", "string", 0), ("Controller", "string", 0), ("Revision", "integer", 0),
                           ("Age", "string", 0)],
    "Event": [("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0),
              ("Object", "string", 0), ("Message", "string", 0)],
}


def to_table(res: Resource, objs: list[Obj], resource_version: str) -> Obj:
    cols = _COLUMNS.get(res.kind, [("Name", "string", 0), ("Age", "string", 0)])
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [{"name": n, "type": t, "format": "name" if n == "Name" else "", "description": n,
                               "priority": p} for n, t, p in cols],
        "rows": [{"cells": _row(res, o), "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}}
            for o in objs],
    }
