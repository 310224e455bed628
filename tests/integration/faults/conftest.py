"""Fixtures of the fault tests: the Docker engine, an HAProxy per test and cleanup, from the Docker tests' harness."""
from __future__ import annotations

import os

import pytest


from tests.support.docker_harness import IMAGE_BROKEN, IMAGE_SLOW_V1, IMAGE_SLOW_V2, IMAGE_V1, IMAGE_V2, RUN_ID, TEST_LABEL, Haproxy  # noqa: E402
from tests.support.unavailable import skip_or_fail  # noqa: E402

docker = pytest.importorskip("docker")


@pytest.fixture(scope="session")
def engine():
    try:
        client = docker.DockerClient(base_url=os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock",
                                     version="auto", timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        skip_or_fail(f"Docker engine not reachable ({exc}); run `make services`")
    for ref in (IMAGE_V1, IMAGE_V2, IMAGE_BROKEN, IMAGE_SLOW_V1, IMAGE_SLOW_V2):
        try:
            client.images.get(ref)
        except docker.errors.ImageNotFound:
            skip_or_fail(f"demo image {ref} missing; run `make images`")
    yield client
    # only this run's containers (another test run or a benchmark may share the engine); sparse: no inspect
    # per container, so one removed meanwhile cannot fail the listing
    for container in client.containers.list(all=True, sparse=True, filters={"label": f"{TEST_LABEL}={RUN_ID}"}):
        try:
            container.remove(force=True, v=True)
        except docker.errors.APIError:
            pass
    client.close()


@pytest.fixture
def workload_name():
    import uuid
    return f"zdf-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def haproxy(workload_name):
    proxy = Haproxy(workload_name)
    yield proxy
    proxy.stop()
