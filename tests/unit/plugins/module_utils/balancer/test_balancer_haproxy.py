"""HAProxy runtime driver against a scripted admin socket and master CLI: members, drain, release, convergence to
the intent after reloads, weights and counters."""
from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer import haproxy as hx
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Scope
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.registry import make_balancer
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    PlatformUnreachable,
    RolloutFailed,
)
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


def test_render_backend_keeps_options_and_servers():
    text = hx.render_backend("web", ["balance roundrobin", "option httpchk GET /healthz"],
                             [("a", "127.0.0.1:1"), ("b", "127.0.0.1:2")], "check inter 1s")
    lines = text.splitlines()
    assert lines[1] == "backend web"
    assert "    option httpchk GET /healthz" in lines
    assert lines[-2:] == ["    server a 127.0.0.1:1 check inter 1s", "    server b 127.0.0.1:2 check inter 1s"]


def test_add_enables_health_and_server_and_persists(fake, tmp_path):
    servers_file = tmp_path / "servers.cfg"
    lb = hx.HaproxyRuntime(fake.path, "web", servers_file=str(servers_file))
    lb.check()
    lb.add("app-r1-a", "127.0.0.1:32768")
    i = fake.commands.index("add server web/app-r1-a 127.0.0.1:32768 check inter 1s fall 2 rise 1")
    # dynamic servers start in maintenance with checks off: both are switched on, in this order
    assert fake.commands[i + 1:i + 3] == ["enable health web/app-r1-a", "set server web/app-r1-a state ready"]
    assert fake.servers["app-r1-a"]["status"] == "UP"
    lb.wait_up("app-r1-a", 1)
    assert "server app-r1-a 127.0.0.1:32768 check" in servers_file.read_text()
    members = lb.members()
    assert members["app-r1-a"].address == "127.0.0.1:32768"


def test_drain_waits_for_sessions_then_remove_deletes(fake, tmp_path):
    servers_file = tmp_path / "servers.cfg"
    lb = hx.HaproxyRuntime(fake.path, "web", servers_file=str(servers_file))
    lb.add("old", "127.0.0.1:1")
    lb.add("new", "127.0.0.1:2")
    fake.servers["old"]["scur"] = 3
    lb.drain("old")
    assert fake.servers["old"]["status"] == "DRAIN"
    assert lb.wait_drained("old", 0.5) is False  # sessions never ended
    fake.servers["old"]["scur"] = 0
    assert lb.wait_drained("old", 0.5) is True
    fake.refuse_del = 2  # connections still attached right after shutdown sessions: retried
    lb.remove("old")
    assert "old" not in fake.servers
    text = servers_file.read_text()
    assert "server new 127.0.0.1:2" in text and "server old" not in text
    assert "shutdown sessions server web/old" in fake.commands


def test_add_replaces_a_stale_server_of_the_same_name(fake):
    lb = hx.HaproxyRuntime(fake.path, "web")
    lb.add("x", "127.0.0.1:1")
    lb.add("x", "127.0.0.1:5")
    assert fake.servers["x"]["addr"] == "127.0.0.1:5"
    assert "del server web/x" in fake.commands


def test_wait_up_times_out_with_status(fake):
    lb = hx.HaproxyRuntime(fake.path, "web")
    fake.servers["down"] = {"addr": "127.0.0.1:1", "status": "DOWN", "scur": 0}
    with pytest.raises(RolloutFailed, match="status DOWN"):
        lb.wait_up("down", 0.3)


def test_wait_up_follows_a_container_that_came_back_at_another_address(fake, tmp_path):
    """A dockerd restarted between the add and the first passed check brings the container back (restart policy)
    publishing on another host port: wait_up moves the member there, in the running backend and in the servers
    file, instead of waiting out its timeout at the old address, where nothing listens."""
    servers_file = tmp_path / "servers.cfg"
    lb = hx.HaproxyRuntime(fake.path, "web", servers_file=str(servers_file))
    fake.dead.add("127.0.0.1:32772")
    lb.add("new", "127.0.0.1:32772")
    assert lb.members()["new"].up is False
    looks = []

    def follow():
        looks.append(lb.members()["new"].address)
        return "127.0.0.1:32768"

    lb.wait_up("new", 10, follow=follow)
    assert looks == ["127.0.0.1:32772"]  # looked once, while the member was down at the old address
    assert fake.servers["new"]["addr"] == "127.0.0.1:32768" and lb.members()["new"].up
    assert lb.intent["new"] == "127.0.0.1:32768"
    assert "server new 127.0.0.1:32768" in servers_file.read_text()


