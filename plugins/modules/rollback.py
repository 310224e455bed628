#!/usr/bin/python
# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rollback
short_description: Roll a workload back to an earlier revision, the same safe way it was upgraded
version_added: 0.1.0
author: zerodown maintainers (@zerodown)
description:
  - Makes an earlier revision current again.
  - On Kubernetes, follows C(kubectl rollout undo) but picks the revision among the ReplicaSets or
    ControllerRevisions the workload I(owns), keeps the workload's other annotations, and does nothing when
    the workload already runs that revision.
  - On a Docker host, restarts the retained containers of that revision (no pull) start-first, in batches,
    behind the load balancer, and drains the current ones.
  - On a Docker host, one run at a time changes a workload; a run that finds another one changing it waits
    up to O(lock_timeout) seconds, then decides again from what that run left.
extends_documentation_fragment:
  - zerodown.rollout.common
  - zerodown.rollout.common.ATTRIBUTES
  - zerodown.rollout.docker
  - zerodown.rollout.docker.ROLLOUT
  - zerodown.rollout.kubernetes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
    details: With O(to_revision) set to a revision number, re-running changes nothing. Without it (or with
      V(0)), the target is the revision before the current one, as C(kubectl rollout undo) does, so a second run
      goes back again.
options:
  to_revision:
    description:
      - The revision to go back to. When omitted, or V(0) (as C(kubectl rollout undo --to-revision=0)), the
        revision before the current one, so that a second run goes back again. A negative number is refused.
      - Use the RV(zerodown.rollout.image_upgrade#module:previous_revision) an upgrade returned to make
        re-runs idempotent.
    type: int
  allow_paused:
    description:
      - Roll back a paused Kubernetes Deployment anyway (it stays paused, so nothing rolls out until it
        is resumed). By default a paused Deployment is refused, as C(kubectl rollout undo) does.
    type: bool
    default: false
  wait:
    description:
      - Wait until the rollback is rolled out.
      - On Kubernetes, with O(wait_old_pods_gone=true), also until no pod of an older revision is left,
        terminating ones included.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait when O(wait=true).
      - V(0) checks the rollout once and fails if it is not complete yet.
    type: int
    default: 300
seealso:
  - module: zerodown.rollout.image_upgrade
  - module: zerodown.rollout.rollout_info
"""

EXAMPLES = r"""
- name: Upgrade, and roll back automatically if anything fails
  block:
    - name: Upgrade
      zerodown.rollout.image_upgrade:
        platform: kubernetes
        name: shop
        container: web
        image: registry.example.org/shop/web:2.0
      register: upgrade
  rescue:
    - name: Back to the revision that ran before
      zerodown.rollout.rollback:
        platform: kubernetes
        name: shop
        to_revision: "{{ upgrade.previous_revision }}"

- name: Roll a Docker workload back to the previous revision
  zerodown.rollout.rollback:
    platform: docker
    name: shop
"""

RETURN = r"""
workload:
  description: The workload acted on.
  returned: always
  type: dict
  sample: {"platform": "docker", "kind": "Deployment", "name": "shop", "namespace": null}
revision:
  description: The workload's revision after the task.
  returned: always
  type: int
  sample: 5
previous_revision:
  description: The revision that was current before the task.
  returned: always
  type: int
  sample: 4
images:
  description: Container name to image, after the task.
  returned: always
  type: dict
  sample: {"web": "shop/web:1.0"}
previous_images:
  description: Container name to image, before the task.
  returned: always
  type: dict
  sample: {"web": "shop/web:2.0"}
status:
  description: Rollout status after the task (see M(zerodown.rollout.rollout_wait) for the keys).
  returned: success
  type: dict
  sample: {"desired": 3, "updated": 3, "ready": 3, "available": 3, "revision": 5, "state": "complete", "done": true,
           "message": "rolled out", "reason": null}
progress:
  description:
    - The distinct rollout status messages seen while waiting, with the seconds at which each appeared.
    - On O(platform=docker), first one line per batch of the swap (new replicas healthy and in the load
      balancer, old ones left), then the statuses of the final wait.
    - Returned when the task changed something (and, on Kubernetes, waited).
  returned: when changed
  type: list
  elements: dict
  sample: [{"t": 0.0, "message": "Waiting for deployment spec update to be observed..."}]
failing_pods:
  description:
    - On failure of the wait, the pods of the new revision that cannot become ready, with the reason
      (V(CrashLoopBackOff), V(ImagePullBackOff), V(ErrImagePull), V(ReadinessProbeFailing)...) and their
      last events. Only for O(platform=kubernetes).
  returned: failure
  type: list
  elements: dict
  sample: [{"pod": "shop-7d9f-x2b", "container": "web", "reason": "CrashLoopBackOff", "message": "back-off 40s",
            "restarts": 4, "events": ["BackOff: Back-off restarting failed container"]}]
rolled_back_to:
  description:
    - The revision number whose template was restored (before the controller renumbered it).
      Only for O(platform=kubernetes).
  returned: success
  type: int
  sample: 3
msg:
  description: What was done, in one sentence.
  returned: always
  type: str
  sample: Docker workload 'shop' rolled back from revision 4 (shop/web:2.0) to revision 3 (shop/web:1.0) in 2 batch(es)
lb_repaired:
  description:
    - What this run repaired in the load balancer besides its swap (O(platform=docker)), one sentence per fix;
      a stale member taken out, a missing one added, an address corrected, a member put back in rotation,
      the servers or upstream file rewritten. In check mode, what it would repair. Empty when the load
      balancer already held what the workload runs.
  returned: O(platform=docker)
  type: list
  elements: str
  sample: ["HAProxy backend shop: added the missing shop-r2-3f9a2c.5be1c0 (127.0.0.1:32771)"]
pruned:
  description:
    - Containers of revisions beyond O(retain) that were removed after the change, or by a run that had
      nothing else to change, and containers an interrupted run had created but never started. Only for
      O(platform=docker).
  returned: changed and O(platform=docker)
  type: list
  elements: str
  sample: ["shop-r1-3f9a2c", "shop-r1-77b0e1"]
health_log:
  description:
    - The last HEALTHCHECK results of the new container that failed the health gate. Only for O(platform=docker).
  returned: failure of the health gate
  type: list
  elements: str
  sample: ["exit 1: wget: server returned error: HTTP/1.0 404 Not Found"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.rollout.plugins.module_utils.platforms import argument_spec, run


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            "docker_rollout",
            to_revision={"type": "int"},
            allow_paused={"type": "bool", "default": False},
            wait={"type": "bool", "default": True},
            wait_timeout={"type": "int", "default": 300},
        ),
        supports_check_mode=True,
    )
    run(module, lambda platform: platform.rollback(module.params).to_module_result(module._diff))


if __name__ == "__main__":
    main()
