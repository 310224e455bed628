# Copyright: zerodown maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Note that this module util is PRIVATE to the collection. It can change at any time.
"""Caddy driver: the upstreams of one ``reverse_proxy`` handler, changed through Caddy's admin API.

The handler is the object of Caddy's JSON config whose ``"@id"`` is ``handler_id``. A member is one object of
its ``upstreams`` list carrying an ``"@id"`` of its own, the member name (``{"@id": "<name>", "dial":
"host:port"}``); Caddy strips ``@id`` fields before it decodes a config, so they cost nothing. Upstreams
without an ``@id``, or with one this run does not own, are other people's and stay as they are.

Every change is one read-modify-write of the handler: ``GET /config/<path>``, then ``PATCH`` of the same path
with ``If-Match: "<path> <hash>"`` (Caddy's ETag: the FNV-1a 32-bit hash of what the GET returned), so two runs
sharing one Caddy cannot overwrite each other's change; a 412 reads again. Each change is a config reload in
Caddy (no restart): the new config serves new requests at once, the old one finishes those in flight.

Drain: Caddy has no drain state for an upstream, so a member taken out is removed from the config. Caddy sends it
no new request once the PATCH is answered; the requests the old config proxied there finish on the old config's
server, which shuts down gracefully (Caddy's ``grace_period``, unlimited by default; websockets are closed at
once). Caddy does not count those requests anywhere once the upstream has left the config (its entry in
``/reverse_proxy/upstreams`` goes with the old config), so ``wait_drained`` waits while the address is still
listed with requests in flight (another handler still uses it), then ``drain_grace`` seconds.

Reload safety: a ``caddy reload`` (or a restart) from a config file loads what the file says. With
``config_file``, the driver writes the handler's intended upstreams into that JSON file first (atomically, under
the file's lock), then changes the running Caddy, so a reload at any moment keeps the intended members.
``reconcile`` brings the running handler back to the intent whatever happened meanwhile.

Weights: Caddy 2.6 (Debian 12's) has no weighted selection policy (``weighted_round_robin`` came with 2.7), so
the driver weighs nothing and refuses weights and ``strategy: steps``.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import typing as t
from urllib.parse import quote

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import (
    Balancer,
    Member,
    describe_file_fixes,
    describe_fixes,
    plan_fixes,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.files import (
    file_lock,
    read_text,
    replace_text,
)
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    PlatformUnreachable,
    RolloutFailed,
)

DEFAULT_ADMIN = "localhost:2019"
POLL = 0.2
# attempts of one read-modify-write when another writer changed the handler between the read and the write
WRITE_ATTEMPTS = 10
UNWEIGHTED = ("Caddy 2.6 (Debian 12's caddy package) has no weighted selection policy for reverse_proxy "
              "(weighted_round_robin came with Caddy 2.7), so the caddy driver does not weigh its members")


MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req"
MIGRATE_REQ_NAME = "net.ipv4.tcp_migrate_req"


def _admin_is_local(address: str) -> bool:
    """Whether the admin API (and so Caddy) is on the machine the module runs on: a unix socket or a loopback host."""
    try:
        kind, where = parse_admin(address)
    except InvalidInput:
        return False
    if kind == "unix":
        return True
    host = where.rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


class CaddyError(RolloutFailed):
    """Caddy's admin API refused a request."""


def fnv1a_32(data: bytes) -> str:
    """The hash Caddy's admin API puts in its ETags and checks an If-Match against, as 8 hex digits."""
    value = 0x811C9DC5
    for byte in data:
        value ^= byte
        value = (value * 0x01000193) & 0xFFFFFFFF
    return f"{value:08x}"


