# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The Docker engine: its connection (docker SDK for Python, imported guarded) and the one driver every engine call
goes through, with the one mapping of SDK and transport errors."""

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


class DockerEngine:
    """One Docker engine, driven explicitly: every container and image call the backend makes is a method here, and
    each goes through :func:`guarded_call`, the one place SDK and transport errors become RolloutErrors.

    ``what`` arguments describe the call in an error message ("start retained container shop-r1-ab12cd"); each
    method has a plain default. A 404 is :class:`EngineNotFound`, which callers that expect it catch, except in
    :meth:`remove`, where a container already gone is what was asked for.
    """

    def __init__(self, client: t.Any, host: str) -> None:
        self.raw = client
        self.host = host
        self._api = client.api

    def _call(self, what: str, func: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
        return guarded_call(self.host, what, func, *args, **kwargs)

    def close(self) -> None:
        """Close the connection pool."""
        self.raw.close()

    # -- reading -----------------------------------------------------------------------------------
    def info(self) -> dict[str, t.Any]:
        """``docker info``: the engine's ID, name, data root..."""
        return self._call("read the engine's identity", self._api.info) or {}

    def containers(self, label: str) -> list[dict[str, t.Any]]:
        """The summaries of every container, running or not, that carries ``label`` (``key=value``)."""
        return self._call("list containers", self._api.containers, all=True, filters={"label": label})

    def containers_labelled(self, labels: t.Sequence[str]) -> list[dict[str, t.Any]]:
        """The summaries of every container, running or not, that carries all ``labels`` (``key=value`` or
        ``key``)."""
        return self._call("list containers", self._api.containers, all=True, filters={"label": list(labels)})

    def inspect_container(self, ref: str, what: str = "") -> dict[str, t.Any]:
        """``docker inspect`` of a container (by id or name)."""
        return self._call(what or f"inspect container {ref[:12]}", self._api.inspect_container, ref)

    def inspect_image(self, ref: str, what: str = "") -> dict[str, t.Any]:
        """``docker image inspect`` of an image (by reference or id)."""
        return self._call(what or f"inspect image {ref}", self._api.inspect_image, ref)

    def inspect_network(self, ref: str, what: str = "") -> dict[str, t.Any]:
        """``docker network inspect`` of a network (by name or id)."""
        return self._call(what or f"inspect network {ref}", self._api.inspect_network, ref)

    # -- changing ----------------------------------------------------------------------------------
    def pull(self, repository: str, tag: str, what: str) -> None:
        """``docker pull repository:tag`` (``tag`` may be a digest)."""
        self._call(what, self._api.pull, repository, tag=tag)

    def create(self, config: dict[str, t.Any], name: str) -> str:
        """Create (not start) container ``name`` from the API's create body ``config``; returns its id."""
        return self._call(f"create container {name}", self._api.create_container_from_config, config, name)["Id"]

    def create_unless_taken(self, config: dict[str, t.Any], name: str, what: str) -> t.Optional[str]:
        """As :meth:`create`, but None when a container of that ``name`` exists (409 Conflict): container names are
        unique per engine, which makes this an atomic test-and-set (the workload lock)."""
        api = self._api

        def create_or_conflict() -> t.Optional[str]:
            try:
                return api.create_container_from_config(config, name)["Id"]
            except Exception as exc:  # only 409 Conflict (the name is taken) is an answer; guarded_call maps the rest
                if getattr(exc, "status_code", None) == 409 and docker_errors is not None \
                        and isinstance(exc, docker_errors.APIError):
                    return None
                raise

        return self._call(what, create_or_conflict)

    def connect(self, cid: str, network: str, aliases: t.Sequence[str], what: str) -> None:
        """Connect container ``cid`` to ``network`` (with these aliases)."""
        self._call(what, self._api.connect_container_to_network, cid, network, aliases=list(aliases) or None)

    def start(self, cid: str, what: str = "") -> None:
        """``docker start``."""
        self._call(what or f"start container {cid[:12]}", self._api.start, cid)

    def stop(self, cid: str, timeout: int, what: str = "") -> None:
        """``docker stop`` (SIGTERM, then SIGKILL after ``timeout`` seconds; 0 kills at once)."""
        self._call(what or f"stop container {cid[:12]}", self._api.stop, cid, timeout=timeout)

    def remove(self, cid: str, volumes: bool = True, what: str = "") -> None:
        """``docker rm --force`` (with its anonymous volumes unless ``volumes`` is false); one already gone is fine."""
        kwargs: dict[str, t.Any] = {"force": True}
        if volumes:
            kwargs["v"] = True
        try:
            self._call(what or f"remove container {cid[:12]}", self._api.remove_container, cid, **kwargs)
        except EngineNotFound:
            pass


def api_error_text(exc: BaseException) -> str:
    """The engine's own explanation of an API error, without the SDK's URL noise."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return explanation.decode() if isinstance(explanation, bytes) else str(explanation)
    return str(exc)


def connect(params: dict[str, t.Any]) -> DockerEngine:
    """The :class:`DockerEngine` of ``docker_host`` (TLS as configured), after a successful ping."""
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
    return DockerEngine(client, host_label(params))