@pytest.mark.parametrize("where", [None, "127.0.0.1:32772"])
def test_wait_up_keeps_a_member_whose_container_did_not_move(fake, where):
    """A container gone (None) or still at the member's address: the member stays, and the wait times out there."""
    lb = hx.HaproxyRuntime(fake.path, "web")
    fake.dead.add("127.0.0.1:32772")
    lb.add("new", "127.0.0.1:32772")
    looks = []
    with pytest.raises(RolloutFailed, match="status DOWN"):
        lb.wait_up("new", hx.FOLLOW_EVERY + 0.5, follow=lambda: looks.append(1) or where)
    assert looks == [1]  # it looked, and found nowhere else to go
    assert fake.servers["new"]["addr"] == "127.0.0.1:32772" and lb.intent["new"] == "127.0.0.1:32772"
    assert [c for c in fake.commands if c.startswith("del server")] == []


@pytest.mark.parametrize("check_status, passed", [
    ("", None), ("INI", False), ("* INI", False), ("L7OK", True), ("* L7OK", True), ("L4OK", True),
    ("L7OKC", True), ("L6OK", True), ("PROCOK", True), ("L4CON", False), ("* L4TOUT", False), ("L7STS", False),
    ("SOCKERR", False), ("PROCERR", False),
])
def test_check_passed_reads_the_last_check_of_show_stat(check_status, passed):
    assert hx.check_passed({"check_status": check_status}) is passed


def test_a_server_without_health_checks_is_up_and_one_in_maintenance_is_not(fake):
    lb = hx.HaproxyRuntime(fake.path, "web", server_options="")
    fake.servers["plain"] = {"addr": "127.0.0.1:1", "status": "no check", "scur": 0}
    fake.servers["parked"] = {"addr": "127.0.0.1:2", "status": "MAINT", "scur": 0, "check": "L7OK"}
    members = lb.members()
    assert members["plain"].up and members["plain"].check_passed is None
    assert not members["parked"].up
    lb.wait_up("plain", 0.3)


def test_wait_up_waits_for_the_first_passed_check_of_a_new_server(fake):
    """HAProxy shows a dynamic server UP ("UP 1/2") from the moment it is added, before any check, and so for
    a port where nothing listens: only a passed check (show stat's check_status) makes it UP for wait_up."""
    lb = hx.HaproxyRuntime(fake.path, "web")
    fake.servers["new"] = {"addr": "127.0.0.1:1", "status": "UP 1/2", "scur": 0, "check": "INI"}
    with pytest.raises(RolloutFailed, match=r"status UP 1/2 without a passed health check"):
        lb.wait_up("new", 0.3)
    assert lb.members()["new"].up is False
    fake.servers["new"]["check"] = "L4CON"  # the first check failed: still UP 1/2 (going down), not up
    with pytest.raises(RolloutFailed, match="without a passed health check"):
        lb.wait_up("new", 0.3)

    def first_check_passes():
        time.sleep(0.3)
        fake.servers["new"].update(status="UP", check="L7OK")

    checker = threading.Thread(target=first_check_passes)
    fake.servers["new"].update(status="UP 1/2", check="* INI")
    checker.start()
    started = time.monotonic()
    lb.wait_up("new", 5)
    checker.join()
    assert time.monotonic() - started >= 0.25  # it waited for the check, not for the word UP
    assert lb.members()["new"].up is True


def test_unknown_backend_and_missing_socket(fake, tmp_path):
    with pytest.raises(InvalidInput, match="no backend 'other'"):
        hx.HaproxyRuntime(fake.path, "other").check()
    with pytest.raises(PlatformUnreachable, match="cannot talk to HAProxy"):
        hx.HaproxyRuntime(str(tmp_path / "missing.sock"), "web").check()


