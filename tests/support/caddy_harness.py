"""A private Caddy for tests: ``caddy run`` on a JSON config in a temp dir, one HTTP server on a loopback port
whose only route is a reverse_proxy handler with ``"@id"`` (what the caddy driver drives), and the admin API on
a unix socket in the same dir (or a loopback port). The system service is never used."""
from __future__ import annotations

import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import typing as t

from tests.support.docker_harness import container_of, free_port


def caddy_binary() -> t.Optional[str]:
    return shutil.which("caddy") or ("/usr/bin/caddy" if os.access("/usr/bin/caddy", os.X_OK) else None)


class PrivateCaddy:
    """``caddy run --config <dir>/caddy.json``; ``config_file`` is that file, which the driver keeps up to date
    (``lb_options``), so :meth:`reload` (``caddy reload --config``) loads what the driver intended.

    ``keepalive=False`` adds a ``Connection: close`` response header: every change of the upstreams is a config
    reload for Caddy, whose old server closes its idle keep-alive client connections; a client that sends its next
    request on one at that instant sees a closed connection (no request is lost: it was never read) and must retry.
    The nginx test turns keep-alive off for the same reason, so that the load's error count is about requests.
    """

    def __init__(self, binary: str, handler_id: str, keepalive: bool = False, unix_admin: bool = True) -> None:
        self.binary = binary
        self.handler_id = handler_id
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="zd-caddy-"))
        self.port = free_port()
        self.admin = f"unix/{self.dir}/admin.sock" if unix_admin else f"127.0.0.1:{free_port()}"
        self.config_file = str(self.dir / "caddy.json")
        self.log = self.dir / "caddy.log"
        handle: list[dict[str, t.Any]] = []
        if not keepalive:
            handle.append({"handler": "headers", "response": {"set": {"Connection": ["close"]}}})
        handle.append({"@id": handler_id, "handler": "reverse_proxy", "upstreams": [],
                       "transport": {"protocol": "http", "dial_timeout": "2s"}})
        config = {
            "admin": {"listen": self.admin, "config": {"persist": False}},
            "logging": {"logs": {"default": {"level": "INFO", "writer": {"output": "file", "filename": str(self.log)}}}},
            "apps": {"http": {"servers": {"zd": {
                "listen": [f"127.0.0.1:{self.port}"],
                "automatic_https": {"disable": True},
                "routes": [{"handle": handle}],
            }}}},
        }
        pathlib.Path(self.config_file).write_text(json.dumps(config, indent=2) + "\n")
        env = dict(os.environ, HOME=str(self.dir), XDG_DATA_HOME=str(self.dir / "data"),
                   XDG_CONFIG_HOME=str(self.dir / "config"))
        self.env = env
        self.stderr = open(self.dir / "stderr.log", "w")
        self.proc = subprocess.Popen([binary, "run", "--config", self.config_file], env=env, stdout=self.stderr,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"caddy exited (rc={self.proc.returncode}): {self._tail()}")
            try:
                if self.request("GET", "/config/")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"caddy's admin API did not answer within 15s: {self._tail()}")

    def _tail(self) -> str:
        text = ""
        for path in (self.dir / "stderr.log", self.log):
            try:
                text += path.read_text()[-1500:]
            except OSError:
                pass
        return text

    def request(self, method: str, path: str, body: t.Optional[t.Any] = None) -> tuple[int, t.Any]:
        """(status, decoded JSON or text) of one admin API request."""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if self.admin.startswith("unix/"):
            conn = http.client.HTTPConnection("localhost", timeout=10)
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(10)
            sock.connect(self.admin[len("unix/"):])
            conn.sock = sock
            headers["Host"] = ""
        else:
            host, port = self.admin.rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            response = conn.getresponse()
            data = response.read().decode()
        finally:
            conn.close()
        try:
            return response.status, json.loads(data) if data.strip() else None
        except ValueError:
            return response.status, data

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def lb_options(self, **extra: t.Any) -> dict[str, t.Any]:
        options = {"type": "caddy", "admin": self.admin, "handler_id": self.handler_id,
                   "config_file": self.config_file, "drain_grace": 1}
        options.update(extra)
        return options

    def upstreams(self) -> list[dict[str, t.Any]]:
        status, body = self.request("GET", f"/id/{self.handler_id}/upstreams")
        if status != 200:
            raise AssertionError(f"GET /id/{self.handler_id}/upstreams: {status} {body}")
        return body or []

    def servers(self) -> dict[str, str]:
        """container name -> dial address of the running handler's named upstreams."""
        return {container_of(u["@id"]): u["dial"] for u in self.upstreams() if "@id" in u}

    def file_servers(self) -> dict[str, str]:
        """As :meth:`servers`, from ``config_file`` (what a reload loads)."""
        config = json.loads(pathlib.Path(self.config_file).read_text())
        for route in config["apps"]["http"]["servers"]["zd"]["routes"]:
            for handler in route["handle"]:
                if handler.get("@id") == self.handler_id:
                    return {container_of(u["@id"]): u["dial"] for u in handler.get("upstreams") or [] if "@id" in u}
        raise AssertionError(f"{self.config_file} lost the handler {self.handler_id}")

    def reload(self) -> None:
        """``caddy reload --config <config_file>``, as a user would run it."""
        subprocess.run([self.binary, "reload", "--config", self.config_file, "--address", self.admin],
                       env=self.env, capture_output=True, text=True, timeout=30, check=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)
