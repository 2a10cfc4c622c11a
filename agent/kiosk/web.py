"""The station's HTTP pages on 127.0.0.1 only (any other listen address is refused), for the station's browser.

No script anywhere (``Content-Security-Policy: default-src 'none'``; images and the stylesheet from the station,
forms to the station).  Only requests naming the station itself in ``Host`` are answered (no DNS rebinding), every
form carries a CSRF token (the waiting card's on the PIN page, the session's after), and nothing is cached.  The
welcome page reloads itself every second to notice a card; a card inserted leads to the PIN page (``/unlock``),
whose PIN opens the card session (:meth:`.state.Kiosk.unlock`) and then the person's documents.  A page showing the
person's documents (and the PIN page) is held open after its content: every half second the station checks the
session (the waiting card), and when it ended (card out, idle) it finishes the page with a refresh to the welcome
page -- the person's documents leave the screen at once, without any script.  A PIN is read from the form's body,
handed to the agent for one signature (the card's statement, or the document) and dropped; it is never logged,
echoed or stored.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from signet.http11 import Http11Handler

from ..client import AgentClient, Target
from ..config import AgentConfig
from ..serverlink import ServerRefused
from . import pages
from .render import RenderError
from .state import Holder, Kiosk, KioskRefused, Waiting
from .station import StationLink

log = logging.getLogger(__name__)

CSP = ("default-src 'none'; img-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
MAX_FORM = 8 * 1024
TICK = 0.5


class _Page(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class KioskServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, listen: str, kiosk: Kiosk) -> None:
        host, _, port = listen.rpartition(":")
        if host != "127.0.0.1":
            raise ValueError(f"the kiosk listens on 127.0.0.1 only, not {host!r}")
        super().__init__((host, int(port)), _Handler)
        self.kiosk = kiosk
        self.hosts = {f"127.0.0.1:{self.server_address[1]}", f"localhost:{self.server_address[1]}"}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="kiosk", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.kiosk.finish()


def start(cfg: AgentConfig, directory: Any) -> KioskServer:
    """Serve the kiosk pages for the agent of ``cfg`` (its token directory, its own socket for signing)."""
    link = StationLink(cfg.kiosk)
    kiosk = Kiosk(directory, link, lambda: AgentClient(Target(socket=cfg.socket)),
                  idle_seconds=cfg.kiosk.idle_seconds, timestamp_urls=cfg.timestamp_urls)
    server = KioskServer(cfg.kiosk.listen, kiosk)
    server.start()
    return server


def _one(q: dict[str, list[str]], key: str) -> str:
    v = q.get(key) or [""]
    return v[0]


class _Handler(Http11Handler):
    server: KioskServer
    server_version = "signet-kiosk"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request lines are not logged: the pages' own log lines say what happened, never a query

    def _headers(self, status: int, ctype: str, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8") -> None:
        self._headers(status, ctype, len(body))
        self.wfile.write(body)

    def _redirect(self, to: str) -> None:
        self.send_response(303)
        self.send_header("Location", to)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _hold(self, h: Holder, html: str) -> None:
        """Send a page of the person's, then keep it until their session ends; then back to the welcome page."""
        kiosk = self.server.kiosk
        self._hold_while(html, lambda: kiosk.alive(h.generation))

    def _hold_pin_page(self, w: Waiting, error: str = "") -> None:
        """The PIN page of the card waiting, kept until the card goes (or its session opens elsewhere)."""
        kiosk = self.server.kiosk
        self._hold_while(pages.unlock(w.csrf, error), lambda: kiosk.still_waiting(w))

    def _hold_while(self, html: str, alive: Callable[[], bool]) -> None:
        """Send ``html``, then keep the page while ``alive()`` (at most the idle time); then back to the welcome
        page."""
        self._headers(200, "text/html; charset=utf-8")
        kiosk = self.server.kiosk
        deadline = time.monotonic() + kiosk.idle_seconds + 5
        try:
            self.wfile.write(html.encode())
            self.wfile.flush()
            while time.monotonic() < deadline and alive():
                time.sleep(TICK)
                self.wfile.write(b"\n")  # a client that left ends this loop (BrokenPipe)
                self.wfile.flush()
            self.wfile.write(pages.LEAVE + pages.closing())
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _route(self) -> tuple[str, dict[str, list[str]]]:
        if self.headers.get("Host", "") not in self.server.hosts:
            raise _Page(421, pages.problem("this station answers only its own address"))
        url = urlsplit(self.path)
        return url.path, parse_qs(url.query)

    def do_GET(self) -> None:
        try:
            path, q = self._route()
            if path == "/kiosk.css":
                self._send(200, pages.CSS, "text/css; charset=utf-8")
                return
            kiosk = self.server.kiosk
            h = kiosk.current()
            if path in ("/", "/unlock"):
                w = kiosk.waiting() if h is None else None
                if h is not None:
                    self._redirect("/inbox")
                elif w is not None and path == "/unlock":
                    self._hold_pin_page(w)
                elif w is not None:
                    self._redirect("/unlock")
                elif path == "/unlock":
                    self._redirect("/")
                else:
                    self._send(200, pages.welcome(self._notice()))
                return
            if h is None:
                self._redirect("/")
                return
            self._person_get(h, path, q)
        except _Page as p:
            self._send(p.status, p.body)
        except ServerRefused as e:
            log.info("kiosk: the server refused a page (%s)", e.reason or e.code)
            self._send(502, pages.problem(f"The server refused: {e.message}"))

    def _notice(self) -> str:
        kiosk = self.server.kiosk
        if kiosk.refused:
            return "This card cannot be used at this station. Please take it out. 此卡不能在本机使用，请取出。"  # noqa: RUF001 - Chinese punctuation
        if kiosk.card() is not None:
            return "Please take your card out, then insert it again to start. 请取出卡后重新插入。"
        return ""

    def _person_get(self, h: Holder, path: str, q: dict[str, list[str]]) -> None:
        kiosk = self.server.kiosk
        if path == "/inbox":
            self._hold(h, pages.inbox(h.name, kiosk.inbox(h), h.csrf))
            return
        e, d = _one(q, "e"), _one(q, "d")
        if path in ("/review", "/page.png", "/sign"):
            env = kiosk.envelope(h, e)
            doc = next((x for x in env.documents if x.id == d), None)
            if doc is None:
                raise _Page(404, pages.problem("there is no such document"))
            try:
                page = min(max(int(_one(q, "p") or 1), 1), max(doc.pages, 1))
            except ValueError:
                page = 1
            if path == "/page.png":
                try:
                    self._send(200, kiosk.page(h, e, d, page), "image/png")
                except RenderError as err:
                    self._send(422, str(err).encode(), "text/plain; charset=utf-8")
                return
            if path == "/review":
                import hashlib

                sha = hashlib.sha256(kiosk.document(h, e, d, fresh=page == 1)).hexdigest()
                self._hold(h, pages.review(env, doc, page, sha, h.csrf))
                return
            pending = h.pending.get((e, d))
            if pending is None:
                self._redirect("/inbox")
                return
            self._hold(h, pages.sign_form(env, doc, pending.sha256, "your phone", h.csrf))
            return
        raise _Page(404, pages.problem("there is nothing here"))

    def _form(self, csrf: str) -> dict[str, str]:
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            raise _Page(415, pages.problem("this form cannot be read"))
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_FORM:
            raise _Page(413, pages.problem("this form is too large"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
        # compared as bytes: compare_digest refuses str with non-ASCII characters
        if not csrf or not hmac.compare_digest(form.get("csrf", "").encode(), csrf.encode()):
            raise _Page(403, pages.problem("this form has expired: start again"))
        return form

    def do_POST(self) -> None:
        self.close_connection = True  # one form per connection: an unread body is never the next request (F26)
        try:
            path, _ = self._route()
            kiosk = self.server.kiosk
            h = kiosk.current()
            if path == "/unlock":
                self._unlock(h)
                return
            if h is None:
                self._redirect("/")
                return
            form = self._form(h.csrf)
            if path == "/finish":
                kiosk.finish()
                self._redirect("/")
                return
            e, d = form.get("e", ""), form.get("d", "")
            if path == "/code":
                kiosk.send_code(h, e, d, form.get("sha256", ""))
                self._redirect(f"/sign?e={e}&d={d}" if e.isascii() and d.isascii() else "/inbox")
                return
            if path == "/sign":
                self._sign(h, e, d, form)
                return
            raise _Page(404, pages.problem("there is nothing here"))
        except _Page as p:
            self._send(p.status, p.body)
        except KioskRefused as err:
            self._send(409, pages.problem(str(err)))
        except ServerRefused as e:
            log.info("kiosk: the server refused (%s)", e.reason or e.code)
            self._send(502, pages.problem(f"The server refused: {e.message}"))

    def _unlock(self, h: Holder | None) -> None:
        """The PIN form: the card proves itself with the PIN and the session opens (the inbox), or the PIN page
        again saying why nothing was opened; a card the server refuses goes back to the welcome page, which says
        so."""
        kiosk = self.server.kiosk
        w = kiosk.waiting() if h is None else None
        if w is None:
            self._redirect("/inbox" if h is not None else "/")  # opened already (a second tab), or no card
            return
        form = self._form(w.csrf)
        pin = form.pop("pin", "")
        try:
            opened = kiosk.unlock(w, pin)
        except KioskRefused as err:
            self._hold_pin_page(w, str(err))
            return
        finally:
            del pin
        self._redirect("/inbox" if opened is not None else "/")

    def _sign(self, h: Holder, e: str, d: str, form: dict[str, str]) -> None:
        kiosk = self.server.kiosk
        pin = form.pop("pin", "")
        code = form.pop("code", "")
        pending = h.pending.get((e, d))
        env = kiosk.envelope(h, e)
        doc = next((x for x in env.documents if x.id == d), None)
        if pending is None or doc is None:
            raise _Page(409, pages.problem("no code was sent for this document: review it and ask for one"))
        try:
            done = kiosk.sign(h, e, d, code=code, pin=pin)
        except KioskRefused as err:
            self._hold(h, pages.sign_form(env, doc, pending.sha256, "your phone", h.csrf, error=str(err)))
            return
        except ServerRefused as err:
            log.info("kiosk: the server refused the signature (%s)", err.reason or err.code)
            message = ("the code was not accepted: check it and try again" if err.code == "UNAUTHENTICATED"
                       else f"the server refused the signature: {err.message}")
            self._hold(h, pages.sign_form(env, doc, pending.sha256, "your phone", h.csrf, error=message))
            return
        finally:
            del pin, code
        self._hold(h, pages.signed(done, doc.name, h.csrf))
