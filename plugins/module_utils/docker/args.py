# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Argument specs of the Docker backend, in step with doc_fragments/docker.py.

* ``DOCKER_ARGS`` (fragment ``zerodown.rollout.docker``): engine connection, load balancer, and the containers a
  workload adopts (``adopt``, ``compose_project``/``compose_service``); every module.
* ``DOCKER_ROLLOUT_ARGS`` (``zerodown.rollout.docker.ROLLOUT``): how containers are swapped; modules that
  change the workload (image_upgrade, rollback).
* ``DOCKER_CONTAINER_ARGS`` (``zerodown.rollout.docker.CONTAINER``): how a new workload's containers are
  created, how far an upgrade goes (``max_batches``) and how it moves traffic (``strategy``, ``steps``,
  ``analysis``, ``standby_seconds``, ``promote``); image_upgrade only.
"""

from __future__ import annotations

import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.registry import load_balancer_options
from ansible_collections.zerodown.rollout.plugins.module_utils.progressive import (
    ANALYSIS_OPTIONS,
    STEP_OPTIONS,
    STRATEGIES,
)


# every driver's suboptions (balancer/registry.py); only type has a default
LOAD_BALANCER_OPTIONS: dict[str, dict[str, t.Any]] = load_balancer_options()

DOCKER_ARGS: dict[str, dict[str, t.Any]] = {
    "docker_host": {"type": "str"},  # unset: DOCKER_HOST, then the local socket (engine.connect)
    "docker_tls": {"type": "bool"},
    "docker_tls_verify": {"type": "bool"},
    "docker_ca_path": {"type": "path"},
    "docker_client_cert": {"type": "path"},
    "docker_client_key": {"type": "path", "no_log": True},
    "docker_timeout": {"type": "int"},
    "load_balancer": {"type": "dict", "options": LOAD_BALANCER_OPTIONS},
    # a workload that starts from containers this collection did not create (docker/adopt.py)
    "adopt": {
        "type": "dict",
        "options": {
            "labels": {"type": "dict"},
            "names": {"type": "list", "elements": "str"},
        },
    },
    "compose_project": {"type": "str"},
    "compose_service": {"type": "str"},
}

DOCKER_ROLLOUT_ARGS: dict[str, dict[str, t.Any]] = {
    "batch_size": {"type": "int"},
    "batch_interval": {"type": "float"},
    "health_timeout": {"type": "float"},
    "health_check": {
        "type": "dict",
        "options": {
            "path": {"type": "str", "required": True},
            "status": {"type": "list", "elements": "int", "default": [200]},
        },
    },
    "drain_timeout": {"type": "float"},
    "stop_timeout": {"type": "int"},
    "retain": {"type": "int"},
    "lock_timeout": {"type": "float"},
}

DOCKER_CONTAINER_ARGS: dict[str, dict[str, t.Any]] = {
    "docker_container": {
        "type": "dict",
        "options": {
            "port": {"type": "int"},
            "publish_address": {"type": "str"},  # unset: 127.0.0.1 (replicas.creation_config); refused with lb_network
            "lb_network": {"type": "str"},
            "env": {"type": "dict", "no_log": False},
            "command": {"type": "list", "elements": "str"},
            "labels": {"type": "dict"},
            "networks": {"type": "list", "elements": "str"},
            "restart_policy": {"type": "str", "default": "unless-stopped",
                               "choices": ["no", "on-failure", "always", "unless-stopped"]},
            "healthcheck": {
                "type": "dict",
                "options": {
                    "test": {"type": "list", "elements": "str", "required": True},
                    "interval": {"type": "float"},
                    "timeout": {"type": "float"},
                    "retries": {"type": "int"},
                    "start_period": {"type": "float"},
                },
            },
        },
    },
    "pull": {"type": "str", "choices": ["missing", "always", "never"]},
    "max_batches": {"type": "int"},
    # strategy=steps (progressive.py); unset strategy is rolling, so that given can be told from unset
    "strategy": {"type": "str", "choices": list(STRATEGIES)},
    "steps": {"type": "list", "elements": "dict", "options": STEP_OPTIONS},
    "analysis": {"type": "dict", "options": ANALYSIS_OPTIONS},
    # strategy=blue_green (docker/blue_green.py); no defaults, so that given can be told from unset
    "standby_seconds": {"type": "float"},
    "promote": {"type": "bool"},
}
