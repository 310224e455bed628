"""Stress run: Docker upgrades and rollbacks under load while HAProxy is reloaded every few hundred milliseconds.

    .venv/bin/python -m bench.stress_haproxy_reloads [--rounds 20] [--seed N] [--rate 200]   (``make stress``)

Against a dockerd of its own (an :class:`ExtraDockerd`, so it can run beside ``make test``: the shared engine's
test cleanup never sees its containers) and an HAProxy of its own, a workload of ``--replicas`` replicas of
zerodown/demo-app:1.0 is created once. Each round then runs, through ansible-playbook and the collection's
modules, an upgrade to 2.0 (``image_upgrade``) and a rollback to 1.0 (``rollback``), with ``--rate`` requests/s
sent to the HAProxy front end (the traffic recorder) while a thread reloads HAProxy (master-worker SIGUSR2 to
the master) after a random pause of ``--reload-min`` to ``--reload-max`` seconds, again and again.

After each phase, the reloads stop and the run checks what the fault tests' ``check_converged`` asserts: the
workload runs its replicas of one revision of the expected image, and the members of the backend, in the
runtime (``show stat``, all UP) and in the servers file, are exactly its running containers. A reload takes a
moment to settle, so the check is repeated for up to ``--settle`` seconds before it counts as failed; a stale
member stays stale, so this hides no divergence. A failed check is recorded (with the difference) and the run
goes on with the next phase.

Before the rounds, a control phase (``--control`` seconds, 60 by default) sends the same load through the same
reloads while the workload sits still and the module does not run: the errors it sees are what HAProxy's
reloads alone cost these clients, to read the rounds' errors against. It fails no round.

Reloads are serialized by default: each pause starts once the previous reload is over (see ``Reloader``);
``--overlap`` signals without waiting and writes stress_haproxy_reloads_overlap.json instead.

A round fails when a playbook fails, a check fails, a request fails, the load falls below 3/4 of ``--rate``
or no reload happened. Results go to bench/results/stress_haproxy_reloads.json after every round; the exit
status is 1 when any round failed, 2 when the setup failed.

The pauses between reloads come from ``random.Random(seed + round - 1)``: ``--seed <a round's seed> --rounds 1``
replays a round's pauses (not the exact interleaving with the playbook, which depends on timing).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import typing as t

from bench.common import COLLECTIONS, ROOT, ensure_importable, write_result

RESULT_NAME = "stress_haproxy_reloads"
SUBNET = "172.31.240.1/24"  # apart from the fault tests' own dockerd (.252) and the fleet's (.251 down)


class Reloader:
    """Reloads a master-worker HAProxy (SIGUSR2 to the master) after random pauses, in a thread, until stopped.

    By default each pause starts once the previous reload is over: a new worker answers on the admin socket
    and every worker it replaced has exited (master CLI ``show proc``). With ``overlap`` it signals after each
    pause without waiting. Reloads then land while the workers of earlier ones are still leaving, and HAProxy
    2.6 now and then kills one of those (seen in its log: a worker that had served requests "exited with code
    138 (User defined signal 1)", counted as ``workers_killed``): the clients whose connection it still held
    lose it, whatever the module does. That is HAProxy's own limit, so the default run leaves it out; its
    reloads still come every few hundred milliseconds, far more often than on any real host.
    """

    def __init__(self, proxy: t.Any, rng: random.Random, low: float, high: float, overlap: bool = False) -> None:
        self.proxy, self.pid, self.rng, self.low, self.high = proxy, proxy.proc.pid, rng, low, high
        self.overlap = overlap
        self.count = 0
        self.error: t.Optional[str] = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="haproxy-reloader", daemon=True)

    def __enter__(self) -> "Reloader":
        self._thread.start()
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def _loop(self) -> None:
        while not self._stop.wait(self.rng.uniform(self.low, self.high)):
            before = "" if self.overlap else self.proxy.worker()
            try:
                os.kill(self.pid, signal.SIGUSR2)
            except ProcessLookupError:
                self.error = f"the HAProxy master (pid {self.pid}) is gone after {self.count} reloads"
                return
            self.count += 1
            if self.overlap:
                continue
            try:
                self.proxy.wait_reloaded(before)
            except RuntimeError:
                self.error = f"reload {self.count} was not over within 10 s"
                return


def membership(client: t.Any, proxy: t.Any, name: str) -> dict[str, t.Any]:
    """Running containers of the workload against the backend's members, in the runtime and in the file."""
    from tests.support.fault_harness import backend_servers, servers_file_members, workload_state  # noqa: PLC0415

    running = set(workload_state(client, name)["running"])
    runtime = {n: row["status"] for n, row in backend_servers(proxy.socket, proxy.backend).items()}
    in_file = servers_file_members(proxy.servers_file)
    return {
        "runtime_extra": {n: runtime[n] for n in sorted(set(runtime) - running)},
        "runtime_missing": sorted(running - set(runtime)),
        "runtime_not_up": {n: s for n, s in sorted(runtime.items()) if n in running and s != "UP"},
        "file_extra": sorted(in_file - running),
        "file_missing": sorted(running - in_file),
    }


def check(client: t.Any, proxy: t.Any, name: str, image: str, replicas: int, settle: float) -> dict[str, t.Any]:
    """``check_converged``, repeated for up to ``settle`` seconds; the last failure and difference when it never
    passes."""
    from tests.support.fault_harness import check_converged  # noqa: PLC0415

    began = time.monotonic()
    while True:
        try:
            revision = check_converged(client, proxy, name, image, replicas)
            return {"converged": True, "revision": revision, "settle_s": round(time.monotonic() - began, 2)}
        except (AssertionError, OSError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        if time.monotonic() - began >= settle:
            break
        time.sleep(0.25)
    try:
        difference: t.Any = membership(client, proxy, name)
    except OSError as exc:
        difference = {"unreadable": str(exc)}
    return {"converged": False, "failure": failure[:2000], "difference": difference}


def wait_socket(proxy: t.Any, timeout: float = 10) -> None:
    from tests.support.docker_harness import haproxy_command  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while True:
        try:
            if "pxname" in haproxy_command("show stat", proxy.socket):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.1)


def haproxy_log_since(log: pathlib.Path, offset: int) -> dict[str, t.Any]:
    """What the HAProxy master logged from ``offset`` on: reloads it completed (signals that arrive while it
    reloads are merged, so there are fewer than signals sent) and alerts (such as a reload it refused)."""
    with open(log, "rb") as stream:
        stream.seek(offset)
        lines = stream.read().decode(errors="replace").splitlines()
    alerts = [line for line in lines if "[ALERT]" in line]
    # a worker killed by a signal rather than leaving on its own (exit code 0)
    killed = [line for line in lines if "worker" in line and "exited with code" in line
              and "exited with code 0 " not in line and "Current worker" not in line]
    return {"reloads_done": sum(1 for line in lines if "Loading success" in line),
            "haproxy_alerts": {"count": len(alerts), "first": alerts[:3]},
            "workers_killed": {"count": len(killed), "first": killed[:3]}}


def run_phase(what: str, argv: t.Optional[list[str]], client: t.Any, proxy: t.Any, name: str, image: str,
              args: argparse.Namespace, rng: random.Random) -> dict[str, t.Any]:
    """One playbook under load and reloads, then the convergence check."""
    from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
    from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.recorder import TrafficRecorder
    from tests.support.fault_harness import PlaybookRun  # noqa: PLC0415

    began = time.monotonic()
    log = proxy.dir / "haproxy.log"
    log_offset = log.stat().st_size
    # 16 workers hold the rate while some requests wait on a worker HAProxy is replacing
    recorder = TrafficRecorder(SamplerConfig(url=f"{proxy.url}/version", concurrency=16, timeout=5), rate=args.rate,
                               max_duration=600).start()
    try:
        time.sleep(0.5)
        with Reloader(proxy, rng, args.reload_min, args.reload_max, args.overlap) as reloader:
            if argv is None:  # the control: the same load and reloads, no run of the module
                time.sleep(args.control)
                rc, out, result = 0, "", {}
            else:
                try:
                    rc, out, result = PlaybookRun(argv).finish(timeout=args.playbook_timeout)
                except AssertionError as exc:  # did not finish in time (killed): a failed phase, not a failed run
                    rc, out, result = -1, str(exc), None
        time.sleep(1.0)  # the last reload's worker takes over the listeners
        wait_socket(proxy)
    finally:
        summary = recorder.stop()["summary"]
    failed = rc != 0 or result is None or (argv is not None and not result) or bool(result.get("failed"))
    phase: dict[str, t.Any] = {
        "phase": what, "seconds": round(time.monotonic() - began, 1), "reloads": reloader.count,
        "playbook_ok": not failed, "revision": (result or {}).get("revision"),
        "previous_revision": (result or {}).get("previous_revision"),
        "requests": summary["total"], "errors": summary["errors"], "error_kinds": summary["error_kinds"],
        "error_examples": summary["error_examples"],
        "requests_per_s": summary["requests_per_s"],
    }
    if failed:
        phase["playbook_failure"] = ((result or {}).get("msg") or out[-2000:])[:2000]
    if reloader.error:
        phase["reloader_error"] = reloader.error
    phase.update(haproxy_log_since(log, log_offset))
    phase.update(check(client, proxy, name, image, args.replicas, args.settle))
    return phase


def phase_failures(phase: dict[str, t.Any], rate: float) -> list[str]:
    out = []
    if not phase["playbook_ok"]:
        out.append(f"{phase['phase']}: playbook failed")
    if not phase["converged"]:
        out.append(f"{phase['phase']}: not converged")
    if phase["errors"]:
        out.append(f"{phase['phase']}: {phase['errors']} failed requests {phase['error_kinds']}")
    if phase["requests_per_s"] < 0.75 * rate:
        out.append(f"{phase['phase']}: load {phase['requests_per_s']} requests/s < 3/4 of {rate:g}")
    if phase["reloads_done"] == 0 or phase.get("reloader_error"):
        out.append(f"{phase['phase']}: {phase.get('reloader_error') or 'no reload happened'}")
    return out


def main(argv: t.Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rounds", type=int, default=20, help="upgrade + rollback rounds (20)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the reload pauses (default: random)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s through HAProxy (200)")
    parser.add_argument("--replicas", type=int, default=4, help="replicas of the workload (4)")
    parser.add_argument("--reload-min", type=float, default=0.1, help="shortest pause between reloads, s (0.1)")
    parser.add_argument("--reload-max", type=float, default=0.3, help="longest pause between reloads, s (0.3)")
    parser.add_argument("--overlap", action="store_true",
                        help="signal after each pause without waiting for the previous reload's worker (see Reloader)")
    parser.add_argument("--control", type=float, default=60.0,
                        help="seconds of the same load and reloads before the rounds, with the module not running: "
                             "what HAProxy's reloads alone cost the clients (60; 0 skips it)")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds a phase's convergence check may take to pass after the reloads stop (5)")
    parser.add_argument("--playbook-timeout", type=float, default=300.0, help="seconds per playbook (300)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.replicas < 1 or not 0 < args.reload_min <= args.reload_max:
        parser.error("--rounds and --replicas must be >= 1, and 0 < --reload-min <= --reload-max")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    out_name = RESULT_NAME + ("_overlap" if args.overlap else "")

    ensure_importable()
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
    import docker  # noqa: PLC0415
    from tests.support.docker_harness import IMAGE_V1, IMAGE_V2, ExtraDockerd, Haproxy, container_spec  # noqa: PLC0415
    from tests.support.fault_harness import PlaybookRun, write_playbook  # noqa: PLC0415

    name = f"zds-{random.SystemRandom().randrange(16**6):06x}"
    print(f">> stress: {args.rounds} rounds of upgrade + rollback of {args.replicas} replicas at {args.rate:g} "
          f"requests/s, HAProxy reloaded every {args.reload_min:g}-{args.reload_max:g} s; workload {name}, seed {seed}",
          flush=True)
    result: dict[str, t.Any] = {
        "what": f"{args.replicas}-replica Docker upgrade {IMAGE_V1} -> {IMAGE_V2} and rollback per round, "
                f"{args.rate:g} requests/s through HAProxy, reloaded (SIGUSR2) every "
                f"{args.reload_min:g}-{args.reload_max:g} s"
                + (" without waiting for the previous reload" if args.overlap else
                   " after the previous reload's new worker answered"),
        "seed": seed, "workload": name, "settings": {k: v for k, v in vars(args).items() if k != "seed"}, "rounds": [],
    }
    work = pathlib.Path(tempfile.mkdtemp(prefix="zd-stress-"))
    daemon = proxy = client = None
    try:
        try:
            daemon = ExtraDockerd([IMAGE_V1, IMAGE_V2], subnet=SUBNET, tag="s")
            proxy = Haproxy(name)
            client = docker.DockerClient(base_url=daemon.host, timeout=60)
            base = {"platform": "docker", "name": name, "docker_host": daemon.host,
                    "load_balancer": proxy.lb_options(), "batch_size": 1, "health_timeout": 30, "drain_timeout": 3,
                    "stop_timeout": 2}
            rc, out, created = PlaybookRun(write_playbook(work, {"zerodown.rollout.image_upgrade": dict(
                base, image=IMAGE_V1, replicas=args.replicas,
                docker_container=container_spec(publish_address=daemon.publish_address))})).finish()
            if rc != 0 or not created or created.get("failed"):
                raise RuntimeError(f"creating the workload failed:\n{out[-3000:]}")
            first = check(client, proxy, name, IMAGE_V1, args.replicas, args.settle)
            if not first["converged"]:
                raise RuntimeError(f"the new workload did not converge before any reload: {first}")
        except (OSError, RuntimeError, subprocess.SubprocessError, docker.errors.DockerException) as exc:
            result["setup_error"] = str(exc)[-3000:]
            write_result(out_name, result)
            print(f"ERROR: setup failed (a dockerd of its own needs root and the ip tool; `make images` first): "
                  f"{exc}", file=sys.stderr)
            return 2

        if args.control > 0:
            control = run_phase("control", None, client, proxy, name, IMAGE_V1, args, random.Random(seed - 1))
            result["control"] = control
            write_result(out_name, result)
            print(f">> control ({args.control:g} s of the same load and reloads, the module not running): "
                  f"{control['requests']} requests, {control['errors']} errors {control['error_kinds']}, "
                  f"{control['reloads']} reloads, converged {'yes' if control['converged'] else 'no'}", flush=True)

        for number in range(1, args.rounds + 1):
            round_seed = seed + number - 1
            rng = random.Random(round_seed)
            began = time.monotonic()
            upgrade = run_phase("upgrade", write_playbook(work, {"zerodown.rollout.image_upgrade": dict(
                base, image=IMAGE_V2)}), client, proxy, name, IMAGE_V2, args, rng)
            back = dict(base)
            if upgrade.get("previous_revision"):
                back["to_revision"] = upgrade["previous_revision"]
            rollback = run_phase("rollback", write_playbook(work, {"zerodown.rollout.rollback": back}),
                                 client, proxy, name, IMAGE_V1, args, rng)
            phases = [upgrade, rollback]
            failures = [f for phase in phases for f in phase_failures(phase, args.rate)]
            entry = {
                "round": number, "seed": round_seed, "ok": not failures,
                "seconds": round(time.monotonic() - began, 1),
                "requests": sum(p["requests"] for p in phases), "errors": sum(p["errors"] for p in phases),
                "reloads": sum(p["reloads"] for p in phases), "reloads_done": sum(p["reloads_done"] for p in phases),
                "workers_killed": sum(p["workers_killed"]["count"] for p in phases),
                "converged": all(p["converged"] for p in phases),
                "difference": {p["phase"]: p["difference"] for p in phases if not p["converged"]},
                "failures": failures, "phases": phases,
            }
            result["rounds"].append(entry)
            write_result(out_name, result)
            print(f">> round {number}/{args.rounds} seed {round_seed}: {'ok' if entry['ok'] else 'FAILED'} "
                  f"{entry['seconds']:.0f}s, {entry['requests']} requests, {entry['errors']} errors, "
                  f"{entry['reloads']} reloads signalled ({entry['reloads_done']} done, "
                  f"{entry['workers_killed']} workers killed), "
                  f"converged {'yes' if entry['converged'] else 'no'}"
                  + "".join(f"\n     {f}" for f in failures)
                  + "".join(f"\n     {p}: {json.dumps(d)}" for p, d in entry["difference"].items()), flush=True)
    finally:
        if client is not None:
            client.close()
        if proxy is not None:
            proxy.stop()
        if daemon is not None:
            daemon.stop()
        subprocess.run(["rm", "-rf", str(work)], capture_output=True, check=False)

    rounds = result["rounds"]
    failed = [r["round"] for r in rounds if not r["ok"]]
    result["summary"] = {
        "rounds": len(rounds), "failed_rounds": failed, "not_converged_rounds": [r["round"] for r in rounds
                                                                                 if not r["converged"]],
        "requests": sum(r["requests"] for r in rounds), "errors": sum(r["errors"] for r in rounds),
        "reloads": sum(r["reloads"] for r in rounds), "reloads_done": sum(r["reloads_done"] for r in rounds),
        "workers_killed": sum(r["workers_killed"] for r in rounds),
        "seconds": round(sum(r["seconds"] for r in rounds), 1),
    }
    out_path = write_result(out_name, result)
    print(json.dumps(dict(result["summary"], seed=seed), indent=2))
    print(f"{len(rounds) - len(failed)}/{len(rounds)} rounds passed; results: {out_path.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
