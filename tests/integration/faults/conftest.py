"""Fixtures of the fault tests: the Docker engine, an HAProxy per test and cleanup, from the Docker tests' harness."""
from __future__ import annotations

import pytest


from tests.support.docker_harness import IMAGE_BROKEN, IMAGE_SLOW_V1, IMAGE_SLOW_V2, IMAGE_V1, IMAGE_V2, Haproxy  # noqa: E402
from tests.support.docker_engine import demo_engine, remove_run_containers  # noqa: E402

docker = pytest.importorskip("docker")


@pytest.fixture(scope="session")
def engine():
    client = demo_engine((IMAGE_V1, IMAGE_V2, IMAGE_BROKEN, IMAGE_SLOW_V1, IMAGE_SLOW_V2))
    yield client
    remove_run_containers(client)
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
