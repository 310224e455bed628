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

from ansible_collections.zerodown.rollout.plugins.module_utils.docker.revisions import History
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import Finding

CHECKS = ("workload-exists", "load-balancer", "health-gate", "replicas", "restart-policy", "published-port", "adoption")


def lint(history: History, workload: str, where: str, balancer: t.Optional[str],
         health_check_path: t.Optional[str]) -> list[Finding]:
    """The findings for ``workload`` (its description), whose containers ``history`` holds, on engine ``where``.
    ``balancer``: None when no load balancer is configured, "" when checking it found nothing wrong, else what is
    wrong with it."""
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
    if not current.newest.address:
        findings.append(Finding("published-port", "error", "the containers publish no port for the load balancer",
                                "create them with docker_container.port"))
    return findings
