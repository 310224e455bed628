# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Failed Kubernetes API requests as the collection's errors: what was being done, what the API server said, and
what to fix; never a credential."""

from __future__ import annotations

import json
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.kubernetes.connection import Connection, scrub
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    PlatformUnreachable,
    RolloutError,
    WorkloadNotFound,
)


def api_error_message(exc: t.Any) -> str:
    """The API server's own explanation of a failed request (Status.message), else the HTTP reason."""
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])
        except (ValueError, TypeError):
            pass
    reason = getattr(exc, "reason", None) or "error"
    return f"HTTP {getattr(exc, 'status', '?')} {reason}"


def unreachable(exc: BaseException, host: str, conn: Connection) -> PlatformUnreachable:
    """The error for a connection-level failure (refused, DNS, TLS, timeout) talking to ``host``."""
    detail = scrub(str(getattr(exc, "reason", None) or exc), conn)
    return PlatformUnreachable(
        f"cannot reach the Kubernetes API at {host} ({conn.describe()}): {detail}. "
        "Check host/kubeconfig/context and that the API server is up and reachable from where the task runs"
    )


def translate(exc: t.Any, what: str, host: str, conn: Connection) -> RolloutError:
    """A user-facing error for an ApiException raised by ``host`` while doing ``what``."""
    status = getattr(exc, "status", 0)
    message = scrub(api_error_message(exc), conn)
    if status == 0:
        return PlatformUnreachable(
            f"{what}: cannot talk to the Kubernetes API at {host}: "
            f"{scrub(str(getattr(exc, 'reason', '') or ''), conn)}"
        )
    if status == 401:
        return RolloutError(
            f"{what}: the API server at {host} rejected the credentials (401 Unauthorized); "
            f"check api_key / client certificate / the kubeconfig user ({conn.describe()})"
        )
    if status == 403:
        return RolloutError(f"{what}: forbidden (403): {message}; grant the needed RBAC permission")
    if status == 404:
        return WorkloadNotFound(f"{what}: not found: {message}")
    if status in (400, 415, 422):
        return InvalidInput(f"{what}: the API server refused the request ({status}): {message}")
    if status == 409:
        return RolloutError(f"{what}: conflict (409): {message}; re-run the task")
    return RolloutError(f"{what}: the API server answered {status}: {message}")
