"""A Kubernetes test API server for the zerodown.rollout integration tests.

Start it in-process with :class:`K8sTestServer` or from a shell with
``python -m tests.k8s_server --port 0 --kubeconfig PATH`` (see docs/testing-kubernetes.md).
"""
from __future__ import annotations

from .server import K8sTestServer

__all__ = ["K8sTestServer"]
