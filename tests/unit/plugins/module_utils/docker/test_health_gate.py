"""The health gate tolerates a brief unhealthy flap but fails a container that stays unhealthy."""
from __future__ import annotations

import types

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker import replicas
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import RolloutFailed


def attrs(health, log_code=1):
    return {"Id": "c1", "Name": "/web-1", "Image": "sha256:x",
            "Config": {"Labels": {replicas.LABEL_IMAGE: "app:2.0"}},
            "State": {"Status": "running", "Health": {"Status": health,
                                                      "Log": [{"ExitCode": log_code, "Output": "wget: timed out"}]}}}


def engine_answering(states):
    """An engine whose inspect walks through ``states`` and then keeps the last one."""
    calls = []

    def inspect_container(cid):
        calls.append(cid)
        return attrs(states[min(len(calls), len(states)) - 1])

    return types.SimpleNamespace(inspect_container=inspect_container), calls


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    monkeypatch.setattr(replicas, "POLL", 0.01)
    monkeypatch.setattr(replicas, "UNHEALTHY_GRACE", 0.2)


def test_brief_unhealthy_flap_then_healthy_passes():
    engine, calls = engine_answering(["starting", "unhealthy", "unhealthy", "healthy"])
    passed = replicas.wait_healthy(engine, ["c1"], timeout=5)
    assert list(passed) == ["c1"] and len(calls) == 4


def test_staying_unhealthy_fails_after_the_grace_with_the_health_log():
    engine, calls = engine_answering(["starting", "unhealthy"])
    with pytest.raises(RolloutFailed) as err:
        replicas.wait_healthy(engine, ["c1"], timeout=5)
    assert "is unhealthy" in err.value.msg and "wget: timed out" in err.value.msg
    # it kept looking for the grace period (0.2 s at 0.01 s polls), and failed well before the timeout
    assert 5 < len(calls) < 200
