"""Fixtures of the Kubernetes scenarios (k8s_cluster and k8s_namespace come from tests/conftest.py)."""
from __future__ import annotations

import pytest

from tests.k8s_server.testing import Kubectl


@pytest.fixture
def kubectl(k8s_cluster, k8s_namespace) -> Kubectl:
    """kubectl bound to the cluster's kubeconfig and a fresh namespace."""
    return Kubectl(k8s_cluster, k8s_namespace)
