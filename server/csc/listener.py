"""The HTTPS listener of the CSC API (``[csc] listen``): ``POST /csc/v2/<endpoint>`` with a JSON body, answered by
:class:`~.service.CscService`.

TLS as :mod:`server.tlshttp` (no client certificate: the CSC API authenticates with auth/login); bodies over
64 KiB are refused (413).  Errors are CSC JSON errors; stack traces go to the
log only, and nothing of a request body (OTPs, SADs) or of the Authorization header is logged.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from hsm import HsmError

from ..errors import ServerError
from ..tlshttp import TlsHandler, TlsHttpServer
from .service import CscError, CscService

log = logging.getLogger(__name__)

PREFIX = "/csc/v2/"
MAX_BODY = 64 * 1024


class _Handler(TlsHandler):
    server_version = "signet-csc"
    server: CscHttpServer

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


class CscHttpServer(TlsHttpServer):
    def __init__(self, address: tuple[str, int], service: CscService, certificate: Path, private_key: Path, *,
                 max_connections: int = 32, timeout_seconds: float = 10.0) -> None:
        super().__init__(address, _Handler, certificate, private_key, name="csc", max_connections=max_connections,
                         timeout_seconds=timeout_seconds)
        self.service = service
