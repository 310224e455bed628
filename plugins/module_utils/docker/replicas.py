# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Replicas of a Docker workload: the label model, container configs, the health gate.

A workload is the set of containers labelled ``zerodown.workload=<name>``. Each also carries
``zerodown.revision`` (the revision it belongs to), ``zerodown.image`` (the image reference asked for),
``zerodown.change-cause``, ``zerodown.created``, ``zerodown.port`` (the app's port in the container) and
``zerodown.replicas`` (how many replicas the run that created it aimed for); ``zerodown.lb-network``, on a
workload created with ``docker_container.lb_network``, names the network whose address the load balancer
connects to (no port is published then).
"""

from __future__ import annotations

import copy
import datetime
import re
import secrets
import socket
import time
import typing as t
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import InvalidInput, RolloutFailed

LABEL_WORKLOAD = "zerodown.workload"
LABEL_REVISION = "zerodown.revision"
LABEL_IMAGE = "zerodown.image"
LABEL_CAUSE = "zerodown.change-cause"
LABEL_CREATED = "zerodown.created"
LABEL_PORT = "zerodown.port"
LABEL_REPLICAS = "zerodown.replicas"
LABEL_LB_NETWORK = "zerodown.lb-network"
# network modes that give a container no address of its own on a network
NO_ADDRESS_NETWORKS = ("host", "none")

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,39}$")
POLL = 0.25
# How long a new container may stay "unhealthy" before it is judged broken (a slow check can flap).
UNHEALTHY_GRACE = 3.0
NANOSECONDS = 1_000_000_000


def check_workload_name(name: str) -> None:
    """A Docker workload name becomes part of container names: keep it to what Docker accepts."""
    if not NAME_RE.match(name or ""):
        raise InvalidInput(f"name={name!r} is not a valid Docker workload name: use letters, digits, '_', '.' or '-' "
                           "(at most 40 characters, starting with a letter or digit)")


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def container_name(workload: str, revision: int) -> str:
    return f"{workload}-r{revision}-{secrets.token_hex(3)}"


@dataclass
class Replica:
    """One container of the workload, as read from ``docker inspect``."""

    id: str
    name: str
    revision: int
    image: str
    image_id: str
    state: str
    health: t.Optional[str]
    started_at: str
    finished_at: str
    address: t.Optional[str]
    change_cause: t.Optional[str]
    created: t.Optional[str]
    attrs: dict[str, t.Any] = field(repr=False, default_factory=dict)
    desired: t.Optional[int] = None
    # the network whose address the load balancer connects to (docker_container.lb_network); None: the published port
    lb_network: t.Optional[str] = None

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def ready(self) -> bool:
        return self.running and self.health in (None, "healthy")

    @classmethod
    def from_attrs(cls, attrs: dict[str, t.Any]) -> "Replica":
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        state = attrs.get("State") or {}
        health = (state.get("Health") or {}).get("Status")
        try:
            revision = int(labels.get(LABEL_REVISION, "0"))
        except ValueError:
            revision = 0
        network = labels.get(LABEL_LB_NETWORK) or None
        return cls(
            id=attrs["Id"],
            name=(attrs.get("Name") or "").lstrip("/"),
            revision=revision,
            image=labels.get(LABEL_IMAGE) or (attrs.get("Config") or {}).get("Image", ""),
            image_id=attrs.get("Image", ""),
            state=state.get("Status", "unknown"),
            health=health,
            started_at=state.get("StartedAt") or "",
            finished_at=state.get("FinishedAt") or "",
            address=(network_address(attrs, network, labels.get(LABEL_PORT)) if network
                     else published_address(attrs, labels.get(LABEL_PORT))),
            change_cause=labels.get(LABEL_CAUSE),
            created=labels.get(LABEL_CREATED),
            attrs=attrs,
            desired=int(labels[LABEL_REPLICAS]) if str(labels.get(LABEL_REPLICAS, "")).isdigit() else None,
            lb_network=network,
        )

    def no_address(self) -> str:
        """Why the load balancer has no address for this replica (its :attr:`address` is None)."""
        if self.lb_network:
            return (f"container {self.name} has no address on network {self.lb_network} (docker_container.lb_network), "
                    "so the load balancer cannot reach it")
        return f"container {self.name} publishes no port, so the load balancer cannot reach it"

    def to_dict(self) -> dict[str, t.Any]:
        return {"name": self.name, "revision": self.revision, "image": self.image, "state": self.state,
                "health": self.health, "address": self.address}


def published_address(attrs: dict[str, t.Any], port: t.Optional[str]) -> t.Optional[str]:
    """``host:port`` where the app port is published (what the load balancer connects to)."""
    ports = ((attrs.get("NetworkSettings") or {}).get("Ports")) or {}
    keys = [port] if port else list(ports)
    for key in keys:
        for binding in ports.get(key) or []:
            host = binding.get("HostIp") or "127.0.0.1"
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            if ":" in host:
                host = f"[{host}]"
            return f"{host}:{binding.get('HostPort')}"
    return None


def network_address(attrs: dict[str, t.Any], network: str, port: t.Optional[str]) -> t.Optional[str]:
    """``ip:port`` of the container on ``network`` with the app port (``8080/tcp``): what a load balancer on that
    network, or on the engine's host for a bridge network, connects to. None while it has no address there (not
    running, not attached). Read from a fresh inspect: a restarted container may get another address."""
    endpoint = (((attrs.get("NetworkSettings") or {}).get("Networks")) or {}).get(network) or {}
    number = str(port or "").split("/", 1)[0]
    if not number.isdigit():
        return None
    if endpoint.get("IPAddress"):
        return f"{endpoint['IPAddress']}:{number}"
    if endpoint.get("GlobalIPv6Address"):
        return f"[{endpoint['GlobalIPv6Address']}]:{number}"
    return None


def lb_network_option(spec: t.Mapping[str, t.Any]) -> t.Optional[str]:
    """``docker_container.lb_network`` as given (None: replicas publish their port), refused when it cannot work:
    empty, a network mode that gives no address of its own, or given with ``publish_address``."""
    network = spec.get("lb_network")
    if network is None:
        return None
    if not str(network).strip():
        raise InvalidInput("docker_container.lb_network must name a Docker network (or be left out, and the app "
                           "port is published on publish_address)")
    if network in NO_ADDRESS_NETWORKS or str(network).startswith("container:"):
        raise InvalidInput(f"docker_container.lb_network={network} gives a container no address of its own that a "
                           "load balancer could reach: name a user-defined network (docker network create ...)")
    if spec.get("publish_address") is not None:
        raise InvalidInput("docker_container.lb_network and docker_container.publish_address exclude each other: "
                           "with lb_network no port is published and the load balancer connects to the container's "
                           "address on that network; remove one of them")
    return str(network)


def check_addressing(spec: t.Optional[t.Mapping[str, t.Any]], current: t.Optional[str], resolve: t.Callable[[str], str],
                     workload: str) -> None:
    """Refuse a ``docker_container`` whose addressing differs from that of the existing workload (``current``: the
    network its replicas are reached on, None for published ports). ``resolve(network)`` gives a network's name
    (an id or a name given); nothing given about addressing (no docker_container) keeps the workload's."""
    if spec is None:
        return
    wanted = lb_network_option(spec)
    if wanted is None and current is None:
        return
    if wanted is not None and current is not None and (wanted == current or resolve(wanted) == current):
        return
    now = f"on network {current} (docker_container.lb_network)" if current else "on their published ports"
    asked = f"on network {wanted}" if wanted is not None else "on published ports (docker_container has no lb_network)"
    raise InvalidInput(f"{workload} is reached by its load balancer {now}, and this task asks for {asked}: the "
                       "addressing of a workload is chosen when it is created and every revision keeps it. Give "
                       "docker_container the workload's own lb_network (or leave docker_container out); to change "
                       "the addressing, create a workload of another name with it")


