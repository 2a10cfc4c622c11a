"""The portal's HTTPS listener (``[portal] listen``): a recipient opens the link of their notice, reviews the
documents page by page, and signs remotely with a one-time code, or declines.

Every page is under ``/r/<link token>``: the link (:mod:`.links`) names the envelope and the recipient, and the
holder acts as that recipient (a member principal, ``via`` the portal) through the same
:class:`~server.envelopes.EnvelopeService` methods as the gRPC API, so every rule (routing order, codes bound
to the revision's SHA-256, revision validation) holds here too.

- Forms only, no script: ``Content-Security-Policy: default-src 'none'`` with images, the stylesheet and form
  posts from the portal itself (and, for token signers, to the agent's local bridge on the person's own computer,
  ``[portal] bridge``: :mod:`agent.bridge`); no framing; no referrer; nothing cached.
- A session cookie (random, ``Secure; HttpOnly; SameSite=Strict``, scoped to the link's path) is set with the
  first page; every POST carries a CSRF token, an HMAC of the link and that session: a missing or wrong one is
  refused (403) and nothing changes.
- Pages are PNG images rendered by poppler's ``pdftoppm`` on the server: the browser never parses the PDF.
- The log names the method and ``/r/…``, never the token, a code or a reason.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import shutil
import subprocess
import tempfile
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from hsm import HsmError

from ..errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    Unauthenticated,
)
from ..identity.principal import Principal, Role
from ..ratelimit import SlidingWindow
from ..sealing import derive_key
from ..tlshttp import TlsHandler, TlsHttpServer
from . import pages
from .links import Link, PortalLinks

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024
MAX_PAGES = 200
COOKIE = "signet_portal"
CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'{bridge}; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP.format(bridge=""),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ROUTE = re.compile(r"^/r/([A-Za-z0-9_-]{30,64})(/[A-Za-z0-9_./-]*)?$")
_STATUS = {NotFound: 404, PermissionDenied: 403, Unauthenticated: 401, FailedPrecondition: 409,
           InvalidArgument: 400, RateLimited: 429}



class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Handler(TlsHandler):
    server_version = "signet-portal"
    server: PortalHttpServer

    def log_message(self, format: str, *args: Any) -> None:
        # also called for a request line that did not parse (no command or path yet: fuzz finding F19)
        path = getattr(self, "path", "") or ""
        log.debug("portal %s %s", getattr(self, "command", "") or "-", "/r/…" if path.startswith("/r/") else path[:40])

    # -- plumbing -----------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in {**HEADERS, **self.server.headers, "Content-Type": content_type, "Content-Length": str(len(body)),
                     **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(303, b"", headers={"Location": location})

    def _session(self) -> str:
        try:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:  # a malformed Cookie header is no session (fuzz finding F18), never a 500
            return ""
        morsel = cookie.get(COOKIE)
        return morsel.value if morsel is not None and re.fullmatch(r"[0-9a-f]{32}", morsel.value) else ""

    def _form(self) -> dict[str, str]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _Refused(400, "the request has no valid length") from None
        if length > MAX_BODY:
            self.close_connection = True
            raise _Refused(413, "the request is too large")
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            parsed = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=80)
        except (UnicodeDecodeError, ValueError):
            raise _Refused(400, "the form cannot be read") from None
        return {k: v[0] for k, v in parsed.items()}

    # -- routes -------------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if self.command == "POST":  # every form: codes, signatures, declines, sign-in areas' actions
                # one form per connection: a body a refusal left unread is never read as the next request (F26)
                self.close_connection = True
                self.server.posts.hit(str(self.client_address[0]))
            if path == "/portal.css" and self.command == "GET":
                self._send(200, pages.CSS, "text/css; charset=utf-8")
                return
            if path.startswith(("/s/", "/o/")) or path in ("/s", "/o"):  # senders' and operators' pages
                from . import console

                console.route(self, path)
                return
            m = _ROUTE.match(path)
            if m is None:
                raise _Refused(404, "there is nothing here")
            token, rest = m.group(1), m.group(2) or ""
            link = self.server.links.resolve(token)
            self._route(token, link, rest)
        except _Refused as e:
            self._send(e.status, pages.problem(e.status, e.message))
        except RateLimited as e:  # said plainly, with when to come back; nothing was done
            self.close_connection = True
            self._send(429, pages.problem(429, e.message), headers={"Retry-After": str(max(1, round(e.retry_after)))})
        except ServerError as e:
            status = next((s for t, s in _STATUS.items() if isinstance(e, t)), 400)
            self._send(status, pages.problem(status, e.message))
        except HsmError as e:
            log.error("portal: server token failed: %s", type(e).__name__)
            self._send(503, pages.problem(503, "signing is unavailable for a moment; try again shortly"))
        except Exception:  # anything unexpected: a plain page for the client, the details in the log
            log.exception("portal request failed")
            self._send(500, pages.problem(500, "internal error"))

    def _route(self, token: str, link: Link, rest: str) -> None:
        srv = self.server
        p = Principal(link.org_id, link.person_id, Role.MEMBER, via="portal link")
        base = f"/r/{token}"
        if self.command == "GET" and rest in ("", "/"):
            session = self._session() or secrets.token_hex(16)
            env = srv.envelopes.get(p, link.envelope_id)
            me = next(r for r in env.recipients if r.id == link.recipient_id)
            done = "Signed. Thank you. 已签署。" if "signed=1" in self.path else ""
            cookie = (f"{COOKIE}={session}; Path={base}; Secure; HttpOnly; SameSite=Strict; "
                      f"Max-Age={srv.session_seconds}")
            self._send(200, pages.envelope(base, env, me, srv.csrf(token, session), ok=done),
                       headers={"Set-Cookie": cookie})
            return
        m = re.fullmatch(r"/doc/([A-Za-z0-9_]+)/(file|page/(\d{1,4})\.png)", rest)
        if self.command == "GET" and m:
            got = srv.envelopes.get_document(p, link.envelope_id, m.group(1))
            if m.group(2) == "file":
                name = quote(got.document.name)
                self._send(200, got.content, got.document.media_type,
                           {"Content-Disposition": f"attachment; filename*=UTF-8''{name}"})
                return
            page = int(m.group(3))
            if not got.document.is_pdf or not 1 <= page <= min(got.document.pages, MAX_PAGES):
                raise _Refused(404, "there is no such page")
            self._send(200, render_page(got.content, page), "image/png")
            return
        if self.command != "POST" or rest not in ("/code", "/sign", "/decline"):
            raise _Refused(404, "there is nothing here")
        form = self._form()
        session = self._session()
        # compared as bytes: compare_digest refuses str with non-ASCII characters (fuzz finding F20: a 500)
        if not session or not hmac.compare_digest(form.get("csrf", "").encode(), srv.csrf(token, session).encode()):
            raise _Refused(403, "this form has expired: open the link again and repeat")
        env = srv.envelopes.get(p, link.envelope_id)
        if rest == "/decline":
            srv.envelopes.decline(p, link.envelope_id, form.get("reason", ""),
                                  idempotency_key=f"portal-decline-{link.recipient_id}")
            self._redirect(base)
            return
        doc = next((d for d in env.documents if d.id == form.get("document")), None)
        if doc is None:
            raise _Refused(404, "there is no such document in this envelope")
        if rest == "/code":
            challenge = srv.envelopes.start_signing(p, link.envelope_id, doc.id, form.get("sha256", ""))
            me = next(r for r in env.recipients if r.id == link.recipient_id)
            bridge = None
            if str(me.signing_method) != "remote" and srv.bridge_url:  # the person's token, through their agent
                bridge = pages.Bridge(f"{srv.bridge_url}/v1/sign", f"{srv.public_url}{base}?signed=1",
                                      secrets.token_urlsafe(24), challenge.timestamp_url)
            # a form POST under "no-referrer" carries "Origin: null": the bridge must see this page's origin (only
            # the origin: never the link's path) to check it against its allow-list
            self._send(200, pages.code_form(base, env, doc, challenge.code_id, srv.csrf(token, session),
                                            bridge=bridge, me=me),
                       headers={"Referrer-Policy": "origin"} if bridge else None)
            return
        me = next(r for r in env.recipients if r.id == link.recipient_id)
        values = pages.field_values(form)
        try:
            srv.envelopes.sign_remotely(p, link.envelope_id, doc.id, form.get("sha256", ""),
                                        code=form.get("code", "").strip(), code_id=form.get("code_id", ""),
                                        field_values=values if doc.is_pdf else None)
        except (Unauthenticated, InvalidArgument, FailedPrecondition) as e:  # the same form again, as filled in
            if isinstance(e, FailedPrecondition) and not e.reason.startswith("REVISION_REQUIRED"):
                raise
            self._send(401 if isinstance(e, Unauthenticated) else 400,
                       pages.code_form(base, env, doc, form.get("code_id", ""), srv.csrf(token, session),
                                       message=e.message, me=me, values=values))
            return
        self._redirect(f"{base}?signed=1")


def render_page(pdf: bytes, page: int, dpi: int = 80) -> bytes:
    """One page of ``pdf`` as PNG, by poppler's pdftoppm (the browser never sees the PDF's objects)."""
    with tempfile.TemporaryDirectory(prefix="signet-portal-") as d:
        src = Path(d) / "doc.pdf"
        src.write_bytes(pdf)
        out = Path(d) / "page"
        tool = shutil.which("pdftoppm")  # poppler-utils (the Makefile's set-up installs it)
        if tool is None:
            raise _Refused(503, "pages cannot be shown on this server (poppler-utils is missing)")
        p = subprocess.run([tool, "-png", "-r", str(dpi), "-f", str(page), "-l", str(page), "-singlefile",  # noqa: S603 - fixed argv, our own temp file
                            str(src), str(out)], capture_output=True, timeout=30, check=False)
        png = out.with_suffix(".png")
        if p.returncode != 0 or not png.exists():
            raise _Refused(422, "this page cannot be shown")
        return png.read_bytes()


class PortalHttpServer(TlsHttpServer):
    def __init__(self, address: tuple[str, int], envelopes: Any, links: PortalLinks, hmac_secret: bytes,
                 certificate: Path, private_key: Path, *, session_seconds: int = 3600, max_connections: int = 32,
                 timeout_seconds: float = 10.0, bridge_url: str = "", base_url: str = "",
                 identity: Any = None, contracts: Any = None, authenticator: Any = None,
                 client_ca: bytes | None = None, posts_per_minute: int = 30) -> None:
        # client_ca (PEM) and authenticator: sign-in with a client certificate for /s and /o (:mod:`.console`)
        super().__init__(address, _Handler, certificate, private_key, name="portal",
                         max_connections=max_connections, timeout_seconds=timeout_seconds, client_ca=client_ca)
        self.envelopes = envelopes
        self.identity, self.contracts, self.authenticator = identity, contracts, authenticator
        self.links = links
        self.session_seconds = session_seconds
        # every POST, per client address (per process: replicas each keep their own); codes themselves are
        # limited where they are made (the resend interval, five wrong tries burn one), also answered with 429
        self.posts = SlidingWindow(posts_per_minute, 60.0, reason="PORTAL_TOO_MANY_REQUESTS")
        self._csrf_key = derive_key(hmac_secret, "portal-csrf")
        self.bridge_url = bridge_url  # token signers' code forms post to their agent's bridge there
        self.public_url = base_url or self.base_url  # the address the bridge sends the browser back to
        self.headers = {"Content-Security-Policy": CSP.format(bridge=f" {bridge_url}" if bridge_url else "")}

    def csrf(self, token: str, session: str) -> str:
        return hmac.new(self._csrf_key, f"{token}|{session}".encode(), hashlib.sha256).hexdigest()
