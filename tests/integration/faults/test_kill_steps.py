"""ansible-playbook killed (SIGKILL to it and everything it started) in the middle of a step of strategy=steps, while
the step holds its share and the analysis reads HAProxy's counters: the same task run again goes on from the share the
pool gives and converges, and the clients see no failed request."""
from __future__ import annotations

import pathlib
import time

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
from tests.support.docker_harness import IMAGE_V1, IMAGE_V2, container_spec, run_playbook
from tests.support.fault_harness import PlaybookRun, check_converged, workload_state, write_playbook

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPLICAS = 4


def _steps_task(name, haproxy, duration):
    return {"zerodown.rollout.image_upgrade": {
        "platform": "docker", "name": name, "image": IMAGE_V2, "load_balancer": haproxy.lb_options(),
        "health_timeout": 20, "drain_timeout": 2, "stop_timeout": 2, "strategy": "steps",
        "steps": [{"weight": 25, "duration": duration}, {"weight": 50, "duration": duration}],
        "analysis": {"min_requests": 5, "interval": 0.5}}}


def test_sigkill_while_a_step_holds_then_the_rerun_goes_on_and_converges(engine, haproxy, workload_name, tmp_path):
    created = run_playbook(tmp_path, [{"zerodown.rollout.image_upgrade": {
        "platform": "docker", "name": workload_name, "image": IMAGE_V1, "replicas": REPLICAS,
        "load_balancer": haproxy.lb_options(), "health_timeout": 20, "docker_container": container_spec()}}])
    assert not created["localhost"]["r0"].get("failed"), created
    recorder = TrafficRecorder(SamplerConfig(url=f"{haproxy.url}/version", concurrency=4, timeout=5), rate=60,
                               max_duration=300).start()
    try:
        run = PlaybookRun(write_playbook(tmp_path, _steps_task(workload_name, haproxy, 30)))
        # killed once the new revision holds its first share (25 %): its members weigh more than 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and run.proc.poll() is None:
            weights = [line for line in pathlib.Path(haproxy.servers_file).read_text().splitlines()
                       if "-r2-" in line and " weight " in line and not line.rstrip().endswith(" weight 0")]
            if weights:
                break
            time.sleep(0.1)
        assert run.proc.poll() is None, f"the run ended before its first step held:\n{run.output[-3000:]}"
        time.sleep(2)
        run.kill()
        after_kill = workload_state(engine, workload_name)
        rc, out, result = PlaybookRun(write_playbook(tmp_path, _steps_task(workload_name, haproxy, 2))).finish()
    finally:
        timeline = recorder.stop()
    # both revisions were serving when the kill came: 4 old and 4 new running
    assert sorted({c["revision"] for c in after_kill["running"].values()}) == [1, 2], after_kill
    assert rc == 0 and result and not result.get("failed"), out[-3000:]
    # the re-run went on from the share it found (the 25 % step had begun): its first step is step 2
    assert [s["step"] for s in result["steps"]] == [2, 3], result["steps"]
    assert check_converged(engine, haproxy, workload_name, IMAGE_V2, REPLICAS) == 2
    assert " weight " not in pathlib.Path(haproxy.servers_file).read_text()
    summary = timeline["summary"]
    assert summary["errors"] == 0, (summary["error_kinds"], summary["error_examples"])