def _bound(fake, tmp_path, intent, tag="aaaaaa"):
    lb = hx.HaproxyRuntime(fake.path, "web", servers_file=str(tmp_path / "servers.cfg"))
    lb.bind(Scope("app", tag), intent, drain_timeout=1, up_timeout=1)
    return lb


def test_servers_file_is_rendered_from_intent_and_keeps_other_hosts_lines(fake, tmp_path):
    (tmp_path / "servers.cfg").write_text(
        "backend web\n    server app-r1-000001.bbbbbb 10.0.0.2:80 check weight 5\n"
        "    server app-r1-000002.aaaaaa 127.0.0.1:9 check\n")
    lb = _bound(fake, tmp_path, {})
    lb.add("app-r2-000003.aaaaaa", "127.0.0.1:3")
    text = (tmp_path / "servers.cfg").read_text()
    assert "    server app-r1-000001.bbbbbb 10.0.0.2:80 check weight 5" in text   # another host's, untouched
    assert "app-r1-000002.aaaaaa" not in text                                     # ours, not intended
    assert "server app-r2-000003.aaaaaa 127.0.0.1:3 check" in text


def test_a_reload_that_loads_an_older_file_is_repaired(fake, tmp_path):
    lb = _bound(fake, tmp_path, {})
    lb.add("app-r1-000001.aaaaaa", "127.0.0.1:1")
    lb.add("app-r1-000002.aaaaaa", "127.0.0.1:2")
    older = (tmp_path / "servers.cfg").read_text()
    lb.add("app-r2-000003.aaaaaa", "127.0.0.1:3")
    lb.drain("app-r1-000001.aaaaaa")
    lb.remove("app-r1-000001.aaaaaa")
    fake.servers["app-r9-000009.bbbbbb"] = {"addr": "10.0.0.2:80", "status": "UP", "scur": 0}  # another host's
    fake.reload(older + "    server app-r9-000009.bbbbbb 10.0.0.2:80\n")  # the new worker parsed the file too early
    assert set(fake.servers) == {"app-r1-000001.aaaaaa", "app-r1-000002.aaaaaa", "app-r9-000009.bbbbbb"}
    assert lb.divergence()  # what rollout_info reports
    fixes = lb.reconcile()
    assert set(fake.servers) == {"app-r1-000002.aaaaaa", "app-r2-000003.aaaaaa", "app-r9-000009.bbbbbb"}
    assert all(s["status"] == "UP" for s in fake.servers.values())
    assert any("took out app-r1-000001.aaaaaa" in f for f in fixes), fixes
    assert any("added the missing app-r2-000003.aaaaaa" in f for f in fixes), fixes
    assert lb.divergence() == [] and lb.reconcile() == []  # converged: nothing more to do


def test_reconcile_puts_back_a_member_left_drained_and_moves_a_changed_address(fake, tmp_path):
    lb = _bound(fake, tmp_path, {"app-r1-000001.aaaaaa": "127.0.0.1:1", "app-r1-000002.aaaaaa": "127.0.0.1:5"})
    fake.servers["app-r1-000001.aaaaaa"] = {"addr": "127.0.0.1:1", "status": "DRAIN", "scur": 0}
    fake.servers["app-r1-000002.aaaaaa"] = {"addr": "127.0.0.1:2", "status": "UP", "scur": 0}
    fixes = lb.reconcile()
    assert fake.servers["app-r1-000001.aaaaaa"]["status"] == "UP"
    assert fake.servers["app-r1-000002.aaaaaa"]["addr"] == "127.0.0.1:5"
    assert len([f for f in fixes if f.startswith("HAProxy")]) == 2, fixes


