"""An HAProxy reload and a dockerd restart in the middle of Docker upgrades.

Both run against a dockerd of the test's own (restarting the shared engine would disturb other tests) with
an HAProxy of the test's own, under a steady load on the HAProxy front end (loopback only).

Each test sets up its own workload (4 replicas of revision 1).

* HAProxy reloaded at 4 random moments of an upgrade and of a rollback (master-worker SIGUSR2; the backend
  comes back from the servers file the driver renders from its intent, seeded and printed): the run
  completes, the load sees no failed request, and the members are exactly the running containers, in the
  running HAProxy and in the servers file.
* dockerd restarted mid-swap (a default daemon stops its containers; unless-stopped brings them back): the
  run either completes or fails with a message naming the Docker engine and no traceback; re-running it
  converges with no orphan container or LB entry.
"""
from __future__ import annotations

import os
import random
import subprocess
import threading
import time

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
from tests.support.docker_harness import IMAGE_V1, IMAGE_V2, container_spec
from tests.support.fault_harness import (PlaybookRun, backend_servers, check_converged, restartable_dockerd,
                                         wait_until, write_playbook)
from tests.support.unavailable import skip_or_fail

pytestmark = [pytest.mark.docker, pytest.mark.slow]
REPLICAS = 4


@pytest.fixture
def own_dockerd(engine):
    try:
        daemon = restartable_dockerd([IMAGE_V1, IMAGE_V2])
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        skip_or_fail(f"cannot start a dockerd of the test's own ({exc}); it needs root and the ip tool")
    yield daemon
    daemon.stop()


def _task(name, haproxy, host, image, **extra):
    args = {"platform": "docker", "name": name, "image": image, "docker_host": host,
            "load_balancer": haproxy.lb_options(), "batch_size": 1, "health_timeout": 30, "drain_timeout": 3,
            "stop_timeout": 2}
    args.update(extra)
    return {"zerodown.rollout.image_upgrade": args}


def _new_members(haproxy, revision: int) -> int:
    return sum(1 for n in backend_servers(haproxy.socket, haproxy.backend) if f"-r{revision}-" in n)


@pytest.fixture
def workload(own_dockerd, haproxy, workload_name, tmp_path):
    """4 replicas of revision 1 on the test's own engine; yields a docker client of that engine."""
    import docker

    client = docker.DockerClient(base_url=own_dockerd.host, timeout=60)
    rc, out, result = PlaybookRun(write_playbook(tmp_path, _task(
        workload_name, haproxy, own_dockerd.host, IMAGE_V1, replicas=REPLICAS,
        docker_container=container_spec(publish_address=own_dockerd.publish_address)))).finish()
    assert rc == 0 and result and not result.get("failed"), out[-3000:]
    yield client
    client.close()


class RandomReloads:
    """Reloads HAProxy ``count`` times at random moments (0.3-3 s apart, from ``seed``) while a run goes on."""

    def __init__(self, haproxy, seed: int, count: int = 4) -> None:
        self.haproxy, self.rng, self.count = haproxy, random.Random(seed), count
        self.times: list[float] = []
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.started = time.monotonic()

    def __enter__(self) -> "RandomReloads":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        # each pause starts once the previous reload is over (its new worker answers, the old ones have exited):
        # a reload signalled while old workers are still leaving can kill one of them in HAProxy 2.6, with the
        # connections it still holds (bench/stress_haproxy_reloads.py --overlap)
        while len(self.times) < self.count and not self._stop.wait(self.rng.uniform(0.3, 3.0)):
            before = self.haproxy.worker()
            self.haproxy.reload(wait=False)
            self.times.append(round(time.monotonic() - self.started, 2))
            try:
                self.haproxy.wait_reloaded(before)
            except RuntimeError as exc:
                self.error = str(exc)
                return


@pytest.mark.exclusive  # it must hold 150 requests/s: not beside another stream of tests (scripts/test.sh)
@pytest.mark.parametrize("operation", ["upgrade", "rollback"])
def test_haproxy_reloads_at_random_moments_lose_no_request(own_dockerd, workload, haproxy, workload_name, tmp_path,
                                                           operation):
    seed = int(os.environ.get("ZD_RELOAD_SEED") or random.SystemRandom().randrange(1 << 30))
    print(f"reload seed {seed} (ZD_RELOAD_SEED={seed} replays it)")
    image = IMAGE_V2
    if operation == "rollback":
        rc, out, result = PlaybookRun(write_playbook(tmp_path, _task(workload_name, haproxy, own_dockerd.host,
                                                                     IMAGE_V2))).finish()
        assert rc == 0 and result and not result.get("failed"), out[-3000:]
        image = IMAGE_V1
    task = _task(workload_name, haproxy, own_dockerd.host, IMAGE_V2)
    if operation == "rollback":
        args = task.pop("zerodown.rollout.image_upgrade")
        args.pop("image")
        task = {"zerodown.rollout.rollback": args}
    recorder = TrafficRecorder(SamplerConfig(url=f"{haproxy.url}/version", concurrency=4, timeout=5), rate=200,
                               max_duration=300).start()
    try:
        time.sleep(0.5)
        with RandomReloads(haproxy, seed) as reloads:
            rc, out, result = PlaybookRun(write_playbook(tmp_path, task)).finish()
        time.sleep(1.5)  # the last reload's worker takes over
    finally:
        timeline = recorder.stop()
    print(f"{operation}: reloads at {reloads.times} s")
    assert len(reloads.times) >= 2 and not reloads.error, (reloads.times, reloads.error)
    assert rc == 0 and result and not result.get("failed"), out[-3000:]
    assert result["revision"] == (2 if operation == "upgrade" else 1), result
    summary = timeline["summary"]
    assert summary["errors"] == 0, (seed, summary["error_kinds"], summary["error_examples"],
                                    haproxy.failed_requests()[-20:])
    assert summary["requests_per_s"] >= 150, summary
    check_converged(workload, haproxy, workload_name, image, REPLICAS)


def test_dockerd_restart_mid_upgrade_fails_cleanly_then_converges(own_dockerd, workload, haproxy, workload_name,
                                                                  tmp_path):
    argv = write_playbook(tmp_path, _task(workload_name, haproxy, own_dockerd.host, IMAGE_V2))
    run = PlaybookRun(argv)
    wait_until(lambda: _new_members(haproxy, 2) >= 1, 60, "the first revision-2 server in HAProxy")
    down_s = own_dockerd.restart()
    rc, out, result = run.finish()
    assert result is not None, out[-3000:]
    assert "Traceback" not in out and "Traceback" not in str(result), out[-3000:]
    if result.get("failed"):
        msg = result["msg"]
        # names the engine and what to do, not a raw transport exception
        assert "Docker engine" in msg and own_dockerd.host in msg and "re-run" in msg, (msg, result.get("exception"))
        assert not msg.startswith("Task failed: Module failed: ("), msg
    rc, out, again = PlaybookRun(argv).finish()
    assert rc == 0 and again and not again.get("failed"), (result, out[-3000:])
    revision = check_converged(workload, haproxy, workload_name, IMAGE_V2, REPLICAS)
    assert revision >= 2, (revision, result, again)
    print(f"dockerd down {down_s:.1f}s; first run: {result.get('msg')}; re-run: {again.get('msg')}")
