"""The PKI HTTP listener: what validators fetch (OCSP, CRLs, the TSA, CA certificates).

Routes (``GET /`` answers with this list, one path per line; docs/pki-http.md has the details)::

    GET  /                                  the list of paths (text/plain)
    POST /ocsp      application/ocsp-request                      RFC 6960 / RFC 5019
    GET  /ocsp/<base64 OCSPRequest>         RFC 6960 A.1 (URL-encoded base64 in the path)
    POST /tsa       application/timestamp-query                   RFC 3161 section 3.4
    GET  /crl/<ca>.crl                      ca: signing-root | signing-ca | tls-root | tls-ca
    GET  /ca/<name>.crt                     name: a Role value (signing-root, signing-ca, ..., tsa, seal, audit)

Under abuse: see :mod:`server.httploop` (deadlines, connection caps, rate limit).  Errors are a status code
and one plain line; stack traces go to the log only.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from signet.http11 import Http11Handler

from .ca.crl import CRL_ISSUERS, CrlPublisher
from .ca.errors import CertificateNotFound
from .ca.ocsp import OcspResponder
from .httploop import HttpLoop
from .tsa import TimeStampAuthority

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


@dataclass(frozen=True)
class PkiServices:
    ocsp: OcspResponder
    crls: CrlPublisher
    tsa: TimeStampAuthority
    ca_certificates: Mapping[str, bytes]  # name in /ca/<name>.crt -> DER


def route_list(services: PkiServices | None) -> str:
    """The text of ``GET /``: one path per line with a short description."""
    names = list(services.ca_certificates) if services else []
    lines = [("/", "this list"),
             ("/ocsp", "OCSP (RFC 6960), POST application/ocsp-request"),
             ("/ocsp/<base64 request>", "OCSP by GET (RFC 6960 A.1), the request URL-encoded base64"),
             ("/tsa", "time-stamping (RFC 3161), POST application/timestamp-query")]
    lines += [(f"/crl/{ca}.crl", f"CRL of the {ca} CA (DER)") for ca in CRL_ISSUERS]
    lines += [(f"/ca/{name}.crt", f"{name} certificate (DER)") for name in names]
    width = max(len(p) for p, _ in lines)
    return "".join(f"{p:<{width}}  {d}\n" for p, d in lines)


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _Handler(Http11Handler):
    """Runs on a worker over one request that has fully arrived; the response is collected, not sent."""

    server_version = "signet-pki"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def __init__(self, request: bytes, client_address: Any, listener: PkiHttpServer) -> None:
        # no socket here: the selector thread owns it (BaseRequestHandler.__init__ would read from one)
        self.client_address = client_address
        self.listener = listener
        self.rfile = io.BytesIO(request)
        self.wfile = self._out = io.BytesIO()
        self.close_connection = True
        self.handle_one_request()

    def output(self) -> bytes:
        return self._out.getvalue()

    def handle_expect_100(self) -> bool:
        return True  # the selector thread sent "100 Continue" while the body was still missing

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _services(self) -> PkiServices:
        if self.listener.services is None:
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "the PKI services are starting")
        return self.listener.services

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, cache: str = "no-cache") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        if self.close_connection:
            self.send_header("Connection", "close")
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
        if int(length) > self.listener.max_body:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"bodies are limited to {self.listener.max_body} bytes")
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
        except Exception:
            log.exception("PKI HTTP %s %s failed", method, self.path[:200])
            self.close_connection = True
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain; charset=utf-8")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _get(self, path: str) -> None:
        if path == "/":
            self._send(HTTPStatus.OK, route_list(self.listener.services).encode(), "text/plain; charset=utf-8")
            return
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
            raise HttpError(HTTPStatus.NOT_FOUND, "not found; GET / lists the paths")
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
            raise HttpError(HTTPStatus.NOT_FOUND, "not found; GET / lists the paths")


class PkiHttpServer(HttpLoop):
    """The PKI listener; ``services`` may be attached after binding (certificates embed its URL)."""

    def __init__(self, address: tuple[str, int], services: PkiServices | None = None, **limits: Any) -> None:
        super().__init__(address, **limits)
        self.services = services

    def handle(self, request: bytes, address: Any) -> tuple[bytes, bool]:
        handler = _Handler(request, address, self)
        return handler.output(), handler.close_connection


def build_services(keys: Any, store: Any, clock: Any, *, tsa_policy: Any = None) -> PkiServices:
    """OCSP responder, CRL publisher and TSA over one loaded server key set (``server.keys.ServerKeys``)."""
    from .ca.profiles import Role
    from .tsa import TsaPolicy

    return PkiServices(
        ocsp=OcspResponder(keys, store, clock),
        crls=CrlPublisher(keys, store, clock),
        tsa=TimeStampAuthority(keys, clock, tsa_policy or TsaPolicy(), store=store),
        ca_certificates={role.value: keys.certificate_der(role) for role in Role},
    )
