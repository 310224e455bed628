"""A bad release under load: image_upgrade's strategy=steps (analysis from HAProxy's counters) against the upgrade
role's canary (one replica of four, then a traffic gate), on the same failing image.

    .venv/bin/python -m bench.steps_vs_canary [--rate 200] [--repeat 3]

The workload runs 4 replicas of the demo image 1.0 behind an HAProxy on 127.0.0.1 (the tests' configuration);
the traffic recorder sends ``--rate`` requests/s to ``/cgi-bin/version``. Each run upgrades to
``zerodown/demo-app:flaky`` (healthy, but 500 to 20 % of requests) and ends with the old revision serving
everything again:

* steps: ``strategy: steps``, ``steps: [{weight: 5, duration: 60}, {weight: 25, duration: 60}]``, ``analysis:
  {max_error_rate: 0.05, min_requests: 20, interval: 0.5}``: the first step fails, the module takes the new
  revision out;
* canary: the upgrade role with ``upgrade_canary: true`` (one replica swapped, then its traffic gate of 200
  requests with no error allowed), which fails and rolls back.

Measured per run, from the recorder (per-request outcomes with their times): the failed user requests, and the
seconds from the first failed request to the last one (the new revision's exposure: after it, the old revision
serves 100 % again). For steps also the step's ``held`` (from its share being set to the verdict). Goal (issue):
steps cost at most a fifth of the canary's failed requests and detect within 5 s of taking traffic.
"""
from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import tempfile
import time
import typing as t

from bench.common import Playbook, ensure_importable, summary, write_result

REPLICAS = 4
FLAKY = "zerodown/demo-app:flaky"
GOAL = {"failed_vs_canary": "<= 0.2", "detection_s": "<= 5"}
STEPS = [{"weight": 5, "duration": 60}, {"weight": 25, "duration": 60}]
ANALYSIS = {"max_error_rate": 0.05, "min_requests": 20, "interval": 0.5}


def _exposure(samples: t.Sequence[t.Any]) -> dict[str, t.Any]:
    """Failed requests and the seconds from the first failure to the last one."""
    bad = sorted(s.start for s in samples if s.error)
    return {"failed": len(bad), "requests": len(samples),
            "first_to_last_failure_s": round(bad[-1] - bad[0], 2) if len(bad) > 1 else 0.0}


def _workload(work: pathlib.Path, name: str, proxy: t.Any) -> dict[str, t.Any]:
    from tests.support.docker_harness import IMAGE_V1, container_spec  # noqa: PLC0415
    base = {"platform": "docker", "name": name, "load_balancer": proxy.lb_options(), "health_timeout": 30,
            "drain_timeout": 2, "batch_size": 2}
    rc, out, _events = Playbook(work, [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": [
        {"name": "create", "zerodown.rollout.image_upgrade": dict(base, image=IMAGE_V1, replicas=REPLICAS,
                                                                  docker_container=container_spec())}]}]).run()
    if rc != 0:
        raise RuntimeError(out[-2000:])
    return base


def _back_on_the_old_revision(name: str) -> bool:
    """Whether every running container of the workload is of revision 1 again (and there are REPLICAS)."""
    out = subprocess.run(["/usr/bin/docker", "ps", "--filter", f"label=zerodown.workload={name}", "--format",
                          '{{.Label "zerodown.revision"}}'], capture_output=True, text=True, check=False).stdout.split()
    return out == ["1"] * REPLICAS


def _cleanup(name: str, proxy: t.Any) -> None:
    proxy.stop()
    ids = subprocess.run(["/usr/bin/docker", "ps", "-aq", "--filter", f"label=zerodown.workload={name}"],
                         capture_output=True, text=True, check=False).stdout.split()
    if ids:
        subprocess.run(["/usr/bin/docker", "rm", "-f", *ids], capture_output=True, check=False)


def _recorder(proxy: t.Any, rate: float) -> t.Any:
    from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig  # noqa: PLC0415
    from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder  # noqa: PLC0415
    return TrafficRecorder(SamplerConfig(url=f"{proxy.url}/cgi-bin/version", concurrency=16, timeout=5), rate=rate,
                           max_duration=600).start()


