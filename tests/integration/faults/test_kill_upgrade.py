"""ansible-playbook killed (SIGKILL to it and every process it started) at seeded random points of a Docker upgrade.

After every kill the same playbook is run again and must converge to the requested image: one revision,
all replicas UP in HAProxy and in the persisted backend file, no half-made or orphan containers, no extra
LB members. Throughout, HAProxy's ``show stat`` is sampled: never fewer than ``replicas`` servers may take
new requests (the swap is start-first), and the clients see no failed request.

The seed is ``ZD_FAULT_SEED`` (default below), the number of kills ``ZD_FAULT_KILLS`` (5; each kill and its re-run
took about 60 s of a busy ``make test``, so ``make test`` keeps five: ``ZD_FAULT_KILLS=20`` for a longer search); the
kill points are printed and put in every assertion message.
"""
from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
from tests.support.docker_harness import IMAGE_SLOW_V1, IMAGE_SLOW_V2, IMAGE_V1, IMAGE_V2, container_spec, run_playbook
from tests.support.fault_harness import (
    PlaybookRun,
    ServingSampler,
    backend_servers,
    check_converged,
    workload_state,
    write_playbook,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SEED = int(os.environ.get("ZD_FAULT_SEED", "20240611"))
KILLS = int(os.environ.get("ZD_FAULT_KILLS", "5"))
REPLICAS = 4
RETAIN = 2  # the module's default


def _upgrade_task(name, haproxy, image):
    return {"zerodown.rollout.image_upgrade": {
        "platform": "docker", "name": name, "image": image, "load_balancer": haproxy.lb_options(),
        "batch_size": 2, "health_timeout": 20, "drain_timeout": 3, "stop_timeout": 2}}


def test_sigkill_at_random_points_then_rerun_converges(engine, haproxy, workload_name, tmp_path):
    rng = random.Random(SEED)
    created = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": dict(
        _upgrade_task(workload_name, haproxy, IMAGE_V1)["zerodown.rollout.image_upgrade"],
        replicas=REPLICAS, docker_container=container_spec())}])["localhost"]["r0"]
    assert not created.get("failed"), created
    check_converged(engine, haproxy, workload_name, IMAGE_V1, REPLICAS)

    log: list[dict] = []
    recorder = TrafficRecorder(SamplerConfig(url=f"{haproxy.url}/version", concurrency=4, timeout=5), rate=100,
                               max_duration=600).start()
    try:
        with ServingSampler(haproxy.socket, haproxy.backend) as sampler:
            # an uninterrupted run gives the span the kill points are drawn from
            reference = PlaybookRun(write_playbook(tmp_path, _upgrade_task(workload_name, haproxy, IMAGE_V2)))
            rc, out, result = reference.finish()
            span = reference.elapsed
            assert rc == 0 and result and not result.get("failed"), out[-3000:]
            check_converged(engine, haproxy, workload_name, IMAGE_V2, REPLICAS)
            current = IMAGE_V2
            attempts = 0
            while sum(1 for entry in log if entry["killed"]) < KILLS:
                attempts += 1
                assert attempts <= KILLS + 5, f"seed {SEED}: runs kept finishing before their kill point: {log}"
                target = IMAGE_V1 if current == IMAGE_V2 else IMAGE_V2
                argv = write_playbook(tmp_path, _upgrade_task(workload_name, haproxy, target))
                at = round(rng.uniform(0.5, span), 2)
                sampler.phase = f"run {len(log)} (to {target}, killed at {at}s)"
                run = PlaybookRun(argv)
                while run.elapsed < at and run.proc.poll() is None:
                    time.sleep(0.02)
                killed = run.proc.poll() is None
                if not killed:
                    # a run to a retained revision restarts its containers instead of creating them, and is
                    # shorter than the reference (the first upgrade, which creates them): later kill points are
                    # drawn from the length of the runs that are actually made
                    span = max(1.0, run.elapsed)
                run.kill()
                entry = {"target": target, "kill_at_s": at, "killed": killed,
                         "state_after_kill": {k: sorted((c["revision"], n) for n, c in v.items())
                                              for k, v in workload_state(engine, workload_name).items()}}
                log.append(entry)
                sampler.phase = f"re-run {len(log) - 1} (to {target})"
                rc, out, result = PlaybookRun(argv).finish()
                context = f"seed {SEED}, span {span:.1f}s, runs {log}"
                assert rc == 0 and result and not result.get("failed"), f"{context}\nre-run:\n{out[-3000:]}"
                entry["rerun"] = result.get("msg")
                # a kill between the last swap and the pruning leaves one revision more than `retain`: the
                # re-run, with nothing else to change, prunes it
                entry["revision"] = check_converged(engine, haproxy, workload_name, target, REPLICAS,
                                                    retain=RETAIN)
                current = target
    finally:
        timeline = recorder.stop()
    print(f"seed {SEED}, reference span {span:.1f}s, kill points: "
          + ", ".join(f"{e['kill_at_s']}s{'' if e['killed'] else ' (finished first)'}" for e in log))
    worst, statuses, phase = sampler.minimum()
    assert len(sampler.samples) > 100, sampler.errors
    assert worst >= REPLICAS, f"seed {SEED}: only {worst} servers served at one moment, during {phase}: {statuses}; runs {log}"
    summary = timeline["summary"]
    assert summary["errors"] == 0, (SEED, summary["error_kinds"], summary["error_examples"], log)


