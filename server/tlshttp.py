"""An HTTPS listener on a thread per connection, for the server's small HTTPS APIs (the CSC API, the portal).

TLS with the gRPC listeners' certificate (from the Signet TLS CA; clients trust ``tls/ca.pem``).  No client
certificate is asked for unless ``client_ca`` (PEM) is given: then one is requested but optional
(``CERT_OPTIONAL``), and one that is sent must chain to those CA certificates (the portal's signed-in pages
check it further, :mod:`server.portal.console`); the handler reads it with
:meth:`TlsHandler.client_certificate`.  At most ``max_connections`` connections are served at once (more are
closed at once, never queued); the TLS handshake happens on the connection's own thread, and it and every read
and write have a ``timeout`` in seconds, so a slow client holds only its own thread.
"""

from __future__ import annotations

import logging
import ssl
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from signet.http11 import Http11Handler

log = logging.getLogger(__name__)


class TlsHandler(Http11Handler):  # never HTTP/0.9's bare body: fuzz findings F19, F23
    """Handshake on this connection's thread, with the server's timeout."""

    server: TlsHttpServer

    def setup(self) -> None:
        self.request.settimeout(self.server.timeout_seconds)
        self.request.do_handshake()
        super().setup()

    def client_certificate(self) -> bytes | None:
        """The DER of the client certificate the handshake verified, or None (none sent, or none asked for)."""
        peer = getattr(self.request, "getpeercert", None)  # a request in memory (the fuzz targets) has none
        der = peer(binary_form=True) if peer is not None else None
        return der if isinstance(der, bytes) and der else None


class TlsHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[TlsHandler], certificate: Path, private_key: Path,
                 *, name: str, max_connections: int = 32, timeout_seconds: float = 10.0,
                 client_ca: bytes | None = None) -> None:
        super().__init__(address, handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(certificate), str(private_key))
        if client_ca is not None:
            context.load_verify_locations(cadata=client_ca.decode("ascii"))
            context.verify_mode = ssl.CERT_OPTIONAL
        self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.name = name
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
        log.info("%s: a connection from %s failed", self.name, client_address[0] if client_address else "?")

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name=f"{self.name}-https", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
