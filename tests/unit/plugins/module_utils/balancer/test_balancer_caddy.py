"""The Caddy driver against a fake admin API that keeps a JSON config and answers as Caddy 2.6 does: GET and
PATCH of /config/ paths (If-Match checked against the hash of what a GET of the path returns), and
/reverse_proxy/upstreams from the running config's upstreams."""
from __future__ import annotations

import json
import os
import socketserver
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.zerodown.rollout.plugins.module_utils.balancer import caddy as cd
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.base import Scope
from ansible_collections.zerodown.rollout.plugins.module_utils.balancer.registry import make_balancer
from ansible_collections.zerodown.rollout.plugins.module_utils.docker.steps import check_steps
from ansible_collections.zerodown.rollout.plugins.module_utils.rollout import (
    InvalidInput,
    PlatformUnreachable,
    RolloutFailed,
)

TAG = "aaaaaa"


def caddy_config(upstreams, handler_id="shop"):
    return {"apps": {"http": {"servers": {"srv0": {"listen": [":8080"], "routes": [
        {"match": [{"path": ["/static/*"]}], "handle": [{"handler": "file_server", "@id": "files"}]},
        {"handle": [{"handler": "headers"}, {"@id": handler_id, "handler": "reverse_proxy", "upstreams": upstreams}]},
    ]}}}}}


HANDLER_PATH = "/config/apps/http/servers/srv0/routes/1/handle/1"


def _walk(root, path):
    """(parent, key) of a /config/... path in {"config": ...}."""
    node, parts = root, path.strip("/").split("/")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    return node, int(last) if isinstance(node, list) else last


