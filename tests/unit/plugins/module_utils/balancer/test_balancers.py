"""HAProxy runtime driver against a scripted admin socket; nginx upstream rendering and reloads."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer import haproxy as hx
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer import haproxy_cli as cli
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer import nginx as ngx
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import (
    Scope,
    engine_tag,
    server_name,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.registry import make_balancer
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    PlatformUnreachable,
    RolloutFailed,
)

STAT_HEADER = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,"
               "weight,hrsp_4xx,hrsp_5xx,req_tot,rtime")


class ScriptedSocket:
    """A unix socket answering one command per connection with ``answer(line)``; ``drop`` connections are
    closed unanswered first (as HAProxy's master does while it re-executes itself). Subclasses set what
    ``answer`` reads before calling ``__init__``, which starts serving."""

    def __init__(self, prefix, name):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.path = os.path.join(self.dir, name)
        self.commands = []
        self.drop = 0
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(self.path)
        self.sock.listen(16)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _peer = self.sock.accept()
            except OSError:
                return
            with conn:
                if self.drop:
                    self.drop -= 1
                    continue
                line = conn.makefile().readline().strip()
                self.commands.append(line)
                conn.sendall(self.answer(line).encode())

    def answer(self, line):
        raise NotImplementedError

    def close(self):
        self.sock.close()


def _weight_of(words):
    """The weight of an ``add server`` command or a ``server`` line (the last ``weight`` keyword; 1 without)."""
    weights = [int(words[i + 1]) for i in range(len(words) - 1) if words[i] == "weight"]
    return weights[-1] if weights else 1


class FakeHaproxy(ScriptedSocket):
    """A unix socket that answers runtime API commands from an in-memory backend, like HAProxy 2.6."""

    def __init__(self, backend="web"):
        self.backend = backend
        self.servers = {}  # name -> dict(addr, status, scur)
        self.refuse_del = 0
        self.pid = 100
        super().__init__("zd-fake-", "admin.sock")

    def answer(self, line):
        words = line.split()
        be = self.backend
        if line == "show info":
            return f"Name: HAProxy\nPid: {self.pid}\n\n"
        if line == "show stat":
            rows = [STAT_HEADER, "fe,FRONTEND,,,0,0,,0,0,0,0,0,0,,,,,OPEN,"]
            rows += [f"{be},{n},0,0,{s['scur']},0,,0,0,0,0,0,,{s.get('econ', 0)},0,0,0,{s['status']},{s.get('weight', 1)},"
                     f"0,{s.get('5xx', 0)},{s.get('req', 0)},{s.get('rtime', '')}" for n, s in self.servers.items()]
            rows.append(f"{be},BACKEND,0,0,0,0,,0,0,0,0,0,,0,0,0,0,UP,1")
            return "\n".join(rows) + "\n\n"
        if line.startswith("show servers state"):
            out = ["1", "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
                   "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
                   "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port"]
            for i, (n, s) in enumerate(self.servers.items()):
                host, port = s["addr"].rsplit(":", 1)
                out.append(f"3 {be} {i + 1} {n} {host} 2 0 {s.get('weight', 1)} 1 1 6 3 2 6 0 0 0 - {port}")
            return "\n".join(out) + "\n\n"
        target = next((w for w in words if "/" in w), "")
        name = target.split("/", 1)[1] if "/" in target else ""
        if words[:2] == ["add", "server"]:
            if name in self.servers:
                return "Already exists a server with the same name in backend.\n"
            self.servers[name] = {"addr": words[3], "status": "MAINT", "scur": 0, "weight": _weight_of(words)}
            return "New server registered.\n"
        if name not in self.servers:
            return "No such server.\n"
        if line.startswith("set server") and words[-2] == "weight":
            self.servers[name]["weight"] = int(words[-1])
        elif line.startswith("set server") and words[-1] == "ready":
            self.servers[name]["status"] = "UP"
        elif line.startswith("set server") and words[-1] == "drain":
            self.servers[name]["status"] = "DRAIN"
        elif line.startswith("set server") and words[-1] == "maint":
            self.servers[name]["status"] = "MAINT"
        elif words[:2] == ["del", "server"]:
            if self.servers[name]["status"] != "MAINT":
                return "Only servers in maintenance mode can be deleted.\n"
            if self.refuse_del:
                self.refuse_del -= 1
                return "Server still has connections attached to it, cannot remove it.\n"
            del self.servers[name]
            return "Server deleted.\n"
        return "\n"

    def reload(self, servers_file_text):
        """What a reload does: a new worker whose backend holds exactly the servers of the file it parsed."""
        self.pid += 1
        self.servers = {}
        for line in servers_file_text.splitlines():
            words = line.split()
            if words[:1] == ["server"]:
                self.servers[words[1]] = {"addr": words[2], "status": "UP", "scur": 0, "weight": _weight_of(words)}


@pytest.fixture
def fake():
    server = FakeHaproxy()
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


def test_unknown_backend_and_missing_socket(fake, tmp_path):
    with pytest.raises(InvalidInput, match="no backend 'other'"):
        hx.HaproxyRuntime(fake.path, "other").check()
    with pytest.raises(PlatformUnreachable, match="cannot talk to HAProxy"):
        hx.HaproxyRuntime(str(tmp_path / "missing.sock"), "web").check()


def test_make_balancer_and_server_names():
    assert make_balancer(None, "w").kind == "none"
    assert make_balancer({"type": "haproxy", "socket": "/x.sock"}, "w").backend == "w"
    with pytest.raises(InvalidInput):
        make_balancer({"type": "traefik"}, "w")
    assert server_name("shop-r2-ab12cd") == "shop-r2-ab12cd"
    assert server_name("a b/c") == "a_b_c"


def test_nginx_render_and_parse_round_trip():
    text = ngx.render_upstream("shop", [("shop-r1-a", "127.0.0.1:3000"), ("shop-r1-b", "127.0.0.1:3001")], "max_fails=1")
    assert "upstream shop {" in text and "server 127.0.0.1:3000 max_fails=1;  # zerodown:shop-r1-a" in text
    assert ngx.parse_upstream(text) == [("shop-r1-a", "127.0.0.1:3000"), ("shop-r1-b", "127.0.0.1:3001")]
    empty = ngx.render_upstream("shop", [])
    assert "down;" in empty and ngx.parse_upstream(empty) == []


def run(argv):
    """What AnsibleModule.run_command does for the driver: (rc, stdout, stderr)."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    return proc.returncode, proc.stdout, proc.stderr


def _script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_nginx_driver_reloads_and_restores_on_rejected_config(tmp_path):
    log = tmp_path / "reloads"
    reload_cmd = _script(tmp_path, "reload", f"open({str(log)!r}, 'a').write('reload\\n')")
    upstream = tmp_path / "upstream.conf"
    lb = ngx.NginxUpstream(str(upstream), "shop", run, reload_command=reload_cmd, test_command="", drain_grace=0)
    lb.add("a", "127.0.0.1:1")
    lb.add("b", "127.0.0.1:2")
    assert set(lb.members()) == {"a", "b"}
    lb.drain("a")
    assert set(lb.members()) == {"b"} and lb.wait_drained("a", 5)
    assert log.read_text().count("reload") == 3
    good = upstream.read_text()
    failing = ngx.NginxUpstream(str(upstream), "shop", run, reload_command=reload_cmd,
                                test_command=_script(tmp_path, "test", "import sys; sys.exit('emerg: bad')"))
    with pytest.raises(RolloutFailed, match="bad"):
        failing.add("c", "127.0.0.1:3")
    assert upstream.read_text() == good  # a config nginx refused is not left behind
    with pytest.raises(InvalidInput):
        ngx.NginxUpstream("", "shop", run)


# -- ownership and convergence to the intent ------------------------------------------------------------
def test_scope_owns_this_workloads_members_on_this_engine_only():
    mine, other = engine_tag("ENGINE:A"), engine_tag("ENGINE:B")
    assert mine != other and len(mine) == 6
    scope = Scope("shop", mine, legacy={"shop-r1-0a0a0a"})
    assert scope.name("shop-r2-abcdef") == f"shop-r2-abcdef.{mine}"
    assert scope.owns(f"shop-r2-abcdef.{mine}")
    assert scope.owns("shop-r1-0a0a0a")                    # untagged name of one of this engine's containers
    assert not scope.owns(f"shop-r2-abcdef.{other}")       # the same workload on another host
    assert not scope.owns("shop-r2-bbbbbb")                # untagged, no container of ours by that name
    assert not scope.owns(f"shop-api-r1-abcdef.{mine}")    # another workload on this engine
    assert not scope.owns("static-1")                      # a server written by hand


def test_member_names_are_the_scope_name_then_the_untagged_one_and_need_a_scope(fake):
    lb = hx.HaproxyRuntime(fake.path, "web")
    with pytest.raises(RolloutFailed, match="internal error"):
        lb.member_names("app-r1-abcdef")
    lb.bind(Scope("app", "aaaaaa"), {}, drain_timeout=1, up_timeout=1)
    assert lb.member_names("app-r1-abcdef") == ["app-r1-abcdef.aaaaaa", "app-r1-abcdef"]


def test_admit_adds_the_tagged_member_and_refuses_a_container_without_address(fake):
    lb = hx.HaproxyRuntime(fake.path, "web")
    lb.check()
    lb.bind(Scope("app", "aaaaaa"), {}, drain_timeout=1, up_timeout=1)
    with pytest.raises(RolloutFailed, match="app-r1-abcdef has no address for the load balancer"):
        lb.admit("app-r1-abcdef", None)
    assert lb.intent == {} and not any(c.startswith("add server") for c in fake.commands)
    assert lb.admit("app-r1-abcdef", "127.0.0.1:32768") == ["app-r1-abcdef.aaaaaa"]
    assert lb.intent == {"app-r1-abcdef.aaaaaa": "127.0.0.1:32768"}


def test_the_null_driver_takes_every_step_and_holds_nothing():
    lb = make_balancer(None, "app")
    assert lb.kind == "none" and not lb.routes
    # unbound, without an address: the swap drives it as any other driver and nothing happens
    assert lb.member_names("app-r1-abcdef") == [] and lb.admit("app-r1-abcdef", None) == []
    lb.wait_up("app-r1-abcdef", 1)
    lb.drain("app-r1-abcdef")
    assert lb.wait_drained("app-r1-abcdef", 1)
    lb.remove("app-r1-abcdef")
    assert lb.members() == {} and lb.release([]) == [] and lb.divergence() == []
    assert lb.reconcile() == [] and lb.reconcile(settle=True) == []


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


def test_nginx_file_is_rendered_from_intent_keeping_other_hosts_members(tmp_path):
    upstream = tmp_path / "upstream.conf"
    upstream.write_text(ngx.render_upstream("shop", [("shop-r1-000001.bbbbbb", "10.0.0.2:80"),
                                                     ("shop-r1-000002.aaaaaa", "127.0.0.1:9")]))
    reloads = []
    lb = ngx.NginxUpstream(str(upstream), "shop", lambda argv: reloads.append(argv) or (0, "", ""), test_command="",
                           drain_grace=0)
    lb.bind(Scope("shop", "aaaaaa"), {"shop-r2-000003.aaaaaa": "127.0.0.1:3"}, drain_timeout=0, up_timeout=1)
    assert lb.divergence()
    fixes = lb.reconcile()
    assert ngx.parse_upstream(upstream.read_text()) == [("shop-r1-000001.bbbbbb", "10.0.0.2:80"),
                                                        ("shop-r2-000003.aaaaaa", "127.0.0.1:3")]
    assert len(reloads) == 1 and len(fixes) == 2, fixes
    assert lb.reconcile() == [] and len(reloads) == 1  # nothing differs: no rewrite, no reload


def test_nginx_empty_test_command_means_no_test():
    lb = make_balancer({"type": "nginx", "upstream_file": "/tmp/x.conf", "test_command": ""}, "shop", run)
    assert lb.test_command == ""
    default = make_balancer({"type": "nginx", "upstream_file": "/tmp/x.conf"}, "shop", run)
    assert default.test_command == "nginx -t"


def test_a_regular_file_as_haproxy_socket_is_named_as_such(tmp_path):
    path = tmp_path / "admin.sock"
    path.write_text("")
    lb = hx.HaproxyRuntime(str(path), "web")
    with pytest.raises(InvalidInput, match="is not a socket"):
        lb.check()


# HAProxy 2.6's master CLI "show proc" (the master, the current worker, one old worker, no program)
SHOW_PROC = """#<PID>          <type>          <reloads>       <uptime>        <version>
4140            master          3 [failed: 0]   0d00h01m05s     2.6.12-1+deb12u4
# workers
4188            worker          0               0d00h00m01s     2.6.12-1+deb12u4
# old workers
4163            worker          1               0d00h00m09s     2.6.12-1+deb12u4
# programs

"""


class FakeMaster(ScriptedSocket):
    """HAProxy's master CLI: ``show proc`` and ``@!<pid> show stat`` for old workers, one command per
    connection ending in ``;quit`` as the driver sends them."""

    def __init__(self, backend="web"):
        self.backend = backend
        self.old = {}  # pid -> {server name: status}
        super().__init__("zd-fake-master-", "master.sock")

    def answer(self, line):
        command = line[:-len(";quit")] if line.endswith(";quit") else line
        if command == "show proc":
            rows = ["#<PID>          <type>          <reloads>       <uptime>        <version>",
                    "1               master          1 [failed: 0]   0d00h00m05s     2.6.12", "# workers",
                    "100             worker          0               0d00h00m01s     2.6.12", "# old workers"]
            rows += [f"{pid}             worker          1               0d00h00m02s     2.6.12" for pid in self.old]
            return "\n".join(rows + ["# programs", "", ""])
        if command.startswith("@!") and command.endswith(" show stat"):
            pid = command[2:].split()[0]
            if pid not in self.old:
                return f"Can't find the target PID matching the prefix '@!{pid}'\n"
            rows = [STAT_HEADER] + [f"{self.backend},{n},0,0,0,0,,0,0,0,0,0,,0,0,0,0,{status},1"
                                    for n, status in self.old[pid].items()]
            return "\n".join(rows) + "\n\n"
        return "Unknown command.\n"


@pytest.fixture
def master():
    server = FakeMaster()
    yield server
    server.close()


def _with_master(fake, master, tmp_path, intent):
    lb = hx.HaproxyRuntime(fake.path, "web", servers_file=str(tmp_path / "servers.cfg"), master_socket=master.path)
    lb.bind(Scope("app", "aaaaaa"), intent, drain_timeout=1, up_timeout=1)
    return lb


def test_parse_proc_reads_workers_and_old_workers():
    assert cli.parse_proc(SHOW_PROC) == {"workers": ["4188"], "old workers": ["4163"]}
    assert cli.parse_proc("Unknown command.\n") == {}


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


def test_master_cli_dropped_during_a_reload_is_asked_again(fake, master):
    lb = hx.HaproxyRuntime(fake.path, "web", master_socket=master.path)
    master.old = {"7": {}}
    master.drop = 2  # the master re-executes itself: the connections it had accepted close unanswered
    assert lb.old_workers() == ["7"]
    assert master.drop == 0


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


def test_nginx_weights_are_written_and_zero_is_down(tmp_path):
    upstream = tmp_path / "up.conf"
    lb = ngx.NginxUpstream(str(upstream), "web", runner=run, reload_command="true", test_command="")
    lb.bind(Scope("app", "aaaaaa"), {}, drain_timeout=1, up_timeout=1)
    lb.add("app-r1-000001.aaaaaa", "127.0.0.1:1")
    lb.add("app-r2-000002.aaaaaa", "127.0.0.1:2")
    said = lb.set_weights({"app-r1-000001.aaaaaa": 0, "app-r2-000002.aaaaaa": 5})
    text = upstream.read_text()
    assert "server 127.0.0.1:1 down;  # zerodown:app-r1-000001.aaaaaa" in text
    assert "server 127.0.0.1:2 weight=5;  # zerodown:app-r2-000002.aaaaaa" in text
    assert "weight=0" not in text
    assert said == [f"nginx upstream web ({upstream}): set app-r1-000001.aaaaaa's weight to 0 (it was 1)",
                    f"nginx upstream web ({upstream}): set app-r2-000002.aaaaaa's weight to 5 (it was 1)"]
    assert {n: m.weight for n, m in lb.members().items()} == {"app-r1-000001.aaaaaa": 0, "app-r2-000002.aaaaaa": 5}
    assert lb.counters() is None
    assert lb.set_weights({"app-r2-000002.aaaaaa": 5}) == []