def test_reconcile_without_wait_leaves_a_member_that_is_not_up_yet_to_the_caller(fake, tmp_path):
    """A rollout wait reconciles at each look and waits for members itself, up to its own timeout: a member moved
    to an address whose container is not answering yet is put there and left DOWN, instead of failing the run after
    up_timeout (which waiting does, as a swap's step needs)."""
    intent = {"app-r1-000001.aaaaaa": "127.0.0.1:5"}
    fake.dead.add("127.0.0.1:5")
    lb = _bound(fake, tmp_path, intent)
    fake.servers["app-r1-000001.aaaaaa"] = {"addr": "127.0.0.1:1", "status": "UP", "scur": 0}
    fixes = lb.reconcile(wait=False)
    assert fixes and fake.servers["app-r1-000001.aaaaaa"]["addr"] == "127.0.0.1:5"
    assert lb.members()["app-r1-000001.aaaaaa"].up is False and lb.divergence() == []
    fake.servers["app-r1-000001.aaaaaa"]["addr"] = "127.0.0.1:1"
    with pytest.raises(RolloutFailed, match="status DOWN"):
        lb.reconcile()  # waiting, as after a swap's step: the member never comes up within up_timeout


def test_reconcile_reads_again_when_the_worker_changed_while_reading(fake, tmp_path):
    lb = _bound(fake, tmp_path, {"app-r1-000001.aaaaaa": "127.0.0.1:1"})
    lb.reconcile()
    stale = (tmp_path / "servers.cfg").read_text().replace("app-r1-000001.aaaaaa 127.0.0.1:1", "app-r0-000000.aaaaaa 127.0.0.1:9")
    reads = []
    real_members = lb.members

    def members_then_reload():
        reads.append(1)
        out = real_members()
        if len(reads) == 1:  # a reload lands right after the first read: that read is of the old worker
            fake.reload(stale)
        return out
    lb.members = members_then_reload
    lb.reconcile()
    assert set(fake.servers) == {"app-r1-000001.aaaaaa"} and len(reads) >= 2


def test_stale_member_taking_traffic_is_drained_before_it_is_deleted(fake, tmp_path):
    lb = _bound(fake, tmp_path, {})
    fake.servers["app-r1-000001.aaaaaa"] = {"addr": "127.0.0.1:1", "status": "UP", "scur": 0}
    lb.reconcile()
    cmds = [c for c in fake.commands if "app-r1-000001" in c]
    assert cmds.index("set server web/app-r1-000001.aaaaaa state drain") < \
        cmds.index("del server web/app-r1-000001.aaaaaa")
    assert fake.servers == {}


def _with_master(fake, master, tmp_path, intent):
    lb = hx.HaproxyRuntime(fake.path, "web", servers_file=str(tmp_path / "servers.cfg"), master_socket=master.path)
    lb.bind(Scope("app", "aaaaaa"), intent, drain_timeout=1, up_timeout=1)
    return lb


def test_release_takes_out_again_a_member_a_reload_brought_back(fake, tmp_path):
    lb = _bound(fake, tmp_path, {})
    lb.add("app-r1-000001.aaaaaa", "127.0.0.1:1")
    older = (tmp_path / "servers.cfg").read_text()
    lb.add("app-r2-000002.aaaaaa", "127.0.0.1:2")
    lb.drain("app-r1-000001.aaaaaa")
    lb.remove("app-r1-000001.aaaaaa")
    fake.reload(older)  # a worker that parsed the file before the take-out: the old member is back, UP
    fake.commands.clear()
    assert lb.release(["app-r1-000001.aaaaaa"]) == []
    assert "app-r1-000001.aaaaaa" not in fake.servers
    cmds = [c for c in fake.commands if "app-r1-000001" in c]
    assert cmds.index("set server web/app-r1-000001.aaaaaa state drain") < cmds.index("del server web/app-r1-000001.aaaaaa")


def test_release_leaves_intended_members_alone(fake, tmp_path):
    lb = _bound(fake, tmp_path, {"app-r1-000001.aaaaaa": "127.0.0.1:1"})
    lb.reconcile()
    fake.commands.clear()
    assert lb.release(["app-r1-000001.aaaaaa"]) == []
    assert fake.commands == [] and fake.servers["app-r1-000001.aaaaaa"]["status"] == "UP"


