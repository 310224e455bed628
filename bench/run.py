"""Run every benchmark, one after the other, and write bench/results/summary.json (``make bench``).

    .venv/bin/python -m bench.run [--quick] [--only k8s_wait ...]

Each benchmark is its own module (``python -m bench.<name>``) writing ``bench/results/<name>.json``; they never
overlap, so none disturbs another's timings. ``--quick`` runs fewer repetitions (a smoke run, not for the
figures in docs/performance.md). Not part of ``make test``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import typing as t

from bench.common import RESULTS, ROOT, write_result

BENCHES: dict[str, tuple[list[str], list[str]]] = {
    # name: (full arguments, --quick arguments)
    "traffic": (["--seconds", "5"], ["--seconds", "2", "--concurrency", "4"]),
    "k8s_wait": (["--rollouts", "20"], ["--rollouts", "3"]),
    "docker_upgrade": (["--repeat", "3"], ["--repeat", "1"]),
    "fleet": ([], ["--targets", "1", "--targets", "5"]),
    "steps_vs_canary": (["--repeat", "3"], ["--repeat", "1"]),
}
MODULES = {"traffic": "bench.traffic_bench"}


def _headline(name: str, data: dict[str, t.Any]) -> dict[str, t.Any]:
    if name == "traffic":
        return {"sampler_best_rps": data.get("best_sampler_requests_per_s"),
                "wrk_rps": (data.get("wrk") or {}).get("requests_per_s"), "meets_goal": data.get("meets_goal")}
    if name == "k8s_wait":
        return {tool: {"latency_median_s": w["latency_s"].get("median"),
                       "requests_median": w["requests_per_rollout"].get("median"),
                       "returned_before_completion": w.get("returned_before_completion")}
                for tool, w in data["waiters"].items()} | {"meets_goal": data.get("meets_goal")}
    if name == "steps_vs_canary":
        return {"steps_failed_median": data["steps"]["failed"].get("median"),
                "canary_failed_median": data["canary"]["failed"].get("median"),
                "detection_max_s": data["steps"]["detection_s"].get("max"),
                "failed_vs_canary": data.get("failed_vs_canary"), "meets_goal": data.get("meets_goal")}
    if name == "docker_upgrade":
        return {"ours_wall_median_s": data["ours"]["wall_s"].get("median"),
                "bound_median_s": data["ours"]["bound_s"].get("median"),
                "ours_failed_requests": data["ours"]["failed_requests"],
                "community_docker_wall_median_s": data["community_docker"]["wall_s"].get("median"),
                "community_docker_failed_requests": data["community_docker"]["failed_requests"],
                "meets_goal": data.get("meets_goal")}
    if name == "fleet":
        return {"curve": {p["targets"]: p["task_wall_s"] for p in data["curve"]}}
    return {}


def main(argv: t.Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: a smoke run")
    parser.add_argument("--only", action="append", choices=sorted(BENCHES))
    args = parser.parse_args(argv)
    summary: dict[str, t.Any] = {"quick": args.quick, "benchmarks": {}}
    previous = RESULTS / "summary.json"
    if args.only and previous.exists():  # a partial run keeps the other benchmarks' last entries
        summary["benchmarks"] = json.loads(previous.read_text()).get("benchmarks", {})
    status = 0
    for name in args.only or list(BENCHES):
        full, quick = BENCHES[name]
        module = MODULES.get(name, f"bench.{name}")
        began = time.monotonic()
        print(f">> {module} {' '.join(quick if args.quick else full)}", flush=True)
        proc = subprocess.run([sys.executable, "-m", module, *(quick if args.quick else full)], cwd=str(ROOT),
                              timeout=3600, check=False)
        entry: dict[str, t.Any] = {"rc": proc.returncode, "seconds": round(time.monotonic() - began, 1)}
        path = RESULTS / f"{name}.json"
        if path.exists() and path.stat().st_mtime >= time.time() - (time.monotonic() - began) - 1:
            entry.update(_headline(name, json.loads(path.read_text())))
        else:
            entry["error"] = "no result written"
            status = 1
        summary["benchmarks"][name] = entry
    out = write_result("summary", summary)
    print(json.dumps(summary["benchmarks"], indent=2))
    print(f"summary: {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
