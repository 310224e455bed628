"""tools/traffic_watch.py: background start/stop across separate commands, SIGTERM, JSON + SVG timeline."""
from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time
import xml.etree.ElementTree as ET

from tests.support.traffic_servers import Reply, ScriptedServer

TOOL = pathlib.Path(__file__).resolve().parents[2] / "tools" / "traffic_watch.py"


def watch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


class Upgrade:
    """A service that moves from 1.0 to 2.0 when told, with a burst of 503s in between."""

    def __init__(self) -> None:
        self.phase = "old"
        self.lock = threading.Lock()
        self.errors_left = 5

    def __call__(self, i: int, path: str) -> Reply:
        with self.lock:
            if self.phase == "old":
                return Reply(version="1.0")
            if self.errors_left > 0:
                self.errors_left -= 1
                return Reply(status=503, where="none")
            return Reply(version="2.0", delay=0.03)


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_start_stop_across_commands(tmp_path):
    upgrade = Upgrade()
    pidfile = tmp_path / "watch.pid"
    out = tmp_path / "timeline.json"
    headers = tmp_path / "headers.json"
    headers.write_text(json.dumps({"Authorization": "Bearer watch-secret"}))
    with ScriptedServer(upgrade) as server:
        started = watch("start", "--url", server.url("/version"), "--out", str(out), "--pidfile", str(pidfile),
                        "--rate", "40", "--concurrency", "2", "--headers-file", str(headers),
                        "--expect-version", "2.0", "--min-version-fraction", "0.5")
        assert started.returncode == 0, started.stderr
        info = json.loads(started.stdout)
        pid = int(pidfile.read_text())
        assert info["pid"] == pid
        wait_for(lambda: server.count >= 40)
        with upgrade.lock:
            upgrade.phase = "new"
        before_switch = server.count
        wait_for(lambda: server.count >= before_switch + 60)
        stopped = watch("stop", "--pidfile", str(pidfile))
        served = server.count
        assert server.seen_headers[0]["Authorization"] == "Bearer watch-secret"
    assert stopped.returncode == 0, stopped.stderr
    assert not pidfile.exists()
    summary = json.loads(stopped.stdout)
    assert summary["total"] == served
    assert summary["status_counts"]["503"] == 5
    assert summary["error_kinds"] == {"status": 5}
    assert summary["versions"]["2.0"] == served - summary["versions"]["1.0"] - 5
    assert summary["versions"]["1.0"] >= 40
    assert summary["verdict"] == "fail"  # the 503 burst breaks the zero-error default
    assert summary["svg"] == str(out.with_suffix(".svg"))
    assert "watch-secret" not in stopped.stdout + (tmp_path / "timeline.log").read_text()

    timeline = json.loads(out.read_text())
    seconds = timeline["seconds"]
    assert sum(b["requests"] for b in seconds) == served
    assert sum(b["errors"] for b in seconds) == 5
    # the picture: before the switch only 1.0, after it only 2.0
    first_new = min(b["t"] for b in seconds if b["versions"].get("2.0"))
    last_old = max(b["t"] for b in seconds if b["versions"].get("1.0"))
    assert last_old <= first_new
    assert 30 <= timeline["summary"]["requests_per_s"] <= 42  # --rate 40 is kept

    root = ET.fromstring(out.with_suffix(".svg").read_text())
    ns = "{http://www.w3.org/2000/svg}"
    assert "#d62728" in [r.get("fill") for r in root.iter(f"{ns}rect")]
    assert root.findall(f"{ns}polyline")

    rendered = watch("render", str(out), "--svg", str(tmp_path / "again.svg"))
    assert rendered.returncode == 0
    assert (tmp_path / "again.svg").read_text() == out.with_suffix(".svg").read_text()


