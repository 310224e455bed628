# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The Docker engine connection (docker SDK for Python, imported guarded)."""

from __future__ import annotations

import os
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    PlatformUnreachable,
    RolloutError,
    RolloutFailed,
)

try:
    import docker
    from docker import errors as docker_errors
    from docker.tls import TLSConfig

    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR: t.Optional[str] = None
except ImportError as exc:  # reported through missing_required_lib by the backend
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = str(exc)
    docker = None
    docker_errors = None
    TLSConfig = None

try:  # the docker SDK's transport; its connection errors are not docker.errors exceptions
    from requests import exceptions as requests_exceptions

    TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (requests_exceptions.ConnectionError,
                                                         requests_exceptions.Timeout, ConnectionError)
except ImportError:
    requests_exceptions = None
    TRANSPORT_ERRORS = (ConnectionError,)

DEFAULT_HOST = "unix:///var/run/docker.sock"
RERUN_HINT = "re-run the task once the engine answers: it resumes the interrupted change and converges"


class EngineNotFound(RolloutFailed):
    """The engine answered 404: the container or image asked for does not exist (any more)."""


def host_label(params: dict[str, t.Any]) -> str:
    """The engine a task talks to, as the user wrote it (for messages)."""
    return params.get("docker_host") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def guarded_call(host: str, what: str, func: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
    """``func(*args, **kwargs)`` with every docker SDK / transport error turned into a RolloutError.

    A lost connection (dockerd restarting or gone, a read timeout) is PlatformUnreachable; an API answer of
    404 is EngineNotFound (callers that expect it catch that); any other API error is RolloutFailed. Each
    message says what was being done, on which engine, and that re-running the task converges.
    """
    try:
        return func(*args, **kwargs)
    except RolloutError:
        raise
    except TRANSPORT_ERRORS as exc:
        raise PlatformUnreachable(
            f"lost the connection to the Docker engine at {host} while trying to {what} ({exc}); dockerd may be "
            f"restarting or gone: check that it runs, then {RERUN_HINT}", docker_host=host)
    except Exception as exc:  # narrowed below: only the SDK's own errors are mapped, anything else is a bug
        if docker_errors is None or not isinstance(exc, docker_errors.DockerException):
            raise
        if isinstance(exc, docker_errors.APIError):
            if getattr(exc, "status_code", None) == 404:
                raise EngineNotFound(f"the Docker engine at {host} found nothing to {what}: {api_error_text(exc)}",
                                     docker_host=host)
            raise RolloutFailed(f"the Docker engine at {host} refused to {what}: {api_error_text(exc)}; "
                                f"{RERUN_HINT}", docker_host=host)
        raise PlatformUnreachable(f"lost the Docker engine at {host} while trying to {what} ({exc}); check that "
                                  f"dockerd runs, then {RERUN_HINT}", docker_host=host)


def _describe(method: str, args: tuple[t.Any, ...]) -> str:
    words = method.replace("_", " ")
    first = args[0] if args and isinstance(args[0], str) else ""
    return f"{words} {first[:12]}" if first else words


class GuardedApi:
    """The low-level ``docker.APIClient`` with every method call going through :func:`guarded_call`."""

    def __init__(self, api: t.Any, host: str) -> None:
        self._api = api
        self._host = host

    def __getattr__(self, name: str) -> t.Any:
        attr = getattr(self._api, name)
        if not callable(attr):
            return attr
        host = self._host

        def call(*args: t.Any, **kwargs: t.Any) -> t.Any:
            return guarded_call(host, _describe(name, args), attr, *args, **kwargs)

        call.zd_raw = attr  # type: ignore[attr-defined]  # lets callers give a better description
        return call


class GuardedClient:
    """A ``docker.DockerClient`` whose ``api`` maps SDK errors (see :func:`guarded_call`)."""

    def __init__(self, client: t.Any, host: str) -> None:
        self.raw = client
        self.host = host
        self.api = GuardedApi(client.api, host)

    def close(self) -> None:
        """Close the connection pool."""
        self.raw.close()


def api_error_text(exc: BaseException) -> str:
    """The engine's own explanation of an API error, without the SDK's URL noise."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return explanation.decode() if isinstance(explanation, bytes) else str(explanation)
    return str(exc)


def connect(params: dict[str, t.Any]) -> t.Any:
    """A ``docker.DockerClient`` for ``docker_host`` (TLS as configured), after a successful ping."""
    host = params.get("docker_host") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    timeout = params.get("docker_timeout")
    if timeout is not None and timeout <= 0:
        raise InvalidInput(f"docker_timeout must be 1 or more (seconds an answer of the engine may take), got {timeout}")
    if not (host.startswith("unix://") or host.startswith("tcp://") or host.startswith("ssh://")):
        raise InvalidInput(f"docker_host={host!r} must start with unix://, tcp:// or ssh://")
    tls = None
    cert, key, ca = params.get("docker_client_cert"), params.get("docker_client_key"), params.get("docker_ca_path")
    use_tls = bool(params.get("docker_tls")) or bool(cert or key or ca)
    if use_tls:
        if host.startswith("unix://"):
            raise InvalidInput("docker_tls and the docker_* certificate options apply to tcp:// hosts only")
        if bool(cert) != bool(key):
            raise InvalidInput("docker_client_cert and docker_client_key go together: give both or neither")
        for option, path in (("docker_client_cert", cert), ("docker_client_key", key), ("docker_ca_path", ca)):
            if path and not os.path.isfile(path):
                raise InvalidInput(f"{option}={path} is not a readable file")
        verify = params.get("docker_tls_verify", True)
        tls = TLSConfig(client_cert=(cert, key) if cert else None, ca_cert=ca if verify else None, verify=verify)
        host = host.replace("tcp://", "https://", 1)
    try:
        client = docker.DockerClient(base_url=host, version="auto", timeout=int(timeout if timeout is not None else 60),
                                     tls=tls if tls is not None else False)
        client.ping()
    except docker_errors.DockerException as exc:
        raise PlatformUnreachable(
            f"cannot reach the Docker engine at {params.get('docker_host') or host} ({api_error_text(exc)}); "
            "check docker_host (and the TLS options) and that dockerd runs"
        )
    except Exception as exc:  # the SDK lets transport errors (requests/urllib3) through at ping time
        raise PlatformUnreachable(f"cannot reach the Docker engine at {host} ({exc}); check docker_host and that dockerd runs")
    return GuardedClient(client, host_label(params))
