"""Kubernetes wait: how soon each waiter returns after a rollout completes, and how many API requests it makes.

    .venv/bin/python -m bench.k8s_wait [--rollouts 20]

Waiters, each over the same number of rollouts of one Deployment (3 replicas, maxSurge 1, maxUnavailable 0,
readinessProbe every 1 s, so a rollout takes a few seconds) on the Kubernetes test API server, in-process:

* ``zerodown.rollout.rollout_wait`` (the bench patches the image, then starts it);
* ``kubernetes.core.k8s`` with ``wait: true`` and its defaults (it applies the new image itself), from PyPI's
  ``ansible`` package in .venv-anchors;
* ``kubectl rollout status`` (the bench patches, then starts it).

Both modules run as plain processes, the way AnsiballZ runs them on the target (``python -m <module> args.json``),
so Ansible's own task overhead, the same for both, stays out of the figures.

Completion time: the moment the server's store records the Deployment status that satisfies kubectl's rule for
the new generation (a store change hook, no API request). Return time: when the module's JSON result arrives on
its stdout, or when kubectl exits. Requests: the server's request log between
the waiter's start and its return (the bench's own requests carry another User-Agent and are left out).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
import typing as t

from bench.common import COLLECTIONS, VENV_BIN, ensure_importable, summary, write_result

GOAL_MEDIAN_S = 0.1
NAME = "bench-web"
START_DELAY_S = 2.0
BENCH_AGENT = "zd-bench-driver"


class Observed:
    """Request log and completion times of an in-process test server."""

    def __init__(self, server: t.Any) -> None:
        from tests.k8s_server import api as api_mod
        from tests.k8s_server import resources as R

        self.requests: list[tuple[float, str, str, str]] = []
        self.completed: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()
        store = server.store
        original = api_mod.ApiHandler._dispatch
        log = self.requests

        def logged(handler: t.Any, verb: str) -> None:
            log.append((time.time(), verb, handler.path, handler.headers.get("User-Agent", "")))
            original(handler, verb)

        api_mod.ApiHandler._dispatch = logged  # bench only: the process owns this server
        key = R.DEPLOYMENT.key

        def on_change() -> None:
            _rv, res_key, _etype, obj = store._events[-1]  # called under the store lock, right after the write
            if res_key != key:
                return
            meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
            gen = meta.get("generation", 0)
            if (meta["name"], gen) in self.completed or status.get("observedGeneration", 0) < gen:
                return
            want = spec.get("replicas", 1)
            conds = {c.get("type"): c for c in status.get("conditions") or []}
            if (conds.get("Progressing", {}).get("reason") != "ProgressDeadlineExceeded"
                    and status.get("updatedReplicas", 0) >= want
                    and status.get("replicas", 0) <= status.get("updatedReplicas", 0)
                    and status.get("availableReplicas", 0) >= status.get("updatedReplicas", 0)):
                self.completed[(meta["name"], gen)] = time.time()

        store.on_change.append(on_change)

    def between(self, start: float, end: float) -> list[tuple[float, str, str, str]]:
        return [r for r in list(self.requests) if start <= r[0] <= end and r[3] != BENCH_AGENT]


def _deployment(image: str) -> dict[str, t.Any]:
    from tests.k8s_server import manifests as m
    # each new pod listens 1.5 s after it starts: the rollout lasts several seconds, longer than a waiter
    # (ansible-playbook included) needs to start, so every waiter is waiting when the rollout completes
    return m.deployment(NAME, image, replicas=3, max_surge=1, max_unavailable=0, start_delay=START_DELAY_S)


def _classify(reqs: list[tuple[float, str, str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for _t, verb, path, _agent in reqs:
        kind = "watch" if "watch=" in path else verb.lower()
        out[kind] = out.get(kind, 0) + 1
    return out


def kubectl_version() -> str:
    out = subprocess.run(["kubectl", "version", "--client", "-o", "json"], capture_output=True, text=True,
                         check=False).stdout
    try:
        return json.loads(out)["clientVersion"]["gitVersion"]
    except (ValueError, KeyError):
        return "unknown"


def main(argv: t.Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--rollouts", type=int, default=20, help="rollouts per waiter (20)")
    parser.add_argument("--only", action="append", choices=["zerodown", "kubernetes.core", "kubectl"])
    args = parser.parse_args(argv)
    ensure_importable()
    from kubernetes import client as kclient
    from kubernetes import config as kconfig

    from bench.anchors import collection_version, ensure_venv
    from tests.k8s_server import K8sTestServer

    anchors = ensure_venv()
    work = pathlib.Path(tempfile.mkdtemp(prefix="zd-bench-k8s-"))
    server = K8sTestServer().start()
    observed = Observed(server)
    kubeconfig = server.write_kubeconfig(str(work / "kubeconfig"))
    api = kclient.ApiClient(kconfig.new_client_from_config(kubeconfig).configuration)
    api.user_agent = BENCH_AGENT
    apps = kclient.AppsV1Api(api)
    apps.create_namespaced_deployment("default", _deployment("zerodown/demo-app:1.0"))
    images = ["zerodown/demo-app:2.0", "zerodown/demo-app:1.0"]
    conn = {"kubeconfig": kubeconfig, "context": "zerodown-test"}

    def settle() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            dep = apps.read_namespaced_deployment(NAME, "default")
            if (dep.metadata.generation, ) and (NAME, dep.metadata.generation) in observed.completed:
                time.sleep(1.2)  # old pods finish their grace period before the next rollout
                return
            time.sleep(0.1)
        raise RuntimeError("the Deployment did not settle")

    def next_image() -> str:
        current = apps.read_namespaced_deployment(NAME, "default").spec.template.spec.containers[0].image
        return images[1] if current == images[0] else images[0]

    def patch(image: str) -> int:
        dep = apps.patch_namespaced_deployment(NAME, "default", {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": image}]}}}})
        return dep.metadata.generation

    def run_module(python: pathlib.Path, module: str, params: dict[str, t.Any], env: dict[str, str]
                   ) -> tuple[float, float, bool, str]:
        """Run an Ansible module as a plain process (what AnsiballZ runs on the target); returns its start
        time, the time its JSON result arrived on stdout, whether it succeeded, and its output."""
        args_file = work / f"args-{time.monotonic_ns()}.json"
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params}))
        start = time.time()
        proc = subprocess.Popen([str(python), "-m", module, str(args_file)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=str(work))
        assert proc.stdout is not None
        out, arrived = b"", None
        while chunk := os.read(proc.stdout.fileno(), 65536):
            if arrived is None and b"{" in chunk:
                arrived = time.time()
            out += chunk
        proc.wait(30)
        text = out.decode(errors="replace")
        try:
            ok = not json.loads(text[text.index("{"):]).get("failed")
        except ValueError:
            ok = False
        return start, arrived or time.time(), ok, text + proc.stderr.read().decode(errors="replace")

    ours_env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    anchors_env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHONPATH"))}

    def one(tool: str) -> dict[str, t.Any]:
        image = next_image()
        out = ""
        if tool == "kubectl":
            gen = patch(image)
            start = time.time()
            proc = subprocess.run(["kubectl", "--kubeconfig", kubeconfig, "rollout", "status",
                                   f"deployment/{NAME}", "--timeout=120s"], capture_output=True, text=True,
                                  timeout=150, check=False)
            returned, ok, out = time.time(), proc.returncode == 0, proc.stdout + proc.stderr
        elif tool == "zerodown":
            gen = patch(image)
            start, returned, ok, out = run_module(
                VENV_BIN / "python", "ansible_collections.zerodown.rollout.plugins.modules.rollout_wait",
                dict(conn, platform="kubernetes", name=NAME, namespace="default", timeout=120), ours_env)
        else:
            start, returned, ok, out = run_module(
                anchors / "python", "ansible_collections.kubernetes.core.plugins.modules.k8s",
                dict(conn, state="present", namespace="default", definition=_deployment(image), wait=True),
                anchors_env)
            gen = apps.read_namespaced_deployment(NAME, "default").metadata.generation
        settle()
        done = observed.completed.get((NAME, gen))
        reqs = observed.between(start, returned)
        first = reqs[0][0] if reqs else None
        entry = {"ok": ok, "generation": gen, "latency_s": None if done is None else round(returned - done, 4),
                 "requests": len(reqs), "by_kind": _classify(reqs),
                 "paths": [f"{verb} {path.split('?')[0]}{' (watch)' if 'watch=' in path else ''}"
                           for _t, verb, path, _a in reqs],
                 "waiter_started_before_completion": bool(first is not None and done is not None and first < done)}
        if not ok:
            entry["output"] = out[-1500:]
        return entry

    tools = args.only or ["zerodown", "kubernetes.core", "kubectl"]
    runs: dict[str, list[dict[str, t.Any]]] = {tool: [] for tool in tools}
    try:
        settle()
        for _i in range(args.rollouts):
            for tool in tools:  # interleaved, so drift of the machine hits every waiter alike
                runs[tool].append(one(tool))
                print(tool, runs[tool][-1]["latency_s"], runs[tool][-1]["requests"], file=sys.stderr)
    finally:
        server.stop()
    result: dict[str, t.Any] = {
        "what": "rollout completion -> waiter return latency and API requests per rollout, test API server",
        "rollouts_per_waiter": args.rollouts,
        "deployment": f"3 replicas, maxSurge 1, maxUnavailable 0, readinessProbe period 1 s, app listening "
                      f"{START_DELAY_S} s after start",
        "anchors": {"kubernetes.core": collection_version(anchors, "kubernetes.core"), "kubectl": kubectl_version()},
        "goal": {"median_latency_s": GOAL_MEDIAN_S, "fewer_requests_than": "kubernetes.core"},
        "waiters": {},
    }
    for tool, entries in runs.items():
        valid = [e for e in entries if e["ok"] and e["latency_s"] is not None and e["waiter_started_before_completion"]]
        early = [e for e in valid if e["latency_s"] < 0]
        result["waiters"][tool] = {
            "latency_s": summary([e["latency_s"] for e in valid]),
            "requests_per_rollout": summary([e["requests"] for e in entries if e["ok"]]),
            "failed_runs": sum(1 for e in entries if not e["ok"]),
            # a negative latency: the waiter said "done" before the rollout had completed
            "returned_before_completion": len(early),
            "samples_where_waiter_started_after_completion": sum(1 for e in entries if e["ok"]
                                                                 and not e["waiter_started_before_completion"]),
            "runs": entries,
        }
    ours = result["waiters"].get("zerodown", {})
    core = result["waiters"].get("kubernetes.core", {})
    if ours and core and ours["latency_s"].get("n"):
        result["meets_goal"] = (ours["latency_s"]["median"] <= GOAL_MEDIAN_S
                                and ours["requests_per_rollout"]["median"] < core["requests_per_rollout"]["median"])
    out = write_result("k8s_wait", result)
    print(json.dumps({tool: {"latency_median_s": w["latency_s"].get("median"),
                             "requests_median": w["requests_per_rollout"].get("median"),
                             "failed": w["failed_runs"]} for tool, w in result["waiters"].items()}
                     | {"meets_goal": result.get("meets_goal"), "out": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
