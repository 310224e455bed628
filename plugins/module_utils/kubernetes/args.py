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

# Deprecated spellings of the connection options: the names before they followed kubernetes.core's.
DEPRECATED_VERSION = "2.0.0"


def _deprecated(*names: str) -> list[dict[str, str]]:
    return [{"name": name, "version": DEPRECATED_VERSION, "collection_name": "zerodown.rollout"} for name in names]


PROXY_HEADERS_OPTIONS: dict[str, dict[str, t.Any]] = {
    "proxy_basic_auth": {"type": "str", "no_log": True},
    "basic_auth": {"type": "str", "no_log": True},
    "user_agent": {"type": "str"},
}

# The connection options take kubernetes.core's names and aliases; the Docker backend's options all start
# with docker_, so none of these clashes with them (tests/unit/.../test_args.py checks every module).
KUBERNETES_ARGS: dict[str, dict[str, t.Any]] = {
    "kubeconfig": {"type": "path"},
    "context": {"type": "str"},
    "host": {"type": "str"},
    "api_key": {"type": "str", "no_log": True},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert", "k8s_ca_cert"],
                "deprecated_aliases": _deprecated("k8s_ca_cert")},
    "client_cert": {"type": "path", "aliases": ["cert_file", "k8s_client_cert"],
                    "deprecated_aliases": _deprecated("k8s_client_cert")},
    "client_key": {"type": "path", "aliases": ["key_file", "k8s_client_key"], "no_log": False,
                   "deprecated_aliases": _deprecated("k8s_client_key")},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl", "k8s_validate_certs"],
                       "deprecated_aliases": _deprecated("k8s_validate_certs")},
    "proxy": {"type": "str", "aliases": ["k8s_proxy"], "deprecated_aliases": _deprecated("k8s_proxy")},
    "no_proxy": {"type": "str"},
    "proxy_headers": {"type": "dict", "options": PROXY_HEADERS_OPTIONS},
    "impersonate_user": {"type": "str"},
    "impersonate_groups": {"type": "list", "elements": "str"},
    "k8s_request_timeout": {"type": "int"},
    "readiness_failure_limit": {"type": "int"},
    "wait_old_pods_gone": {"type": "bool"},
}

# image_upgrade's canary (the argument spec group "kubernetes_canary"; doc fragment section CANARY). No default at
# the top level, so that platforms.check_options can refuse it on a Docker host; replicas has none either, so that a
# replicas given with state=absent can be told apart and refused (its documented default, 1, is applied in canary.py).
KUBERNETES_CANARY_ARGS: dict[str, dict[str, t.Any]] = {
    "canary": {"type": "dict", "options": {
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "replicas": {"type": "int"},
        "name_suffix": {"type": "str", "default": "-canary"},
    }},
}