def _seconds_to_ns(value: t.Optional[float]) -> int:
    return int(float(value) * NANOSECONDS) if value is not None else 0


def creation_config(image: str, workload: str, revision: int, cause: str, spec: dict[str, t.Any],
                    image_config: dict[str, t.Any], replicas: int = 1,
                    lb_network: t.Optional[str] = None) -> tuple[dict[str, t.Any], list[str]]:
    """The create body for a brand-new replica from the ``docker_container`` options.

    ``lb_network``: the name of the network (checked to exist) whose address the load balancer connects to, as
    ``docker_container.lb_network`` asks; no port is published then, and the network is added to ``networks``
    when not there (the first network, replacing the default bridge, when there are none).
    Returns (config, extra networks to connect after creation).
    """
    spec = spec or {}
    port = spec.get("port")
    if port is None:
        exposed = sorted((image_config.get("ExposedPorts") or {}).keys())
        tcp = [p for p in exposed if p.endswith("/tcp")]
        if len(tcp) != 1:
            raise InvalidInput(f"docker_container.port is required: image {image} exposes {exposed or 'no ports'}, "
                               "so the port the app listens on cannot be guessed")
        port_key = tcp[0]
    else:
        if not 0 < int(port) < 65536:
            raise InvalidInput(f"docker_container.port={port} is not a TCP port")
        port_key = f"{int(port)}/tcp"
    publish = spec.get("publish_address")
    if publish is None:
        publish = "127.0.0.1"
    elif not str(publish).strip():
        raise InvalidInput("docker_container.publish_address must be an address of the host (0.0.0.0 for every "
                           "interface), or be left out for 127.0.0.1")
    labels = {str(k): str(v) for k, v in (spec.get("labels") or {}).items()}
    clash = [k for k in labels if k.startswith("zerodown.")]
    if clash:
        raise InvalidInput(f"docker_container.labels may not set {', '.join(clash)}: the zerodown.* labels are the workload's bookkeeping")
    labels.update({LABEL_WORKLOAD: workload, LABEL_REVISION: str(revision), LABEL_IMAGE: image,
                   LABEL_CAUSE: cause, LABEL_CREATED: now_iso(), LABEL_PORT: port_key,
                   LABEL_REPLICAS: str(replicas)})
    env = [f"{k}={v}" for k, v in sorted((spec.get("env") or {}).items())]
    networks = list(spec.get("networks") or [])
    if lb_network is not None:
        labels[LABEL_LB_NETWORK] = lb_network
        if lb_network not in networks:
            networks.append(lb_network)
    host_config: dict[str, t.Any] = {
        # reached on lb_network: nothing is published
        "PortBindings": {port_key: [{"HostIp": publish, "HostPort": ""}]} if lb_network is None else {},
        "RestartPolicy": {"Name": spec.get("restart_policy") or "unless-stopped",
                          "MaximumRetryCount": 0},
        "NetworkMode": networks[0] if networks else "default",
    }
    config: dict[str, t.Any] = {
        "Image": image,
        "Labels": labels,
        "Env": env,
        "ExposedPorts": {port_key: {}},
        "HostConfig": host_config,
    }
    if spec.get("command"):
        config["Cmd"] = [str(c) for c in spec["command"]]
    health = spec.get("healthcheck")
    if health:
        test = health.get("test")
        if not test:
            raise InvalidInput("docker_container.healthcheck.test is required when healthcheck is set, "
                               "for example ['CMD', 'wget', '-q', '-O', '/dev/null', 'http://127.0.0.1:8080/healthz']")
        config["Healthcheck"] = {
            "Test": test if test[0] in ("CMD", "CMD-SHELL", "NONE") else ["CMD"] + list(test),
            "Interval": _seconds_to_ns(health.get("interval")),
            "Timeout": _seconds_to_ns(health.get("timeout")),
            "Retries": int(health.get("retries") or 0),
            "StartPeriod": _seconds_to_ns(health.get("start_period")),
        }
    if networks:
        config["NetworkingConfig"] = {"EndpointsConfig": {networks[0]: {}}}
    return config, networks[1:]


