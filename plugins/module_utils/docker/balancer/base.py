# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The load balancer driver interface of the Docker backend.

A driver knows the *members* of one pool (an HAProxy backend, an nginx upstream): named servers at
``host:port``. The swap calls, per replaced container: ``add`` (the new one, then ``wait_up``),
``drain`` + ``wait_drained`` (the old one), ``remove`` (the old one).
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput


@dataclass
class Member:
    """One server of the pool as the load balancer sees it."""

    name: str
    address: str
    status: str = "UP"
    sessions: int = 0

    def to_dict(self) -> dict[str, t.Any]:
        return {"name": self.name, "address": self.address, "status": self.status, "sessions": self.sessions}


class Balancer:
    """Base driver; ``kind`` is the ``load_balancer.type`` value."""

    kind = ""
    # Whether the driver can take a server out of rotation and count its sessions (drain).
    can_drain = False

    def check(self) -> None:
        """Raise PlatformUnreachable / InvalidInput when the load balancer cannot be driven."""

    def members(self) -> dict[str, Member]:
        """The pool's servers by name."""
        raise NotImplementedError

    def add(self, name: str, address: str) -> None:
        raise NotImplementedError

    def wait_up(self, name: str, timeout: float) -> None:
        """Block until the server receives traffic; raise RolloutFailed with the reason otherwise."""

    def drain(self, name: str) -> None:
        """Stop sending new requests to the server; in-flight ones finish."""

    def wait_drained(self, name: str, timeout: float) -> bool:
        """Wait for the server's sessions to reach zero; False when the timeout passed first."""
        return True

    def remove(self, name: str) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return self.kind


def server_name(container_name: str) -> str:
    """The pool member name of a container: its name, kept to the characters every driver accepts."""
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in container_name)
    return out[:63]


def make_balancer(spec: t.Optional[dict[str, t.Any]], workload: str, runner: t.Any = None) -> Balancer:
    """Build the driver named by ``spec['type']`` (``load_balancer`` option); None means ``none``.

    ``runner(argv) -> (rc, stdout, stderr)`` runs the commands of drivers that need some (nginx).
    """
    spec = dict(spec or {})
    kind = spec.get("type") or "none"
    if kind == "haproxy":
        from ansible_collections.zerodown.rollout.plugins.module_utils.docker.balancer.haproxy import HaproxyRuntime

        return HaproxyRuntime.from_spec(spec, workload)
    if kind == "nginx":
        from ansible_collections.zerodown.rollout.plugins.module_utils.docker.balancer.nginx import NginxUpstream

        return NginxUpstream.from_spec(spec, workload, runner)
    if kind == "none":
        from ansible_collections.zerodown.rollout.plugins.module_utils.docker.balancer.none import NoBalancer

        return NoBalancer()
    raise InvalidInput(f"load_balancer.type={kind!r} is not supported; use haproxy, nginx or none")
