"""registry: load_balancer.type -> driver, the load_balancer option built from the drivers' suboptions."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import server_name
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.registry import make_balancer
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput
from tests.support.balancer_fakes import run


def test_make_balancer_and_server_names():
    assert make_balancer(None, "w").kind == "none"
    assert make_balancer({"type": "haproxy", "socket": "/x.sock"}, "w").backend == "w"
    with pytest.raises(InvalidInput):
        make_balancer({"type": "traefik"}, "w")
    assert server_name("shop-r2-ab12cd") == "shop-r2-ab12cd"
    assert server_name("a b/c") == "a_b_c"


def test_the_registry_builds_each_driver_and_the_load_balancer_option_from_them():
    from ansible_collections.zerodown.rollout.plugins.module_utils.balancer import registry
    from ansible_collections.zerodown.rollout.plugins.module_utils.docker.args import LOAD_BALANCER_OPTIONS
    assert set(registry.DRIVERS) == {"haproxy", "nginx", "caddy", "none"}
    assert LOAD_BALANCER_OPTIONS["type"] == {"type": "str", "default": "haproxy", "choices": ["haproxy", "nginx", "caddy", "none"]}
    every = {name for driver in registry.DRIVERS.values() for name in driver.OPTIONS} | {"type"}
    assert set(LOAD_BALANCER_OPTIONS) == every
    # only type has a default: a suboption of another driver must be told apart from an unset one
    assert [name for name, spec in LOAD_BALANCER_OPTIONS.items() if "default" in spec] == ["type"]


@pytest.mark.parametrize("spec, said", [
    ({"type": "haproxy", "socket": "/x.sock", "upstream_file": "/etc/nginx/up.conf"},
     "load_balancer.upstream_file applies to type=nginx, not to load_balancer.type=haproxy"),
    ({"type": "nginx", "upstream_file": "/tmp/up.conf", "servers_file": "/tmp/s.cfg", "master_socket": "/m.sock"},
     "load_balancer.master_socket applies to type=haproxy; load_balancer.servers_file applies to type=haproxy, "
     "not to load_balancer.type=nginx: remove them"),
    ({"type": "none", "socket": "/x.sock"}, "load_balancer.socket applies to type=haproxy, not to load_balancer.type=none"),
    ({"type": "nginx", "upstream_file": "/tmp/up.conf", "reload_command": " "}, "load_balancer.reload_command is empty"),
    ({"type": "nginx", "upstream_file": "/tmp/up.conf", "drain_grace": -1}, "drain_grace must be zero or more"),
])
def test_a_suboption_the_driver_does_not_take_is_refused(spec, said):
    with pytest.raises(InvalidInput) as err:
        make_balancer(spec, "shop", run)
    assert said in err.value.msg


def test_suboptions_two_drivers_take_are_fine_with_both():
    assert make_balancer({"type": "nginx", "upstream_file": "/tmp/up.conf", "backend": "shop-up",
                          "server_options": "max_fails=1"}, "shop", run).upstream == "shop-up"
    assert make_balancer({"type": "haproxy", "socket": "/x.sock", "backend": "be", "server_options": "check"},
                         "shop").backend == "be"
