# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The load-balancer drivers by ``load_balancer.type``, and the ``load_balancer`` option built from them.

A driver is one file in this package: a :class:`~.base.Balancer` subclass with its ``kind``, its suboptions
(``OPTIONS``, no defaults: it applies its own) and ``from_spec``. Adding one = that file, one line in
``DRIVERS`` below, and its suboptions in the ``zerodown.rollout.docker`` doc fragment.
"""

from __future__ import annotations

import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Balancer
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.caddy import CaddyUpstreams
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.haproxy import HaproxyRuntime
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.nginx import NginxUpstream
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.none import NoBalancer
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput

DRIVERS: t.Dict[str, t.Type[Balancer]] = {
    HaproxyRuntime.kind: HaproxyRuntime,
    NginxUpstream.kind: NginxUpstream,
    CaddyUpstreams.kind: CaddyUpstreams,
    NoBalancer.kind: NoBalancer,
}
DEFAULT_TYPE = "haproxy"


def load_balancer_options() -> t.Dict[str, t.Dict[str, t.Any]]:
    """The suboptions of ``load_balancer``: ``type``, then every driver's (a suboption two drivers take once)."""
    options: t.Dict[str, t.Dict[str, t.Any]] = {
        "type": {"type": "str", "default": DEFAULT_TYPE, "choices": list(DRIVERS)},
    }
    for driver in DRIVERS.values():
        for name, spec in driver.OPTIONS.items():
            options.setdefault(name, dict(spec))
    return options


def make_balancer(spec: t.Optional[t.Dict[str, t.Any]], workload: str, runner: t.Any = None) -> Balancer:
    """The driver ``spec['type']`` names (``load_balancer`` option; None means ``none``), after refusing the
    suboptions another driver takes that ``spec`` gives.

    ``runner(argv) -> (rc, stdout, stderr)`` runs the commands of drivers that need some (nginx).
    """
    spec = dict(spec or {})
    kind = spec.get("type") or "none"  # the argument spec gives type its default, haproxy
    driver = DRIVERS.get(kind)
    if driver is None:
        raise InvalidInput(f"load_balancer.type={kind!r} is not supported; use {', '.join(DRIVERS)}")
    foreign = sorted(name for name, value in spec.items()
                     if name != "type" and value is not None and name not in driver.OPTIONS)
    if foreign:
        owners = {name: [k for k, d in DRIVERS.items() if name in d.OPTIONS] for name in foreign}
        said = "; ".join(f"load_balancer.{name} applies to type={' or '.join(owners[name]) or '(no driver)'}"
                         for name in foreign)
        raise InvalidInput(f"{said}, not to load_balancer.type={kind}: remove "
                           f"{'it' if len(foreign) == 1 else 'them'} or set the type it belongs to")
    return driver.from_spec(spec, workload, runner)
