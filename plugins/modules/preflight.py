#!/usr/bin/python
# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: preflight
short_description: Zero-downtime lint of a workload before an upgrade
version_added: 0.1.0
author: zerodown maintainers (@zerodown)
description:
  - Reads a workload's configuration and reports what would make an image upgrade drop traffic or fail
    slowly, with how to fix each finding. Never changes anything.
  - On Kubernetes the checks are C(readiness_probe) (a container without a readinessProbe),
    C(max_unavailable) (a rolling update that may take every replica, or most of them, down at once),
    C(single_replica), C(recreate_strategy) (Deployment strategy Recreate), C(on_delete_strategy)
    (StatefulSet/DaemonSet OnDelete), C(prestop_hook) (no preStop hook to outlast endpoint removal),
    C(termination_grace) (grace period shorter than the preStop sleep, or very short),
    C(progress_deadline) (progressDeadlineSeconds shorter than a pod needs to become available),
    C(partition) (StatefulSet partition above 0), C(daemonset_surge) (DaemonSet maxSurge 0) and C(paused).
  - On a Docker host the checks are those of the Docker backend (health check, load balancer, replicas).
  - Findings have a severity, V(error) (an upgrade will lose capacity or not roll out) or V(warning).
extends_documentation_fragment:
  - zerodown.rollout.common
  - zerodown.rollout.common.ATTRIBUTES
  - zerodown.rollout.common.READ_ONLY
  - zerodown.rollout.docker
  - zerodown.rollout.kubernetes
options:
  fail_on:
    description:
      - Fail the task when there are findings of this severity or worse.
      - V(never) only reports.
    type: str
    choices: [error, warning, never]
    default: error
  skip:
    description:
      - Names of checks not to run, for example V(single_replica) for a Kubernetes workload that is a singleton
        by design, or V(replicas) for a Docker one. A name the platform has no check of is refused.
      - The checks of O(platform=kubernetes) - V(readiness_probe), V(max_unavailable), V(single_replica),
        V(recreate_strategy), V(on_delete_strategy), V(prestop_hook), V(termination_grace),
        V(progress_deadline), V(partition), V(daemonset_surge), V(paused).
      - The checks of O(platform=docker) - V(workload-exists), V(load-balancer), V(health-gate), V(replicas),
        V(restart-policy), V(published-port), V(lb-network).
    type: list
    elements: str
    default: []
seealso:
  - module: zerodown.rollout.image_upgrade
"""

EXAMPLES = r"""
- name: Refuse to upgrade a Deployment that cannot be upgraded without downtime
  zerodown.rollout.preflight:
    platform: kubernetes
    name: shop
    namespace: prod
    fail_on: error

- name: Only report, and accept a singleton worker
  zerodown.rollout.preflight:
    platform: kubernetes
    kind: StatefulSet
    name: queue
    fail_on: never
    skip: [single_replica]
  register: lint

- name: Show the findings
  ansible.builtin.debug:
    msg: "{{ lint.findings | map(attribute='message') | list }}"
"""

RETURN = r"""
workload:
  description: The workload checked.
  returned: always
  type: dict
  sample: {"platform": "kubernetes", "kind": "Deployment", "name": "shop", "namespace": "prod"}
findings:
  description: What the checks found, errors first.
  returned: always
  type: list
  elements: dict
  contains:
    check:
      description: Name of the check (see O(skip)).
      type: str
    severity:
      description: V(error) or V(warning).
      type: str
    message:
      description: What is wrong and what it does to an upgrade.
      type: str
    fix:
      description: How to fix it.
      type: str
  sample: [{"check": "readiness_probe", "severity": "error", "fix": "add a readinessProbe (httpGet on a health endpoint)",
            "message": "container 'web' has no readinessProbe: new pods count as ready as soon as the process starts"}]
errors:
  description: Number of findings of severity V(error).
  returned: always
  type: int
  sample: 1
warnings_count:
  description: Number of findings of severity V(warning).
  returned: always
  type: int
  sample: 2
ok:
  description: Whether no finding reached O(fail_on).
  returned: always
  type: bool
  sample: false
msg:
  description: A one-line summary.
  returned: always
  type: str
  sample: "Deployment prod/shop: 1 error(s), 2 warning(s)"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.rollout.plugins.module_utils.platforms import argument_spec, run
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutError

_RANK = {"error": 2, "warning": 1}


def check(module: AnsibleModule, platform) -> dict:
    findings = platform.lint(module.params)
    findings = sorted(findings, key=lambda f: -_RANK.get(f.severity, 0))
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = sum(1 for f in findings if f.severity == "warning")
    threshold = {"error": 2, "warning": 1, "never": 99}[module.params["fail_on"]]
    ok = not any(_RANK.get(f.severity, 0) >= threshold for f in findings)
    summary = f"{platform.workload.describe()}: {errors} error(s), {warnings} warning(s)"
    result = {
        "changed": False,
        "workload": platform.workload.to_dict(),
        "findings": [f.to_dict() for f in findings],
        "errors": errors,
        "warnings_count": warnings,
        "ok": ok,
    }
    if not ok:
        first = next(f for f in findings if _RANK.get(f.severity, 0) >= threshold)
        raise RolloutError(
            f"{summary}; not safe to upgrade without downtime (fail_on={module.params['fail_on']}). First: "
            f"{first.message}. Fix: {first.fix}", **result)
    result["msg"] = summary
    return result


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            fail_on={"type": "str", "choices": ["error", "warning", "never"], "default": "error"},
            skip={"type": "list", "elements": "str", "default": []},
        ),
        supports_check_mode=True,
    )
    run(module, lambda platform: check(module, platform))


if __name__ == "__main__":
    main()
