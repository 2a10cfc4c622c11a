"""HTTP/1.x only, for the small HTTP listeners (the portal, the agent's bridge and kiosk pages, the PKI listener).

``http.server`` answers a request line that says ``HTTP/0.9`` (or names no version) in HTTP/0.9's way: a bare
body, no status line, no headers -- so no Content-Security-Policy or any other header either.  These listeners
speak HTTP/1.1 to such a request instead (fuzz findings F19, F21, F23).
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler


class Http11Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if self.request_version == "HTTP/0.9":  # answered with a status line and our headers all the same
            self.request_version = "HTTP/1.1"
        return ok
