"""The nginx load-balancer driver against a real nginx: a private master on a loopback port whose
configuration includes the upstream file the driver writes, reloaded by the driver's own commands.

Create, upgrade and rollback under a steady load through nginx; a broken image that must leave nginx's upstream
and the old replicas alone; steps judged from a sample of each member; a blue-green switch and switch back."""
from __future__ import annotations

import functools
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import typing as t

import pytest

from tests.support.analysis_oracle import assert_failure_names_its_thresholds
from tests.support.docker_harness import (IMAGE_BROKEN, IMAGE_FLAKY, IMAGE_V1, IMAGE_V2, WrkLoad, container_of, container_spec,
                                          free_port, module_args, run_playbook)
from tests.support.under_load import (SETTLING_SAMPLES, STEADY, assert_no_failure, running, start_recorder,
                                      upgrade_and_rollback, versions)
from tests.support.unavailable import skip_or_fail

pytestmark = pytest.mark.docker


def _nginx_binary() -> t.Optional[str]:
    return shutil.which("nginx") or (("/usr/sbin/nginx") if os.access("/usr/sbin/nginx", os.X_OK) else None)


class PrivateNginx:
    """An nginx master of its own: config, pid, logs and temp paths in a temp dir, one loopback port.

    The http block includes ``upstream_file`` and proxies everything to the upstream named after the
    workload, so what nginx routes to is exactly what the driver wrote.
    """

    def __init__(self, binary: str, upstream: str) -> None:
        self.binary = binary
        self.upstream = upstream
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="zd-nginx-"))
        self.port = free_port()
        self.upstream_file = str(self.dir / "upstream.conf")
        self.conf = str(self.dir / "nginx.conf")
        self.pid_file = self.dir / "nginx.pid"
        self.error_log = str(self.dir / "error.log")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.dir / "tmp" / sub).mkdir(parents=True)
        # a member marked down keeps the first include valid until the driver writes its own file
        pathlib.Path(self.upstream_file).write_text(f"upstream {upstream} {{\n    server 127.0.0.1:9 down;\n}}\n")
        user = "user root;\n" if os.geteuid() == 0 else ""
        pathlib.Path(self.conf).write_text(f"""{user}worker_processes 1;
pid {self.pid_file};
error_log {self.error_log} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    # a reload's old workers close idle keep-alive client connections, which wrk counts as read errors
    # (no request is lost, but a client reusing a connection at that instant must retry); one connection
    # per request keeps the load's error count about requests only
    keepalive_timeout 0;
    client_body_temp_path {self.dir}/tmp/body;
    proxy_temp_path {self.dir}/tmp/proxy;
    fastcgi_temp_path {self.dir}/tmp/fastcgi;
    uwsgi_temp_path {self.dir}/tmp/uwsgi;
    scgi_temp_path {self.dir}/tmp/scgi;
    include {self.upstream_file};
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://{upstream};
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout;
        }}
    }}
}}
""")
        self.start()

    def command(self, *args: str) -> list[str]:
        # -e: the compiled-in error log path is opened before the config is read
        return [self.binary, "-c", self.conf, "-p", str(self.dir), "-e", self.error_log, *args]

    def start(self) -> None:
        proc = subprocess.run(self.command(), capture_output=True, text=True, timeout=20, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"nginx did not start: {proc.stderr}{self._log_tail()}")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.pid_file.exists() and self.pid_file.read_text().strip():
                return
            time.sleep(0.1)
        raise RuntimeError(f"nginx wrote no pid file{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return "\n" + pathlib.Path(self.error_log).read_text()[-2000:]
        except OSError:
            return ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lb_options(self) -> dict[str, t.Any]:
        return {"type": "nginx", "upstream_file": self.upstream_file, "upstream": self.upstream,
                "reload_command": " ".join(self.command("-s", "reload")),
                "test_command": " ".join(self.command("-t", "-q")),
                "drain_grace": 1}

    def servers(self) -> dict[str, str]:
        """name -> host:port of the servers in the upstream file (the driver's trailing comments)."""
        out = {}
        for line in pathlib.Path(self.upstream_file).read_text().splitlines():
            words = line.split()
            if len(words) >= 4 and words[0] == "server" and words[2] == "#" and words[3].startswith("zerodown:"):
                out[container_of(words[3].split(":", 1)[1])] = words[1].rstrip(";")
        return out

    def master_pid(self) -> int:
        return int(self.pid_file.read_text().strip())

    def stop(self) -> None:
        if self.pid_file.exists():
            subprocess.run(self.command("-s", "quit"), capture_output=True, check=False, timeout=20)
            deadline = time.monotonic() + 10
            while self.pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.pid_file.exists():
                subprocess.run(self.command("-s", "stop"), capture_output=True, check=False, timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def nginx(workload_name):
    binary = _nginx_binary()
    if binary is None or shutil.which("wrk") is None:
        skip_or_fail("nginx or wrk is not installed; run `make services`")
    proxy = PrivateNginx(binary, workload_name)
    yield proxy
    proxy.stop()


_base = functools.partial(module_args, drain_timeout=3)


def _published(container) -> str:
    container.reload()
    binding = container.ports["8080/tcp"][0]
    return f"{binding['HostIp']}:{binding['HostPort']}"


def _expected_upstream(containers) -> dict[str, str]:
    return {c.name: _published(c) for c in containers(all=False)}


@pytest.mark.exclusive  # it must hold 100 requests/s: not beside another stream of tests (scripts/test.sh)
def test_upgrade_and_rollback_through_real_nginx(engine, nginx, workload_name, containers, tmp_path):
    create = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, nginx, image=IMAGE_V1, replicas=3,
                                                 docker_container=container_spec())},
    ])["localhost"]["r0"]
    assert create.get("changed") and not create.get("failed") and create["revision"] == 1, create
    v1_ids = [cid for rev, cid in running(containers) if rev == "1"]
    assert len(v1_ids) == 3
    assert nginx.servers() == _expected_upstream(containers)
    master = nginx.master_pid()

    run = upgrade_and_rollback(tmp_path, f"{nginx.url}/version",
                               WrkLoad(f"{nginx.url}/version", connections=8, delay_ms=40, max_seconds=90),
                               _base(workload_name, nginx, image=IMAGE_V2, batch_size=1),
                               _base(workload_name, nginx, batch_size=1), max_duration=120)
    assert not run.upgrade.get("failed"), run.upgrade
    assert (run.upgrade["previous_revision"], run.upgrade["revision"]) == (1, 2)
    assert not run.rollback.get("failed"), run.rollback
    assert (run.rollback["previous_revision"], run.rollback["revision"]) == (2, 1)

    assert_no_failure(run.load, run.timeline)
    assert run.load["requests_per_s"] >= 100, run.load["text"]
    assert versions(run.before) == {"1.0": len(run.before)}
    assert set(versions(run.upgrading)) == {"1.0", "2.0"}
    # a reload's old worker may finish a request or two after the playbook returned (under_load.SETTLING_SAMPLES)
    assert versions(run.upgraded) == {"2.0": len(run.upgraded)}
    assert set(versions(run.rolling_back)) == {"1.0", "2.0"}
    assert set(versions(run.rolled_back)) == {"1.0"}

    # reloads, never a restart: the same master served the whole run
    assert nginx.master_pid() == master
    assert sorted(cid for rev, cid in running(containers) if rev == "1") == sorted(v1_ids)
    assert [rev for rev, _cid in running(containers)] == ["1"] * 3
    upstream = nginx.servers()
    assert upstream == _expected_upstream(containers) and len(upstream) == 3
    assert subprocess.run(nginx.command("-t", "-q"), capture_output=True, check=False).returncode == 0


