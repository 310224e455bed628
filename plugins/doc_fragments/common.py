# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options every module of the collection has: which workload, on which platform.
    DOCUMENTATION = r"""
requirements:
  - Python 3.9 to 3.13 on the host the task runs on (ansible-core 2.19 to 2.21 on the controller)
options:
  platform:
    description:
      - Where the workload runs.
      - V(kubernetes) acts on a Deployment, StatefulSet or DaemonSet through the Kubernetes API.
      - V(docker) acts on a named set of containers on a Docker host, behind a load balancer.
    type: str
    required: true
    choices: [docker, kubernetes]
  name:
    description:
      - Name of the workload.
      - For O(platform=kubernetes), the name of the Deployment, StatefulSet or DaemonSet.
      - For O(platform=docker), the name of the set of containers (stored in their labels).
    type: str
    required: true
  kind:
    description:
      - Kind of Kubernetes workload. Only for O(platform=kubernetes).
      - Default V(Deployment) when O(platform=kubernetes); refused with O(platform=docker).
    type: str
    choices: [Deployment, StatefulSet, DaemonSet]
  namespace:
    description:
      - Kubernetes namespace of the workload. Only for O(platform=kubernetes).
      - Default V(default) when O(platform=kubernetes); refused with O(platform=docker).
    type: str
"""

    ATTRIBUTES = r"""
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second run indicates no change.
  action_group:
    description: Use C(group/zerodown.rollout.rollout) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - zerodown.rollout.rollout
"""

    # The attributes of a module that never changes anything: it runs the same in check mode and shows no diff.
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
"""
