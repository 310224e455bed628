#!/usr/bin/python
# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: image_upgrade
short_description: Upgrade a workload to a new container image with zero downtime
version_added: 0.1.0
author: zerodown maintainers (@zerodown)
description:
  - Moves a workload to a new image and records a new revision.
  - On Kubernetes, sets the image of one container (O(container)) or of every container whose image
    repository matches O(image), records a change-cause, and lets the workload's controller roll it out.
  - On a Docker host, replaces the workload's containers start-first, in batches, behind the load
    balancer; old containers are drained, stopped and kept so that M(zerodown.rollout.rollback) can
    bring them back. Their stops run in the background, so the next batch does not wait for them; the task
    returns once every stop has ended.
  - On a Docker host, an O(image) whose configuration is that of a retained (stopped) revision restarts
    that revision's containers instead of creating new ones (no pull), and the revision keeps its number.
  - On a Docker host, one run at a time changes a workload; a run that finds another one changing it waits
    up to O(lock_timeout) seconds, then decides again from what that run left (often there is nothing left to do).
  - Does nothing when the workload already runs O(image).
  - On Kubernetes, with O(canary), runs O(image) in a canary Deployment next to a Deployment, or removes that
    canary, and leaves the workload itself as it is.
extends_documentation_fragment:
  - zerodown.rollout.common
  - zerodown.rollout.common.ATTRIBUTES
  - zerodown.rollout.docker
  - zerodown.rollout.docker.ROLLOUT
  - zerodown.rollout.docker.CONTAINER
  - zerodown.rollout.kubernetes
  - zerodown.rollout.kubernetes.CANARY
attributes:
  check_mode:
    support: full
    details: Kubernetes uses a server-side dry run; Docker predicts the change.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  image:
    description:
      - The new image reference, for example V(registry.example.org/shop/web:2.0).
      - Required, except with O(canary.state=absent), which refuses it.
    type: str
  container:
    description:
      - Name of the container whose image is set. Only for O(platform=kubernetes).
      - When omitted, every container whose image repository matches the repository of O(image).
    type: str
  change_cause:
    description:
      - Why this revision exists; recorded with the revision and shown by M(zerodown.rollout.rollout_info).
      - Defaults to a text naming the image.
      - On a Docker host, a retained revision that is restarted keeps the change cause it was created with.
    type: str
  replicas:
    description:
      - Desired number of replicas. When omitted, the current number is kept.
      - For O(platform=docker) it is required when the workload does not exist yet (it is then created).
    type: int
  wait:
    description:
      - Wait until the new revision is rolled out (see M(zerodown.rollout.rollout_wait)).
      - On Kubernetes, with O(wait_old_pods_gone=true), also until no pod of an older revision is left,
        terminating ones included.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait for the rollout when O(wait=true).
      - V(0) checks the rollout once and fails if it is not complete yet.
    type: int
    default: 300
seealso:
  - module: zerodown.rollout.rollout_wait
  - module: zerodown.rollout.rollback
  - module: zerodown.rollout.rollout_info
"""

EXAMPLES = r"""
- name: Upgrade a Deployment's web container and wait for the rollout
  zerodown.rollout.image_upgrade:
    platform: kubernetes
    kind: Deployment
    name: shop
    namespace: prod
    container: web
    image: registry.example.org/shop/web:2.0
    change_cause: "release 2.0"
  register: upgrade

- name: Canary on Kubernetes - one pod of the new image next to the Deployment, waited for
  zerodown.rollout.image_upgrade:
    platform: kubernetes
    name: shop
    namespace: prod
    image: registry.example.org/shop/web:2.0
    canary:
      replicas: 1
    wait_timeout: 120
  register: canary

- name: Remove the Kubernetes canary (scaled to 0, its pods gone, deleted)
  zerodown.rollout.image_upgrade:
    platform: kubernetes
    name: shop
    namespace: prod
    canary:
      state: absent

