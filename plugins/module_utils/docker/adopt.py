# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Workloads whose first containers this collection did not create: containers started by hand (``adopt``) and
the containers of a Compose service (``compose_project`` + ``compose_service``). One mechanism serves both: a
:class:`Selector` finds the containers, and they are the workload's revision 1, *the adopted set*.

* Docker cannot change the labels of an existing container, so adopted containers are never relabelled. Until the
  workload has a container of its own (labelled ``zerodown.workload``), the selector decides which running
  containers form revision 1. From the first upgrade on, every container the workload creates records the ids of
  the adopted set in ``zerodown.adopted``: later runs find the adopted set there (retained, stopped or running,
  whatever the selector would match now), and never adopt another container.
* New containers copy an adopted container's configuration (replicas.clone_config) with the workload's labels
  added, and are published on an ephemeral host port of the same host address (a fixed host port of a container
  started by hand would clash). A Compose service's new containers keep Compose's labels, with a container number
  of their own, and are named as Compose names them, so that ``docker-compose ps`` lists them and
  ``docker-compose down`` removes them.
* The port the app listens on is ``docker_container.port``, else the single container port the adopted containers
  publish; an upgrade of an adopted set needs it and a load balancer.
"""

from __future__ import annotations

import datetime
import re
import typing as t
from dataclasses import dataclass, field

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Scope, server_name
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.engine import EngineNotFound
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.replicas import (
    LABEL_IMAGE,
    LABEL_PORT,
    LABEL_WORKLOAD,
    Replica,
    published_address,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import Finding, InvalidInput, RolloutFailed

LABEL_ADOPTED = "zerodown.adopted"
ADOPTED_REVISION = 1

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_NUMBER = "com.docker.compose.container-number"
COMPOSE_ONEOFF = "com.docker.compose.oneoff"


@dataclass
class Selector:
    """What picks the adopted set: ``labels`` (all of them, ``key=value`` or ``key`` for any value), or ``names``
    (exact container names), or a Compose service (``project`` + ``service``: Compose's own labels)."""

    labels: dict[str, t.Optional[str]] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    project: t.Optional[str] = None
    service: t.Optional[str] = None

    @property
    def compose(self) -> bool:
        return self.project is not None

    def filters(self) -> list[str]:
        """The engine's ``label`` filters (all must match)."""
        if self.compose:
            return [f"{COMPOSE_PROJECT}={self.project}", f"{COMPOSE_SERVICE}={self.service}", f"{COMPOSE_ONEOFF}=False"]
        return [k if v is None else f"{k}={v}" for k, v in sorted(self.labels.items())]

    def describe(self) -> str:
        if self.compose:
            return f"Compose service {self.service!r} of project {self.project!r}"
        if self.names:
            return f"the containers named {', '.join(self.names)}"
        return "the containers labelled " + ", ".join(self.filters())

    def option(self) -> str:
        """The option that set it, for messages."""
        return "compose_project/compose_service" if self.compose else f"adopt.{'names' if self.names else 'labels'}"


def selector_from_params(params: t.Mapping[str, t.Any]) -> t.Optional[Selector]:
    """The selector ``adopt`` or ``compose_project`` + ``compose_service`` give; None without them. Refuses a
    selector that cannot mean one set of containers."""
    adopt = params.get("adopt")
    project, service = params.get("compose_project"), params.get("compose_service")
    compose_given = project is not None or service is not None
    if adopt is not None and compose_given:
        raise InvalidInput("adopt and compose_project/compose_service are two ways to pick the containers a workload "
                           "starts from: give one of them (a Compose service is adopted by its Compose labels)")
    if compose_given:
        if not project or not service:
            raise InvalidInput("compose_project and compose_service go together and may not be empty: the project "
                               "(the Compose file's directory name unless -p or COMPOSE_PROJECT_NAME set another) and "
                               "the service name in the Compose file")
        return Selector(project=str(project), service=str(service))
    if adopt is None:
        return None
    labels, names = adopt.get("labels"), adopt.get("names")
    if (labels is None) == (names is None):
        raise InvalidInput("adopt takes exactly one of labels (a dict of labels every adopted container carries) or "
                           "names (a list of container names)")
    if labels is not None:
        if not labels:
            raise InvalidInput("adopt.labels may not be empty: it would match every container of the engine")
        clash = sorted(k for k in labels if str(k).startswith("zerodown."))
        if clash:
            raise InvalidInput(f"adopt.labels may not select by {', '.join(clash)}: containers with zerodown.* labels "
                               "belong to a workload already")
        return Selector(labels={str(k): (None if v is None or v == "" else str(v)) for k, v in labels.items()})
    cleaned = [str(n).lstrip("/") for n in names]
    if not cleaned or any(not n for n in cleaned):
        raise InvalidInput("adopt.names must list one container name or more, none of them empty")
    if len(set(cleaned)) != len(cleaned):
        raise InvalidInput(f"adopt.names lists a container twice: {', '.join(cleaned)}")
    return Selector(names=cleaned)


def port_key(value: t.Any) -> str:
    """``docker_container.port`` as the engine's key (``8080/tcp``)."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise InvalidInput(f"docker_container.port={value} is not a TCP port")
    return f"{port}/tcp"


def published_ports(attrs: t.Mapping[str, t.Any]) -> list[str]:
    """The container ports that are published on the host (``8080/tcp``), sorted."""
    ports = ((attrs.get("NetworkSettings") or {}).get("Ports")) or {}
    bound = {k for k, v in ports.items() if v}
    if not bound:  # a stopped container has no NetworkSettings.Ports: its configured bindings say it
        bound = {k for k, v in ((attrs.get("HostConfig") or {}).get("PortBindings") or {}).items() if v}
    return sorted(bound)


def _created(attrs: t.Mapping[str, t.Any]) -> t.Optional[str]:
    text = str(attrs.get("Created") or "")
    try:
        when = datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def adopted_replica(attrs: dict[str, t.Any], port: t.Optional[str], cause: str) -> Replica:
    """An adopted container as a replica of revision 1 (it carries none of the workload's labels)."""
    rep = Replica.from_attrs(attrs)
    rep.revision = ADOPTED_REVISION
    rep.image = (attrs.get("Config") or {}).get("Image") or rep.image
    rep.address = published_address(attrs, port)
    rep.change_cause = cause
    rep.created = _created(attrs)
    return rep


class Adoption:
    """The adopted set of workload ``workload`` on ``engine``, from ``selector`` (None: no selector given) and the
    ``zerodown.adopted`` record of the workload's own containers. ``port``: ``docker_container.port`` as the
    engine's key, or None."""

    def __init__(self, workload: str, selector: t.Optional[Selector], port: t.Optional[str], host: str) -> None:
        self.workload = workload
        self.selector = selector
        self.port = port
        self.host = host
        self.ids: list[str] = []  # the adopted set, when there is one
        self.by_selector = False  # found by the selector now (the workload has no container of its own yet)
        self.port_problem = ""  # why the app's port is unknown, when it is
        self.found_port: t.Optional[str] = None  # the app's port as the adopted set shows it

    # -- finding -----------------------------------------------------------------------------------
    def find(self, engine: t.Any, own: t.Sequence[Replica]) -> list[Replica]:
        """The adopted set as replicas of revision 1, given the workload's own containers ``own``."""
        self.ids, self.by_selector, self.port_problem, self.found_port = [], False, "", None
        recorded = []
        for rep in own:
            for cid in ((rep.attrs.get("Config") or {}).get("Labels") or {}).get(LABEL_ADOPTED, "").split(","):
                if cid and cid not in recorded:
                    recorded.append(cid)
        if own:
            # the workload exists: only what its containers recorded is adopted, never what the selector matches now
            port = self.port or next((r.attrs["Config"]["Labels"].get(LABEL_PORT) for r in own
                                      if (r.attrs.get("Config") or {}).get("Labels", {}).get(LABEL_PORT)), None)
            found = []
            for cid in recorded:
                attrs = self._inspect(engine, cid)
                if attrs is not None and LABEL_WORKLOAD not in ((attrs.get("Config") or {}).get("Labels") or {}):
                    found.append(attrs)
            self.ids = [a["Id"] for a in found]
            self.found_port = port
            return [adopted_replica(a, port, self._cause()) for a in found]
        if self.selector is None:
            return []
        found = self._select(engine)
        self._check_one_image(found)
        self.ids = [a["Id"] for a in found]
        self.by_selector = True
        port = self.found_port = self._port_of(found)
        return [adopted_replica(a, port, self._cause()) for a in found]

    def _cause(self) -> str:
        return f"adopted: {self.selector.describe()}" if self.selector else "adopted"

    @staticmethod
    def _inspect(engine: t.Any, ref: str) -> t.Optional[dict[str, t.Any]]:
        try:
            return engine.inspect_container(ref)
        except EngineNotFound:
            return None

    def _select(self, engine: t.Any) -> list[dict[str, t.Any]]:
        sel = selector_given(self.selector)
        if sel.names:
            found, missing, stopped = [], [], []
            for name in sel.names:
                attrs = self._inspect(engine, name)
                if attrs is None or (attrs.get("Name") or "").lstrip("/") != name:
                    missing.append(name)
                elif ((attrs.get("State") or {}).get("Status")) != "running":
                    stopped.append(name)
                else:
                    found.append(attrs)
            if missing or stopped:
                what = "; ".join(p for p in (f"no container is named {', '.join(missing)}" if missing else "",
                                             f"{', '.join(stopped)} not running" if stopped else "") if p)
                raise InvalidInput(f"adopt.names cannot be adopted on {self.host}: {what}. List the names of running "
                                   "containers (docker ps), and start stopped ones first")
        else:
            found = []
            for summary in engine.containers_labelled(sel.filters()):
                attrs = self._inspect(engine, summary["Id"])
                if attrs is not None and ((attrs.get("State") or {}).get("Status")) == "running":
                    found.append(attrs)
        # a container of a workload (or a run's lock) is never adopted
        found = [a for a in found if not any(str(k).startswith("zerodown.")
                                             for k in ((a.get("Config") or {}).get("Labels") or {}))]
        if not found:
            if sel.compose:
                raise InvalidInput(f"{sel.describe()} does not exist on {self.host}: no running container is labelled "
                                   f"{COMPOSE_PROJECT}={sel.project} and {COMPOSE_SERVICE}={sel.service}. Start it "
                                   "(docker-compose up -d), or check compose_project (the Compose file's directory "
                                   "name unless -p or COMPOSE_PROJECT_NAME set another) and compose_service")
            raise InvalidInput(f"{sel.option()} matches no running container on {self.host} ({sel.describe()}), so "
                               f"there is nothing to adopt as {self.workload!r}: check the selector against docker ps")
        return sorted(found, key=lambda a: (a.get("Name") or ""))

    def _check_one_image(self, found: t.Sequence[dict[str, t.Any]]) -> None:
        images: dict[str, list[str]] = {}
        for attrs in found:
            images.setdefault(str(attrs.get("Image") or ""), []).append(
                f"{(attrs.get('Name') or '').lstrip('/')} ({(attrs.get('Config') or {}).get('Image')})")
        if len(images) > 1:
            groups = "; ".join(", ".join(names) for names in images.values())
            raise InvalidInput(f"{self.selector.option()} matches containers of {len(images)} different images "
                               f"({groups}): a workload runs one image; narrow the selector to one image's containers")

    def _port_of(self, found: t.Sequence[dict[str, t.Any]]) -> t.Optional[str]:
        if self.port is not None:
            if any(self.port not in published_ports(a) for a in found):
                self.port_problem = (f"docker_container.port={self.port} is not published by every adopted container "
                                     "(the load balancer reaches them there)")
            return self.port
        ports = sorted({p for a in found for p in published_ports(a)})
        if len(ports) == 1 and all(published_ports(a) == ports for a in found):
            return ports[0]
        self.port_problem = (f"{self.selector.describe() if self.selector else 'the adopted containers'} publish "
                             f"{', '.join(ports) if ports else 'no port'}: the load balancer reaches each replica at "
                             "its published port, so the port the app listens on must be published (one port, or "
                             "set docker_container.port to the one the app serves)")
        return None

    # -- changing ----------------------------------------------------------------------------------
    def check_change(self, routes: bool, creating: bool = True) -> None:
        """Before an upgrade that replaces a freshly adopted set: its port must be known and a load balancer given
        (the adopted containers become its members before the swap)."""
        if not self.by_selector:
            return
        what = self.selector.describe() if self.selector else "the adopted containers"
        if self.port_problem:
            raise InvalidInput(f"cannot adopt {what}: {self.port_problem}")
        if not routes:
            raise InvalidInput(f"adopting {what} needs a load_balancer (haproxy or nginx): the adopted containers "
                               "are made its members before the first batch, and the swap moves traffic through it")

    def labels_for(self, port: t.Optional[str]) -> dict[str, str]:
        """The labels a container copied from an adopted one gets on top of the copy (none without an adopted set)."""
        if not self.ids:
            return {}
        labels = {LABEL_WORKLOAD: self.workload, LABEL_ADOPTED: ",".join(self.ids)}
        if port:
            labels[LABEL_PORT] = port
        return labels


def selector_given(selector: t.Optional[Selector]) -> Selector:
    """``selector``, which the caller knows is given (narrowed for the type checker)."""
    if selector is None:
        raise RolloutFailed("no adopt selector is given")
    return selector


def adapt_clone(config: dict[str, t.Any], template: t.Mapping[str, t.Any], labels: t.Mapping[str, str],
                compose_number: t.Optional[int]) -> dict[str, t.Any]:
    """A create body copied from ``template`` (replicas.clone_config) made fit for an adopted workload: ``labels``
    added (workload, port, adopted set) unless the template carries them, host ports ephemeral (same host
    address), and for a Compose service the container number ``compose_number``."""
    out = dict(config)
    merged = dict(out.get("Labels") or {})
    for key, value in labels.items():
        merged.setdefault(key, value)
    if LABEL_IMAGE not in merged:
        merged[LABEL_IMAGE] = out.get("Image", "")
    if compose_number is not None:
        merged[COMPOSE_NUMBER] = str(compose_number)
    out["Labels"] = merged
    host = dict(out.get("HostConfig") or {})
    bindings = host.get("PortBindings") or {}
    host["PortBindings"] = {port: [dict(b, HostPort="") for b in (binds or [])] for port, binds in bindings.items()}
    out["HostConfig"] = host
    return out


class ComposeNumbers:
    """Container numbers for new containers of a Compose service: above every number its containers carry (running
    or not), as Compose numbers its own, and never one twice in a run."""

    def __init__(self, taken: t.Iterable[int]) -> None:
        self._next = max(taken, default=0) + 1

    def take(self) -> int:
        number = self._next
        self._next += 1
        return number


def compose_numbers(replicas: t.Iterable[Replica]) -> list[int]:
    """The container numbers the containers ``replicas`` carry."""
    out = []
    for rep in replicas:
        value = ((rep.attrs.get("Config") or {}).get("Labels") or {}).get(COMPOSE_NUMBER)
        if str(value or "").isdigit():
            out.append(int(value))
    return out


class Copies:
    """What the copies a run creates get on top of replicas.clone_config: the adopted set's labels, ephemeral host
    ports and, for a container of a Compose service, a container number and name of their own. ``taken()``: the
    container numbers of the service's containers on the engine (asked once per run, on the first Compose copy)."""

    def __init__(self, adoption: Adoption, taken: t.Callable[[str, str], t.Iterable[int]]) -> None:
        self.adoption = adoption
        self._taken = taken
        self._numbers: dict[tuple[str, str], ComposeNumbers] = {}

    def adapt(self, config: dict[str, t.Any], template: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        """``config`` (a copy of ``template``) made fit for the workload."""
        labels = (template.get("Config") or {}).get("Labels") or {}
        number = None
        project, service = labels.get(COMPOSE_PROJECT), labels.get(COMPOSE_SERVICE)
        if project and service:
            key = (project, service)
            if key not in self._numbers:
                self._numbers[key] = ComposeNumbers(self._taken(project, service))
            number = self._numbers[key].take()
        port = labels.get(LABEL_PORT) or self.adoption.port or self.adoption.found_port
        return adapt_clone(config, template, self.adoption.labels_for(port), number)

    @staticmethod
    def name(config: t.Mapping[str, t.Any]) -> t.Optional[str]:
        """The name Compose would give the container ``config`` creates; None when it is not a Compose one."""
        labels = config.get("Labels") or {}
        if labels.get(COMPOSE_PROJECT) and labels.get(COMPOSE_SERVICE) and labels.get(COMPOSE_NUMBER):
            # Compose leaves leading '-' and '_' of the project out of its container names
            return f"{labels[COMPOSE_PROJECT].lstrip('-_')}_{labels[COMPOSE_SERVICE]}_{labels[COMPOSE_NUMBER]}"
        return None


def adoption_findings(adoption: Adoption, history: t.Any, balancer: t.Optional[str]) -> list[Finding]:
    """What preflight says about adoption: what the first upgrade will do with the containers the selector found
    (a warning, so that it is read), or why it cannot (an error). ``balancer`` as preflight.lint takes it."""
    if not adoption.by_selector:
        return []
    group = history.groups.get(ADOPTED_REVISION)
    names = ", ".join(sorted(r.name for r in group.replicas)) if group else ""
    what = adoption.selector.describe() if adoption.selector else "the adopted containers"
    if adoption.port_problem:
        return [Finding("adoption", "error", f"{what} cannot be adopted: {adoption.port_problem}",
                        "publish the app's port on the containers (one port), or set docker_container.port")]
    if balancer is None:
        return [Finding("adoption", "error", f"adopting {what} needs a load balancer: the adopted containers are "
                        "made its members before the first batch", "set load_balancer")]
    return [Finding("adoption", "warning",
                    f"the first image_upgrade adopts {what} ({names}, image {group.image if group else '?'}, port "
                    f"{adoption.found_port}) as revision 1: it makes them load balancer members if they are not, "
                    "starts copies of their configuration with the new image as revision 2, and keeps them, stopped "
                    "and unchanged, as the revision a rollback restarts",
                    "nothing to fix: skip this check (adoption) once you have read it")]


class ComposeScope(Scope):
    """A :class:`Scope` that also owns the members of every container Compose would name for service ``service``
    of project ``project`` (``<project>_<service>_<number>``): copies made during a run are named so, after the
    run bound the load balancer to its scope."""

    def __init__(self, workload: str, tag: str, legacy: t.Iterable[str], project: str, service: str) -> None:
        super().__init__(workload, tag, legacy)
        prefix = server_name(f"{project.lstrip('-_')}_{service}_")
        self._compose = re.compile(rf"^{re.escape(prefix)}\d+\.{re.escape(tag)}$")

    def owns(self, member: str) -> bool:
        return super().owns(member) or bool(self._compose.match(member))


def compose_service_of(selector: t.Optional[Selector], replicas: t.Iterable[Replica]) -> t.Optional[tuple[str, str]]:
    """(project, service) of a workload that is a Compose service: from the selector, else from its containers'
    Compose labels; None for any other workload."""
    if selector is not None and selector.compose:
        return str(selector.project), str(selector.service)
    for rep in replicas:
        labels = (rep.attrs.get("Config") or {}).get("Labels") or {}
        if labels.get(COMPOSE_PROJECT) and labels.get(COMPOSE_SERVICE):
            return labels[COMPOSE_PROJECT], labels[COMPOSE_SERVICE]
    return None
