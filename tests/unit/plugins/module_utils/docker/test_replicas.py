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


# -- replicas reached on a network (docker_container.lb_network) -------------------------------------------------
def on_network(cid="a", network="appnet", ip="172.30.0.5", ip6="", published=False, running=True):
    a = attrs(cid, 1, running, port=32768 if published else None)
    a["Config"]["Labels"][rp.LABEL_LB_NETWORK] = network
    a["NetworkSettings"]["Networks"] = {network: {"IPAddress": ip, "GlobalIPv6Address": ip6},
                                        "other": {"IPAddress": "10.9.9.9"}}
    return a


def test_a_replica_on_a_network_is_reached_at_its_address_there_not_at_a_published_port():
    rep = rp.Replica.from_attrs(on_network(published=True))
    assert (rep.lb_network, rep.address) == ("appnet", "172.30.0.5:8080")
    assert rp.Replica.from_attrs(on_network(ip="", ip6="fd00::5")).address == "[fd00::5]:8080"
    # stopped (no address on the network yet) or not attached: none, and the reason names the network
    stopped = rp.Replica.from_attrs(on_network(ip="", running=False))
    assert stopped.address is None and "no address on network appnet" in stopped.no_address()
    assert rp.network_address(on_network(), "elsewhere", "8080/tcp") is None
    assert rp.network_address(on_network(), "appnet", None) is None
    # without the label, the published port as before
    assert rp.Replica.from_attrs(attrs("a", 1, True, port=32768)).lb_network is None
    assert "publishes no port" in rp.Replica.from_attrs(attrs("a", 1, True)).no_address()


@pytest.mark.parametrize("spec,match", [
    ({"lb_network": ""}, "must name a Docker network"),
    ({"lb_network": "  "}, "must name a Docker network"),
    ({"lb_network": "host"}, "no address of its own"),
    ({"lb_network": "none"}, "no address of its own"),
    ({"lb_network": "container:db"}, "no address of its own"),
    ({"lb_network": "appnet", "publish_address": "127.0.0.1"}, "exclude each other"),
    ({"lb_network": "appnet", "publish_address": ""}, "exclude each other"),
])
def test_lb_network_values_that_cannot_work_are_refused(spec, match):
    with pytest.raises(InvalidInput, match=match):
        rp.lb_network_option(spec)


def test_lb_network_option_as_given():
    assert rp.lb_network_option({"lb_network": "appnet"}) == "appnet"
    assert rp.lb_network_option({"publish_address": "0.0.0.0"}) is None
    assert rp.lb_network_option({}) is None


def test_creation_on_a_network_publishes_nothing_and_attaches_it():
    image = {"ExposedPorts": {"8080/tcp": {}}}
    config, later = rp.creation_config("app:1", "w", 1, "c", {"port": 8080}, image, lb_network="appnet")
    assert config["HostConfig"]["PortBindings"] == {}
    assert config["Labels"][rp.LABEL_LB_NETWORK] == "appnet"
    # no other network asked for: it replaces the default bridge
    assert config["HostConfig"]["NetworkMode"] == "appnet" and later == []
    assert config["NetworkingConfig"] == {"EndpointsConfig": {"appnet": {}}}
    # other networks asked for: added after them, or kept where it is
    config, later = rp.creation_config("app:1", "w", 1, "c", {"networks": ["db"]}, image, lb_network="appnet")
    assert config["HostConfig"]["NetworkMode"] == "db" and later == ["appnet"]
    config, later = rp.creation_config("app:1", "w", 1, "c", {"networks": ["db", "appnet"]}, image,
                                       lb_network="appnet")
    assert later == ["appnet"]
    # published as before without it; an explicit empty publish_address is refused, not replaced by the default
    config, _later = rp.creation_config("app:1", "w", 1, "c", {"publish_address": "0.0.0.0"}, image)
    assert config["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": ""}]}
    assert rp.LABEL_LB_NETWORK not in config["Labels"]
    with pytest.raises(InvalidInput, match="publish_address must be an address"):
        rp.creation_config("app:1", "w", 1, "c", {"publish_address": ""}, image)


def test_a_copy_keeps_the_network_addressing():
    old = on_network()
    old["HostConfig"] = {"PortBindings": {}, "NetworkMode": "appnet"}
    old["NetworkSettings"]["Networks"] = {"appnet": {"IPAddress": "172.30.0.5", "Aliases": None}}
    config, later = rp.clone_config(old, {}, "app:2", 2, None)
    assert config["Labels"][rp.LABEL_LB_NETWORK] == "appnet" and config["HostConfig"]["PortBindings"] == {}
    assert config["HostConfig"]["NetworkMode"] == "appnet" and later == []


def test_addressing_of_an_existing_workload_cannot_change():
    resolved = []

    def resolve(name):
        resolved.append(name)
        return {"1234abcd": "appnet"}.get(name, name)

    # no docker_container: the workload's addressing stands; the same one asked for (by name or id): fine
    rp.check_addressing(None, "appnet", resolve, "w")
    rp.check_addressing({"lb_network": "appnet"}, "appnet", resolve, "w")
    assert resolved == []
    rp.check_addressing({"lb_network": "1234abcd"}, "appnet", resolve, "w")
    rp.check_addressing({"publish_address": "127.0.0.1"}, None, resolve, "w")
    with pytest.raises(InvalidInput, match="on network appnet .* asks for on published ports"):
        rp.check_addressing({"port": 8080}, "appnet", resolve, "w")
    with pytest.raises(InvalidInput, match="on their published ports, and this task asks for on network appnet"):
        rp.check_addressing({"lb_network": "appnet"}, None, resolve, "w")
    with pytest.raises(InvalidInput, match="on network appnet .* asks for on network other"):
        rp.check_addressing({"lb_network": "other"}, "appnet", resolve, "w")
    with pytest.raises(InvalidInput, match="exclude each other"):
        rp.check_addressing({"lb_network": "appnet", "publish_address": "127.0.0.1"}, "appnet", resolve, "w")


def test_the_health_probe_goes_to_the_network_address(fast, monkeypatch):
    probed = []
    monkeypatch.setattr(rp, "http_probe", lambda address, path, expected: (probed.append(address) or True, "ok"))
    engine = types.SimpleNamespace(inspect_container=lambda cid: on_network(ip="172.30.0.9"))
    rp.wait_healthy(engine, ["c1"], timeout=5, probe={"path": "/healthz"})
    assert probed == ["172.30.0.9:8080"]
    engine = types.SimpleNamespace(inspect_container=lambda cid: on_network(ip=""))
    with pytest.raises(RolloutFailed, match="no address on network appnet"):
        rp.wait_healthy(engine, ["c1"], timeout=5, probe={"path": "/healthz"})


def test_tcp_reach_says_why_it_could_not_connect():
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert rp.tcp_reach(f"127.0.0.1:{port}") is None
    finally:
        server.close()
    assert rp.tcp_reach(f"127.0.0.1:{port}")  # nothing listens there any more: the reason, not None
    assert rp.tcp_reach("no-port")