- name: Upgrade a set of containers behind HAProxy on a Docker host, two at a time
  zerodown.rollout.image_upgrade:
    platform: docker
    name: shop
    image: shop/web:2.0
    batch_size: 2
    load_balancer:
      type: haproxy
      socket: /run/haproxy/admin.sock
      backend: shop

- name: Adopt containers started by hand (docker run ... --label app=shop) and upgrade them; they are kept for rollback
  zerodown.rollout.image_upgrade:
    platform: docker
    name: shop
    image: shop/web:2.0
    adopt:
      labels: {app: shop}
    load_balancer:
      type: haproxy
      socket: /run/haproxy/admin.sock
      servers_file: /etc/haproxy/conf.d/shop.cfg

- name: Upgrade the web service of the Compose project shop start-first; docker-compose ps lists the new containers
  zerodown.rollout.image_upgrade:
    platform: docker
    name: shop-web
    image: shop/web:2.0
    compose_project: shop
    compose_service: web
    load_balancer:
      type: haproxy
      socket: /run/haproxy/admin.sock
      servers_file: /etc/haproxy/conf.d/shop.cfg

- name: Canary on a Docker host - swap one replica only, then check it before the rest
  zerodown.rollout.image_upgrade:
    platform: docker
    name: shop
    image: shop/web:2.0
    batch_size: 1
    max_batches: 1
    load_balancer:
      type: haproxy
      socket: /run/haproxy/admin.sock
      backend: shop

- name: Progressive delivery on a Docker host - weighted steps judged by HAProxy's own counters
  zerodown.rollout.image_upgrade:
    platform: docker
    name: shop
    image: shop/web:2.0
    strategy: steps
    steps:
      - {weight: 5, duration: 30}
      - {weight: 25, duration: 30}
      - {pause: true}
      - {weight: 50, duration: 60}
    analysis:
      max_error_rate: 0.01
      max_latency_ratio: 1.5
    load_balancer:
      type: haproxy
      socket: /run/haproxy/admin.sock
      servers_file: /etc/haproxy/conf.d/shop.cfg

- name: Blue-green on a Docker host - one switch, the old revision standing by for ten minutes
  zerodown.rollout.image_upgrade:
    platform: docker
    name: shop
    image: shop/web:2.0
    strategy: blue_green
    standby_seconds: 600
    load_balancer:
      type: haproxy
      socket: /run/haproxy/admin.sock
      servers_file: /etc/haproxy/conf.d/shop.cfg

- name: Later - retire the standby now rather than at the next run after its deadline
  zerodown.rollout.image_upgrade:
    platform: docker
    name: shop
    image: shop/web:2.0
    strategy: blue_green
    promote: true
    load_balancer:
      type: haproxy
      socket: /run/haproxy/admin.sock
      servers_file: /etc/haproxy/conf.d/shop.cfg
"""

RETURN = r"""
workload:
  description: The workload acted on.
  returned: always
  type: dict
  sample: {"platform": "kubernetes", "kind": "Deployment", "name": "shop", "namespace": "prod"}
revision:
  description:
    - The workload's revision after the task (the new one when something changed).
    - On a Docker host, a retained revision that was restarted keeps its number, so it can be
      lower than RV(previous_revision).
  returned: always
  type: int
  sample: 4
previous_revision:
  description: The revision that was current before the task; give it to M(zerodown.rollout.rollback).
  returned: always
  type: int
  sample: 3
images:
  description: Container name to image, after the task.
  returned: always
  type: dict
  sample: {"web": "registry.example.org/shop/web:2.0"}
previous_images:
  description: Container name to image, before the task.
  returned: always
  type: dict
  sample: {"web": "registry.example.org/shop/web:1.0"}