def test_run_stops_cleanly_on_sigterm(tmp_path):
    out = tmp_path / "t.json"
    with ScriptedServer(lambda i, p: Reply(version="1.0")) as server:
        proc = subprocess.Popen([sys.executable, str(TOOL), "run", "--url", server.url(), "--out", str(out),
                                 "--rate", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: server.count >= 10)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert json.loads(stdout)["total"] == json.loads(out.read_text())["summary"]["total"] >= 10
    assert out.with_suffix(".svg").is_file()


def test_run_with_duration_stops_by_itself(tmp_path):
    out = tmp_path / "t.json"
    with ScriptedServer(lambda i, p: Reply(version="1.0")) as server:
        result = watch("run", "--url", server.url(), "--out", str(out), "--duration", "1", "--rate", "20")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert 15 <= summary["total"] <= 22 and summary["verdict"] == "pass"


def test_bad_options_and_misuse(tmp_path):
    pidfile = tmp_path / "p"
    bad = watch("start", "--url", "ftp://127.0.0.1/", "--out", str(tmp_path / "x.json"), "--pidfile", str(pidfile))
    assert bad.returncode == 2 and "not http or https" in bad.stderr
    assert not pidfile.exists()
    bad = watch("start", "--url", "http://127.0.0.1:1/", "--out", str(tmp_path / "x.json"),
                "--pidfile", str(pidfile), "--concurrency", "0")
    assert bad.returncode == 2 and "concurrency" in bad.stderr
    bad = watch("start", "--url", "http://127.0.0.1:1/", "--out", str(tmp_path / "x.json"),
                "--pidfile", str(pidfile), "--rate", "0")
    assert bad.returncode == 2 and "rate must be > 0" in bad.stderr
    assert not pidfile.exists()
    missing = watch("stop", "--pidfile", str(pidfile))
    assert missing.returncode == 2 and "no recorder pid" in missing.stderr

    with ScriptedServer(lambda i, p: Reply(version="1.0")) as server:
        args = ["--url", server.url(), "--out", str(tmp_path / "y.json"), "--pidfile", str(pidfile), "--rate", "5"]
        assert watch("start", *args).returncode == 0
        try:
            again = watch("start", *args)
            assert again.returncode == 2 and "already runs" in again.stderr
        finally:
            assert watch("stop", "--pidfile", str(pidfile)).returncode == 0
    assert not os.path.exists(pidfile)


def test_start_and_stop_from_playbook_tasks(tmp_path):
    """The demo's way: start in one task, other tasks run, stop in a later task and gate on the summary."""
    playbook = tmp_path / "watch.yml"
    with ScriptedServer(lambda i, p: Reply(version="2.0")) as server:
        playbook.write_text(textwrap.dedent(f"""\
            - hosts: localhost
              gather_facts: false
              tasks:
                - name: Start recording
                  ansible.builtin.command:
                    argv: ["{sys.executable}", "{TOOL}", start, --url, "{server.url()}",
                           --out, "{tmp_path}/timeline.json", --pidfile, "{tmp_path}/watch.pid", --rate, "30"]
                  changed_when: true
                - name: Something else happens meanwhile
                  ansible.builtin.pause:
                    seconds: 1
                - name: Stop recording
                  ansible.builtin.command:
                    argv: ["{sys.executable}", "{TOOL}", stop, --pidfile, "{tmp_path}/watch.pid"]
                  register: watch
                  changed_when: true
                - name: Gate on the whole recording
                  ansible.builtin.assert:
                    that:
                      - (watch.stdout | from_json).errors == 0
                      - (watch.stdout | from_json).versions['2.0'] >= 20
                      - (watch.stdout | from_json).verdict == 'pass'
            """))
        binary = pathlib.Path(sys.executable).parent / "ansible-playbook"
        proc = subprocess.run([str(binary), "-i", "localhost,", "-c", "local", str(playbook),
                               "-e", f"ansible_python_interpreter={sys.executable}"],
                              capture_output=True, text=True, timeout=120, check=False,
                              env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false"))
        served = server.count
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert json.loads((tmp_path / "timeline.json").read_text())["summary"]["total"] == served
    assert (tmp_path / "timeline.svg").is_file() and not (tmp_path / "watch.pid").exists()
