"""Throughput of the traffic sampler against wrk, on the same fast local endpoint.

    .venv/bin/python -m bench.traffic_bench [--seconds 5] [--out bench/results/traffic.json]

The endpoint is HAProxy answering a fixed JSON body itself (``http-request return``) on 127.0.0.1, so the
server is never the bottleneck; without HAProxy, a threaded Python server stands in (and is then the limit,
as the results say). wrk and the sampler take turns, never overlap. Everything stops by itself: each run
is bounded by --seconds and HAProxy is stopped by its pid at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / ".tmp" / "collections"))
GOAL_RPS = 1000.0
BODY = '{"version":"1.0"}'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_importable() -> None:
    link = ROOT / ".tmp" / "collections" / "ansible_collections" / "zerodown" / "rollout"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT, target_is_directory=True)


class HaproxyEndpoint:
    def __init__(self, workdir: pathlib.Path) -> None:
        self.port = _free_port()
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(
            "global\n    maxconn 4096\n"
            "defaults\n    mode http\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n"
            f"frontend bench\n    bind 127.0.0.1:{self.port}\n"
            f"    http-request return status 200 content-type application/json string '{BODY}'\n")
        self.proc: Optional[subprocess.Popen] = None

    def __enter__(self) -> "HaproxyEndpoint":
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(self.config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"haproxy exited: {self.proc.stderr.read().decode(errors='replace')}")
                time.sleep(0.05)
        raise RuntimeError("haproxy did not listen in time")

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/version"

    @staticmethod
    def version() -> str:
        out = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, check=False).stdout
        return out.splitlines()[0] if out else "unknown"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        body = BODY.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class PythonEndpoint:
    def __enter__(self) -> "PythonEndpoint":
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/version"


def run_wrk(url: str, seconds: float, threads: int = 2, connections: int = 8) -> Optional[Dict[str, Any]]:
    if not shutil.which("wrk"):
        return None
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--latency", url],
                         capture_output=True, text=True, timeout=seconds + 30, check=False).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)

    def ms(match: Optional[re.Match]) -> Optional[float]:
        if not match:
            return None
        factor = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
        return round(float(match.group(1)) * factor, 3)

    return {"threads": threads, "connections": connections, "seconds": seconds,
            "requests": int(total.group(1)) if total else None,
            "requests_per_s": float(rps.group(1)) if rps else None,
            "latency_ms": {"p50": ms(p50), "p99": ms(p99)}}


def run_sampler(url: str, seconds: float, concurrency: int) -> Dict[str, Any]:
    from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.config import SamplerConfig
    from ansible_collections.zerodown.rollout.plugins.module_utils.traffic.sampler import TrafficSampler

    report = TrafficSampler(SamplerConfig(url=url, concurrency=concurrency)).run(duration=seconds)
    return {"concurrency": concurrency, "seconds": seconds, "requests": report.total,
            "requests_per_s": report.requests_per_s, "errors": report.errors,
            "versions": report.versions, "latency_ms": report.latency_ms}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run (5)")
    parser.add_argument("--concurrency", type=int, action="append", help="sampler workers (default 1 2 4 8)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "traffic.json"))
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 60:
        parser.error("--seconds must be within (0, 60]")
    _ensure_importable()
    import requests

    levels = args.concurrency or [1, 2, 4, 8]
    with tempfile.TemporaryDirectory(prefix="traffic-bench-") as tmp:
        if shutil.which("haproxy"):
            endpoint: Any = HaproxyEndpoint(pathlib.Path(tmp))
            server = f"haproxy http-request return ({HaproxyEndpoint.version()})"
        else:
            endpoint = PythonEndpoint()
            server = "python ThreadingHTTPServer (haproxy not installed: the server is the limit)"
        with endpoint:
            wrk = run_wrk(endpoint.url, args.seconds)
            sampler = [run_sampler(endpoint.url, args.seconds, level) for level in levels]
    best = max(run["requests_per_s"] for run in sampler)
    result = {
        "what": "traffic sampler (requests, keep-alive Session per worker thread) vs wrk, same local endpoint",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "requests": requests.__version__, "platform": platform.platform()},
        "server": server,
        "wrk": wrk,
        "sampler": sampler,
        "best_sampler_requests_per_s": best,
        "goal_requests_per_s": GOAL_RPS,
        "meets_goal": best >= GOAL_RPS,
        "sampler_vs_wrk": round(best / wrk["requests_per_s"], 4) if wrk and wrk.get("requests_per_s") else None,
        "note": ("Client and server share the machine's cores. The sampler is bound by Python's GIL, so more "
                 "workers add latency rather than throughput once the one interpreter core is busy."),
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"wrk_rps": wrk and wrk["requests_per_s"], "sampler": {r["concurrency"]: r["requests_per_s"]
                      for r in sampler}, "meets_goal": result["meets_goal"], "out": str(out)}))
    return 0 if result["meets_goal"] else 1


if __name__ == "__main__":
    sys.exit(main())
