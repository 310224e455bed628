"""Scripted local HTTP servers (127.0.0.1, threaded, keep-alive) for the traffic sampler tests.

Each server answers request number i (0-based, counted over the whole server) with ``plan(i, path)``,
so counts of statuses, versions, errors and slow answers are known exactly in advance.
"""
from __future__ import annotations

import datetime
import json
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, Optional


@dataclass
class Reply:
    status: int = 200
    version: Optional[str] = None
    where: str = "json"  # json | header | body | none
    delay: float = 0.0
    abrupt: bool = False  # close the connection without answering
    reset: bool = False  # abort with a TCP RST instead of a clean close
    headers: Dict[str, str] = field(default_factory=dict)


Plan = Callable[[int, str], Reply]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "ScriptedServer"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes; without this, delayed ACKs stall every answer ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _answer(self, with_body: bool) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        index = self.server.next_index(self.path, dict(self.headers))
        reply = self.server.plan(index, self.path)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.abrupt or reply.reset:
            if reply.reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        headers = dict(reply.headers)
        if reply.where == "json":
            body = json.dumps({"version": reply.version, "build": {"version": reply.version}}
                              if reply.version is not None else {"status": "up"}).encode()
            headers["Content-Type"] = "application/json"
        elif reply.where == "body":
            body = (f"<html><body>app running, version: {reply.version}</body></html>"
                    if reply.version else "<html><body>hello</body></html>").encode()
            headers["Content-Type"] = "text/html"
        else:
            body = b"ok\n"
            headers["Content-Type"] = "text/plain"
            if reply.where == "header" and reply.version is not None:
                headers["X-App-Version"] = reply.version
        if reply.status in (204, 304):
            body = b""  # these statuses never carry a body
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        if reply.status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body and body:
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(True)

    def do_POST(self) -> None:  # noqa: N802
        self._answer(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(False)


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, plan: Plan, tls_context: Optional[ssl.SSLContext] = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.plan = plan
        self._count = 0
        self._lock = threading.Lock()
        self.seen_headers = []
        self.connections = 0
        if tls_context is not None:
            self.socket = tls_context.wrap_socket(self.socket, server_side=True)
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def handle_error(self, request, client_address) -> None:
        pass  # clients that time out or drop connections are part of the tests

    def get_request(self):
        request = super().get_request()
        with self._lock:
            self.connections += 1
        return request

    def next_index(self, path: str, headers: Dict[str, str]) -> int:
        with self._lock:
            index = self._count
            self._count += 1
            if len(self.seen_headers) < 50:
                self.seen_headers.append(headers)
            return index

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    def url(self, path: str = "/") -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}{path}"

    def __enter__(self) -> "ScriptedServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)


def self_signed_cert(directory) -> tuple:
    """Write a self-signed certificate for 127.0.0.1 and its key; return (cert_path, key_path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def tls_context(cert_path, key_path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert_path), str(key_path))
    return context
