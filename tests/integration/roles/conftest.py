"""Fixtures of the role/playbook tests."""
from __future__ import annotations

import pytest

from tests.support.docker_engine import demo_engine


@pytest.fixture(scope="session")
def docker_engine():
    """The local Docker engine with the demo images (skips, or fails under CI=true, without them)."""
    client = demo_engine(("zerodown/demo-app:1.0", "zerodown/demo-app:2.0", "zerodown/demo-app:broken"))
    yield client
    client.close()