def test_release_waits_for_old_workers_that_still_route_to_the_member(fake, master, tmp_path):
    lb = _with_master(fake, master, tmp_path, {})
    name = "app-r1-000001.aaaaaa"
    master.old = {"7": {name: "UP", "app-r2-000002.aaaaaa": "UP"}, "8": {"app-r2-000002.aaaaaa": "UP"}}
    threading.Timer(0.4, lambda: master.old.pop("7")).start()  # the old worker's last connection closes
    started = time.monotonic()
    assert lb.release([name]) == []
    assert time.monotonic() - started >= 0.4
    assert "@!7 show stat;quit" in master.commands and "show proc;quit" in master.commands


def test_release_does_not_wait_for_old_workers_that_keep_it_in_maintenance(fake, master, tmp_path):
    lb = _with_master(fake, master, tmp_path, {})
    name = "app-r1-000001.aaaaaa"
    master.old = {"7": {name: "MAINT", "app-r2-000002.aaaaaa": "UP"}}
    started = time.monotonic()
    assert lb.release([name]) == []
    assert time.monotonic() - started < 0.3


def test_release_warns_when_an_old_worker_outlives_drain_timeout(fake, master, tmp_path):
    lb = _with_master(fake, master, tmp_path, {})
    name = "app-r1-000001.aaaaaa"
    master.old = {"7": {name: "DRAIN"}}
    warnings = lb.release([name], timeout=0.2)
    assert len(warnings) == 1 and "worker 7: app-r1-000001.aaaaaa" in warnings[0] and "drain_timeout" in warnings[0]


def test_master_socket_checked_at_start(fake, master, tmp_path):
    hx.HaproxyRuntime(fake.path, "web", master_socket=master.path).check()
    with pytest.raises(PlatformUnreachable, match="is it the master CLI"):
        hx.HaproxyRuntime(fake.path, "web", master_socket=fake.path).check()  # the admin socket given instead
    with pytest.raises(PlatformUnreachable, match="cannot talk to HAProxy's master CLI.*load_balancer.master_socket"):
        hx.HaproxyRuntime(fake.path, "web", master_socket=str(tmp_path / "none.sock")).check()
    regular = tmp_path / "file"
    regular.write_text("")
    with pytest.raises(InvalidInput, match="master_socket=.* is not a socket.*haproxy -S"):
        hx.HaproxyRuntime(fake.path, "web", master_socket=str(regular)).check()
    with pytest.raises(InvalidInput, match="load_balancer.master_socket='nothing'"):
        hx.HaproxyRuntime(fake.path, "web", master_socket="nothing")


def test_a_reload_between_add_and_ready_is_repaired_by_wait_up(fake, tmp_path):
    lb = _bound(fake, tmp_path, {})
    real = fake.answer

    def reload_after_add(line):
        out = real(line)
        if line.startswith("add server"):
            fake.reload("")  # a worker that parsed the file before the member was written: no such server
        return out
    fake.answer = reload_after_add
    lb.add("app-r1-000001.aaaaaa", "127.0.0.1:1")
    fake.answer = real
    lb.wait_up("app-r1-000001.aaaaaa", 1)
    assert fake.servers["app-r1-000001.aaaaaa"]["status"] == "UP"


@pytest.mark.parametrize("value", [0, -1.5])
def test_haproxy_timeout_zero_or_below_is_refused(value):
    with pytest.raises(InvalidInput, match="load_balancer.timeout must be more than 0"):
        make_balancer({"type": "haproxy", "socket": "/x.sock", "timeout": value}, "w")
    assert make_balancer({"type": "haproxy", "socket": "/x.sock", "timeout": None}, "w").timeout == 5.0


def test_weights_go_to_the_servers_file_first_then_the_runtime(fake, tmp_path):
    lb = _bound(fake, tmp_path, {})
    lb.add("app-r1-000001.aaaaaa", "127.0.0.1:1")
    lb.add("app-r2-000002.aaaaaa", "127.0.0.1:2")
    said = lb.set_weights({"app-r1-000001.aaaaaa": 240, "app-r2-000002.aaaaaa": 16})
    assert said == ["HAProxy backend web: app-r1-000001.aaaaaa weight 240",
                    "HAProxy backend web: app-r2-000002.aaaaaa weight 16"]
    text = (tmp_path / "servers.cfg").read_text()
    assert f"server app-r2-000002.aaaaaa 127.0.0.1:2 {hx.DEFAULT_SERVER_OPTIONS} weight 16" in text
    assert fake.servers["app-r1-000001.aaaaaa"]["weight"] == 240
    assert {n: m.weight for n, m in lb.members().items()} == {"app-r1-000001.aaaaaa": 240, "app-r2-000002.aaaaaa": 16}
    # None: back to the weight server_options give (HAProxy's 1), and the line loses its weight
    lb.set_weights({"app-r2-000002.aaaaaa": None})
    assert fake.servers["app-r2-000002.aaaaaa"]["weight"] == 1
    assert f"server app-r2-000002.aaaaaa 127.0.0.1:2 {hx.DEFAULT_SERVER_OPTIONS}\n" in (tmp_path / "servers.cfg").read_text()