def clone_config(attrs: dict[str, t.Any], old_image_config: t.Optional[dict[str, t.Any]], image: str,
                 revision: int, cause: t.Optional[str],
                 replicas: t.Optional[int] = None) -> tuple[dict[str, t.Any], list[tuple[str, list[str]]]]:
    """The create body of a replica that copies ``attrs`` (an inspected container) with another image.

    What the old container inherited from its image (env, labels, command, healthcheck...) is left out,
    so that the new image's own values apply: only what was set for the container is copied.
    Returns (config, [(network, aliases)] to connect after creation).
    """
    old = copy.deepcopy(attrs.get("Config") or {})
    img = old_image_config or {}
    config: dict[str, t.Any] = {}
    image_env = set(img.get("Env") or [])
    config["Env"] = [e for e in old.get("Env") or [] if e not in image_env]
    image_labels = img.get("Labels") or {}
    labels = {k: v for k, v in (old.get("Labels") or {}).items() if image_labels.get(k) != v}
    labels.update({LABEL_IMAGE: image, LABEL_REVISION: str(revision), LABEL_CREATED: now_iso()})
    if cause is not None:
        labels[LABEL_CAUSE] = cause
    if replicas is not None:
        labels[LABEL_REPLICAS] = str(replicas)
    config["Labels"] = labels
    for key in ("Cmd", "Entrypoint", "Healthcheck", "WorkingDir", "User", "StopSignal", "Volumes", "Shell"):
        value = old.get(key)
        if value and value != img.get(key):
            config[key] = value
    for key in ("ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "AttachStdin", "AttachStdout", "AttachStderr",
                "StopTimeout", "Domainname"):
        if old.get(key) is not None:
            config[key] = old[key]
    # Docker sets the hostname to the container's short id; a copied one would name the old container
    if old.get("Hostname") and not attrs.get("Id", "").startswith(old["Hostname"]):
        config["Hostname"] = old["Hostname"]
    config["Image"] = image
    host_config = copy.deepcopy(attrs.get("HostConfig") or {})
    config["HostConfig"] = host_config
    mode = host_config.get("NetworkMode") or "default"
    later: list[tuple[str, list[str]]] = []
    networks = ((attrs.get("NetworkSettings") or {}).get("Networks")) or {}
    short_id = attrs.get("Id", "")[:12]
    for net, endpoint in networks.items():
        aliases = [a for a in (endpoint or {}).get("Aliases") or [] if a != short_id]
        if net == mode:
            if aliases:
                config["NetworkingConfig"] = {"EndpointsConfig": {net: {"Aliases": aliases}}}
        elif mode not in ("host", "none") and not mode.startswith("container:"):
            later.append((net, aliases))
    return config, later


