# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""The Docker engine connection (docker SDK for Python, imported guarded)."""

from __future__ import annotations

import os
import typing as t

from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput, PlatformUnreachable

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

DEFAULT_HOST = "unix:///var/run/docker.sock"


def api_error_text(exc: BaseException) -> str:
    """The engine's own explanation of an API error, without the SDK's URL noise."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return explanation.decode() if isinstance(explanation, bytes) else str(explanation)
    return str(exc)


def connect(params: dict[str, t.Any]) -> t.Any:
    """A ``docker.DockerClient`` for ``docker_host`` (TLS as configured), after a successful ping."""
    host = params.get("docker_host") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
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
        client = docker.DockerClient(base_url=host, version="auto", timeout=int(params.get("docker_timeout") or 60),
                                     tls=tls if tls is not None else False)
        client.ping()
    except docker_errors.DockerException as exc:
        raise PlatformUnreachable(
            f"cannot reach the Docker engine at {params.get('docker_host') or host} ({api_error_text(exc)}); "
            "check docker_host (and the TLS options) and that dockerd runs"
        )
    except Exception as exc:  # the SDK lets transport errors (requests/urllib3) through at ping time
        raise PlatformUnreachable(f"cannot reach the Docker engine at {host} ({exc}); check docker_host and that dockerd runs")
    return client