def test_broken_image_leaves_nginx_and_old_replicas_alone(engine, nginx, workload_name, containers, tmp_path):
    create = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, nginx, image=IMAGE_V1, replicas=3,
                                                 docker_container=container_spec())}])["localhost"]["r0"]
    assert not create.get("failed"), create
    before_ids = running(containers)
    before_file = pathlib.Path(nginx.upstream_file).read_text()
    assert len(nginx.servers()) == 3
    load = WrkLoad(f"{nginx.url}/version", connections=8, delay_ms=40, max_seconds=60)
    recorder = start_recorder(f"{nginx.url}/version", max_duration=120)
    try:
        time.sleep(1.0)
        result = run_playbook(tmp_path, [
            {"zerodown.rollout.image_upgrade": _base(workload_name, nginx, image=IMAGE_BROKEN, batch_size=1,
                                                     health_timeout=8)}])["localhost"]["r0"]
        time.sleep(1.0)
    finally:
        timeline = recorder.stop()
        load = load.stop()
    assert result.get("failed") and not result.get("changed"), result
    assert "unhealthy" in result["msg"] and IMAGE_BROKEN in result["msg"], result["msg"]
    assert_no_failure(load, timeline)
    assert load["requests"] > 0 and set(timeline["summary"]["versions"]) == {"1.0"}
    assert running(containers) == before_ids
    assert [c for c in containers() if c.labels["zerodown.image"] == IMAGE_BROKEN] == []
    assert pathlib.Path(nginx.upstream_file).read_text() == before_file


