"""Real local servers for server-side unit tests: an HTTP(S) receiver, an SMTP sink, a TLS certificate.

Nothing here is a mock: the code under test talks to real sockets on 127.0.0.1.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class HttpReceiver:
    """Records every POST; ``respond(request, index)`` decides each answer."""

    respond: Callable[[Received, int], Answer]
    requests: list[Received] = field(default_factory=list)
    url: str = ""


@contextmanager
def http_receiver(respond: Callable[[Received, int], Answer], tls: TlsFiles | None = None) -> Iterator[HttpReceiver]:
    rec = HttpReceiver(respond)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # (http.server naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            req = Received(self.path, {k: v for k, v in self.headers.items()}, body)
            with lock:
                rec.requests.append(req)
                index = len(rec.requests) - 1
            status, headers, payload = rec.respond(req, index)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls is not None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tls.cert, tls.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    rec.url = f"{scheme}://{'localhost' if tls else '127.0.0.1'}:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpSink:
    """aiosmtpd handler keeping every accepted envelope."""

    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))  # type: ignore[attr-defined]
        return "250 OK queued"


@contextmanager
def smtp_server(tls: TlsFiles | None = None) -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = free_port()
    kwargs: dict[str, Any] = {}  # SMTP options, passed through to aiosmtpd's SMTP
    if tls is not None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tls.cert, tls.key)
        kwargs = {"tls_context": ctx, "require_starttls": True}
    controller = Controller(sink, hostname="127.0.0.1", port=port, server_hostname="localhost", **kwargs)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


def make_tls(directory: Path) -> TlsFiles:
    """A self-signed certificate for localhost / 127.0.0.1 (also serves as its own CA file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return TlsFiles(cert_path, key_path)


def db_bytes(where: Any) -> bytes:
    """Everything the database holds on disk: a SQLite file (a path, or a store) and its WAL; for a PostgreSQL
    store, the files of its database after a checkpoint (tables, indexes, TOAST; the cluster's WAL is left out:
    every test database of the session shares it, with test data stored in plaintext by stores without a
    field sealer)."""
    if getattr(where, "url", None):
        from tests.conftest import shared_pg_cluster

        where.execute("CHECKPOINT")
        row = where.query_one("SELECT oid FROM pg_database WHERE datname = current_database()")
        base = shared_pg_cluster().data / "base" / str(row["oid"])
        return b"".join(f.read_bytes() for f in base.rglob("*") if f.is_file())
    path = where if isinstance(where, Path) else Path(where.path)
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")
