"""docker/preflight.py: the zero-downtime checks over a workload's containers, without an engine."""
from __future__ import annotations

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.preflight import CHECKS, lint
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import Replica
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History


def container(cid, health=("CMD", "true"), policy="unless-stopped", port="8080/tcp", running=True):
    labels = {"zerodown.workload": "w", "zerodown.revision": "1", "zerodown.image": "app:1", "zerodown.port": port}
    return Replica.from_attrs({
        "Id": cid, "Name": f"/w-r1-{cid}", "Image": "sha:1",
        "Config": {"Image": "app:1", "Labels": labels, "Healthcheck": {"Test": list(health)} if health else {}},
        "HostConfig": {"RestartPolicy": {"Name": policy},
                       "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]} if port else {}},
        "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "32768"}]} if port else {}},
        "State": {"Status": "running" if running else "exited", "StartedAt": "2024-01-01T00:00:00Z"},
    })


def checks(findings):
    return {f.check: f.severity for f in findings}


def test_a_workload_made_for_zero_downtime_has_no_finding():
    history = History([container("a"), container("b")])
    assert lint(history, "Docker workload 'w'", "the local engine", "", None) == []


def test_each_check_names_what_would_drop_traffic():
    history = History([container("a", health=("NONE",), policy="no")])
    found = lint(history, "Docker workload 'w'", "the local engine", None, None)
    assert checks(found) == {"load-balancer": "error", "health-gate": "error", "replicas": "warning",
                             "restart-policy": "warning"}
    assert set(checks(found)) <= set(CHECKS)
    # an HTTP probe is a health gate too; what checking the load balancer said is passed on
    found = lint(history, "Docker workload 'w'", "the local engine", "HAProxy has no backend 'x'", "/healthz")
    assert [(f.check, f.message) for f in found if f.check == "load-balancer"] == [
        ("load-balancer", "HAProxy has no backend 'x'")]
    assert "health-gate" not in checks(found)


def test_a_missing_workload_is_one_warning_naming_it_and_the_engine():
    [finding] = lint(History([]), "Docker workload 'w'", "tcp://10.0.0.5:2376", None, None)
    assert (finding.check, finding.severity) == ("workload-exists", "warning")
    assert finding.message == "Docker workload 'w' does not exist on tcp://10.0.0.5:2376 yet"
