"""docker/preflight.py: the zero-downtime checks over a workload's containers, without an engine."""
from __future__ import annotations

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.preflight import CHECKS, NetworkFacts, lint
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


# -- replicas reached on a network (docker_container.lb_network) -------------------------------------------------
def networked(cid, ip="172.30.0.5"):
    rep = container(cid, port=None)
    rep.attrs["Config"]["Labels"]["zerodown.lb-network"] = "appnet"
    rep.attrs["NetworkSettings"]["Networks"] = {"appnet": {"IPAddress": ip}}
    return Replica.from_attrs(rep.attrs)


def test_a_workload_reached_on_a_bridge_from_this_host_has_no_finding():
    history = History([networked("a"), networked("b")])
    facts = NetworkFacts("appnet", "bridge", local=True, address="172.30.0.5:8080")
    assert lint(history, "Docker workload 'w'", "the local engine", "", None, facts) == []


def test_what_keeps_a_load_balancer_from_reaching_replicas_on_their_network():
    history = History([networked("a"), networked("b")])
    where = "tcp://10.0.0.5:2376"
    [gone] = lint(history, "Docker workload 'w'", where, "", None, NetworkFacts("appnet", None, local=True))
    assert (gone.check, gone.severity) == ("lb-network", "error")
    assert "appnet" in gone.message and where in gone.message and "docker network create appnet" in gone.fix
    found = lint(history, "Docker workload 'w'", where, "", None, NetworkFacts("appnet", "overlay", local=False))
    assert [(f.check, f.severity) for f in found] == [("lb-network", "warning")] * 2
    assert "overlay driver" in found[0].message and "not on the machine the module runs on" in found[1].message
    facts = NetworkFacts("appnet", "bridge", local=True, address="172.30.0.5:8080", unreachable="timed out")
    [blocked] = lint(history, "Docker workload 'w'", "the local engine", "", None, facts)
    assert blocked.severity == "error" and "172.30.0.5:8080" in blocked.message and "timed out" in blocked.message
    assert "lb-network" in CHECKS


def test_no_published_port_is_no_finding_for_replicas_reached_on_a_network():
    # stopped replicas have no address on the network: what matters is the network, not a published port
    history = History([networked("a", ip=""), networked("b", ip="")])
    assert "published-port" not in checks(lint(history, "Docker workload 'w'", "e", "", None))
    history = History([container("a", port=None), container("b", port=None)])
    assert checks(lint(history, "Docker workload 'w'", "e", "", None)) == {"published-port": "error"}


def test_a_load_balancers_advice_is_a_warning_of_the_load_balancer_check():
    history = History([container("a"), container("b")])
    [finding] = lint(history, "Docker workload 'w'", "the local engine", "", None, None,
                     ["net.ipv4.tcp_migrate_req is 0 on this machine"])
    assert (finding.check, finding.severity) == ("load-balancer", "warning")
    assert "tcp_migrate_req" in finding.message