@pytest.mark.parametrize("image, verdict", [(IMAGE_FLAKY, "fail"), (IMAGE_V2, "pass")])
def test_steps_on_nginx_are_judged_from_a_sample_of_each_member(
        engine, nginx, workload_name, containers, tmp_path, image, verdict):
    """nginx keeps no per-server counters: analysis.sample samples each member during the step. The flaky release
    (500 on a fifth of /cgi-bin/version) fails its first step and the old revision serves everything again; the
    good one passes and finishes. The users' requests through nginx see no failure but the flaky release's own
    answers while it had its share."""
    create = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, nginx, image=IMAGE_V1, replicas=3,
                                                 docker_container=container_spec())}])["localhost"]["r0"]
    assert not create.get("failed"), create
    v1 = sorted(cid for rev, cid in running(containers) if rev == "1")
    recorder = start_recorder(f"{nginx.url}/cgi-bin/version", max_duration=120)
    try:
        result = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": _base(
            workload_name, nginx, image=image, strategy="steps", steps=[{"weight": 30, "duration": 6}],
            analysis={"max_error_rate": 0.05, "min_requests": 20,
                      "sample": {"path": "/cgi-bin/version", "requests": 10}})}])["localhost"]["r0"]
        time.sleep(1.0)
    finally:
        timeline = recorder.stop()
    step = result["steps"][0]
    assert step["analysis"]["verdict"] == verdict, step
    # 10 requests to each of the 3 new members at every read: the first read after the start has 30
    assert step["analysis"]["new"]["requests"] >= 20, step
    summary = timeline["summary"]
    if verdict == "fail":
        assert result.get("failed") and result["revision"] == 1, result
        assert_failure_names_its_thresholds(result["msg"], step["analysis"], max_error_rate=0.05, min_requests=20)
        assert step["analysis"]["new"]["responses_5xx"] > 0 and step["analysis"]["baseline"]["errors"] == 0, step
        assert sorted(cid for rev, cid in running(containers) if rev == "1") == v1
        assert not [c for c in containers() if c.labels["zerodown.revision"] != "1"]
        assert summary["errors"] == 0 or set(summary["error_kinds"]) == {"status"}, summary["error_kinds"]
    else:
        assert not result.get("failed") and result["revision"] == 2 and result["partial"] is False, result
        assert [rev for rev, _cid in running(containers)] == ["2"] * 3
        assert summary["errors"] == 0, (summary["error_kinds"], summary["error_examples"])
    assert nginx.servers() == _expected_upstream(containers) and len(nginx.servers()) == 3


def _upstream_lines(nginx) -> dict[str, str]:
    """container name -> how the upstream file serves it: ``down`` (weight 0) or ``up``."""
    out = {}
    for line in pathlib.Path(nginx.upstream_file).read_text().splitlines():
        if "# zerodown:" in line and "zerodown:placeholder" not in line:
            body, name = line.split("# zerodown:", 1)
            out[container_of(name.strip())] = "down" if " down" in body else "up"
    return out