def _recorded(book: Playbook, proxy: t.Any, rate: float) -> tuple[str, list[t.Any]]:
    """Run ``book`` under the recorder's load (2 s of it before and after); its output and the samples."""
    recorder = _recorder(proxy, rate)
    try:
        time.sleep(2)
        _rc, out, _events = book.run()
        time.sleep(2)
        return out, recorder.snapshot()
    finally:
        recorder.stop()


def run_steps(work: pathlib.Path, rate: float) -> dict[str, t.Any]:
    from tests.support.docker_harness import Haproxy  # noqa: PLC0415
    name = f"zdb-{time.monotonic_ns() % 10**6}"
    proxy = Haproxy(name)
    try:
        base = _workload(work, name, proxy)
        book = Playbook(work, [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": [
            {"name": "upgrade", "register": "up", "ignore_errors": True,
             "zerodown.rollout.image_upgrade": dict(base, image=FLAKY, strategy="steps", steps=STEPS,
                                                    analysis=ANALYSIS)},
            {"name": "held", "ansible.builtin.debug": {"msg": "HELD={{ up.steps[0].held }} FAILED={{ up.failed }}"}}]}])
        out, samples = _recorded(book, proxy, rate)
        held = float(out.split("HELD=", 1)[1].split()[0]) if "HELD=" in out else None
        caught = "FAILED=True" in out and _back_on_the_old_revision(name)
        return dict(_exposure(samples), held_s=held, caught=caught)
    finally:
        _cleanup(name, proxy)


def run_canary(work: pathlib.Path, rate: float) -> dict[str, t.Any]:
    from tests.support.docker_harness import Haproxy  # noqa: PLC0415
    name = f"zdb-{time.monotonic_ns() % 10**6}"
    proxy = Haproxy(name)
    try:
        base = _workload(work, name, proxy)
        rollout = {k: base[k] for k in ("health_timeout", "drain_timeout", "batch_size")}
        book = Playbook(work, [{"hosts": "localhost", "gather_facts": False, "connection": "local", "roles": [
            {"role": "zerodown.rollout.upgrade", "vars": {
                "upgrade_platform": "docker", "upgrade_workload": name, "upgrade_image": FLAKY, "upgrade_canary": True,
                "upgrade_options": {"load_balancer": proxy.lb_options()}, "upgrade_rollout_options": rollout,
                "upgrade_traffic_url": f"{proxy.url}/cgi-bin/version", "upgrade_gate_requests": 200,
                "upgrade_preflight": False, "upgrade_fail_on_error": False}}]}])
        out, samples = _recorded(book, proxy, rate)
        return dict(_exposure(samples), caught=_back_on_the_old_revision(name))
    finally:
        _cleanup(name, proxy)


def main(argv: t.Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s during each upgrade (200)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method (3)")
    args = parser.parse_args(argv)
    ensure_importable()
    with tempfile.TemporaryDirectory(prefix="zd-bench-steps-") as tmp:
        work = pathlib.Path(tmp)
        steps = [run_steps(work, args.rate) for _run in range(args.repeat)]
        canary = [run_canary(work, args.rate) for _run in range(args.repeat)]
    failed_steps = summary([r["failed"] for r in steps])
    failed_canary = summary([r["failed"] for r in canary])
    ratio = (failed_steps["median"] / failed_canary["median"]) if failed_canary["median"] else None
    detection = summary([r["held_s"] for r in steps if r["held_s"] is not None])
    result = {
        "rate": args.rate, "replicas": REPLICAS, "image": FLAKY, "steps_option": STEPS, "analysis": ANALYSIS,
        "steps": {"runs": steps, "failed": failed_steps, "detection_s": detection,
                  "exposure_s": summary([r["first_to_last_failure_s"] for r in steps])},
        "canary": {"runs": canary, "failed": failed_canary,
                   "exposure_s": summary([r["first_to_last_failure_s"] for r in canary])},
        "failed_vs_canary": round(ratio, 3) if ratio is not None else None,
        "goal": GOAL,
        "meets_goal": all(r["caught"] for r in steps) and ratio is not None and ratio <= 0.2
        and detection["max"] is not None and detection["max"] <= 5,
    }
    path = write_result("steps_vs_canary", result)
    print(f"steps: failed {failed_steps}, detection {detection}; canary: failed {failed_canary}; ratio {ratio}")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
