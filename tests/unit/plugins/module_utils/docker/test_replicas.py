"""docker/replicas.py: the label model, published addresses, config cloning and creation configs, the health log
and the health gate (a brief unhealthy flap passes, staying unhealthy fails)."""
from __future__ import annotations

import types

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker import replicas as rp
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput, RolloutFailed

from tests.support.docker_containers import container_attrs as attrs


def test_published_address():
    assert rp.published_address(attrs("a", 1, True, port=32768), "8080/tcp") == "127.0.0.1:32768"
    assert rp.published_address(attrs("a", 1, True), "8080/tcp") is None
    wildcard = attrs("a", 1, True, port=1)
    wildcard["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostIp"] = "0.0.0.0"
    assert rp.published_address(wildcard, None) == "127.0.0.1:1"


def test_clone_keeps_what_was_set_and_drops_what_the_image_gave():
    old = {
        "Id": "abcdef123456" + "0" * 52,
        "Config": {
            "Hostname": "abcdef123456",
            "Env": ["PATH=/bin", "APP_VERSION=1.0", "DB_URL=postgres://db"],
            "Labels": {"org.opencontainers.image.version": "1.0", "team": "shop", rp.LABEL_REVISION: "1",
                       rp.LABEL_WORKLOAD: "w", rp.LABEL_CAUSE: "old"},
            "Cmd": None, "Entrypoint": ["/bin/busybox", "sh", "/app.sh"],
            "Healthcheck": {"Test": ["CMD", "true"]},
            "ExposedPorts": {"8080/tcp": {}},
        },
        "HostConfig": {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                       "RestartPolicy": {"Name": "unless-stopped"}, "NetworkMode": "shopnet"},
        "NetworkSettings": {"Networks": {"shopnet": {"Aliases": ["web", "abcdef123456"]}, "other": {"Aliases": None}}},
    }
    image_config = {"Env": ["PATH=/bin", "APP_VERSION=1.0"], "Labels": {"org.opencontainers.image.version": "1.0"},
                    "Entrypoint": ["/bin/busybox", "sh", "/app.sh"], "Healthcheck": {"Test": ["CMD", "true"]}}
    config, later = rp.clone_config(old, image_config, "app:2", 2, "release 2")
    assert config["Image"] == "app:2"
    assert config["Env"] == ["DB_URL=postgres://db"]  # APP_VERSION comes from the new image now
    assert config["Labels"]["team"] == "shop" and "org.opencontainers.image.version" not in config["Labels"]
    assert config["Labels"][rp.LABEL_REVISION] == "2" and config["Labels"][rp.LABEL_CAUSE] == "release 2"
    assert "Entrypoint" not in config and "Healthcheck" not in config and "Hostname" not in config
    assert config["HostConfig"]["PortBindings"] == old["HostConfig"]["PortBindings"]
    assert config["NetworkingConfig"] == {"EndpointsConfig": {"shopnet": {"Aliases": ["web"]}}}
    assert later == [("other", [])]


def test_creation_config_from_options():
    config, later = rp.creation_config(
        "app:1", "w", 1, "created", {"port": 8080, "env": {"B": "2", "A": "1"}, "networks": ["n1", "n2"],
                                     "healthcheck": {"test": ["wget", "-q", "http://127.0.0.1:8080/"], "interval": 0.5}},
        {"ExposedPorts": {"8080/tcp": {}}})
    assert config["Env"] == ["A=1", "B=2"]
    assert config["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    assert config["HostConfig"]["NetworkMode"] == "n1" and later == ["n2"]
    assert config["Healthcheck"]["Test"][0] == "CMD" and config["Healthcheck"]["Interval"] == 500_000_000
    assert config["Labels"][rp.LABEL_WORKLOAD] == "w" and config["Labels"][rp.LABEL_PORT] == "8080/tcp"


def test_creation_config_rejects_what_cannot_work():
    with pytest.raises(InvalidInput, match="port is required"):
        rp.creation_config("app:1", "w", 1, "c", {}, {"ExposedPorts": {}})
    with pytest.raises(InvalidInput, match="zerodown.workload"):
        rp.creation_config("app:1", "w", 1, "c", {"port": 80, "labels": {"zerodown.workload": "x"}}, {})
    # the only exposed TCP port is used when port is not given
    config, later = rp.creation_config("app:1", "w", 1, "c", {}, {"ExposedPorts": {"9000/tcp": {}}})
    assert config["ExposedPorts"] == {"9000/tcp": {}} and later == []


@pytest.mark.parametrize("name,ok", [("shop", True), ("shop-web_1.x", True), ("-shop", False), ("a b", False),
                                     ("x" * 41, False)])
def test_workload_names(name, ok):
    if ok:
        rp.check_workload_name(name)
    else:
        with pytest.raises(InvalidInput):
            rp.check_workload_name(name)


def test_health_log_lines():
    a = {"State": {"Health": {"Log": [{"ExitCode": 1, "Output": "wget: server returned error: HTTP/1.0 404 Not Found\n"}]}}}
    assert rp.health_log(a) == ["exit 1: wget: server returned error: HTTP/1.0 404 Not Found"]


# -- the health gate -------------------------------------------------------------------------------------------
def health_attrs(health, log_code=1):
    return {"Id": "c1", "Name": "/web-1", "Image": "sha256:x",
            "Config": {"Labels": {rp.LABEL_IMAGE: "app:2.0"}},
            "State": {"Status": "running", "Health": {"Status": health,
                                                      "Log": [{"ExitCode": log_code, "Output": "wget: timed out"}]}}}


def engine_answering(states):
    """An engine whose inspect walks through ``states`` and then keeps the last one."""
    calls = []

    def inspect_container(cid):
        calls.append(cid)
        return health_attrs(states[min(len(calls), len(states)) - 1])

    return types.SimpleNamespace(inspect_container=inspect_container), calls


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(rp, "POLL", 0.01)
    monkeypatch.setattr(rp, "UNHEALTHY_GRACE", 0.2)


def test_brief_unhealthy_flap_then_healthy_passes(fast):
    engine, calls = engine_answering(["starting", "unhealthy", "unhealthy", "healthy"])
    passed = rp.wait_healthy(engine, ["c1"], timeout=5)
    assert list(passed) == ["c1"] and len(calls) == 4


def test_staying_unhealthy_fails_after_the_grace_with_the_health_log(fast):
    engine, calls = engine_answering(["starting", "unhealthy"])
    with pytest.raises(RolloutFailed) as err:
        rp.wait_healthy(engine, ["c1"], timeout=5)
    assert "is unhealthy" in err.value.msg and "wget: timed out" in err.value.msg
    # it kept looking for the grace period (0.2 s at 0.01 s polls), and failed well before the timeout
    assert 5 < len(calls) < 200
