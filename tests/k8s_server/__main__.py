"""Command line: python -m tests.k8s_server --port 0 --kubeconfig PATH [--nodes 3] [-v]."""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import K8sTestServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.k8s_server",
                                     description="Kubernetes test API server (HTTP, loopback only)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (loopback; default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="listen port (0 = pick a free one)")
    parser.add_argument("--kubeconfig", required=True, help="where to write a kubeconfig for this server")
    parser.add_argument("--context", default="zerodown-test", help="context name in the kubeconfig")
    parser.add_argument("--namespace", default="default", help="namespace of the context")
    parser.add_argument("--nodes", type=int, default=3, help="number of fake nodes (DaemonSets run one pod each)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if not args.host.startswith("127."):
        parser.error("the test server only listens on loopback addresses (127.0.0.0/8)")
    server = K8sTestServer(host=args.host, port=args.port, nodes=args.nodes, verbose=args.verbose).start()
    server.write_kubeconfig(args.kubeconfig, context=args.context, namespace=args.namespace)
    print(f"k8s test server listening on {server.url}; kubeconfig {args.kubeconfig}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
