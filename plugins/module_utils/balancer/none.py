# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""``load_balancer.type: none``: nothing routes traffic, so nothing to add, drain or remove.

The null driver: the Docker swap drives it as any other (take in, drain, take out, release), and every step
does nothing, so that the swap has no "is there a load balancer" branch. Its pool never holds a member.
"""

from __future__ import annotations

import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Balancer, Member

NO_BALANCER_WARNING = (
    "load_balancer.type is none: containers are started before the old ones stop, but nothing moves "
    "client traffic between them, so clients of a stopped container see errors. Zero downtime needs a "
    "load balancer (load_balancer.type=haproxy or nginx)."
)


class NoBalancer(Balancer):
    """A driver that does nothing; the backend warns that zero downtime needs a load balancer."""

    kind = "none"
    routes = False

    def member_names(self, container: str) -> list[str]:
        return []  # no container is ever a member: nothing to drain, take out or release

    def admit(self, container: str, address: t.Optional[str], weight: t.Optional[int] = None) -> list[str]:
        return []  # nothing to add, so no address is needed either

    def members(self) -> dict[str, Member]:
        return {}

    def add(self, name: str, address: str) -> None:
        return None

    def drain(self, name: str) -> None:
        return None

    def remove(self, name: str) -> None:
        return None