def parse_admin(address: str) -> tuple[str, str]:
    """``("unix", path)`` or ``("tcp", "host:port")`` from an admin address as Caddy writes it (``localhost:2019``,
    ``unix//run/caddy/admin.sock``) or as a URL (``http://127.0.0.1:2019``); a bare absolute path is a socket."""
    text = (address or "").strip()
    if text.startswith("unix/"):
        path = text[len("unix/"):]
        if path.startswith("/") and len(path) > 1:
            return "unix", path
    elif text.startswith("/"):
        return "unix", text
    else:
        if text.startswith("https://"):
            raise InvalidInput(f"load_balancer.admin={address!r}: the caddy driver speaks to Caddy's admin API over "
                               "plain HTTP on a loopback address or a unix socket; the remote admin endpoint (TLS with "
                               "client certificates) is not supported")
        if text.startswith("http://"):
            text = text[len("http://"):].rstrip("/")
        host, _sep, port = text.rpartition(":")
        if host and port.isdigit() and "/" not in text:
            return "tcp", text
    raise InvalidInput(f"load_balancer.admin={address!r} is not an admin API address: give host:port (Caddy's "
                       f"default is {DEFAULT_ADMIN}), http://host:port, or unix//path/to/admin.sock")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class CaddyAdmin:
    """HTTP requests to Caddy's admin API (one connection each)."""

    def __init__(self, address: str, timeout: float) -> None:
        self.address = address
        self.network, self.target = parse_admin(address)
        self.timeout = timeout

    def request(self, method: str, path: str, body: t.Optional[bytes] = None,
                headers: t.Optional[t.Mapping[str, str]] = None) -> tuple[int, bytes]:
        """(status, body) of one request; PlatformUnreachable when Caddy does not answer."""
        sent = dict(headers or {})
        if self.network == "unix":
            conn: http.client.HTTPConnection = _UnixConnection(self.target, self.timeout)
            # Caddy's admin API on a unix socket allows only an empty Host
            sent["Host"] = ""
        else:
            host, _sep, port = self.target.rpartition(":")
            conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=self.timeout)
        if body is not None:
            sent["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise PlatformUnreachable(f"Caddy's admin API at {self.address} did not answer {method} {path} ({exc}); "
                                      "check load_balancer.admin and that Caddy runs with its admin endpoint there")
        finally:
            conn.close()

    def get_json(self, path: str) -> tuple[t.Any, bytes]:
        status, body = self.request("GET", path)
        if status != 200:
            raise CaddyError(f"Caddy's admin API answered {status} to GET {path}: {_error_text(body)}")
        try:
            return json.loads(body.decode() or "null"), body
        except ValueError as exc:
            raise PlatformUnreachable(f"{self.address} answered GET {path} with something that is not JSON ({exc}); "
                                      "is load_balancer.admin Caddy's admin endpoint?")


def _error_text(body: bytes) -> str:
    text = body.decode(errors="replace").strip()
    try:
        return str(json.loads(text).get("error") or text)
    except (ValueError, AttributeError):
        return text