STOPPING_KILLS = 3
SLOW_STOP_TIMEOUT = 6  # the slow app ignores SIGTERM: each stop lasts this long, then SIGKILL


class StopSignals:
    """The engine's ``kill`` events (the SIGTERM a ``docker stop`` begins with) for one workload, as they come."""

    def __init__(self, name: str) -> None:
        self.proc = subprocess.Popen(["docker", "events", "--filter", "type=container", "--filter", "event=kill",
                                      "--filter", f"label=zerodown.workload={name}", "--format", "{{json .}}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            if event["Actor"]["Attributes"].get("signal") == "15":
                self.seen.append(event["Actor"]["Attributes"]["name"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def test_sigkill_while_old_containers_are_stopping_then_rerun_converges(engine, haproxy, workload_name, tmp_path):
    """Kill points inside the background stops: the playbook is killed right after the engine reports the SIGTERM
    of the n-th old container (the app ignores it, so that stop is still in flight for SLOW_STOP_TIMEOUT s)."""
    rng = random.Random(SEED + 1)

    def task(image):
        return {"zerodown.rollout.image_upgrade": dict(
            _upgrade_task(workload_name, haproxy, image)["zerodown.rollout.image_upgrade"],
            stop_timeout=SLOW_STOP_TIMEOUT, health_timeout=30)}
    created = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": dict(
        task(IMAGE_SLOW_V1)["zerodown.rollout.image_upgrade"], replicas=REPLICAS,
        docker_container=container_spec())}], timeout=300)["localhost"]["r0"]
    assert not created.get("failed"), created
    check_converged(engine, haproxy, workload_name, IMAGE_SLOW_V1, REPLICAS)

    log: list[dict] = []
    signals = StopSignals(workload_name)
    recorder = TrafficRecorder(SamplerConfig(url=f"{haproxy.url}/version", concurrency=4, timeout=5), rate=50,
                               max_duration=900).start()
    try:
        with ServingSampler(haproxy.socket, haproxy.backend) as sampler:
            current = IMAGE_SLOW_V1
            for index in range(STOPPING_KILLS):
                target = IMAGE_SLOW_V2 if current == IMAGE_SLOW_V1 else IMAGE_SLOW_V1
                nth = rng.randint(1, REPLICAS)  # the stop of which old container (batch_size 2: 2 per batch)
                argv = write_playbook(tmp_path, task(target))
                sampler.phase = f"run {index} (to {target}, killed at stop {nth})"
                seen = len(signals.seen)
                run = PlaybookRun(argv)
                while len(signals.seen) < seen + nth and run.proc.poll() is None and run.elapsed < 240:
                    time.sleep(0.02)
                killed = run.proc.poll() is None and len(signals.seen) >= seen + nth
                stopping = signals.seen[seen + nth - 1] if killed else None
                run.kill()
                state = workload_state(engine, workload_name)
                entry = {"target": target, "kill_at_stop": nth, "killed": killed, "stopping": stopping,
                         "state_after_kill": {k: sorted((c["revision"], n) for n, c in v.items())
                                              for k, v in state.items()}}
                log.append(entry)
                context = f"seed {SEED + 1}, runs {log}"
                assert killed, f"the run ended before the stop it was to be killed in: {context}\n{run.output[-3000:]}"
                # the kill point is inside a stop: that old container still runs, out of the load balancer
                assert stopping in state["running"], context
                assert stopping not in backend_servers(haproxy.socket, haproxy.backend), context
                sampler.phase = f"re-run {index} (to {target})"
                rc, out, result = PlaybookRun(argv).finish(timeout=300)
                assert rc == 0 and result and not result.get("failed"), f"{context}\nre-run:\n{out[-3000:]}"
                entry["rerun"] = result.get("msg")
                entry["revision"] = check_converged(engine, haproxy, workload_name, target, REPLICAS, retain=RETAIN)
                current = target
    finally:
        timeline = recorder.stop()
        signals.close()
    print(f"seed {SEED + 1}, kills: {log}")
    worst, statuses, phase = sampler.minimum()
    assert worst >= REPLICAS, f"only {worst} servers served at one moment, during {phase}: {statuses}; runs {log}"
    summary = timeline["summary"]
    assert summary["errors"] == 0, (SEED + 1, summary["error_kinds"], summary["error_examples"], log)
