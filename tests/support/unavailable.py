"""What a test does when something it needs is not on this machine (an engine, an image, a tool, root)."""
from __future__ import annotations

import os
import typing as t

import pytest


def skip_or_fail(message: str) -> t.NoReturn:
    """Skip the test with ``message``; with CI=true fail it instead, since there a missing service, image or tool
    is a broken CI machine, never a reason to pass without testing."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