def find_ids(node: t.Any, path: str, out: dict[str, list[str]]) -> dict[str, list[str]]:
    """Every ``@id`` of a config (as Caddy indexes them) -> the config paths of the objects carrying it."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "@id" and isinstance(value, (str, int, float)) and not isinstance(value, bool):
                out.setdefault(str(value), []).append(path)
            else:
                find_ids(value, f"{path}/{key}", out)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            find_ids(value, f"{path}/{index}", out)
    return out


def member_of(upstream: t.Any) -> tuple[str, str]:
    """(name, dial address) of one upstream object: its ``@id``, else its address (an upstream nobody named)."""
    if not isinstance(upstream, dict):
        return "", ""
    dial = str(upstream.get("dial") or upstream.get("lookup_srv") or "")
    return str(upstream.get("@id") or dial), dial


def locate_handler(config: t.Any, handler_id: str, where: str) -> tuple[str, dict[str, t.Any]]:
    """(config path, object) of the reverse_proxy handler ``handler_id`` names in ``config`` (a whole config, whose
    paths start with ``/config``); InvalidInput saying what to fix otherwise."""
    ids = find_ids(config, "/config", {})
    paths = ids.get(handler_id, [])
    if not paths:
        known = ", ".join(sorted(ids)) or "none"
        raise InvalidInput(f"{where} has no object with \"@id\": {handler_id!r} (its @ids: {known}); put "
                           f"\"@id\": \"{handler_id}\" on the reverse_proxy handler, or set load_balancer.handler_id")
    if len(paths) > 1:
        raise InvalidInput(f"{where} has {len(paths)} objects with \"@id\": {handler_id!r} ({', '.join(paths)}); an @id "
                           "must name one object")
    node: t.Any = config
    for part in paths[0].split("/")[2:]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if not isinstance(node, dict) or node.get("handler") != "reverse_proxy":
        kind = node.get("handler") if isinstance(node, dict) else type(node).__name__
        raise InvalidInput(f"\"@id\": {handler_id!r} in {where} is on {paths[0]} ({kind or 'not a handler'}), not on a "
                           "reverse_proxy handler; move it to the handler whose upstreams the workload's replicas are")
    if node.get("dynamic_upstreams") is not None:
        raise InvalidInput(f"the reverse_proxy handler {handler_id!r} in {where} takes its upstreams from "
                           "dynamic_upstreams, which the driver cannot change; give it a static upstreams list")
    if not isinstance(node.get("upstreams", []), list):
        raise InvalidInput(f"the upstreams of the reverse_proxy handler {handler_id!r} in {where} are not a list")
    return paths[0], node


class CaddyUpstreams(Balancer):
    """Drives the upstreams of one reverse_proxy handler through Caddy's admin API."""

    kind = "caddy"
    OPTIONS = {
        "admin": {"type": "str"},
        "handler_id": {"type": "str"},
        "config_file": {"type": "path"},
        "drain_grace": {"type": "float"},
        "timeout": {"type": "float"},
    }

    def __init__(self, handler_id: str, admin: str = DEFAULT_ADMIN, config_file: t.Optional[str] = None,
                 drain_grace: float = 1.0, timeout: float = 10.0) -> None:
        super().__init__()
        if not handler_id or "/" in handler_id:
            raise InvalidInput(f"load_balancer.handler_id={handler_id!r} is not an @id the admin API can address "
                               "(non-empty, without '/')")
        self.api = CaddyAdmin(admin, timeout)
        self.admin = admin
        self.handler_id = handler_id
        self.config_file = config_file
        self.drain_grace = drain_grace
        self.timeout = timeout
        # the addresses of members drained by this run, for wait_drained
        self._drained: dict[str, str] = {}

    @classmethod
    def from_spec(cls, spec: dict[str, t.Any], workload: str, runner: t.Any = None) -> "CaddyUpstreams":
        grace = spec.get("drain_grace")
        if grace is not None and grace < 0:
            raise InvalidInput(f"load_balancer.drain_grace must be zero or more seconds, got {grace}")
        timeout = spec.get("timeout")
        if timeout is not None and timeout <= 0:
            raise InvalidInput(f"load_balancer.timeout must be more than 0 (seconds an answer of Caddy's admin API "
                               f"may take), got {timeout}")
        admin = spec.get("admin")
        if admin is not None and not admin.strip():
            raise InvalidInput(f"load_balancer.admin is empty; leave it unset for Caddy's default, {DEFAULT_ADMIN}")
        handler = spec.get("handler_id")
        return cls(
            handler_id=workload if handler is None else handler,
            admin=DEFAULT_ADMIN if admin is None else admin,
            config_file=spec.get("config_file"),
            drain_grace=float(grace if grace is not None else 1.0),
            timeout=float(timeout if timeout is not None else 10.0),
        )

    def describe(self) -> str:
        return f"Caddy reverse_proxy handler {self.handler_id!r} at {self.admin}"

    def unweighted_reason(self) -> str:
        return UNWEIGHTED

    def advisories(self) -> list[str]:
        """Caddy rebinds its listeners on every config change (SO_REUSEPORT); when the old socket closes, Linux resets
        the connections still waiting in its accept queue unless net.ipv4.tcp_migrate_req moves them to the new one.
        Read where the module runs, which is Caddy's machine when the admin API is local."""
        if not _admin_is_local(self.admin):
            return []
        try:
            with open(MIGRATE_REQ, encoding="ascii") as handle:
                value = handle.read().strip()
        except OSError:
            return []  # not Linux, or a kernel before 5.14 (no such setting)
        if value != "0":
            return []
        return [f"{MIGRATE_REQ_NAME} is 0 on this machine: Caddy rebinds its listening sockets on every change of "
                "its config (each upstream added or taken out), and Linux resets the client connections still "
                "waiting in the old socket's accept queue, so a few requests can fail with 'connection reset' during "
                f"an upgrade. Set {MIGRATE_REQ_NAME}=1 (sysctl -w, and in /etc/sysctl.d/ to keep it) so that Linux "
                "hands them to the new socket"]

    # -- reading -------------------------------------------------------------------------------------
    def _handler(self) -> tuple[str, dict[str, t.Any], bytes]:
        """(config path, object, the exact bytes Caddy answered for that path) of the handler, read now."""
        config, _raw = self.api.get_json("/config/")
        if config is None:
            raise InvalidInput(f"Caddy at {self.admin} runs no config; load one with the reverse_proxy handler "
                               f"\"@id\": \"{self.handler_id}\"")
        path, _node = locate_handler(config, self.handler_id, f"the config Caddy runs ({self.admin})")
        node, raw = self.api.get_json(path)
        # the config changed between the two reads: locate it in what was read last
        if not isinstance(node, dict) or node.get("@id") != self.handler_id:
            raise CaddyError(f"the config of Caddy at {self.admin} changed while it was read; run again")
        return path, node, raw

    def check(self) -> None:
        self._handler()
        if self.config_file:
            self._read_file()

    def _in_flight(self) -> dict[str, int]:
        """num_requests of ``/reverse_proxy/upstreams`` by dial address (upstreams of the running config only)."""
        rows, _raw = self.api.get_json("/reverse_proxy/upstreams")
        out: dict[str, int] = {}
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and row.get("address"):
                out[str(row["address"])] = out.get(str(row["address"]), 0) + int(row.get("num_requests") or 0)
        return out

    def members(self) -> dict[str, Member]:
        _path, node, _raw = self._handler()
        flights = self._in_flight()
        out: dict[str, Member] = {}
        for upstream in node.get("upstreams") or []:
            name, dial = member_of(upstream)
            if name:
                out[name] = Member(name, dial, "UP", flights.get(dial, 0))
        return out

    # -- writing -------------------------------------------------------------------------------------
    def _render(self, upstreams: t.Sequence[t.Any]) -> list[t.Any]:
        """``upstreams`` with the owned ones replaced by the intent: others' first, as they were, then the
        intended members by name."""
        kept = [u for u in upstreams if not self.owns(member_of(u)[0])]
        return kept + [{"@id": name, "dial": address} for name, address in sorted(self.intent.items())]

    def _apply(self) -> bool:
        """Make the running handler's owned upstreams the intent (one If-Match PATCH); whether it changed."""
        for _attempt in range(WRITE_ATTEMPTS):
            path, node, raw = self._handler()
            upstreams = node.get("upstreams") or []
            wanted = self._render(upstreams)
            if wanted == upstreams:
                return False
            node = dict(node, upstreams=wanted)
            status, body = self.api.request("PATCH", quote(path), json.dumps(node).encode(),
                                            {"If-Match": f'"{path} {fnv1a_32(raw)}"'})
            if status == 200:
                return True
            if status != 412:  # 412: another writer changed the handler since the read
                raise CaddyError(f"Caddy refused the new upstreams of handler {self.handler_id!r} ({status}: "
                                 f"{_error_text(body)}); the running config is unchanged")
        raise CaddyError(f"the reverse_proxy handler {self.handler_id!r} of Caddy at {self.admin} kept changing under "
                         f"{WRITE_ATTEMPTS} attempts to write it: is something else rewriting it without end?")

    def _read_file(self) -> tuple[t.Optional[str], t.Any, list[str], dict[str, t.Any]]:
        """(text, parsed config, path parts of the handler, handler object) of ``config_file``."""
        path = t.cast(str, self.config_file)
        text = read_text(path)
        where = f"load_balancer.config_file {path}"
        if text is None:
            raise InvalidInput(f"{where} does not exist: it must be the JSON config Caddy loads on a reload or "
                               "restart, with the reverse_proxy handler's @id (caddy adapt turns a Caddyfile into one)")
        try:
            config = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"{where} is not JSON ({exc}); the driver writes the upstreams into Caddy's JSON "
                               "config (caddy adapt --pretty turns a Caddyfile into one)")
        hpath, node = locate_handler({"config": config}, self.handler_id, where)
        return text, config, hpath.split("/")[2:], node

    def persist(self) -> list[str]:
        """Write the intended upstreams into ``config_file`` (atomically, under the file's lock); what it fixed."""
        if not self.config_file:
            return []
        with file_lock(self.config_file):
            text, config, _parts, node = self._read_file()
            upstreams = node.get("upstreams") or []
            wanted = self._render(upstreams)
            if wanted == upstreams:
                return []
            node["upstreams"] = wanted
            try:
                replace_text(self.config_file, json.dumps(config, indent=2) + "\n")
            except OSError as exc:
                raise RolloutFailed(f"cannot write load_balancer.config_file {self.config_file} ({exc}); a reload of "
                                    "Caddy from it would not find the intended members")
        return self._file_fixes(upstreams)

    def _file_fixes(self, upstreams: t.Sequence[t.Any]) -> list[str]:
        listed = dict(member_of(u) for u in upstreams if self.owns(member_of(u)[0]))
        return describe_file_fixes(listed, self.intent, f"config_file {self.config_file}", "dropped", "wrote the missing")

    # -- the swap's steps ----------------------------------------------------------------------------
    def add(self, name: str, address: str) -> None:
        self.intent[name] = address
        self.persist()
        self._apply()

    def wait_up(self, name: str, timeout: float, follow: t.Optional[t.Callable[[], t.Optional[str]]] = None) -> None:
        """Until the running handler has the member (a reload from an older file may have dropped it: put back).
        ``follow`` is not needed: Caddy checks no health, a member is up once the handler has it."""
        deadline = time.monotonic() + timeout
        while True:
            member = self.members().get(name)
            if member is not None and member.address == self.intent.get(name):
                return
            if name in self.intent:
                self._apply()
            if time.monotonic() >= deadline:
                break
            time.sleep(POLL)
        raise RolloutFailed(f"Caddy's reverse_proxy handler {self.handler_id!r} did not keep upstream {name} within "
                            f"{timeout:g}s: is something else rewriting Caddy's config?")

    def drain(self, name: str) -> None:
        """Remove the member from the running handler: Caddy sends it no new request from then on."""
        member = self.members().get(name)
        address = self.intent.get(name) or (member.address if member is not None else None)
        if address:
            self._drained[name] = address
        self._forget(name)
        self.persist()
        self._apply()

    def wait_drained(self, name: str, timeout: float) -> bool:
        """While the address is still in ``/reverse_proxy/upstreams`` with requests in flight, wait for them; then
        ``drain_grace`` seconds for those the old config still finishes, which Caddy counts nowhere."""
        address = self._drained.get(name)
        deadline = time.monotonic() + max(timeout, 0.0)
        while address and self._in_flight().get(address, 0) > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL)
        time.sleep(max(0.0, min(self.drain_grace, deadline - time.monotonic())))
        return True

    def remove(self, name: str) -> None:
        self.drain(name)

    def set_weights(self, weights: t.Mapping[str, t.Optional[int]]) -> list[str]:
        raise RolloutFailed(f"{UNWEIGHTED}; use load_balancer.type haproxy or nginx for weights")

    def release(self, names: t.Sequence[str], timeout: t.Optional[float] = None) -> list[str]:
        """Before the containers behind ``names`` stop: a reload from an older file may have brought them back into
        the running handler; take them out again."""
        names = [n for n in names if n not in self.intent]
        if names and any(n in self.members() for n in names):
            self._apply()
        return []

    # -- convergence ---------------------------------------------------------------------------------
    def divergence(self, members: t.Optional[t.Mapping[str, Member]] = None) -> list[str]:
        members = self.members() if members is None else members
        stale, missing, _parked = plan_fixes(self.intent, members, self.owns)
        out = describe_fixes(stale, missing, [], members, self.intent, f"Caddy handler {self.handler_id}")
        if self.config_file:
            _text, _config, _parts, node = self._read_file()
            upstreams = node.get("upstreams") or []
            if self._render(upstreams) != upstreams:
                out += self._file_fixes(upstreams)
        return out

    def reconcile(self, settle: bool = False, wait: bool = True) -> list[str]:
        fixes = self.persist()
        members = self.members()
        stale, missing, _parked = plan_fixes(self.intent, members, self.owns)
        if stale or missing:
            fixes += describe_fixes(stale, missing, [], members, self.intent, f"Caddy handler {self.handler_id}")
        self._apply()
        return fixes
