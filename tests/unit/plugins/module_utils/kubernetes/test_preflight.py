"""Zero-downtime lint findings for Kubernetes workloads."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.preflight import lint, scaled_value


def good_container(name="app"):
    return {"name": name, "image": "app:1", "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                                               "periodSeconds": 5},
            "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}


def deployment(replicas=3, strategy=None, containers=None, grace=30, deadline=600, paused=False):
    spec = {"replicas": replicas, "progressDeadlineSeconds": deadline, "paused": paused,
            "strategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"spec": {"terminationGracePeriodSeconds": grace,
                                  "containers": containers if containers is not None else [good_container()]}}}
    return {"metadata": {"name": "web"}, "spec": spec}


def checks(findings):
    return sorted((f.check, f.severity) for f in findings)


def test_a_well_configured_deployment_has_no_findings():
    assert lint("Deployment", deployment()) == []


@pytest.mark.parametrize("strategy, replicas, expected", [
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "100%"}}, 3,
     [("max_unavailable", "error")]),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 3}}, 3,
     [("max_unavailable", "error")]),
    # defaults 25%/25% with 2 replicas: 0 unavailable (rounded down) -> fine
    ({"type": "RollingUpdate"}, 2, []),
    # both 0 would make the controller use maxUnavailable 1: with 1 replica that is everything
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}, 1,
     [("max_unavailable", "error"), ("single_replica", "warning")]),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "50%"}}, 4,
     [("max_unavailable", "warning")]),
    ({"type": "Recreate"}, 3, [("recreate_strategy", "error")]),
])
def test_strategy_findings(strategy, replicas, expected):
    assert checks(lint("Deployment", deployment(replicas=replicas, strategy=strategy))) == sorted(expected)


def test_container_findings_and_fixes():
    bare = {"name": "side", "image": "side:1"}
    findings = lint("Deployment", deployment(containers=[good_container(), bare], grace=3, deadline=20))
    assert checks(findings) == [("prestop_hook", "warning"), ("progress_deadline", "warning"),
                                ("readiness_probe", "error"), ("termination_grace", "error"),
                                ("termination_grace", "warning")]
    probe = next(f for f in findings if f.check == "readiness_probe")
    assert "'side'" in probe.message and "readinessProbe" in probe.fix
    sleeping = next(f for f in findings if f.check == "termination_grace" and f.severity == "error")
    assert "sleeps 5s" in sleeping.message


def test_exec_sleep_prestop_longer_than_grace():
    container = good_container()
    container["lifecycle"]["preStop"] = {"exec": {"command": ["/bin/sh", "-c", "sleep 40"]}}
    assert ("termination_grace", "error") in checks(lint("Deployment", deployment(containers=[container], grace=30)))


def test_skip_and_single_replica_and_paused():
    findings = lint("Deployment", deployment(replicas=1, paused=True))
    assert checks(findings) == [("paused", "warning"), ("single_replica", "warning")]
    assert lint("Deployment", deployment(replicas=1, paused=True), skip=["single_replica", "paused"]) == []


def test_statefulset_and_daemonset_findings():
    sts = {"metadata": {"name": "db"}, "spec": {"replicas": 3, "updateStrategy": {"type": "OnDelete"},
                                                "template": {"spec": {"containers": [good_container()]}}}}
    assert checks(lint("StatefulSet", sts)) == [("on_delete_strategy", "error")]
    sts["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}
    assert checks(lint("StatefulSet", sts)) == [("partition", "warning")]
    ds = {"metadata": {"name": "agent"}, "spec": {"updateStrategy": {"type": "RollingUpdate",
                                                                     "rollingUpdate": {"maxUnavailable": 1}},
                                                  "template": {"spec": {"containers": [good_container()]}}}}
    assert checks(lint("DaemonSet", ds)) == [("daemonset_surge", "warning")]
    ds["spec"]["updateStrategy"]["rollingUpdate"] = {"maxSurge": 1, "maxUnavailable": 0}
    assert lint("DaemonSet", ds) == []


@pytest.mark.parametrize("value, total, up, expected", [
    ("25%", 3, True, 1), ("25%", 3, False, 0), (2, 10, False, 2), ("100%", 4, False, 4), (None, 3, True, 0),
])
def test_scaled_value_rounds_like_the_controller(value, total, up, expected):
    assert scaled_value(value, total, up) == expected
