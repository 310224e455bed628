# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The official ``kubernetes`` client and the libraries it brings (urllib3, PyYAML), imported once, guarded.

Without them the names below are stand-ins, so that the backend's files still import (ansible-test's import
sanity test) and the backend can report the missing library through ``missing_required_lib``
(``HAS_KUBERNETES``, ``KUBERNETES_IMPORT_ERROR``). The stand-in exceptions are never raised.
"""

from __future__ import annotations

import typing as t

try:
    # kubernetes first: it needs urllib3 and PyYAML, so without it neither is taken from wherever else it came
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes import watch as k8s_watch
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException
    import urllib3
    import yaml

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR: t.Optional[str] = None
except ImportError as exc:  # reported by the backend with missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = str(exc)
    urllib3 = None
    k8s_client = None
    k8s_config = None
    k8s_watch = None

    class ApiException(Exception):  # type: ignore[no-redef]
        status = 0
        body = None
        reason = None

    class ConfigException(Exception):  # type: ignore[no-redef]
        pass

    class yaml:  # type: ignore[no-redef]  # noqa: N801 (stands in for the module)
        class YAMLError(Exception):
            pass

__all__ = ["HAS_KUBERNETES", "KUBERNETES_IMPORT_ERROR", "ApiException", "ConfigException", "k8s_client", "k8s_config",
           "k8s_watch", "urllib3", "yaml"]
