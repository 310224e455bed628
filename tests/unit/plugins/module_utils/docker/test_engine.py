"""Engine errors: every docker SDK / transport failure of an engine call becomes a clean RolloutError."""
from __future__ import annotations

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.docker import engine
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.backend import DockerPlatform
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import wait_healthy
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    PlatformUnreachable,
    RolloutFailed,
    WorkloadRef,
)

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
    client = engine.GuardedClient(raw, HOST)
    with pytest.raises(PlatformUnreachable) as err:
        client.api.inspect_container("0123456789abcdef")
    msg = err.value.msg
    assert HOST in msg and "Docker engine" in msg, msg
    assert "inspect container 0123456789ab" in msg, msg
    assert "re-run the task" in msg and "converges" in msg, msg
    assert err.value.details["docker_host"] == HOST


def test_api_errors_are_rollout_failed_and_404_is_engine_not_found():
    raw = RawClient()
    client = engine.GuardedClient(raw, HOST)
    raw.api.raises = docker.errors.APIError("500 Server Error", response=Response(500, "Internal"),
                                            explanation="container is restarting")
    with pytest.raises(RolloutFailed) as err:
        client.api.start("abc")
    assert not isinstance(err.value, (PlatformUnreachable, engine.EngineNotFound))
    assert "refused to start abc" in err.value.msg and "container is restarting" in err.value.msg
    assert HOST in err.value.msg
    raw.api.raises = docker.errors.NotFound("404", response=Response(404, "Not Found"), explanation="No such container")
    with pytest.raises(engine.EngineNotFound, match="No such container"):
        client.api.inspect_container("abc")


def test_non_sdk_errors_are_not_disguised():
    raw = RawClient()
    raw.api.raises = KeyError("bug")
    with pytest.raises(KeyError):
        engine.GuardedClient(raw, HOST).api.start("abc")


def test_successful_calls_and_attributes_pass_through():
    raw = RawClient()
    client = engine.GuardedClient(raw, HOST)
    assert client.api.start("abc")["Id"] == "abc"
    assert client.api.base_url == "http+docker://localhost"
    assert raw.api.calls == [("start", ("abc",))]


def test_health_gate_losing_the_engine_fails_cleanly():
    """The health gate polls inspect_container directly: it must map too (the dockerd-restart crash)."""
    raw = RawClient()
    raw.api.raises = requests.exceptions.ConnectionError(("Connection aborted.", FileNotFoundError(2, "gone")))
    with pytest.raises(PlatformUnreachable, match="inspect container"):
        wait_healthy(engine.GuardedClient(raw, HOST), ["abc"], timeout=1)


class Module:
    def __init__(self, **params):
        self.params = params
        self.check_mode = False
        self.warnings: list[str] = []

    def warn(self, text):
        self.warnings.append(text)


def test_backend_calls_describe_what_they_were_doing():
    platform = DockerPlatform(Module(docker_host=HOST), WorkloadRef("docker", "w"))
    raw = RawClient()
    raw.api.raises = requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected())")
    platform._client = engine.GuardedClient(raw, HOST)
    with pytest.raises(PlatformUnreachable) as err:
        platform.load()
    assert "list containers" in err.value.msg and HOST in err.value.msg
    # cleanup after a lost engine warns and carries on instead of raising a second error
    platform._remove("0123456789abcdef")
    assert platform.module.warnings and "could not remove container 0123456789ab" in platform.module.warnings[0]
