#!/usr/bin/python
# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_info
short_description: Show a workload's rollout status and revision history
version_added: 0.1.0
author: zerodown maintainers (@zerodown)
description:
  - Returns what C(kubectl rollout status) and C(kubectl rollout history) show, for Kubernetes workloads and
    for Docker workloads alike, without waiting.
extends_documentation_fragment:
  - zerodown.rollout.common
  - zerodown.rollout.common.ATTRIBUTES
  - zerodown.rollout.common.READ_ONLY
  - zerodown.rollout.docker
  - zerodown.rollout.kubernetes
seealso:
  - module: zerodown.rollout.rollout_wait
  - module: zerodown.rollout.rollback
"""

EXAMPLES = r"""
- name: Record the revision before upgrading
  zerodown.rollout.rollout_info:
    platform: docker
    name: shop
  register: before

- name: Show the history
  ansible.builtin.debug:
    msg: "{{ before.revisions | map(attribute='revision') | list }} (current {{ before.revision }})"
"""

RETURN = r"""
workload:
  description: The workload described.
  returned: always
  type: dict
  sample: {"platform": "docker", "kind": "Deployment", "name": "shop", "namespace": null}
revision:
  description: The current revision.
  returned: always
  type: int
  sample: 2
status:
  description:
    - The rollout status (see M(zerodown.rollout.rollout_wait) for the keys).
    - On a Docker host, while a run of M(zerodown.rollout.image_upgrade) or M(zerodown.rollout.rollback) holds
      the workload's lock, C(lock) names its owner (host, pid, operation, target, since) and the message says so.
    - On a Docker host after a C(strategy=blue_green) upgrade, C(standby) is the old revision standing by at weight
      0 (see M(zerodown.rollout.rollout_wait)); this module reports it, C(expired) included, and never retires it.
  returned: always
  type: dict
  sample: {"desired": 3, "updated": 3, "ready": 3, "available": 3, "revision": 2, "state": "complete", "done": true,
           "message": "rolled out", "reason": null}
revisions:
  description: The retained revisions, oldest first.
  returned: always
  type: list
  elements: dict
  contains:
    revision:
      description:
        - Revision number.
        - On Docker a number is given once, when a revision's containers are created, and kept when the
          revision is made current again (by M(zerodown.rollout.rollback), or by
          M(zerodown.rollout.image_upgrade) to the image and configuration of a retained revision, whose
          stopped containers are restarted). So the current revision is not always the highest number.
          Kubernetes gives a rolled-back template the next number instead.
      type: int
    images:
      description: Container name to image.
      type: dict
    current:
      description: Whether this is the current revision.
      type: bool
    change_cause:
      description: Why the revision exists.
      type: str
    created:
      description:
        - When the revision was created (ISO 8601). On Docker a revision made current again keeps its creation
          time and its change cause.
      type: str
    source:
      description: What holds the revision (ReplicaSet, ControllerRevision or container names).
      type: str
    replicas:
      description: Replicas currently running this revision.
      type: int
  sample: [{"revision": 1, "images": {"web": "shop/web:1.0"}, "current": false, "change_cause": "initial",
            "created": "2026-11-26T10:00:00Z", "source": "shop-5d8f7c", "replicas": 0}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.zerodown.rollout.plugins.module_utils.platforms import argument_spec, run


def describe(platform) -> dict:
    status = platform.status()
    revisions = platform.history()
    return {
        "changed": False,
        "workload": platform.workload.to_dict(),
        "revision": status.revision,
        "status": status.to_dict(),
        "revisions": [rev.to_dict() for rev in revisions],
    }


def main() -> None:
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run(module, describe)


if __name__ == "__main__":
    main()