class FakeCaddyAdmin:
    """Caddy's admin API over a config held in memory; ``in_flight`` gives num_requests by address."""

    def __init__(self, config, unix=False):
        self.root = {"config": config}
        self.in_flight = {}
        self.requests = []
        self.reloads = 0
        # called once between the handler's read and the next PATCH: another writer at that moment
        self.before_patch = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status, body):
                data = body if isinstance(body, bytes) else (json.dumps(body) + "\n").encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                fake.requests.append(("GET", self.path, self.headers.get("Host")))
                if self.path == "/reverse_proxy/upstreams":
                    self._send(200, [{"address": u.get("dial"), "num_requests": fake.in_flight.get(u.get("dial"), 0),
                                      "fails": 0} for u in fake.upstreams()])
                    return
                if not self.path.startswith("/config/"):
                    self._send(404, {"error": "not found"})
                    return
                self._send(200, fake.read(self.path))

            def do_PATCH(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(("PATCH", self.path, self.headers.get("If-Match")))
                if fake.before_patch is not None:
                    change, fake.before_patch = fake.before_patch, None
                    change(fake)
                match = self.headers.get("If-Match")
                if match:
                    path, digest = match.strip('"').split()
                    if cd.fnv1a_32(fake.read(path)) != digest:
                        self._send(412, {"error": "If-Match header did not match current config hash"})
                        return
                parent, key = _walk(fake.root, self.path)
                parent[key] = body
                fake.reloads += 1
                self._send(200, b"")

        if unix:
            self.dir = tempfile.mkdtemp(prefix="zd-caddy-")
            self.address = f"unix/{os.path.join(self.dir, 'admin.sock')}"

            class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
                daemon_threads = True

                def get_request(self):
                    conn, _addr = super().get_request()
                    return conn, ("local", 0)

            self.server = Server(os.path.join(self.dir, "admin.sock"), Handler)
        else:
            self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def read(self, path):
        if path.rstrip("/") == "/config":
            return (json.dumps(self.root["config"]) + "\n").encode()
        parent, key = _walk(self.root, path)
        return (json.dumps(parent[key]) + "\n").encode()

    def handler(self):
        parent, key = _walk(self.root, HANDLER_PATH)
        return parent[key]

    def upstreams(self):
        return self.handler().get("upstreams") or []

    def dials(self):
        return {u.get("@id", u["dial"]): u["dial"] for u in self.upstreams()}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    admin = FakeCaddyAdmin(caddy_config([{"dial": "10.0.0.9:80"}, {"@id": "other-r1-x.bbbbbb", "dial": "10.0.0.8:80"}]))
    yield admin
    admin.close()


def _bound(fake, intent=None, **spec):
    lb = make_balancer({"type": "caddy", "admin": fake.address, "handler_id": "shop", "drain_grace": 0, **spec}, "app")
    lb.bind(Scope("app", TAG), intent or {}, drain_timeout=2, up_timeout=2)
    return lb


def test_fnv1a_32_is_the_hash_caddy_puts_in_etags():
    # published FNV-1a 32-bit test vectors
    assert cd.fnv1a_32(b"") == "811c9dc5"
    assert cd.fnv1a_32(b"a") == "e40c292c"
    assert cd.fnv1a_32(b"foobar") == "bf9cf968"


@pytest.mark.parametrize("address, parsed", [
    ("localhost:2019", ("tcp", "localhost:2019")),
    ("http://127.0.0.1:2019/", ("tcp", "127.0.0.1:2019")),
    ("unix//run/caddy/admin.sock", ("unix", "/run/caddy/admin.sock")),
    ("/run/caddy/admin.sock", ("unix", "/run/caddy/admin.sock")),
])
def test_admin_addresses_as_caddy_writes_them(address, parsed):
    assert cd.parse_admin(address) == parsed


@pytest.mark.parametrize("address, said", [
    ("https://caddy.example:2021", "remote admin endpoint"),
    ("localhost", "is not an admin API address"),
    ("unix/", "is not an admin API address"),
])
def test_bad_admin_addresses_are_refused_with_the_forms_to_use(address, said):
    with pytest.raises(InvalidInput, match=said):
        make_balancer({"type": "caddy", "admin": address}, "app")


def test_members_are_the_handlers_upstreams_named_by_their_id_or_address(fake):
    fake.in_flight["10.0.0.8:80"] = 3
    members = _bound(fake).members()
    assert {n: (m.address, m.sessions) for n, m in members.items()} == {
        "10.0.0.9:80": ("10.0.0.9:80", 0), "other-r1-x.bbbbbb": ("10.0.0.8:80", 3)}


def test_add_appends_a_named_upstream_and_keeps_the_others_as_they_are(fake):
    lb = _bound(fake)
    lb.add("app-r1-c1.aaaaaa", "127.0.0.1:32001")
    lb.wait_up("app-r1-c1.aaaaaa", 2)
    assert fake.upstreams() == [{"dial": "10.0.0.9:80"}, {"@id": "other-r1-x.bbbbbb", "dial": "10.0.0.8:80"},
                                {"@id": "app-r1-c1.aaaaaa", "dial": "127.0.0.1:32001"}]
    # the rest of the handler and of the config is untouched
    assert fake.handler()["handler"] == "reverse_proxy" and fake.handler()["@id"] == "shop"
    assert fake.reloads == 1
    # every write is conditional on the handler as read
    patches = [r for r in fake.requests if r[0] == "PATCH"]
    assert patches == [("PATCH", HANDLER_PATH, f'"{HANDLER_PATH} {patches[0][2].split()[1]}')]


def test_a_handler_without_upstreams_gets_a_list(fake):
    fake.handler().pop("upstreams")
    lb = _bound(fake)
    lb.add("app-r1-c1.aaaaaa", "127.0.0.1:32001")
    assert fake.upstreams() == [{"@id": "app-r1-c1.aaaaaa", "dial": "127.0.0.1:32001"}]


def test_drain_removes_the_member_and_waits_for_its_requests_while_caddy_still_lists_it(fake):
    lb = _bound(fake, {"app-r1-c1.aaaaaa": "127.0.0.1:32001"})
    lb.reconcile()
    lb.drain("app-r1-c1.aaaaaa")
    assert "app-r1-c1.aaaaaa" not in fake.dials() and lb.intent == {}
    assert lb.wait_drained("app-r1-c1.aaaaaa", 1) is True
    # another handler of the config still uses the address, with a request in flight: not drained in time
    fake.handler()["upstreams"].append({"dial": "127.0.0.1:32001"})
    fake.in_flight["127.0.0.1:32001"] = 1
    assert lb.wait_drained("app-r1-c1.aaaaaa", 0.5) is False
    fake.in_flight["127.0.0.1:32001"] = 0
    assert lb.wait_drained("app-r1-c1.aaaaaa", 0.5) is True
    # remove is idempotent once drained
    before = fake.reloads
    lb.remove("app-r1-c1.aaaaaa")
    assert fake.reloads == before


def test_a_write_racing_another_writer_reads_again_and_keeps_its_change(fake):
    lb = _bound(fake)

    def other_host_adds(admin):
        admin.handler()["upstreams"].append({"@id": "app-r1-c9.cccccc", "dial": "10.0.0.7:80"})
    fake.before_patch = other_host_adds
    lb.add("app-r1-c1.aaaaaa", "127.0.0.1:32001")
    assert fake.dials() == {"10.0.0.9:80": "10.0.0.9:80", "other-r1-x.bbbbbb": "10.0.0.8:80",
                            "app-r1-c9.cccccc": "10.0.0.7:80", "app-r1-c1.aaaaaa": "127.0.0.1:32001"}
    assert [r[0] for r in fake.requests].count("PATCH") == 2  # the first got 412


def test_reconcile_puts_back_what_a_reload_dropped_and_takes_out_stale_owned_members(fake):
    lb = _bound(fake, {"app-r2-c1.aaaaaa": "127.0.0.1:32002"})
    fake.handler()["upstreams"].append({"@id": "app-r1-c0.aaaaaa", "dial": "127.0.0.1:32000"})
    assert lb.divergence() == [
        "Caddy handler shop: took out app-r1-c0.aaaaaa (127.0.0.1:32000, UP), which no running replica of this "
        "workload on this engine backs",
        "Caddy handler shop: added the missing app-r2-c1.aaaaaa (127.0.0.1:32002)"]
    fixes = lb.reconcile()
    assert len(fixes) == 2 and lb.divergence() == []
    assert fake.dials() == {"10.0.0.9:80": "10.0.0.9:80", "other-r1-x.bbbbbb": "10.0.0.8:80",
                            "app-r2-c1.aaaaaa": "127.0.0.1:32002"}
    before = fake.reloads
    assert lb.reconcile() == [] and fake.reloads == before  # nothing to do: no reload of Caddy


def test_config_file_is_written_before_the_running_caddy_and_keeps_the_rest(fake, tmp_path):
    path = tmp_path / "caddy.json"
    path.write_text(json.dumps(caddy_config([{"dial": "10.0.0.9:80"}])))
    lb = _bound(fake, config_file=str(path))
    lb.check()
    order = []
    original = lb._apply
    lb._apply = lambda: (order.append(json.loads(path.read_text())), original())[1]
    lb.add("app-r1-c1.aaaaaa", "127.0.0.1:32001")
    written = json.loads(path.read_text())
    assert order == [written]  # the file had the member before Caddy was changed
    assert written == caddy_config([{"dial": "10.0.0.9:80"}, {"@id": "app-r1-c1.aaaaaa", "dial": "127.0.0.1:32001"}])
    lb.drain("app-r1-c1.aaaaaa")
    assert json.loads(path.read_text()) == caddy_config([{"dial": "10.0.0.9:80"}])


@pytest.mark.parametrize("content, said", [
    (None, "does not exist"),
    ("{not json", "is not JSON"),
    (json.dumps(caddy_config([], handler_id="web")), "has no object with \"@id\": 'shop' (its @ids: files, web)"),
])
def test_a_config_file_the_driver_cannot_use_is_refused_at_check(fake, tmp_path, content, said):
    path = tmp_path / "caddy.json"
    if content is not None:
        path.write_text(content)
    lb = _bound(fake, config_file=str(path))
    with pytest.raises(InvalidInput, match=said.replace("(", r"\(").replace(")", r"\)")):
        lb.check()
    assert fake.reloads == 0


def test_check_names_what_to_fix(fake):
    with pytest.raises(InvalidInput, match=r"has no object with \"@id\": 'nope' \(its @ids: files, other-r1-x.bbbbbb, shop\)"):
        make_balancer({"type": "caddy", "admin": fake.address, "handler_id": "nope"}, "app").check()
    with pytest.raises(InvalidInput, match="not on a reverse_proxy handler"):
        make_balancer({"type": "caddy", "admin": fake.address, "handler_id": "files"}, "app").check()
    fake.handler()["dynamic_upstreams"] = {"source": "a"}
    with pytest.raises(InvalidInput, match="dynamic_upstreams"):
        make_balancer({"type": "caddy", "admin": fake.address}, "shop").check()
    assert fake.reloads == 0


def test_an_admin_address_nothing_answers_on_is_unreachable():
    with pytest.raises(PlatformUnreachable, match="Caddy's admin API at 127.0.0.1:9 did not answer"):
        make_balancer({"type": "caddy", "admin": "127.0.0.1:9", "timeout": 1}, "app").check()


def test_unix_socket_admin_with_the_empty_host_caddy_requires():
    admin = FakeCaddyAdmin(caddy_config([]), unix=True)
    try:
        lb = make_balancer({"type": "caddy", "admin": admin.address}, "shop")
        lb.check()
        assert admin.requests and all(host == "" for method, _path, host in admin.requests if method == "GET")
    finally:
        admin.close()


@pytest.mark.parametrize("spec, said", [
    ({"drain_grace": -1}, "drain_grace must be zero or more"),
    ({"timeout": 0}, "load_balancer.timeout must be more than 0"),
    ({"admin": " "}, "load_balancer.admin is empty"),
    ({"handler_id": ""}, "is not an @id the admin API can address"),
    ({"socket": "/x.sock"}, "load_balancer.socket applies to type=haproxy, not to load_balancer.type=caddy"),
])
def test_bad_suboptions_are_refused(spec, said):
    with pytest.raises(InvalidInput, match=said):
        make_balancer({"type": "caddy", **spec}, "app")


def test_defaults_and_explicit_values():
    lb = make_balancer({"type": "caddy"}, "shop")
    assert (lb.admin, lb.handler_id, lb.drain_grace, lb.timeout, lb.config_file) == ("localhost:2019", "shop", 1.0, 10.0, None)
    lb = make_balancer({"type": "caddy", "drain_grace": 0, "handler_id": "web"}, "shop")
    assert (lb.drain_grace, lb.handler_id) == (0.0, "web")


def test_weights_and_steps_are_refused_naming_the_caddy_version(fake):
    lb = _bound(fake, {"app-r1-c1.aaaaaa": "127.0.0.1:32001"})
    with pytest.raises(RolloutFailed, match=r"Caddy 2\.6 .*\(weighted_round_robin came with Caddy 2\.7\)"):
        lb.set_weights({"app-r1-c1.aaaaaa": 0})
    with pytest.raises(InvalidInput, match=r"strategy=steps needs a load balancer that weighs .*not caddy: Caddy 2\.6"):
        check_steps({"steps": [{"weight": 10}]}, lb)
    assert fake.reloads == 0


def test_release_takes_out_again_a_member_a_reload_brought_back(fake):
    lb = _bound(fake, {"app-r1-c1.aaaaaa": "127.0.0.1:32001"})
    lb.reconcile()
    lb.drain("app-r1-c1.aaaaaa")
    fake.handler()["upstreams"].append({"@id": "app-r1-c1.aaaaaa", "dial": "127.0.0.1:32001"})
    assert lb.release(["app-r1-c1.aaaaaa"]) == []
    assert "app-r1-c1.aaaaaa" not in fake.dials()


@pytest.mark.parametrize("admin, value, warned", [
    ("localhost:2019", "0", True),
    ("unix//run/caddy/admin.sock", "0", True),
    ("127.0.0.1:2019", "1", False),
    ("10.0.0.5:2019", "0", False),   # Caddy on another machine: this machine's setting says nothing of it
])
def test_preflight_advice_on_connections_reset_when_caddy_rebinds(tmp_path, monkeypatch, admin, value, warned):
    setting = tmp_path / "tcp_migrate_req"
    setting.write_text(value + "\n")
    monkeypatch.setattr(cd, "MIGRATE_REQ", str(setting))
    advice = cd.CaddyUpstreams("shop", admin=admin).advisories()
    assert bool(advice) is warned
    if warned:
        assert "net.ipv4.tcp_migrate_req is 0" in advice[0] and "sysctl" in advice[0]
    monkeypatch.setattr(cd, "MIGRATE_REQ", str(tmp_path / "absent"))   # a kernel before 5.14: nothing to advise
    assert cd.CaddyUpstreams("shop", admin=admin).advisories() == []
