"""Docker upgrade of 4 replicas under >= 200 requests/s: ours vs the usual community.docker recreate loop vs
the physical bound.

    .venv/bin/python -m bench.docker_upgrade [--rate 200]

Both upgrades run 1.0 -> 2.0 of the demo image behind an HAProxy on 127.0.0.1 (the tests' configuration:
health checks every 500 ms, ``option redispatch``, ``retries 2``), with the traffic recorder sending ``--rate``
requests/s to the front end for the whole run.

* ours: ``zerodown.rollout.image_upgrade`` (batch_size 1, drain_timeout 3);
* anchor: what users write with community.docker (from PyPI's ``ansible`` in .venv-anchors): a loop over the
  4 containers with ``docker_container: image: <new>, recreate: true`` (stop, remove, create, start; fixed
  published ports, static HAProxy servers).

The physical bound of our run is measured from the engine and the LB, not from our code: per batch, the new
container's start + ready (engine ``create`` event -> HAProxy reports it UP) plus the old one's drain (HAProxy
DRAIN -> its sessions at 0). Wall time is the task's, from the callback (ansible-playbook start-up excluded).

``--app slow`` runs the same upgrade with the slow demo app (images/slow-app): its PID 1 ignores SIGTERM, so
each ``docker stop`` lasts the whole ``stop_timeout`` (10 s) before SIGKILL; it is ready 3 s after start; 5 %
of the load are 2 s requests (``/cgi-bin/slow?ms=2000``). Its bound adds one stop (engine ``kill`` -> ``die``)
to the per-batch start + ready + drain: the stop of the last batch's old container, which the module waits for
before it returns. Then the workload is upgraded back to 1.0, whose stopped containers are retained, and the
wall time of that re-upgrade is set against the fresh one. ``--app both`` (the default) runs both apps.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
import typing as t

from bench.common import RESULTS, Playbook, ensure_importable, summary, write_result

REPLICAS = 4
GOAL = {"failed_requests": 0, "wall_vs_bound": "<= 1.15 x bound + 1 s"}
SLOW_V1 = "zerodown/slow-app:1.0"
SLOW_V2 = "zerodown/slow-app:2.0"
SLOW_SHARE = 0.05  # of the requests/s, sent to /cgi-bin/slow?ms=2000
SLOW_GOAL = {"failed_requests": 0, "wall_vs_bound": "<= 1.15 x (sum of start + ready + drain, plus one stop) + 1 s"}


class LbSampler:
    """Samples status and current sessions of every server of a backend every 20 ms."""

    def __init__(self, sock: str, backend: str) -> None:
        from tests.support.fault_harness import backend_servers  # noqa: PLC0415
        self._read = lambda: backend_servers(sock, backend)
        self.samples: list[tuple[float, dict[str, tuple[str, int]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                rows = self._read()
                self.samples.append((time.time(), {n: (r["status"], int(r["scur"] or 0)) for n, r in rows.items()}))
            except OSError:
                pass
            self._stop.wait(0.02)

    def __enter__(self) -> "LbSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self._stop.set()
        self._thread.join(5)

    def first(self, name: str, pred: t.Callable[[str, int], bool], after: float = 0) -> t.Optional[float]:
        for ts, servers in self.samples:
            if ts >= after and name in servers and pred(*servers[name]):
                return ts
        return None

    def gone_or_drained(self, name: str, after: float) -> t.Optional[float]:
        for ts, servers in self.samples:
            if ts >= after and (name not in servers or servers[name][1] == 0):
                return ts
        return None


def drain_times(lb: "LbSampler", new: t.Set[str]) -> list[float]:
    """Seconds each old server (every sampled server but ``new``) took from DRAIN to drained or gone."""
    out = []
    for cname in {n for _ts, servers in lb.samples for n in servers} - new:
        t_drain = lb.first(cname, lambda status, _scur: status.startswith("DRAIN"))
        if t_drain is not None:
            t_done = lb.gone_or_drained(cname, t_drain)
            out.append((t_done or t_drain) - t_drain)
    return out


class EngineEvents:
    """``docker events`` streamed for the length of a run: the daemon keeps only its last few hundred events,
    and HEALTHCHECK execs flood them, so asking afterwards with --since loses the early ones."""

    def __init__(self, label: str) -> None:
        self.proc = subprocess.Popen(["/usr/bin/docker", "events", "--filter", "type=container", "--filter",
                                      f"label={label}", "--filter", "event=create", "--filter", "event=start",
                                      "--filter", "event=health_status", "--filter", "event=kill", "--filter",
                                      "event=die", "--format", "{{json .}}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(0.3)  # subscribed before the run starts

    def stop(self) -> list[dict[str, t.Any]]:
        time.sleep(0.3)
        self.proc.terminate()
        out = self.proc.communicate(timeout=10)[0]
        return [json.loads(line) for line in out.splitlines() if line.strip()]


def task_wall(events: list[dict[str, t.Any]], task: str) -> float:
    start = next(e["t"] for e in events if e["event"] == "start" and e["task"] == task)
    end = next(e["t"] for e in events if e["event"] in ("ok", "failed") and e["task"] == task)
    return end - start


def run_ours(work: pathlib.Path, rate: float) -> dict[str, t.Any]:
    from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
    from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
    from tests.support.docker_harness import IMAGE_V1, IMAGE_V2, Haproxy, container_spec

    name = f"zdb-{time.monotonic_ns() % 10**6}"
    proxy = Haproxy(name)
    base = {"platform": "docker", "name": name, "load_balancer": proxy.lb_options(), "health_timeout": 30}
    try:
        rc, out, _events = Playbook(work, [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": [
            {"name": "create", "zerodown.rollout.image_upgrade": dict(base, image=IMAGE_V1, replicas=REPLICAS,
                                                                      docker_container=container_spec())}]}]).run()
        if rc != 0:
            raise RuntimeError(out[-2000:])
        book = Playbook(work, [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": [
            {"name": "upgrade", "zerodown.rollout.image_upgrade": dict(base, image=IMAGE_V2, batch_size=1,
                                                                       drain_timeout=3)}]}])
        recorder = TrafficRecorder(SamplerConfig(url=f"{proxy.url}/version", concurrency=8, timeout=5), rate=rate,
                                   max_duration=300).start()
        try:
            time.sleep(1)
            engine = EngineEvents(f"zerodown.workload={name}")
            with LbSampler(proxy.socket, name) as lb:
                rc, out, events = book.run()
            evs = engine.stop()
            time.sleep(1)
        finally:
            timeline = recorder.stop()
        if rc != 0:
            raise RuntimeError(out[-2000:])
        wall = task_wall(events, "upgrade")
        created = {e["Actor"]["Attributes"]["name"]: e["timeNano"] / 1e9 for e in evs if e.get("Action") == "create"}
        healthy = {e["Actor"]["Attributes"]["name"]: e["timeNano"] / 1e9 for e in evs
                   if e.get("Action", "").startswith("health_status: healthy")}
        ready_s = []
        for cname, t_create in created.items():
            # UP in HAProxy; if the 20 ms sampler missed it, the engine's healthy event (earlier, so the bound
            # only gets stricter)
            t_up = lb.first(cname, lambda status, _scur: status == "UP", after=t_create) or healthy.get(cname)
            if t_up is not None:
                ready_s.append(t_up - t_create)
        drain_s = drain_times(lb, set(created))
        bound = sum(ready_s) + sum(drain_s)
        if len(ready_s) != REPLICAS:
            raise RuntimeError(f"measured start+ready for {len(ready_s)} of {REPLICAS} new containers: {evs}")
        return {"wall_s": round(wall, 3), "bound_s": round(bound, 3), "start_ready_s": summary(ready_s),
                "drain_s": summary(drain_s), "batches": len(ready_s),
                "traffic": {k: timeline["summary"][k] for k in ("total", "errors", "error_kinds", "requests_per_s")},
                "wall_vs_bound": round(wall / bound, 3) if bound else None,
                "meets_goal": timeline["summary"]["errors"] == 0 and bool(bound) and wall <= 1.15 * bound + 1}
    finally:
        proxy.stop()
        subprocess.run(["/usr/bin/docker", "rm", "-f", *subprocess.run(
            ["/usr/bin/docker", "ps", "-aq", "--filter", f"label=zerodown.workload={name}"], capture_output=True,
            text=True, check=False).stdout.split()], capture_output=True, check=False)


def run_community(work: pathlib.Path, rate: float, anchors: pathlib.Path) -> dict[str, t.Any]:
    from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
    from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
    from tests.support.docker_harness import IMAGE_V1, IMAGE_V2, Haproxy, free_port

    prefix = f"zdc-{time.monotonic_ns() % 10**6}"
    ports = [free_port() for _index in range(REPLICAS)]
    proxy = Haproxy(prefix)
    pathlib.Path(proxy.servers_file).write_text(
        f"backend {prefix}\n    balance roundrobin\n" + "".join(
            f"    server {prefix}-{i} 127.0.0.1:{port} check inter 500 fall 2 rise 1\n" for i, port in enumerate(ports)))
    proxy.reload()
    containers = [{"name": f"{prefix}-{i}", "port": port} for i, port in enumerate(ports)]

    def task(image: str) -> dict[str, t.Any]:
        return {"name": "docker_container loop", "loop": containers, "community.docker.docker_container": {
            "name": "{{ item.name }}", "image": image, "state": "started", "recreate": True,
            "published_ports": ["127.0.0.1:{{ item.port }}:8080"], "labels": {"zerodown-bench": prefix},
            "restart_policy": "unless-stopped"}}
    try:
        play = {"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": [task(IMAGE_V1)]}
        rc, out, _events = Playbook(work, [play], bindir=anchors).run()
        if rc != 0:
            raise RuntimeError(out[-2000:])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sorted(proxy.servers().values()) != ["UP"] * REPLICAS:
            time.sleep(0.2)
        if sorted(proxy.servers().values()) != ["UP"] * REPLICAS:  # never measure against a dead backend
            raise RuntimeError(f"the 1.0 containers never came UP in HAProxy: {proxy.servers()}")
        book = Playbook(work, [{"hosts": "localhost", "gather_facts": False, "connection": "local",
                                "tasks": [task(IMAGE_V2)]}], bindir=anchors)
        recorder = TrafficRecorder(SamplerConfig(url=f"{proxy.url}/version", concurrency=8, timeout=5), rate=rate,
                                   max_duration=300).start()
        try:
            time.sleep(1)
            rc, out, events = book.run()
            time.sleep(2)
        finally:
            timeline = recorder.stop()
        if rc != 0:
            raise RuntimeError(out[-2000:])
        return {"wall_s": round(task_wall(events, "docker_container loop"), 3),
                "traffic": {k: timeline["summary"][k] for k in ("total", "errors", "error_kinds", "requests_per_s")}}
    finally:
        proxy.stop()
        subprocess.run(["/usr/bin/docker", "rm", "-f", *(c["name"] for c in containers)], capture_output=True,
                       check=False)


def _timed_upgrade(book: Playbook, proxy: t.Any, name: str, rate: float) -> dict[str, t.Any]:
    """One upgrade under load (fast /version requests plus SLOW_SHARE of 2 s ones), measured against its bound:
    per batch start + ready (engine create, or start for a restarted container -> HAProxy UP) + drain (DRAIN ->
    no session), plus one stop (engine kill -> die of an old container)."""
    from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
    from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder

    slow_rate = rate * SLOW_SHARE
    fast = TrafficRecorder(SamplerConfig(url=f"{proxy.url}/version", concurrency=8, timeout=10),
                           rate=rate - slow_rate, max_duration=600).start()
    slow = TrafficRecorder(SamplerConfig(url=f"{proxy.url}/cgi-bin/slow?ms=2000", concurrency=int(slow_rate * 3) + 2,
                                         timeout=10), rate=slow_rate, max_duration=600).start()
    try:
        time.sleep(3)  # the slow requests reach their steady state
        engine = EngineEvents(f"zerodown.workload={name}")
        with LbSampler(proxy.socket, name) as lb:
            rc, out, events = book.run()
        evs = engine.stop()
        time.sleep(1)
    finally:
        timelines = [fast.stop(), slow.stop()]
    if rc != 0:
        raise RuntimeError(out[-2000:])
    began = next(e["t"] for e in events if e["event"] == "start")
    created = {e["Actor"]["Attributes"]["name"]: e["timeNano"] / 1e9 for e in evs if e.get("Action") == "create"}
    started = {e["Actor"]["Attributes"]["name"]: e["timeNano"] / 1e9 for e in evs if e.get("Action") == "start"}
    new = {n: created.get(n, ts) for n, ts in started.items() if ts >= began - 1}
    ready_s = []
    for cname, t_start in new.items():
        t_up = lb.first(cname, lambda status, _scur: status == "UP", after=t_start)
        if t_up is not None:
            ready_s.append(t_up - t_start)
    drain_s = drain_times(lb, set(new))
    kills: dict[str, float] = {}
    stop_s = []
    for e in evs:
        cname = e["Actor"]["Attributes"]["name"]
        if e.get("Action") == "kill" and cname not in new:
            kills.setdefault(cname, e["timeNano"] / 1e9)
        elif e.get("Action") == "die" and cname in kills:
            stop_s.append(e["timeNano"] / 1e9 - kills.pop(cname))
    if len(ready_s) != REPLICAS or len(stop_s) != REPLICAS:
        raise RuntimeError(f"measured start+ready for {len(ready_s)} and stops for {len(stop_s)} of {REPLICAS}: {evs}")
    wall = task_wall(events, "upgrade")
    one_stop = max(stop_s)
    bound = sum(ready_s) + sum(drain_s) + one_stop
    errors = sum(tl["summary"]["errors"] for tl in timelines)
    return {"wall_s": round(wall, 3), "bound_s": round(bound, 3), "created": len(created),
            "start_ready_s": summary(ready_s), "drain_s": summary(drain_s), "stop_s": summary(stop_s),
            "traffic": {kind: {k: tl["summary"][k] for k in ("total", "errors", "error_kinds", "requests_per_s")}
                        for kind, tl in zip(("version", "slow_2s"), timelines)},
            "wall_vs_bound": round(wall / bound, 3),
            "meets_goal": errors == 0 and wall <= 1.15 * bound + 1}


def run_slow(work: pathlib.Path, rate: float) -> dict[str, t.Any]:
    """The slow app 1.0 -> 2.0 (a fresh revision), then 2.0 -> 1.0 (revision 1 is retained, stopped)."""
    from tests.support.docker_harness import Haproxy

    name = f"zds-{time.monotonic_ns() % 10**6}"
    proxy = Haproxy(name)
    base = {"platform": "docker", "name": name, "load_balancer": proxy.lb_options(), "health_timeout": 30}

    def play(task: dict[str, t.Any]) -> Playbook:
        return Playbook(work, [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": [task]}])
    try:
        rc, out, _events = play({"name": "create", "zerodown.rollout.image_upgrade": dict(
            # not the tests' label: a test run's cleanup on a shared engine would remove the bench's containers
            base, image=SLOW_V1, replicas=REPLICAS, docker_container={"port": 8080, "labels": {"zerodown-bench": name}})}).run()
        if rc != 0:
            raise RuntimeError(out[-2000:])
        runs = {}
        for what, image in (("fresh", SLOW_V2), ("retained", SLOW_V1)):
            book = play({"name": "upgrade", "zerodown.rollout.image_upgrade": dict(base, image=image, batch_size=1,
                                                                                   drain_timeout=5)})
            runs[what] = _timed_upgrade(book, proxy, name, rate)
        return runs
    finally:
        proxy.stop()
        subprocess.run(["/usr/bin/docker", "rm", "-f", *subprocess.run(
            ["/usr/bin/docker", "ps", "-aq", "--filter", f"label=zerodown.workload={name}"], capture_output=True,
            text=True, check=False).stdout.split()], capture_output=True, check=False)


def slow_result(runs: list[dict[str, t.Any]], rate: float) -> dict[str, t.Any]:
    out: dict[str, t.Any] = {
        "what": f"slow app ({SLOW_V1} <-> {SLOW_V2}: SIGTERM ignored, stop_timeout 10 s, ready 3 s after start, "
                f"{SLOW_SHARE:.0%} of the load 2 s requests), {REPLICAS} replicas behind HAProxy under "
                f"{rate:g} requests/s, batch_size 1, drain_timeout 5",
        "goal": SLOW_GOAL, "runs": runs}
    for what in ("fresh", "retained"):
        sample = [r[what] for r in runs]
        out[what] = {"wall_s": summary([r["wall_s"] for r in sample]), "bound_s": summary([r["bound_s"] for r in sample]),
                     "containers_created": sorted({r["created"] for r in sample}),
                     "failed_requests": sum(v["errors"] for r in sample for v in r["traffic"].values()),
                     "meets_goal": all(r["meets_goal"] for r in sample)}
    out["meets_goal"] = out["fresh"]["meets_goal"]
    return out


def main(argv: t.Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s during each upgrade (200)")
    parser.add_argument("--repeat", type=int, default=3, help="upgrades per method (3)")
    parser.add_argument("--app", choices=("demo", "slow", "both"), default="both",
                        help="the demo app (ours vs community.docker), the slow app, or both (the default)")
    parser.add_argument("--out", default="docker_upgrade", help="result name in bench/results (docker_upgrade)")
    args = parser.parse_args(argv)
    ensure_importable()
    work = pathlib.Path(tempfile.mkdtemp(prefix="zd-bench-docker-"))
    previous = RESULTS / f"{args.out}.json"
    kept = json.loads(previous.read_text()) if previous.exists() else {}
    slow = None
    if args.app in ("slow", "both"):
        slow = slow_result([run_slow(work, args.rate) for _run in range(args.repeat)], args.rate)
    if args.app == "slow":  # the demo app's figures stay those of its last run
        result = {k: v for k, v in kept.items() if k not in ("when", "machine")}
        result["slow_app"] = slow
        out = write_result(args.out, result)
        print(json.dumps({"slow_fresh_wall_median": slow["fresh"]["wall_s"]["median"],
                          "slow_fresh_bound_median": slow["fresh"]["bound_s"]["median"],
                          "slow_retained_wall_median": slow["retained"]["wall_s"]["median"],
                          "slow_failed": slow["fresh"]["failed_requests"] + slow["retained"]["failed_requests"],
                          "meets_goal": slow["meets_goal"], "out": str(out)}))
        return 0
    from bench.anchors import collection_version, ensure_venv

    anchors = ensure_venv()
    ours = [run_ours(work, args.rate) for _run in range(args.repeat)]
    community = [run_community(work, args.rate, anchors) for _run in range(args.repeat)]
    result = {
        "what": f"upgrade of {REPLICAS} replicas 1.0 -> 2.0 behind HAProxy under {args.rate:g} requests/s",
        "anchor": {"community.docker": collection_version(anchors, "community.docker"),
                   "playbook": "loop over the containers: docker_container image=<new> recreate=true state=started"},
        "goal": GOAL,
        "ours": {"runs": ours, "wall_s": summary([r["wall_s"] for r in ours]),
                 "bound_s": summary([r["bound_s"] for r in ours]),
                 "failed_requests": sum(r["traffic"]["errors"] for r in ours)},
        "community_docker": {"runs": community, "wall_s": summary([r["wall_s"] for r in community]),
                             "failed_requests": sum(r["traffic"]["errors"] for r in community)},
        "meets_goal": all(r["meets_goal"] for r in ours),
    }
    if slow is not None:
        result["slow_app"] = slow
        result["meets_goal"] = result["meets_goal"] and slow["meets_goal"]
    elif "slow_app" in kept:
        result["slow_app"] = kept["slow_app"]
    out = write_result(args.out, result)
    print(json.dumps({"ours_wall_median": result["ours"]["wall_s"]["median"],
                      "bound_median": result["ours"]["bound_s"]["median"],
                      "ours_failed": result["ours"]["failed_requests"],
                      "community_wall_median": result["community_docker"]["wall_s"]["median"],
                      "community_failed": result["community_docker"]["failed_requests"],
                      "meets_goal": result["meets_goal"], "out": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
