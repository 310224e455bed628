# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Options of the Kubernetes backend, documented in the ``zerodown.rollout.kubernetes`` doc fragment.

Connection options default to None so that :func:`client.resolve_connection` can tell "not set"
from "set", and fill the gaps from the ``K8S_AUTH_*`` environment (what AWX's Kubernetes credential
injects), then from the kubeconfig, then from the in-cluster service account.
"""

from __future__ import annotations

import typing as t

# TLS and timeout options carry a k8s_ prefix: every module has both backends' options, and the Docker
# backend has TLS options of its own.
KUBERNETES_ARGS: dict[str, dict[str, t.Any]] = {
    "kubeconfig": {"type": "path"},
    "context": {"type": "str"},
    "host": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "k8s_ca_cert": {"type": "path"},
    "k8s_client_cert": {"type": "path"},
    "k8s_client_key": {"type": "path", "no_log": False},
    "k8s_validate_certs": {"type": "bool"},
    "k8s_proxy": {"type": "str"},
    "k8s_request_timeout": {"type": "int", "default": 30},
    "readiness_failure_limit": {"type": "int", "default": 10},
    "wait_old_pods_gone": {"type": "bool", "default": False},
}
