"""The local Docker engine for the integration tests: connected, with the demo images, and this run's containers
removed after."""
from __future__ import annotations

import os
import typing as t

import pytest

from tests.support.docker_harness import RUN_ID, TEST_LABEL
from tests.support.unavailable import skip_or_fail


def demo_engine(images: t.Sequence[str] = ()) -> t.Any:
    """A client of the engine at DOCKER_HOST (else the default socket) that answers and has the demo ``images``;
    otherwise the test is skipped, or failed with CI=true, saying what to run."""
    docker = pytest.importorskip("docker")
    try:
        client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock",
                                     version="auto", timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        skip_or_fail(f"Docker engine not reachable ({exc}); run `make services`")
    missing = []
    for ref in images:
        try:
            client.images.get(ref)
        except docker.errors.ImageNotFound:
            missing.append(ref)
    if missing:
        skip_or_fail(f"demo images missing: {', '.join(missing)}; run `make images`")
    return client


def remove_run_containers(client: t.Any) -> None:
    """Remove the containers this test run labelled (another run or a benchmark may share the engine); the listing
    is sparse (no inspect per container), so one removed meanwhile cannot fail it."""
    docker = pytest.importorskip("docker")
    for container in client.containers.list(all=True, sparse=True, filters={"label": f"{TEST_LABEL}={RUN_ID}"}):
        try:
            container.remove(force=True, v=True)
        except docker.errors.APIError:
            pass
