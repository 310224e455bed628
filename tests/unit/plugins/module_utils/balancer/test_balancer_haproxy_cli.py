"""haproxy_cli: socket specs, the tables HAProxy answers with, and talking to its runtime API and master CLI."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer import haproxy as hx
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer import haproxy_cli as cli
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput
from tests.support.balancer_fakes import FakeHaproxy, FakeMaster


@pytest.fixture
def fake():
    server = FakeHaproxy()
    yield server
    server.close()


@pytest.fixture
def master():
    server = FakeMaster()
    yield server
    server.close()


def test_parse_socket_forms():
    assert cli.parse_socket("/run/haproxy/admin.sock") == ("unix", "/run/haproxy/admin.sock")
    assert cli.parse_socket("unix:///run/a.sock") == ("unix", "/run/a.sock")
    assert cli.parse_socket("127.0.0.1:9999") == ("tcp", ("127.0.0.1", 9999))
    assert cli.parse_socket("tcp://[::1]:9999") == ("tcp", ("::1", 9999))
    for bad in ("", "nothing", "host:port"):
        with pytest.raises(InvalidInput):
            cli.parse_socket(bad)


# HAProxy 2.6's master CLI "show proc" (the master, the current worker, one old worker, no program)
SHOW_PROC = """#<PID>          <type>          <reloads>       <uptime>        <version>
4140            master          3 [failed: 0]   0d00h01m05s     2.6.12-1+deb12u4
# workers
4188            worker          0               0d00h00m01s     2.6.12-1+deb12u4
# old workers
4163            worker          1               0d00h00m09s     2.6.12-1+deb12u4
# programs

"""


def test_parse_proc_reads_workers_and_old_workers():
    assert cli.parse_proc(SHOW_PROC) == {"workers": ["4188"], "old workers": ["4163"]}
    assert cli.parse_proc("Unknown command.\n") == {}


def test_a_regular_file_as_haproxy_socket_is_named_as_such(tmp_path):
    path = tmp_path / "admin.sock"
    path.write_text("")
    lb = hx.HaproxyRuntime(str(path), "web")
    with pytest.raises(InvalidInput, match="is not a socket"):
        lb.check()


def test_master_cli_dropped_during_a_reload_is_asked_again(fake, master):
    lb = hx.HaproxyRuntime(fake.path, "web", master_socket=master.path)
    master.old = {"7": {}}
    master.drop = 2  # the master re-executes itself: the connections it had accepted close unanswered
    assert lb.old_workers() == ["7"]
    assert master.drop == 0
