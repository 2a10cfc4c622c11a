"""The ``kiosk_request`` target: a raw HTTP request to the agent's kiosk pages (agent.kiosk.web), over memory.

The station's state is a card holder with one envelope of one two-page PDF waiting, a code already sent for it;
an input that starts with ``@waiting`` and a newline (removed) meets the station before that instead: the card in,
its PIN not entered yet (no session; the PIN page).  What the state would ask the server or the token
(:class:`agent.kiosk.state.Kiosk`'s methods) is answered here from that fixture (the card accepts :data:`PIN`), or
refused as the server would (:class:`agent.serverlink.ServerRefused`) for any other id -- the end-to-end test
(tests/e2e/test_kiosk.py) runs the real ones.  Placeholders: ``@host`` the station's address, ``@csrf`` the
session's CSRF token (and the waiting card's), ``@e``/``@d`` the envelope and document ids, ``@pin`` the PIN.
Contract: the handler never raises; every answer is an HTTP response with a status line; never 500 and never a
dropped connection; no answer carries a CR or LF it was given into a header; the PIN given is never in an answer;
signing, and opening a session with the card's PIN, are reached only with the CSRF token.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from .fakes import Finding, in_memory

HOST = "127.0.0.1:17390"
CSRF = "c5" * 16
ENVELOPE, DOCUMENT = "env_fuzz0000000000000000", "doc_fuzz0000000000000000"
PIN = "kiosk-PIN-7q"
WAITING = b"@waiting\n"  # an input's prefix: the card is in, its PIN not entered yet
_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3}) ")


@functools.cache
def _kiosk() -> Any:
    return make_kiosk()


def make_kiosk() -> Any:
    """(the handler's server over a fixture state, the in-memory handler class)."""
    from agent.kiosk.state import Card, Holder, Kiosk, KioskRefused, Pending, Waiting
    from agent.kiosk.web import KioskServer, _Handler
    from agent.serverlink import ServerRefused
    from formats.samplepdf import contract_pdf_bytes
    from signet.v1 import server_pb2 as pb

    pdf = contract_pdf_bytes("Fuzz lease", ["Sam Sender", "Kim Station"])
    env = pb.Envelope(id=ENVELOPE, title="Fuzz lease", state=pb.ENVELOPE_STATE_SENT, documents=[pb.EnvelopeDocument(
        id=DOCUMENT, name="lease.pdf", media_type="application/pdf", pages=2, current_sha256="ab" * 32)])
    holder = Holder("s", "p_fuzz", "Kim Station", Card("1", "card", "01", b""), CSRF, 0.0, 1,
                    pending={(ENVELOPE, DOCUMENT): Pending("code1", "ab" * 32, "")})
    waiting = Waiting(holder.card, CSRF, 2)
    signed: list[str] = []
    unlocked: list[bool] = []  # each PIN the card was asked to use: accepted or not

    def known(envelope_id: str, document_id: str | None = None) -> None:
        if envelope_id != ENVELOPE or document_id not in (None, DOCUMENT):
            raise ServerRefused("NOT_FOUND", "ENVELOPE_NOT_FOUND", "no such envelope")

    class FixtureKiosk(Kiosk):
        """The state's answers from the fixture; every other id is refused as the server would."""

        def __init__(self) -> None:  # no token directory, no server link
            self.idle_seconds, self.refused = 0.0, None  # a held page ends at once: the fuzzer waits for nobody
            self.card_waiting = False  # the input's mode (WAITING): no session yet, the card waits for its PIN

        def current(self, *, touch: bool = True) -> Holder | None:
            return None if self.card_waiting else holder

        def waiting(self) -> Waiting | None:
            return waiting if self.card_waiting else None

        def still_waiting(self, w: Waiting) -> bool:
            return False

        def unlock(self, w: Waiting, pin: str) -> Holder | None:
            unlocked.append(pin == PIN)
            if pin != PIN:
                raise KioskRefused("the card did not accept the PIN: nothing was opened")
            return holder

        def card(self) -> Card | None:
            return holder.card

        def alive(self, generation: int) -> bool:
            return False

        def finish(self) -> None:
            pass

        def inbox(self, h: Holder) -> list[pb.Envelope]:
            return [env]

        def envelope(self, h: Holder, envelope_id: str) -> pb.Envelope:
            known(envelope_id)
            return env

        def document(self, h: Holder, envelope_id: str, document_id: str, *, fresh: bool = False) -> bytes:
            known(envelope_id, document_id)
            return pdf

        def page(self, h: Holder, envelope_id: str, document_id: str, page: int) -> bytes:
            known(envelope_id, document_id)
            return b"\x89PNG fixture"

        def send_code(self, h: Holder, envelope_id: str, document_id: str, sha256: str) -> pb.StartSigningResponse:
            known(envelope_id, document_id)
            return pb.StartSigningResponse()

        def sign(self, h: Holder, envelope_id: str, document_id: str, *, code: str, pin: str) -> pb.Envelope:
            known(envelope_id, document_id)
            signed.append(code)
            return env

    kiosk = FixtureKiosk()
    server = KioskServer.__new__(KioskServer)  # the handler's view of its server, without a socket
    server.kiosk, server.hosts = kiosk, {HOST}
    server.signed = signed  # type: ignore[attr-defined]
    server.unlocked = unlocked  # type: ignore[attr-defined]

    return server, in_memory(_Handler)


def kiosk_request(data: bytes) -> None:
    request(_kiosk(), data)


def request(kiosk: Any, data: bytes) -> None:
    server, handler = kiosk
    server.kiosk.card_waiting = data.startswith(WAITING)
    if server.kiosk.card_waiting:
        data = data[len(WAITING):]
    raw = (data.replace(b"@host", HOST.encode()).replace(b"@csrf", CSRF.encode()).replace(b"@e", ENVELOPE.encode())
           .replace(b"@d", DOCUMENT.encode()).replace(b"@pin", PIN.encode()))
    before, unlocks = len(server.signed), len(server.unlocked)
    server.last_response = b""
    try:
        handler(raw, ("127.0.0.1", 50000), server)
    except Exception as e:
        raise Finding(f"an exception escaped the kiosk handler: {type(e).__name__}", key="kiosk escape") from e
    out = server.last_response
    if not out:
        first = raw.split(b"\n", 1)[0]
        # http.server answers nothing to a request line that is blank as it reads it (latin-1, str.split)
        if len(first) < 65537 and first.decode("iso-8859-1").split():
            raise Finding("the kiosk dropped a request without an answer", key="kiosk no answer")
        return
    if _STATUS.match(out) is None:
        raise Finding(f"the kiosk answered something that is not an HTTP response: {out[:40]!r}", key="kiosk not HTTP")
    if out.startswith(b"HTTP/1.1 500 "):
        raise Finding("the kiosk answered 500", key="kiosk 500")
    head = out.split(b"\r\n\r\n", 1)[0]
    if any(not line or b":" not in line for line in head.split(b"\r\n")[1:]):
        raise Finding("a header line of the kiosk's answer is broken (CR/LF injected?)", key="kiosk header")
    if PIN.encode() in out:
        raise Finding("the kiosk's answer carries the PIN", key="kiosk pin")
    if len(server.signed) > before and CSRF.encode() not in raw:
        raise Finding("the kiosk signed without the session's CSRF token", key="kiosk csrf")
    if len(server.unlocked) > unlocks and CSRF.encode() not in raw:
        raise Finding("the kiosk used a card's PIN without the PIN page's CSRF token", key="kiosk unlock csrf")
