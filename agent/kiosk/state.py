"""The station's one card session: which card is in, whether its holder proved it, whose session it is, its end.

A card just inserted waits for its holder's PIN (:class:`Waiting`: nothing of the person is known or shown).  The
PIN goes to the agent for one signature: the card signs a statement naming this station, its certificate, the time
and a nonce (:mod:`signet.cardproof`), and the server opens the card session only with that proof
(:meth:`Kiosk.unlock`).  A wrong PIN opens nothing and the card keeps waiting.

Every page request (and every half second of a page on screen, :mod:`.web`) asks :meth:`Kiosk.current`: a card
that is gone, or a station left idle for ``idle_seconds``, ends the session at once -- CloseCardSession on the
server, and everything the station held for the person (session id, CSRF token, documents, rendered pages, the
pending code's id) dropped; a card taken out before its PIN was entered is forgotten as well.  A card whose session
timed out or was finished must be taken out before it opens a new one; a card the server refuses is shown as such
until it is taken out.  PINs never enter this state: the PIN form's PIN goes straight to the agent for the card's
statement, the signing form's for one signature (:meth:`Kiosk.unlock`, :meth:`Kiosk.sign`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from hsm import HsmError
from signet import cardproof
from signet.v1 import server_pb2 as pb
from signet.wire import reason_of

from ..client import AgentClient, TokenRef
from ..envelope_signing import sign_revision
from ..serverlink import ServerRefused
from ..tokens import TokenDirectory
from .station import StationLink

log = logging.getLogger(__name__)

PROOF_FILE = "signet-card-session.txt"  # the name the agent (and a confirmation program) sees for the statement


class KioskRefused(Exception):
    """Something the person can act on, said on the page (never a PIN, a code or document contents)."""


@dataclass(frozen=True)
class Card:
    serial: str
    label: str
    key_id: str
    certificate_der: bytes = field(repr=False)


@dataclass
class Pending:
    code_id: str
    sha256: str
    timestamp_url: str


@dataclass(frozen=True)
class Waiting:
    """A card inserted whose holder has not entered the PIN yet: no session, nothing of the person."""

    card: Card
    csrf: str = field(repr=False)  # of the PIN form
    generation: int


@dataclass
class Holder:
    session_id: str = field(repr=False)
    person_id: str
    name: str
    card: Card
    csrf: str = field(repr=False)
    last: float
    generation: int
    documents: dict[tuple[str, str], bytes] = field(default_factory=dict, repr=False)
    pages: dict[tuple[str, str, int], bytes] = field(default_factory=dict, repr=False)
    pending: dict[tuple[str, str], Pending] = field(default_factory=dict, repr=False)


class Kiosk:
    def __init__(self, directory: TokenDirectory, link: StationLink, agent: Callable[[], AgentClient], *,
                 idle_seconds: float, timestamp_urls: tuple[str, ...] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._directory = directory
        self._link = link
        self._agent = agent
        self.idle_seconds = idle_seconds
        self._tsas = timestamp_urls
        self._clock = clock
        self._lock = threading.RLock()
        self._holder: Holder | None = None
        self._waiting: Waiting | None = None  # the card in, before its PIN
        self._cards: dict[str, Card | None] = {}  # serial -> its holder certificate (read once per insertion)
        self._spent: str | None = None  # a card whose session ended while it stayed in: take it out first
        self.refused: str | None = None  # a card the server refused (shown until it is taken out)
        self._generation = 0

    # -- the card ---------------------------------------------------------------------------------------------------
    def card(self) -> Card | None:
        """The first token present that holds a key pair with its certificate (read without a PIN)."""
        try:
            present = self._directory.seen()  # the watcher's view: no PKCS#11 call per page
            if {t.serial for t in present} != set(self._cards):  # a change: the module itself confirms it
                present = self._directory.list()
        except HsmError:
            return None
        serials = {t.serial for t in present}
        for gone in set(self._cards) - serials:
            del self._cards[gone]
        for t in present:
            if t.serial not in self._cards:
                self._cards[t.serial] = self._read(t.serial, t.label)
            card = self._cards[t.serial]
            if card is not None:
                return card
        return None

    def _read(self, serial: str, label: str) -> Card | None:
        try:
            found = self._directory.resolve(serial=serial).holder_certificates()
        except (HsmError, OSError, ValueError):  # a token pulled while we read it, or one we cannot use
            log.info("kiosk: cannot read the certificates of token %s", serial, exc_info=True)
            return None
        return Card(serial, label, found[0][0], found[0][1]) if found else None

    # -- the session ------------------------------------------------------------------------------------------------
    def current(self, *, touch: bool = True) -> Holder | None:
        """The live session, after ending it when its card is gone or it was idle too long; None when there is
        none (a card just inserted then waits for its PIN: :meth:`waiting`).  ``touch``: this is the person's
        request (the idle timer restarts)."""
        with self._lock:
            card = self.card()
            now = self._clock()
            h = self._holder
            if h is not None:
                if card is None or card.serial != h.card.serial:
                    self._end("card removed")
                elif now - h.last > self.idle_seconds:
                    self._end("idle")
                    self._spent = h.card.serial
                else:
                    if touch:
                        h.last = now
                    return h
            w = self._waiting
            if w is not None and (card is None or card.serial != w.card.serial):
                self._waiting = None
                log.info("kiosk: card %s taken out before its PIN was entered", w.card.serial)
            if card is None:
                self._spent = self.refused = None
                return None
            if card.serial in (self._spent, self.refused):
                return None
            if self._waiting is None:
                self._generation += 1
                self._waiting = Waiting(card, secrets.token_urlsafe(32), self._generation)
                log.info("kiosk: card %s inserted, waiting for its PIN", card.serial)
            return None

    def waiting(self) -> Waiting | None:
        """The card waiting for its PIN, as the last :meth:`current` left it."""
        with self._lock:
            return self._waiting

    def still_waiting(self, w: Waiting) -> bool:
        """Whether the PIN page of ``w`` on screen is still the one to show (does not restart any timer)."""
        with self._lock:
            return self.current(touch=False) is None and self._waiting is w

    def unlock(self, w: Waiting, pin: str) -> Holder | None:
        """The card of ``w`` proves it is present and unlocked: it signs the station's statement with ``pin`` (for
        this one signature, through the agent), and the server opens the card session with that proof.  None when
        the server refuses the card (shown until it is taken out); KioskRefused (nothing opened, the card still
        waits) for a wrong PIN or a card that could not sign."""
        with self._lock:
            if self._waiting is not w or self._holder is not None:
                raise KioskRefused("this page is out of date: start again")
            card = w.card
            if not pin:
                raise KioskRefused("enter your card's PIN 请输入卡密码")
            statement = cardproof.statement(self._link.org_id, self._link.station, card.certificate_der)
            signature = self._prove(card, statement, pin)
            try:
                opened = self._link.open(card.certificate_der, statement, signature)
            except ServerRefused as e:
                log.info("kiosk: the server refused card %s (%s)", card.serial, e.reason or e.code)
                if e.code != "UNAUTHENTICATED":
                    raise KioskRefused("the server could not open your documents now: try again. "
                                       "服务器暂时无法打开您的文件，请重试。") from None  # noqa: RUF001 - Chinese punctuation
                self._waiting = None
                self.refused = card.serial
                return None
            self._waiting = None
            self._generation += 1
            self._holder = Holder(opened.session_id, opened.person_id, opened.display_name, card,
                                  secrets.token_urlsafe(32), self._clock(), self._generation)
            log.info("kiosk: card session opened for person %s", opened.person_id)
            return self._holder

    def _prove(self, card: Card, statement: bytes, pin: str) -> bytes:
        """The card's detached CMS signature over ``statement``, made by the agent with ``pin`` for this one
        signature."""
        try:
            with tempfile.TemporaryDirectory(prefix="signet-kiosk-") as tmp:
                src = Path(tmp) / PROOF_FILE
                src.write_bytes(statement)
                with self._agent() as client:
                    _, signature = client.sign_to_bytes(src, pdf=False, token=TokenRef(serial=card.serial),
                                                        key_id=card.key_id, pin=pin)
        except grpc.RpcError as e:
            reason = reason_of(e)
            log.info("kiosk: card %s did not sign its statement (%s)", card.serial, reason or "no reason")
            if reason == "PIN_INCORRECT":
                raise KioskRefused("the card did not accept the PIN: nothing was opened. Check it and try again. "
                                   "卡未接受该密码，请检查后重试。") from None  # noqa: RUF001 - Chinese punctuation
            if reason == "PIN_LOCKED":
                raise KioskRefused("the card's PIN is locked: nothing was opened. Please ask for help. "
                                   "卡密码已锁定，请寻求帮助。") from None  # noqa: RUF001 - Chinese punctuation
            if reason == "PIN_THROTTLED":
                raise KioskRefused("too many PIN attempts: wait a minute, then try again. "
                                   "密码尝试次数过多，请稍等一分钟后重试。") from None  # noqa: RUF001 - Chinese punctuation
            raise KioskRefused("the card could not confirm that it is yours: nothing was opened. "
                               "无法确认此卡属于您，未打开任何文件。") from None  # noqa: RUF001 - Chinese punctuation
        return signature

    def _end(self, why: str) -> None:
        self._waiting = None
        h, self._holder = self._holder, None
        if h is None:
            return
        self._link.close_session(h.session_id)
        h.documents.clear()
        h.pages.clear()
        h.pending.clear()
        h.session_id = h.csrf = ""
        log.info("kiosk: card session ended (%s)", why)

    def finish(self) -> None:
        """The person is done: end the session; the card must come out before another one opens."""
        with self._lock:
            if self._holder is not None:
                self._spent = self._holder.card.serial
            self._end("finished")

    def alive(self, generation: int) -> bool:
        """Whether the session a page on screen belongs to is still the live one (does not restart the timer)."""
        h = self.current(touch=False)
        return h is not None and h.generation == generation

    # -- the person's documents -------------------------------------------------------------------------------------
    def inbox(self, h: Holder) -> list[pb.Envelope]:
        return self._link.inbox(h.session_id)

    def envelope(self, h: Holder, envelope_id: str) -> pb.Envelope:
        return self._link.envelope(h.session_id, envelope_id)

    def document(self, h: Holder, envelope_id: str, document_id: str, *, fresh: bool = False) -> bytes:
        key = (envelope_id, document_id)
        if fresh or key not in h.documents:
            h.documents[key] = self._link.document(h.session_id, envelope_id, document_id)
            for k in [k for k in h.pages if k[:2] == key]:
                del h.pages[k]
        return h.documents[key]

    def page(self, h: Holder, envelope_id: str, document_id: str, page: int) -> bytes:
        from .render import render_page

        key = (envelope_id, document_id, page)
        if key not in h.pages:
            h.pages[key] = render_page(self.document(h, envelope_id, document_id), page)
        return h.pages[key]

    def send_code(self, h: Holder, envelope_id: str, document_id: str, sha256: str) -> pb.StartSigningResponse:
        content = self.document(h, envelope_id, document_id, fresh=True)
        if hashlib.sha256(content).hexdigest() != sha256:
            raise KioskRefused("the document changed while you read it (another party signed): review it again")
        started = self._link.start_signing(h.session_id, envelope_id, document_id, sha256)
        h.pending[(envelope_id, document_id)] = Pending(started.challenge.code_id, sha256, started.timestamp_url)
        return started

    def sign(self, h: Holder, envelope_id: str, document_id: str, *, code: str, pin: str) -> pb.Envelope:
        """Sign the revision the code was sent for on the card (PIN for this one signature), and submit it."""
        pending = h.pending.get((envelope_id, document_id))
        if pending is None:
            raise KioskRefused("no code was sent for this document: ask for one first")
        env = self.envelope(h, envelope_id)
        doc = next((d for d in env.documents if d.id == document_id), None)
        me = next((r for r in env.recipients if r.person_id == h.person_id
                   and r.role in (pb.RECIPIENT_ROLE_SIGNER, pb.RECIPIENT_ROLE_APPROVER)), None)
        content = self.document(h, envelope_id, document_id, fresh=True)
        if doc is None or me is None or hashlib.sha256(content).hexdigest() != pending.sha256:
            raise KioskRefused("this document changed or is no longer yours to sign: review it again")
        tsa = pending.timestamp_url if pending.timestamp_url in self._tsas else ""
        try:
            with self._agent() as client:
                signed = sign_revision(client, content, doc, me, token=TokenRef(serial=h.card.serial),
                                       key_id=h.card.key_id, pin=pin, timestamp_url=tsa)
        except grpc.RpcError as e:
            reason = reason_of(e)
            log.info("kiosk: the card did not sign (%s)", reason or "no reason")
            if "PIN" in reason:
                raise KioskRefused("the card did not accept the PIN: nothing was signed") from None
            raise KioskRefused("the card could not sign: nothing was signed") from None
        done = self._link.submit(h.session_id, envelope_id, document_id, content=signed, code=code.strip(),
                                 code_id=pending.code_id,
                                 idempotency_key=f"kiosk-{envelope_id}-{document_id}-{pending.sha256}")
        h.pending.pop((envelope_id, document_id), None)
        h.documents.pop((envelope_id, document_id), None)
        return done
