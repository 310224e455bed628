"""Fakes of the load balancers' control channels for the balancer unit tests: HAProxy's runtime API and master
CLI on unix sockets that answer from state held in memory, and ``run``, the command runner the nginx driver is
given."""
from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading

STAT_HEADER = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,"
               "weight,hrsp_4xx,hrsp_5xx,req_tot,rtime,check_status")


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
        self.dead = set()  # addresses where nothing listens: a server there fails its checks (DOWN, L4CON)
        super().__init__("zd-fake-", "admin.sock")

    def answer(self, line):
        words = line.split()
        be = self.backend
        if line == "show info":
            return f"Name: HAProxy\nPid: {self.pid}\n\n"
        if line == "show stat":
            rows = [STAT_HEADER, "fe,FRONTEND,,,0,0,,0,0,0,0,0,0,,,,,OPEN,"]
            rows += [f"{be},{n},0,0,{s['scur']},0,,0,0,0,0,0,,{s.get('econ', 0)},0,0,0,{s['status']},{s.get('weight', 1)},"
                     f"0,{s.get('5xx', 0)},{s.get('req', 0)},{s.get('rtime', '')},{s.get('check', '')}"
                     for n, s in self.servers.items()]
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
            dead = self.servers[name]["addr"] in self.dead
            self.servers[name].update(status="DOWN" if dead else "UP", check="L4CON" if dead else "")
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


def run(argv):
    """What AnsibleModule.run_command does for the driver: (rc, stdout, stderr)."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    return proc.returncode, proc.stdout, proc.stderr