def test_blue_green_switch_and_switch_back_through_real_nginx(engine, nginx, workload_name, containers, tmp_path):
    """strategy=blue_green on nginx: the switch is two upstream writes and reloads (new members up, then the old
    ones ``down``), the old revision stands by still running and takes no request, and a rollback inside the window
    switches back to those same containers, none started. Through nginx, every request is answered."""
    create = run_playbook(tmp_path, [
        {"zerodown.rollout.image_upgrade": _base(workload_name, nginx, image=IMAGE_V1, replicas=3,
                                                 docker_container=container_spec())}])["localhost"]["r0"]
    assert not create.get("failed"), create
    v1 = {c.name: c.attrs["State"]["StartedAt"] for c in containers(all=False)}
    master = nginx.master_pid()
    upgrade = {"zerodown.rollout.image_upgrade": _base(workload_name, nginx, image=IMAGE_V2, strategy="blue_green",
                                                       standby_seconds=600)}
    recorder = start_recorder(f"{nginx.url}/version", max_duration=180)
    try:
        time.sleep(STEADY)
        switched = run_playbook(tmp_path, [upgrade])["localhost"]["r0"]
        switched_at = len(recorder.snapshot())
        standing = _upstream_lines(nginx)
        again = run_playbook(tmp_path, [upgrade])["localhost"]["r0"]  # traffic goes on: the standby gets none of it
        rollback_at = len(recorder.snapshot())
        rolled = run_playbook(tmp_path, [{"zerodown.rollout.rollback": _base(workload_name, nginx)}])["localhost"]["r0"]
        rolled_at = len(recorder.snapshot())
        time.sleep(STEADY)
    finally:
        timeline = recorder.stop()
        for marker in engine.containers.list(all=True, filters={"name": f"zerodown-standby-{workload_name}"}):
            marker.remove(force=True)
    samples = recorder.snapshot()  # in the order they were answered, as the marks count them

    assert not switched.get("failed") and switched["changed"], switched
    assert (switched["previous_revision"], switched["revision"]) == (1, 2), switched
    assert switched["standby"]["revision"] == 1, switched.get("standby")
    # the standby: revision 1's members stay in the upstream, marked down; revision 2's serve
    by_revision = {c.name: c.labels["zerodown.revision"] for c in containers()}
    assert sorted(standing) == sorted(n for n, rev in by_revision.items() if rev in ("1", "2")), standing
    assert all(standing[n] == ("down" if by_revision[n] == "1" else "up") for n in standing), standing
    assert again["changed"] is False and again["standby"]["revision"] == 1, again
    # after the switch (a request sent just before it returned, or finished by a reload's old worker, aside) only
    # revision 2 answers; after the switch back only revision 1
    assert versions(samples[:5]) == {"1.0": 5}
    assert versions(samples[switched_at + SETTLING_SAMPLES:rollback_at]) == {
        "2.0": len(samples[switched_at + SETTLING_SAMPLES:rollback_at])}
    assert versions(samples[rolled_at + SETTLING_SAMPLES:]) == {"1.0": len(samples[rolled_at + SETTLING_SAMPLES:])}
    assert len(samples) - rolled_at - SETTLING_SAMPLES >= 20 and rollback_at - switched_at - SETTLING_SAMPLES >= 20

    assert not rolled.get("failed") and rolled["changed"], rolled
    assert (rolled["previous_revision"], rolled["revision"]) == (2, 1), rolled
    assert "no container starts" in rolled["msg"], rolled["msg"]
    # the same revision 1 containers serve again, started by nobody; revision 2 stopped and out of the upstream
    assert {c.name: c.attrs["State"]["StartedAt"] for c in containers(all=False)} == v1
    assert _upstream_lines(nginx) == {name: "up" for name in v1}
    assert nginx.master_pid() == master  # reloads, never a restart
    summary = timeline["summary"]
    assert summary["errors"] == 0, (summary["error_kinds"], summary["error_examples"])
