"""Fleet wall time: one playbook upgrading 1, 5 and 20 targets at once (the scaling curve).

    .venv/bin/python -m bench.fleet [--targets 1 --targets 5 --targets 20]

Each target is an inventory host standing for a cluster: its own namespace on one Kubernetes test API server
(in-process), with a 3-replica Deployment (maxSurge 1, maxUnavailable 0, readinessProbe). The play runs
``zerodown.rollout.image_upgrade`` (wait: true) on every host with ansible-playbook's ``forks`` = 10 and reports
the task's wall time (from the first host's start to the last host's result) and the slowest host's. Two cores
run the server, its fake pods and every module process, so the curve shows the controller-side cost of a fleet.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time
import typing as t

from bench.common import Playbook, ensure_importable, write_result

FORKS = 10


def main(argv: t.Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--targets", type=int, action="append", help="fleet sizes (1 5 20)")
    args = parser.parse_args(argv)
    ensure_importable()
    from kubernetes import client as kclient
    from kubernetes import config as kconfig

    from tests.k8s_server import K8sTestServer
    from tests.k8s_server import manifests as m

    sizes = args.targets or [1, 5, 20]
    work = pathlib.Path(tempfile.mkdtemp(prefix="zd-bench-fleet-"))
    server = K8sTestServer().start()
    curve = []
    try:
        kubeconfig = server.write_kubeconfig(str(work / "kubeconfig"))
        api = kclient.ApiClient(kconfig.new_client_from_config(kubeconfig).configuration)
        core, apps = kclient.CoreV1Api(api), kclient.AppsV1Api(api)
        for size in sizes:
            namespaces = [f"fleet{size}-{i}" for i in range(size)]
            for ns in namespaces:
                core.create_namespace({"metadata": {"name": ns}})
                apps.create_namespaced_deployment(ns, m.deployment("web", f"{m.DEMO_IMAGE}:1.0", replicas=3,
                                                                   max_surge=1, max_unavailable=0))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not all(
                    (apps.read_namespaced_deployment("web", ns).status.available_replicas or 0) == 3
                    for ns in namespaces):
                time.sleep(0.2)
            inventory = {"all": {"hosts": {ns: {"zd_namespace": ns} for ns in namespaces}}}
            book = Playbook(work, [{"hosts": "all", "gather_facts": False, "connection": "local", "tasks": [
                {"name": "upgrade", "zerodown.rollout.image_upgrade": {
                    "platform": "kubernetes", "name": "web", "namespace": "{{ zd_namespace }}",
                    "image": f"{m.DEMO_IMAGE}:2.0", "kubeconfig": kubeconfig, "context": "zerodown-test",
                    "wait_timeout": 300}}]}], inventory=inventory, forks=FORKS)
            began = time.time()
            rc, out, events = book.run(timeout=900)
            playbook_s = time.time() - began
            start = min(e["t"] for e in events if e["event"] == "start")
            results = [e for e in events if e["event"] in ("ok", "failed")]
            failed = sum(1 for e in results if e["event"] == "failed")
            curve.append({"targets": size, "forks": FORKS, "task_wall_s": round(max(e["t"] for e in results) - start, 3),
                          "playbook_wall_s": round(playbook_s, 3), "failed": failed, "ok": rc == 0})
            print(json.dumps(curve[-1]), file=sys.stderr)
            for ns in namespaces:
                core.delete_namespace(ns)
    finally:
        server.stop()
    single = curve[0]["task_wall_s"] if curve else None
    for point in curve:
        point["vs_single_target"] = round(point["task_wall_s"] / single, 2) if single else None
    out = write_result("fleet", {"what": "one image_upgrade task (wait: true) over N targets, test API server",
                                 "deployment": "3 replicas per target, maxSurge 1, maxUnavailable 0",
                                 "curve": curve})
    print(json.dumps({"curve": [(p["targets"], p["task_wall_s"]) for p in curve], "out": str(out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
