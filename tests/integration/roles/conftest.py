"""Fixtures of the role/playbook tests."""
from __future__ import annotations

import os

import pytest

from tests.support.unavailable import skip_or_fail


@pytest.fixture(scope="session")
def docker_engine():
    """The local Docker engine with the demo images (skips, or fails under CI=true, without them)."""
    docker = pytest.importorskip("docker")
    try:
        client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock",
                                     version="auto", timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        skip_or_fail(f"Docker engine not reachable ({exc}); run `make services`")
    for ref in ("zerodown/demo-app:1.0", "zerodown/demo-app:2.0", "zerodown/demo-app:broken"):
        try:
            client.images.get(ref)
        except docker.errors.ImageNotFound:
            skip_or_fail(f"demo image {ref} missing; run `make images`")
    yield client
    client.close()
