"""The PKI HTTP listener: what validators fetch (OCSP, CRLs, the TSA, CA certificates).

Routes::

    GET  /ocsp/<base64 OCSPRequest>         RFC 6960 A.1 (URL-encoded base64 in the path)
    POST /ocsp      application/ocsp-request
    GET  /crl/<ca>.crl                      ca: issuing | root   (application/pkix-crl)
    POST /tsa       application/timestamp-query                  (RFC 3161 section 3.4)
    GET  /ca/<name>.crt                     name: root | issuing | ocsp | tsa | seal | audit

Bodies need a Content-Length and are limited in size; connections are bounded and time out.
Errors are a status code and one plain line; stack traces go to the log only.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .ca.crl import CrlPublisher
from .ca.errors import CertificateNotFound
from .ca.ocsp import OcspResponder
from .tsa import TimeStampAuthority

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


@dataclass(frozen=True)
class PkiServices:
    ocsp: OcspResponder
    crls: CrlPublisher
    tsa: TimeStampAuthority
    ca_certificates: Mapping[str, bytes]  # name in /ca/<name>.crt -> DER


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _Handler(BaseHTTPRequestHandler):
    server: PkiHttpServer
    server_version = "signet-pki"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 10  # seconds a client may take per socket read: no slow-loris hold on a thread

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _services(self) -> PkiServices:
        if self.server.services is None:
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "the PKI services are starting")
        return self.server.services

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, cache: str = "no-cache") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def _body(self, content_type: str) -> bytes:
        got = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if got != content_type:
            raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"send Content-Type: {content_type}")
        if self.headers.get("Transfer-Encoding"):
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length is required")
        if int(length) > self.server.max_body:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"bodies are limited to {self.server.max_body} bytes")
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            raise HttpError(HTTPStatus.BAD_REQUEST, "the body is shorter than its Content-Length")
        return body

    def _dispatch(self, method: str) -> None:
        try:
            path = urllib.parse.urlsplit(self.path).path
            if method == "GET":
                self._get(path)
            else:
                self._post(path)
        except HttpError as e:
            self.close_connection = True
            self._send(e.status, (e.text + "\n").encode(), "text/plain; charset=utf-8")
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:
            log.exception("PKI HTTP %s %s failed", method, self.path[:200])
            self.close_connection = True
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain; charset=utf-8")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _get(self, path: str) -> None:
        if path.startswith("/ocsp/"):
            encoded = urllib.parse.unquote(path[len("/ocsp/"):])
            try:
                request = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise HttpError(HTTPStatus.BAD_REQUEST, "the OCSP request in the path is not base64") from None
            answer = self._services().ocsp.respond(request)
            self._send(HTTPStatus.OK, answer, "application/ocsp-response", "no-store")
            return
        m = re.match(r"^/(crl|ca)/([^/]+)\.(crl|crt)$", path)
        if not m or not _NAME.match(m.group(2)) or {"crl": "crl", "ca": "crt"}[m.group(1)] != m.group(3):
            raise HttpError(HTTPStatus.NOT_FOUND, "not found")
        services = self._services()
        if m.group(1) == "crl":
            try:
                der = services.crls.current(m.group(2))
            except CertificateNotFound:
                raise HttpError(HTTPStatus.NOT_FOUND, "no such CRL") from None
            self._send(HTTPStatus.OK, der, "application/pkix-crl")
            return
        cert = services.ca_certificates.get(m.group(2))
        if cert is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "no such certificate")
        self._send(HTTPStatus.OK, cert, "application/pkix-cert", "max-age=3600")

    def _post(self, path: str) -> None:
        if path == "/ocsp":
            answer = self._services().ocsp.respond(self._body("application/ocsp-request"))
            self._send(HTTPStatus.OK, answer, "application/ocsp-response", "no-store")
        elif path == "/tsa":
            answer = self._services().tsa.respond(self._body("application/timestamp-query"))
            self._send(HTTPStatus.OK, answer, "application/timestamp-reply", "no-store")
        else:
            raise HttpError(HTTPStatus.NOT_FOUND, "not found")


class PkiHttpServer(ThreadingHTTPServer):
    """Threaded listener; ``services`` may be attached after binding (certificates embed its URL)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], services: PkiServices | None = None, *,
                 max_body: int = MAX_BODY_BYTES, max_connections: int = 64) -> None:
        super().__init__(address, _Handler)
        self.services = services
        self.max_body = max_body
        self._slots = threading.BoundedSemaphore(max_connections)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}" if isinstance(host, str) else f"http://{host.decode()}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        self._slots.acquire()  # bound the threads: accept waits while max_connections are busy
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="pki-http", daemon=True)
        self._thread.start()
        log.info("PKI HTTP listening on %s", self.base_url)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


def build_services(keys: Any, store: Any, clock: Any, *, tsa_policy: Any = None) -> PkiServices:
    """OCSP responder, CRL publisher and TSA over one loaded server key set (``server.keys.ServerKeys``)."""
    from .ca.profiles import Role
    from .tsa import TsaPolicy

    return PkiServices(
        ocsp=OcspResponder(keys, store, clock),
        crls=CrlPublisher(keys, store, clock),
        tsa=TimeStampAuthority(keys, clock, tsa_policy or TsaPolicy()),
        ca_certificates={role.value: keys.certificate_der(role) for role in Role},
    )
