"""The HTTPS listener of the CSC API (``[csc] listen``): ``POST /csc/v2/<endpoint>`` with a JSON body, answered by
:class:`~.service.CscService`.

TLS with the gRPC listeners' certificate (from the Signet TLS CA; clients trust ``tls/ca.pem``); no client
certificate (the CSC API authenticates with auth/login).  Each connection is served on its own thread, at most
``max_connections`` at once (more are closed at once); the TLS handshake and every read and write have a
``timeout`` in seconds; bodies over 64 KiB are refused (413).  Errors are CSC JSON errors; stack traces go to the
log only, and nothing of a request body (OTPs, SADs) or of the Authorization header is logged.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hsm import HsmError

from ..errors import ServerError
from .service import CscError, CscService

log = logging.getLogger(__name__)

PREFIX = "/csc/v2/"
MAX_BODY = 64 * 1024


class _Handler(BaseHTTPRequestHandler):
    server_version = "signet-csc"
    protocol_version = "HTTP/1.1"
    server: CscHttpServer

    def setup(self) -> None:
        self.request.settimeout(self.server.timeout_seconds)
        self.request.do_handshake()  # here, on this connection's thread: a slow client holds only its own
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("csc %s %s", self.address_string(), self.requestline.split(" ")[:2])

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise CscError(400, "invalid_request", "Content-Length is not a number") from None
        if length > MAX_BODY:
            self.close_connection = True
            raise CscError(413, "invalid_request", f"the body is larger than {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise CscError(400, "invalid_request", "the body is not JSON") from None
        if not isinstance(body, dict):
            raise CscError(400, "invalid_request", "the body is not a JSON object")
        return body

    def _dispatch(self) -> None:
        path = self.path.split("?", 1)[0]
        name = path[len(PREFIX):] if path.startswith(PREFIX) else ""
        try:
            if not name:
                raise CscError(404, "invalid_request", f"the CSC API is under {PREFIX}")
            result = self.server.service.call(name, self.headers.get("Authorization", ""), self._body())
            self._json(200, result)
        except CscError as e:
            self._json(e.status, {"error": e.error, "error_description": e.description})
        except ServerError as e:  # e.g. the remote key's certificate was revoked
            self._json(400, {"error": "invalid_request", "error_description": f"{e.reason}: {e.message}"})
        except HsmError as e:
            log.error("csc %s: server token failed: %s", name, type(e).__name__)
            self._json(503, {"error": "temporarily_unavailable", "error_description": "the server token is "
                                                                                      "unavailable"})
        except Exception:  # anything unexpected: a plain 500 for the client, the details in the log
            log.exception("csc %s failed", name)
            self._json(500, {"error": "server_error", "error_description": "internal error"})


class CscHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: CscService, certificate: Path, private_key: Path, *,
                 max_connections: int = 32, timeout_seconds: float = 10.0) -> None:
        super().__init__(address, _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(certificate), str(private_key))
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.service = service
        self.timeout_seconds = timeout_seconds
        self._slots = threading.BoundedSemaphore(max_connections)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"https://{host!s}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # over the cap: closed at once, never queued
            return
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

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.info("csc: a connection from %s failed", client_address[0] if client_address else "?")

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="csc-https", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