def health_log(attrs: dict[str, t.Any], lines: int = 3) -> list[str]:
    """The last HEALTHCHECK results of a container, one line each."""
    log = (((attrs.get("State") or {}).get("Health") or {}).get("Log")) or []
    out = []
    for entry in log[-lines:]:
        output = " ".join((entry.get("Output") or "").split())[:200]
        out.append(f"exit {entry.get('ExitCode')}: {output or '(no output)'}")
    return out


def http_probe(address: str, path: str, expected: t.Sequence[int], timeout: float = 2.0) -> tuple[bool, str]:
    """GET ``http://address/path`` (the replica's address for the load balancer); (ok, what was seen)."""
    url = f"http://{address}{path if path.startswith('/') else '/' + path}"
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=timeout) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        return False, f"GET {url}: {exc}"
    return status in expected, f"GET {url}: HTTP {status}"


def tcp_reach(address: str, timeout: float = 2.0) -> t.Optional[str]:
    """Connect to ``host:port`` (``[v6]:port``) and close; None when that worked, else why it did not."""
    host, _sep, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__


def wait_healthy(engine: t.Any, container_ids: t.Sequence[str], timeout: float,
                 probe: t.Optional[dict[str, t.Any]] = None) -> dict[str, t.Any]:
    """Health gate for freshly started replicas: all must pass before ``timeout`` seconds.

    A replica passes when its HEALTHCHECK reports healthy (or it has none and is running) and, when
    ``probe`` (``health_check`` option) is set, a GET of its load-balancer address answers an expected
    status. An exited replica fails at once, and so does one that stays ``unhealthy`` for UNHEALTHY_GRACE
    seconds; the error names it and quotes its health log.
    Returns the fresh inspect data by id.
    """
    deadline = time.monotonic() + timeout
    pending = list(container_ids)
    passed: dict[str, t.Any] = {}
    seen: dict[str, str] = {}
    unhealthy_since: dict[str, float] = {}
    while True:
        for cid in list(pending):
            attrs = engine.inspect_container(cid)
            rep = Replica.from_attrs(attrs)
            if rep.state in ("exited", "dead") or (rep.state == "restarting"):
                code = (attrs.get("State") or {}).get("ExitCode")
                raise RolloutFailed(f"new container {rep.name} ({rep.image}) stopped (state {rep.state}, exit code {code}) "
                                    "before it became healthy", container=rep.name, health_log=health_log(attrs))
            if rep.health == "unhealthy":
                # A single slow check on a busy host can flip a good container to unhealthy for a moment;
                # only a container that stays unhealthy for UNHEALTHY_GRACE seconds is judged broken.
                since = unhealthy_since.setdefault(cid, time.monotonic())
                if time.monotonic() - since >= UNHEALTHY_GRACE or time.monotonic() >= deadline:
                    lines = health_log(attrs)
                    raise RolloutFailed(f"new container {rep.name} ({rep.image}) is unhealthy: its HEALTHCHECK failed: "
                                        + ("; ".join(lines) or "no health log"), container=rep.name, health_log=lines)
                seen[cid] = f"{rep.name}: unhealthy"
                continue
            unhealthy_since.pop(cid, None)
            if not rep.running or rep.health == "starting":
                seen[cid] = f"{rep.name}: {rep.health or rep.state}"
                continue
            if probe and probe.get("path"):
                # the address the load balancer connects to, read after the start (a restart may change it)
                if not rep.address:
                    raise RolloutFailed(f"new {rep.no_address()}, nor can health_check", container=rep.name)
                ok, what = http_probe(rep.address, probe["path"], probe.get("status") or [200])
                if not ok:
                    seen[cid] = f"{rep.name}: {what}"
                    continue
            passed[cid] = attrs
            pending.remove(cid)
        if not pending:
            return passed
        if time.monotonic() >= deadline:
            attrs = engine.inspect_container(pending[0])
            lines = health_log(attrs)
            detail = "; ".join(seen.get(c, c) for c in pending)
            raise RolloutFailed(
                f"new container(s) did not become healthy within health_timeout={timeout:g}s ({detail})"
                + (f"; last health checks: {'; '.join(lines)}" if lines else ""),
                container=Replica.from_attrs(attrs).name, health_log=lines)
        time.sleep(POLL)