def test_weight_zero_keeps_the_member_and_a_reload_keeps_the_weights(fake, tmp_path):
    lb = _bound(fake, tmp_path, {})
    lb.add("app-r1-000001.aaaaaa", "127.0.0.1:1")
    lb.set_weights({"app-r1-000001.aaaaaa": 0})
    fake.reload((tmp_path / "servers.cfg").read_text())
    assert fake.servers["app-r1-000001.aaaaaa"]["weight"] == 0
    assert lb.reconcile() == []


def test_reconcile_sets_back_a_weight_a_reload_of_an_older_file_changed(fake, tmp_path):
    lb = _bound(fake, tmp_path, {})
    lb.add("app-r1-000001.aaaaaa", "127.0.0.1:1")
    older = (tmp_path / "servers.cfg").read_text()
    lb.set_weights({"app-r1-000001.aaaaaa": 7})
    fake.reload(older)
    assert lb.divergence() == ["HAProxy backend web: set app-r1-000001.aaaaaa's weight back to 7 (it was 1)"]
    assert lb.reconcile() == ["HAProxy backend web: set app-r1-000001.aaaaaa's weight back to 7 (it was 1)"]
    assert fake.servers["app-r1-000001.aaaaaa"]["weight"] == 7


def test_a_member_added_with_a_weight_is_added_with_it(fake, tmp_path):
    lb = _bound(fake, tmp_path, {"app-r1-000001.aaaaaa": "127.0.0.1:1"}, tag="aaaaaa")
    lb.set_weights({"app-r1-000001.aaaaaa": 3})  # not in the runtime yet: the file has it, reconcile adds it
    lb.reconcile()
    assert fake.servers["app-r1-000001.aaaaaa"]["weight"] == 3


@pytest.mark.parametrize("weights, said", [
    ({"app-r9-000009.aaaaaa": 1}, "not a member this run keeps"),
    ({"app-r1-000001.aaaaaa": 257}, "from 0 to 256"),
    ({"app-r1-000001.aaaaaa": -1}, "from 0 to 256"),
    ({"app-r1-000001.aaaaaa": True}, "from 0 to 256"),
])
def test_bad_weights_are_refused_before_anything_changes(fake, tmp_path, weights, said):
    lb = _bound(fake, tmp_path, {})
    lb.add("app-r1-000001.aaaaaa", "127.0.0.1:1")
    before = (tmp_path / "servers.cfg").read_text()
    with pytest.raises(RolloutFailed, match=said):
        lb.set_weights(weights)
    assert (tmp_path / "servers.cfg").read_text() == before
    assert fake.servers["app-r1-000001.aaaaaa"]["weight"] == 1


def test_counters_are_the_owned_members_show_stat_counters(fake, tmp_path):
    lb = _bound(fake, tmp_path, {})
    lb.add("app-r1-000001.aaaaaa", "127.0.0.1:1")
    fake.servers["app-r1-000001.aaaaaa"].update({"req": 120, "5xx": 7, "econ": 2, "rtime": "12"})
    fake.servers["other-r1-000001.bbbbbb"] = {"addr": "10.0.0.2:80", "status": "UP", "scur": 0, "req": 5}
    counters = lb.counters()
    assert list(counters) == ["app-r1-000001.aaaaaa"]
    c = counters["app-r1-000001.aaaaaa"]
    assert (c.requests, c.responses_5xx, c.connection_errors, c.response_ms, c.worker) == (120, 7, 2, 12.0, "100")
