#!/usr/bin/python
# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_wait
short_description: Wait until a workload's rollout completes, and fail fast when it cannot
version_added: 0.1.0
author: zerodown maintainers (@zerodown)
description:
  - Waits until the rollout of a revision completes, using C(kubectl rollout status)'s completion rule on
    Kubernetes and the containers' health and load balancer membership on Docker hosts.
  - Fails as soon as the rollout cannot complete (progress deadline exceeded, crash-looping or unpullable
    new pods, unhealthy new containers), naming what failed, instead of waiting for the timeout.
  - On Kubernetes the completion rule may hold while pods of older revisions are still terminating; with
    O(wait_old_pods_gone=true) the wait also lasts until they are gone (within O(timeout)), as on Docker hosts,
    where old containers are always stopped first.
  - Never changes anything.
extends_documentation_fragment:
  - zerodown.rollout.common
  - zerodown.rollout.common.ATTRIBUTES
  - zerodown.rollout.common.READ_ONLY
  - zerodown.rollout.docker
  - zerodown.rollout.kubernetes
options:
  revision:
    description:
      - The revision to wait for, for example the RV(zerodown.rollout.image_upgrade#module:revision) an upgrade
        returned. The wait fails if the workload moves to another revision.
      - When omitted, the workload's current revision.
    type: int
  timeout:
    description:
      - How many seconds to wait at most.
    type: int
    default: 300
seealso:
  - module: zerodown.rollout.image_upgrade
  - module: zerodown.rollout.rollout_info
"""

EXAMPLES = r"""
- name: Wait for the revision the upgrade created
  zerodown.rollout.rollout_wait:
    platform: kubernetes
    name: shop
    namespace: prod
    revision: "{{ upgrade.revision }}"
    timeout: 600
"""

RETURN = r"""
workload:
  description: The workload waited on.
  returned: always
  type: dict
  sample: {"platform": "kubernetes", "kind": "Deployment", "name": "shop", "namespace": "prod"}
revision:
  description: The revision the rollout completed for.
  returned: success
  type: int
  sample: 4
status:
  description: The rollout status when the wait ended.
  returned: always
  type: dict
  contains:
    desired:
      description: Desired number of replicas.
      type: int
    updated:
      description: Replicas running the target revision.
      type: int
    ready:
      description: Ready replicas.
      type: int
    available:
      description: Available replicas.
      type: int
    revision:
      description: The workload's current revision.
      type: int
    state:
      description: One of V(complete), V(progressing), V(failed), V(paused).
      type: str
    done:
      description: Whether the rollout is complete.
      type: bool
    message:
      description: Human-readable status, in kubectl's words where there are some.
      type: str
    reason:
      description:
        - Machine-readable reason of a failure, for example V(ProgressDeadlineExceeded); V(LoadBalancerOutOfStep)
          when a Docker workload's load balancer does not hold what the workload runs (the differences are in
          C(lb_divergence); a run of image_upgrade or rollback repairs it).
      type: str
    old_pods_gone:
      description:
        - Whether no pod of an older revision was left when the wait ended.
        - Only with O(platform=kubernetes) and O(wait_old_pods_gone=true).
      type: bool
      returned: when O(wait_old_pods_gone=true)
    standby:
      description:
        - On a Docker host after a C(strategy=blue_green) upgrade, the old revision standing by at weight 0 (it takes
          no request, so the rollout is V(complete)) - its C(revision), C(serving) (the revision it stands by for),
          C(since), C(until) (UTC), C(expired) (its time has passed; the next run of
          M(zerodown.rollout.image_upgrade) retires it) and its running C(replicas).
      type: dict
      returned: a blue-green standby is recorded and running
  sample: {"desired": 3, "updated": 3, "ready": 3, "available": 3, "revision": 4, "state": "complete", "done": true,
           "message": "deployment \"shop\" successfully rolled out", "reason": null}
duration:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 12.4
progress:
  description: The distinct status messages seen while waiting, with the seconds at which each appeared.
  returned: always
  type: list
  elements: dict
  sample: [{"t": 0.0, "message": "Waiting for deployment \"shop\" rollout to finish: 1 out of 3 new replicas have been updated..."}]
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.rollout.plugins.module_utils.platforms import argument_spec, run
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput, ProgressLog, RolloutError


def wait(module: AnsibleModule, platform) -> dict:
    if module.params["timeout"] < 0:
        raise InvalidInput(f"timeout must be zero or more seconds, got {module.params['timeout']}")
    if module.params["revision"] is not None and module.params["revision"] < 1:
        raise InvalidInput(f"revision must be 1 or more, got {module.params['revision']}")
    start = time.monotonic()
    record = ProgressLog()
    progress = record.entries

    try:
        status = platform.wait(module.params["revision"], float(module.params["timeout"]), record)
    except RolloutError as err:
        err.details.setdefault("progress", progress)
        err.details.setdefault("duration", round(time.monotonic() - start, 3))
        err.details.setdefault("workload", platform.workload.to_dict())
        raise
    return {
        "changed": False,
        "workload": platform.workload.to_dict(),
        "revision": status.revision,
        "status": status.to_dict(),
        "duration": round(time.monotonic() - start, 3),
        "progress": progress,
    }


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            revision={"type": "int"},
            timeout={"type": "int", "default": 300},
        ),
        supports_check_mode=True,
    )
    run(module, lambda platform: wait(module, platform))


if __name__ == "__main__":
    main()
