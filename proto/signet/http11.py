"""HTTP/1.x only, for the small HTTP listeners (the portal, the agent's bridge and kiosk pages, the PKI listener).

``http.server`` answers a request line that says ``HTTP/0.9`` (or names no version) in HTTP/0.9's way: a bare
body, no status line, no headers -- so no Content-Security-Policy or any other header either.  These listeners
speak HTTP/1.1 to such a request instead (fuzz findings F19, F21, F23, F25).

``http.server``'s own error pages also quote the request line ("Bad request syntax ('...')"), in the page and in
the status line; when a form was refused before its body was read, a kept-alive connection reads that body as the
next request line -- and the page quoted a PIN or a code back (fuzz finding F26).  Here an error page says only
its status.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler


class Http11Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        super().send_error(code)  # the status's own phrase and explanation: never the request's text

    def send_response_only(self, code: int, message: str | None = None) -> None:
        # also for an error answered while the request line is parsed (fuzz finding F25: five words ending in
        # HTTP/0.9 got a 400 page without a status line): every answer starts with one
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.1"
        super().send_response_only(code, message)
