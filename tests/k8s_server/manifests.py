"""Manifest builders for tests (plain dicts, usable with kubectl -f - and the Python client)."""
from __future__ import annotations

import json
from typing import Any

DEMO_IMAGE = "zerodown/demo-app"

Obj = dict[str, Any]


def container(image: str, name: str = "app", readiness: bool = True, start_delay: float | None = None,
              period: int = 1) -> Obj:
    c: Obj = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
              "ports": [{"name": "http", "containerPort": 8080}]}
    if readiness:
        c["readinessProbe"] = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": period,
                               "failureThreshold": 1}
    if start_delay is not None:
        c["env"] = [{"name": "ZD_START_DELAY", "value": str(start_delay)}]
    return c


def pod_template(name: str, image: str, readiness: bool = True, start_delay: float | None = None,
                 grace: int = 1) -> Obj:
    return {"metadata": {"labels": {"app": name}},
            "spec": {"terminationGracePeriodSeconds": grace,
                     "containers": [container(image, readiness=readiness, start_delay=start_delay)]}}


def deployment(name: str, image: str, replicas: int = 3, max_surge: Any = "25%", max_unavailable: Any = "25%",
               readiness: bool = True, start_delay: float | None = None, grace: int = 1,
               min_ready_seconds: int | None = None, progress_deadline: int | None = None,
               revision_history_limit: int | None = None, annotations: dict[str, str] | None = None,
               strategy: str = "RollingUpdate") -> Obj:
    spec: Obj = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": pod_template(name, image, readiness, start_delay, grace),
        "strategy": {"type": strategy},
    }
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": max_surge, "maxUnavailable": max_unavailable}
    if min_ready_seconds is not None:
        spec["minReadySeconds"] = min_ready_seconds
    if progress_deadline is not None:
        spec["progressDeadlineSeconds"] = progress_deadline
    if revision_history_limit is not None:
        spec["revisionHistoryLimit"] = revision_history_limit
    meta: Obj = {"name": name, "labels": {"app": name}}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec}


def statefulset(name: str, image: str, replicas: int = 3, partition: int | None = None,
                readiness: bool = True, grace: int = 0) -> Obj:
    spec: Obj = {
        "replicas": replicas, "serviceName": name,
        "selector": {"matchLabels": {"app": name}},
        "template": pod_template(name, image, readiness, None, grace),
        "updateStrategy": {"type": "RollingUpdate"},
    }
    if partition is not None:
        spec["updateStrategy"]["rollingUpdate"] = {"partition": partition}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name}, "spec": spec}


def daemonset(name: str, image: str, max_unavailable: Any = 1, readiness: bool = True, grace: int = 0) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name}, "spec": {
        "selector": {"matchLabels": {"app": name}},
        "template": pod_template(name, image, readiness, None, grace),
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}},
    }}


def service(name: str, port: int = 80, target_port: Any = "http") -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": port, "targetPort": target_port}]}}


def to_json(*objs: Obj) -> str:
    """A kubectl-readable stream: JSON documents separated by YAML document markers.

    (A v1 List would make kubectl validate client-side against OpenAPI v2, which the server lacks.)
    """
    # the leading marker keeps kubectl on its YAML path (a stream starting with "{" is read as one JSON doc)
    return "".join(f"---\n{json.dumps(o)}\n" for o in objs)