status:
  description: Rollout status after the task (see M(zerodown.rollout.rollout_wait) for the keys).
  returned: success
  type: dict
  sample: {"desired": 3, "updated": 3, "ready": 3, "available": 3, "revision": 4, "state": "complete", "done": true,
           "message": "deployment \"shop\" successfully rolled out", "reason": null}
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
msg:
  description: What was done, in one sentence.
  returned: always
  type: str
  sample: Deployment prod/shop upgraded from revision 3 to 4
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
partial:
  description:
    - V(true) when O(max_batches) stopped the swap before every replica ran the new image, or a pause step of
      O(strategy=steps) (or an inconclusive step with O(analysis.on_inconclusive=pause)) ended the run; the new
      revision serves next to the old one and the status is V(progressing). Only for O(platform=docker).
  returned: O(platform=docker) and the workload existed
  type: bool
  sample: true
steps:
  description:
    - With O(strategy=steps), each step this run went through, in order, with its number in O(steps) (the
      final 100 % step included), the share it gave (C(weight)) or C(pause), the seconds it was held
      (C(held)) and, for a step with a duration, the C(analysis) verdict (as the C(analysis) return value).
    - Also returned when a step's analysis failed the task.
  returned: O(strategy=steps) and a step ran (not in check mode, nor when there was nothing to do)
  type: list
  elements: dict
  sample: [{"step": 1, "weight": 5, "held": 30.0, "analysis": {"verdict": "pass"}}, {"step": 2, "weight": 100, "held": 0}]
analysis:
  description:
    - When a step's analysis failed the task, the verdict with its numbers, the new revision's (C(new)) and the
      old one's in the same step (C(baseline)) - requests, errors, 5xx answers, connection and response errors,
      error rate, average response time (ms) - and the C(reasons).
  returned: a step of O(strategy=steps) failed
  type: dict
  sample: {"verdict": "fail", "reasons": ["error rate 21.0% (21 of 100...) is above analysis.max_error_rate=5.0%"],
           "new": {"requests": 100, "errors": 21, "error_rate": 0.21}, "baseline": {"requests": 1900, "errors": 0}}
standby:
  description:
    - With O(strategy=blue_green), the old revision standing by at weight 0 after the run - its C(revision), the
      revision it stands by for (C(serving)), when the switch recorded it (C(since)), until when (C(until), UTC) and
      whether that time has passed (C(expired)). V(null) when none stands by (retired, or O(standby_seconds=0)).
    - The status (C(status.standby)) carries the same, with the number of its running C(replicas).
  returned: O(strategy=blue_green) and another revision ran next to the new one (not in check mode)
  type: dict
  sample: {"revision": 3, "serving": 4, "since": "2026-06-11T10:00:00Z", "until": "2026-06-11T10:05:00Z", "expired": false}
canary:
  description:
    - With O(canary), the canary Deployment after the task. C(name); C(state); C(replicas) (V(0) once removed);
      C(image), the image it runs or ran (null when there was no canary to remove); C(images), container name to
      image (empty when there was none); and C(status), its rollout status (the keys of RV(status)) when the task
      waited for it.
    - The other return values are the workload's, which a canary leaves as it is.
  returned: O(canary) given
  type: dict
  sample: {"name": "shop-canary", "state": "present", "replicas": 1, "image": "registry.example.org/shop/web:2.0",
           "images": {"web": "registry.example.org/shop/web:2.0"}, "status": {"desired": 1, "ready": 1, "done": true}}
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
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput, Platform


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(
            "docker_rollout", "docker_container", "kubernetes_canary",
            image={"type": "str"},
            container={"type": "str"},
            change_cause={"type": "str"},
            replicas={"type": "int"},
            wait={"type": "bool", "default": True},
            wait_timeout={"type": "int", "default": 300},
        ),
        supports_check_mode=True,
    )
    run(module, lambda platform: upgrade(module, platform))


def upgrade(module: AnsibleModule, platform: Platform) -> dict:
    if module.params["image"] is None and (module.params.get("canary") or {}).get("state") != "absent":
        raise InvalidInput("image is required (it is left out only with canary.state=absent): the new image reference")
    return platform.upgrade(module.params).to_module_result(module._diff)


if __name__ == "__main__":
    main()
