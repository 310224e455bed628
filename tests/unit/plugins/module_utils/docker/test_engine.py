"""docker/engine.py: every docker SDK / transport failure of an engine call becomes a clean RolloutError (one
layer, in DockerEngine); connect refuses unusable settings before it connects."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker import engine
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.backend import DockerPlatform
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import wait_healthy
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    PlatformUnreachable,
    RolloutFailed,
    WorkloadRef,
)

from tests.support.fake_module import FakeModule

docker = pytest.importorskip("docker")
requests = pytest.importorskip("requests")

HOST = "unix:///run/zd-test/docker.sock"


class Response:
    def __init__(self, status: int, reason: str) -> None:
        self.status_code = status
        self.reason = reason
        self.url = "http+docker://localhost/v1.41/containers/abc/json"


class RawApi:
    """Stands for docker.APIClient: each method raises what the test put in ``raises``."""

    def __init__(self) -> None:
        self.raises: BaseException | None = None
        self.calls: list[tuple[str, tuple]] = []
        self.base_url = "http+docker://localhost"

    def _do(self, name: str, *args: object) -> dict:
        self.calls.append((name, args))
        if self.raises is not None:
            raise self.raises
        return {"Id": args[0] if args else "", "State": {"Status": "running"}, "Name": "/w-r1-x",
                "Config": {"Labels": {"zerodown.revision": "1"}}}

    def inspect_container(self, cid: str) -> dict:
        return self._do("inspect_container", cid)

    def start(self, cid: str) -> dict:
        return self._do("start", cid)

    def remove_container(self, cid: str, **kwargs: object) -> None:
        self._do("remove_container", cid)

    def create_container_from_config(self, config: dict, name: str) -> dict:
        return self._do("create_container_from_config", name)

    def containers(self, **kwargs: object) -> list:
        self._do("containers")
        return []


class RawClient:
    def __init__(self) -> None:
        self.api = RawApi()

    def close(self) -> None:
        pass


LOST = [
    requests.exceptions.ConnectionError(("Connection aborted.", FileNotFoundError(2, "No such file or directory"))),
    requests.exceptions.ReadTimeout("UnixHTTPConnectionPool(host='localhost', port=None): Read timed out."),
    ConnectionRefusedError(111, "Connection refused"),
    docker.errors.DockerException("Error while fetching server API version"),
]


@pytest.mark.parametrize("exc", LOST, ids=lambda e: type(e).__name__)
def test_lost_engine_is_platform_unreachable_naming_engine_action_and_rerun(exc):
    raw = RawClient()
    raw.api.raises = exc
    client = engine.DockerEngine(raw, HOST)
    with pytest.raises(PlatformUnreachable) as err:
        client.inspect_container("0123456789abcdef")
    msg = err.value.msg
    assert HOST in msg and "Docker engine" in msg, msg
    assert "inspect container 0123456789ab" in msg, msg
    assert "re-run the task" in msg and "converges" in msg, msg
    assert err.value.details["docker_host"] == HOST


def test_api_errors_are_rollout_failed_and_404_is_engine_not_found():
    raw = RawClient()
    client = engine.DockerEngine(raw, HOST)
    raw.api.raises = docker.errors.APIError("500 Server Error", response=Response(500, "Internal"),
                                            explanation="container is restarting")
    with pytest.raises(RolloutFailed) as err:
        client.start("abc")
    assert not isinstance(err.value, (PlatformUnreachable, engine.EngineNotFound))
    assert "refused to start container abc" in err.value.msg and "container is restarting" in err.value.msg
    assert HOST in err.value.msg
    raw.api.raises = docker.errors.NotFound("404", response=Response(404, "Not Found"), explanation="No such container")
    with pytest.raises(engine.EngineNotFound, match="No such container"):
        client.inspect_container("abc")


def test_non_sdk_errors_are_not_disguised():
    raw = RawClient()
    raw.api.raises = KeyError("bug")
    with pytest.raises(KeyError):
        engine.DockerEngine(raw, HOST).start("abc")


def test_successful_calls_return_the_engine_answer():
    raw = RawClient()
    client = engine.DockerEngine(raw, HOST)
    assert client.inspect_container("abc")["Id"] == "abc"
    client.start("abc")
    assert raw.api.calls == [("inspect_container", ("abc",)), ("start", ("abc",))]


def test_a_remove_of_a_container_already_gone_is_no_error():
    raw = RawClient()
    raw.api.raises = docker.errors.NotFound("404", response=Response(404, "Not Found"), explanation="No such container")
    engine.DockerEngine(raw, HOST).remove("abc")
    assert raw.api.calls == [("remove_container", ("abc",))]


def test_the_lock_create_answers_none_when_the_name_is_taken():
    raw = RawClient()
    driver = engine.DockerEngine(raw, HOST)
    raw.api.raises = docker.errors.APIError("409", response=Response(409, "Conflict"), explanation="name in use")
    assert driver.create_unless_taken({}, "zerodown-lock-w", "create the lock") is None
    raw.api.raises = docker.errors.APIError("500", response=Response(500, "Internal"), explanation="disk full")
    with pytest.raises(RolloutFailed, match="refused to create the lock: disk full"):
        driver.create_unless_taken({}, "zerodown-lock-w", "create the lock")


def test_health_gate_losing_the_engine_fails_cleanly():
    """The health gate polls inspect_container directly: it must map too (the dockerd-restart crash)."""
    raw = RawClient()
    raw.api.raises = requests.exceptions.ConnectionError(("Connection aborted.", FileNotFoundError(2, "gone")))
    with pytest.raises(PlatformUnreachable, match="inspect container"):
        wait_healthy(engine.DockerEngine(raw, HOST), ["abc"], timeout=1)


def test_backend_calls_describe_what_they_were_doing():
    platform = DockerPlatform(FakeModule({"docker_host": HOST}), WorkloadRef("docker", "w"))
    raw = RawClient()
    raw.api.raises = requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected())")
    platform.docker._engine = engine.DockerEngine(raw, HOST)
    with pytest.raises(PlatformUnreachable) as err:
        platform.docker.load()
    assert "list containers" in err.value.msg and HOST in err.value.msg


# -- connecting ------------------------------------------------------------------------------------------------
def test_connect_rejects_unusable_tls_settings(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(InvalidInput, match="must start with"):
        engine.connect({"docker_host": "http://host:2375"})
    with pytest.raises(InvalidInput, match="tcp:// hosts only"):
        engine.connect({"docker_host": "unix:///var/run/docker.sock", "docker_tls": True})
    with pytest.raises(InvalidInput, match="go together"):
        engine.connect({"docker_host": "tcp://127.0.0.1:1", "docker_client_cert": str(cert)})
    with pytest.raises(InvalidInput, match="not a readable file"):
        engine.connect({"docker_host": "tcp://127.0.0.1:1", "docker_ca_path": str(tmp_path / "missing.pem")})


@pytest.mark.parametrize("value", [0, -3])
def test_docker_timeout_below_one_is_refused_before_connecting(value):
    with pytest.raises(InvalidInput, match="docker_timeout must be 1 or more"):
        engine.connect({"docker_host": "tcp://127.0.0.1:1", "docker_timeout": value})
