"""Fixtures of the Docker backend's integration tests: engine, HAProxy, cleanup."""
from __future__ import annotations

import subprocess
import uuid

import pytest


from tests.support.docker_harness import IMAGE_BROKEN, IMAGE_FLAKY, IMAGE_SLOW_V1, IMAGE_SLOW_V2, IMAGE_V1, IMAGE_V2, Haproxy, SecondDockerd
from tests.support.docker_engine import demo_engine, remove_run_containers
from tests.support.unavailable import skip_or_fail

docker = pytest.importorskip("docker")

pytestmark = pytest.mark.docker


@pytest.fixture(scope="session")
def engine():
    client = demo_engine((IMAGE_V1, IMAGE_V2, IMAGE_BROKEN, IMAGE_FLAKY, IMAGE_SLOW_V1, IMAGE_SLOW_V2))
    yield client
    remove_run_containers(client)
    client.close()


@pytest.fixture
def workload_name():
    return f"zdt-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def haproxy(workload_name):
    proxy = Haproxy(workload_name)
    yield proxy
    proxy.stop()


@pytest.fixture
def containers(engine, workload_name):
    """Lists the workload's containers; removes them after the test."""
    def listing(client=None, all=True):  # noqa: A002
        return (client or engine).containers.list(all=all, filters={"label": f"zerodown.workload={workload_name}"})
    yield listing
    for container in listing():
        try:
            container.remove(force=True, v=True)
        except docker.errors.APIError:
            pass


@pytest.fixture(scope="session")
def second_engine(engine):
    """A second dockerd (a second "host"), started for the multi-host test and torn down after."""
    try:
        daemon = SecondDockerd([IMAGE_V1, IMAGE_V2])
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        skip_or_fail(f"cannot start a second dockerd ({exc}); it needs root and the ip tool")
    yield daemon
    daemon.stop()
