# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Zero-downtime lint of a Docker workload: pure checks over what the backend read (its revisions, whether a
load balancer is configured and what checking it said, the health_check option), in the style of
``kubernetes/preflight.py``. Each finding names its check; ``CHECKS`` is what the preflight module's ``skip``
accepts."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import Finding

CHECKS = ("workload-exists", "load-balancer", "health-gate", "replicas", "restart-policy", "published-port",
          "lb-network", "adoption")


@dataclass
class NetworkFacts:
    """What the backend read about the network a workload's replicas are reached on (docker_container.lb_network)."""

    name: str
    driver: t.Optional[str]  # None: the engine has no such network
    local: bool  # the engine runs on the machine the module runs on
    address: t.Optional[str] = None  # a running replica's address on it, when one was tried
    unreachable: t.Optional[str] = None  # why connecting to ``address`` from here failed (None: it worked, or not tried)


def network_findings(net: NetworkFacts, where: str) -> list[Finding]:
    """Whether the load balancer can reach replicas at their address on network ``net`` of engine ``where``."""
    if net.driver is None:
        return [Finding("lb-network", "error",
                        f"the replicas are reached on network {net.name} (docker_container.lb_network), which {where} "
                        "does not have: a container that is restarted (a rollback, a retained revision) cannot start",
                        f"create it again (docker network create {net.name})")]
    findings = []
    if net.driver != "bridge":
        findings.append(Finding("lb-network", "warning",
                                f"network {net.name} uses the {net.driver} driver: the engine's host cannot usually "
                                "reach containers on it, so the load balancer must be a container attached to it",
                                f"attach the load balancer to {net.name}, or use a bridge network"))
    if not net.local:
        findings.append(Finding("lb-network", "warning",
                                f"the engine ({where}) is not on the machine the module runs on: the load balancer "
                                f"must run on the engine's host or be attached to network {net.name}, and a "
                                "health_check probe, sent from where the module runs, cannot reach the replicas",
                                "run the module on the engine's host, or gate on the image's HEALTHCHECK only"))
    if net.unreachable:
        findings.append(Finding("lb-network", "error",
                                f"this host cannot connect to a replica at {net.address} on network {net.name}: "
                                f"{net.unreachable}",
                                "check the host's firewall (Docker's DOCKER-USER chain) and that the app listens "
                                "on that port"))
    return findings


def lint(history: History, workload: str, where: str, balancer: t.Optional[str],
         health_check_path: t.Optional[str], network: t.Optional[NetworkFacts] = None,
         balancer_advisories: t.Sequence[str] = ()) -> list[Finding]:
    """The findings for ``workload`` (its description), whose containers ``history`` holds, on engine ``where``.
    ``balancer``: None when no load balancer is configured, "" when checking it found nothing wrong, else what is
    wrong with it. ``network``: what was read about the network the replicas are reached on, when they are."""
    if not history.exists or history.current is None:
        return [Finding("workload-exists", "warning", f"{workload} does not exist on {where} yet",
                        "create it with zerodown.rollout.image_upgrade (replicas, docker_container)")]
    findings: list[Finding] = []
    if balancer is None:
        findings.append(Finding("load-balancer", "error",
                                "no load balancer is configured (load_balancer.type is none or unset): "
                                "clients of replaced containers will see errors",
                                "set load_balancer (type haproxy with the admin socket, or nginx)"))
    elif balancer:
        findings.append(Finding("load-balancer", "error", balancer, "fix load_balancer"))
    for advice in balancer_advisories:
        findings.append(Finding("load-balancer", "warning", advice, "change the setting named"))
    current = history.current
    config = current.newest.attrs.get("Config") or {}
    health = (config.get("Healthcheck") or {}).get("Test") or []
    if not (health and health[0] != "NONE") and not health_check_path:
        findings.append(Finding("health-gate", "error",
                                f"the containers of revision {current.number} have no HEALTHCHECK and no "
                                "health_check probe is set: new containers would take traffic before they are ready",
                                "add a HEALTHCHECK to the image or set health_check.path"))
    if len(current.running) < 2:
        findings.append(Finding("replicas", "warning",
                                f"{len(current.running)} replica(s) run: a host failure during the upgrade "
                                "leaves nothing serving", "run 2 replicas or more"))
    policy = ((current.newest.attrs.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
    if policy in ("", "no"):
        findings.append(Finding("restart-policy", "warning",
                                "the containers have no restart policy: a crash is not recovered",
                                "create them with docker_container.restart_policy=unless-stopped"))
    if current.newest.lb_network:
        if network is not None:
            findings += network_findings(network, where)
    elif not current.newest.address:
        findings.append(Finding("published-port", "error", "the containers publish no port for the load balancer",
                                "create them with docker_container.port, or docker_container.lb_network"))
    return findings
