"""Card sessions of signing stations: a station (signet-agent in kiosk mode) acts for the holder of the card inserted
in it, for as long as the card stays in and the holder keeps using it.

A station opens a session with the certificate it read from the card and the card's proof that it is present and
unlocked by its holder: a statement (:mod:`signet.cardproof`) the card signed, a detached CMS signature made with
the PIN the holder entered on the station for that one signature.  The certificate is public; the proof is what
shows the card itself is in the station.  The certificate must be a signer certificate this server's signing CA
issued (the same bytes on record), to a person of the station's organisation who is approved, not revoked, within its
validity, and not a remote-signing certificate (whose key is on the server token, not on a card).  The statement
must name the calling station and its organisation and the SHA-256 of that certificate, carry a time within
:data:`PROOF_WINDOW` of the server's clock, and never have been used before (each statement opens at most one
session: the store keeps its hash until its time is long past); its signature must be valid (chaining to the Signet
signing root, :func:`formats.revision.check_detached_signature`) and made with that very certificate.  Any refusal,
a missing proof included, is said the same way (``CARD_REFUSED``): a station learns nothing about certificates it
may not use; the log says which check failed (never anything secret: the server never sees the PIN).

The session id (32 random bytes, URL-safe base64) is a bearer secret the station keeps in memory only; the store
keeps a keyed hash of it (HMAC-SHA256 under a key derived from the server's HMAC secret).  A session ends when the
station closes it (the card was pulled), after :data:`IDLE` without a call, after :data:`LONGEST` in any case, or as
soon as the card's certificate is revoked (checked on every call).  Only its own station may use it.

What a session allows is decided where callers are authenticated (:mod:`server.api.stations`); signing still needs
the one-time code bound to the revision and the holder's key on the card.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import x509

from formats.policy import REMOTE_KEY_MARKER
from formats.revision import check_detached_signature
from signet import cardproof

from .ca import Role as db_role
from .ca import db
from .clock import Clock, from_text, to_text
from .errors import NotFound, PermissionDenied, Unauthenticated
from .identity import IdentityService, Principal, Role, Status
from .keys import ServerKeys
from .sealing import derive_key, keyed_hash
from .store import IntegrityError, Store

log = logging.getLogger(__name__)

COMPONENT = "kiosk"
IDLE = timedelta(minutes=5)
LONGEST = timedelta(hours=1)
# how far a card's proof (its statement's time) may be from the server's clock, either way: the station's clock may
# be a little off, and a proof is made seconds before it is sent; a proof older than this is refused
PROOF_WINDOW = timedelta(minutes=2)
MAX_PROOF_SIGNATURE = 64 * 1024  # bytes: a CMS signature with its certificates is a few KiB
CARD_REFUSED = "this card cannot be used at this station (unknown, revoked or expired certificate, a person of " \
               "another organisation, or no valid proof from the card itself)"
SESSION_GONE = "the card session has ended (card removed, idle too long, or its certificate revoked): insert the " \
               "card again"


def _v1(store: Store) -> None:
    store.execute(
        "CREATE TABLE kiosk_card_sessions ("
        " id_hash TEXT PRIMARY KEY,"
        " org_id TEXT NOT NULL,"  # the station's organisation, and the holder's
        " station TEXT NOT NULL,"  # the station's name (its certificate's subject)
        " person_id TEXT NOT NULL,"
        " issuer_key_hash TEXT NOT NULL,"  # the card certificate, re-checked on every call
        " serial TEXT NOT NULL,"
        " created_at TEXT NOT NULL,"
        " used_at TEXT NOT NULL,"
        " ended_at TEXT)")


def _v2(store: Store) -> None:
    store.execute(
        "CREATE TABLE kiosk_card_proofs ("
        " statement_hash TEXT PRIMARY KEY,"  # SHA-256 (hex) of a statement that opened a session: one session each
        " org_id TEXT NOT NULL,"
        " station TEXT NOT NULL,"
        " expires_at TEXT NOT NULL)")  # the statement's time + PROOF_WINDOW: refused by its time after that
    store.execute("CREATE INDEX kiosk_card_proofs_expiry ON kiosk_card_proofs (expires_at)")


MIGRATIONS = [_v1, _v2]


class CardRefused(Unauthenticated):
    reason = "CARD_REFUSED"


class CardSessionGone(Unauthenticated):
    reason = "CARD_SESSION_ENDED"


class _Refused(Exception):
    """Why a card session is refused: logged; the station is told only CARD_REFUSED."""


@dataclass(frozen=True)
class Opened:
    session_id: str
    person_id: str
    display_name: str
    idle_seconds: int


def _station(principal: Principal) -> None:
    if principal.role is not Role.STATION:
        raise PermissionDenied("only a signing station (a station certificate) may open or close card sessions",
                               reason="STATION_ONLY")


class CardSessions:
    def __init__(self, store: Store, hmac_secret: bytes, clock: Clock, identity: IdentityService,
                 signing_ca_key_hash: str, *, trust_roots: Sequence[bytes],
                 intermediates: Sequence[bytes] = ()) -> None:
        self._store = store
        self._key = derive_key(hmac_secret, "kiosk-card-sessions")
        self._clock = clock
        self._identity = identity
        self._issuer = signing_ca_key_hash
        self._roots = list(trust_roots)  # the Signet signing root: a card's proof signature chains to it
        self._intermediates = list(intermediates)  # the signing CA: a card need not carry its chain
        store.migrate(COMPONENT, MIGRATIONS)

    @classmethod
    def of(cls, store: Store, hmac_secret: bytes, clock: Clock, identity: IdentityService,
           keys: ServerKeys) -> CardSessions:
        """Card sessions for certificates of the server's signing CA."""
        return cls(store, hmac_secret, clock, identity, db.spki_hash(keys[db_role.SIGNING_CA].public_key_der),
                   trust_roots=(keys.certificate_der(db_role.SIGNING_ROOT),),
                   intermediates=(keys.certificate_der(db_role.SIGNING_CA),))

    def _hash(self, session_id: str) -> str:
        return keyed_hash(self._key, session_id)

    def _card(self, certificate_der: bytes, org_id: str, now: datetime) -> db.CertRecord:
        try:
            cert = x509.Certificate.load(certificate_der)
            serial = cert.serial_number
            policies = {p["policy_identifier"].dotted for p in (cert.certificate_policies_value or [])}
        except (ValueError, TypeError, KeyError):
            raise _Refused("the certificate cannot be read") from None
        rec = db.find(self._store, self._issuer, serial)
        if rec is None or rec.der != certificate_der or rec.origin != db.ORIGIN_ISSUED or rec.person_id is None \
                or REMOTE_KEY_MARKER in policies:
            raise _Refused("the certificate is not a card certificate this server issued to a person")
        if rec.revoked or not rec.not_before <= now < rec.not_after:
            raise _Refused(f"certificate {db.serial_text(rec.serial)} is revoked or not valid now")
        try:
            holder_org = self._identity.org_of(rec.person_id)
        except NotFound:
            raise _Refused("the certificate's holder is unknown") from None
        if holder_org != org_id:
            raise _Refused("the certificate's holder is of another organisation")
        return rec

    @staticmethod
    def _statement(station: Principal, certificate_der: bytes, statement: bytes,
                   now: datetime) -> cardproof.Statement:
        """The card's statement, bound to this station, this certificate and now."""
        if not statement:
            raise _Refused("no proof of the card (statement and signature) came with the certificate")
        try:
            s = cardproof.parse(statement)
        except cardproof.BadStatement as e:
            raise _Refused(str(e)) from None
        if s.org_id != station.org_id or s.station != station.subject:
            raise _Refused("the statement names another station or organisation")
        if s.certificate_sha256 != hashlib.sha256(certificate_der).hexdigest():
            raise _Refused("the statement names another certificate")
        skew = (now - s.time).total_seconds()
        if abs(skew) > PROOF_WINDOW.total_seconds():
            raise _Refused(f"the statement's time is {skew:+.0f} s from the server's clock (at most "
                           f"{PROOF_WINDOW.total_seconds():.0f} s either way)")
        return s

    def _signed_by_card(self, statement: bytes, signature: bytes, certificate_der: bytes, now: datetime) -> None:
        """The statement's signature is valid and made with the card's certificate itself."""
        if not signature or len(signature) > MAX_PROOF_SIGNATURE:
            raise _Refused("the proof signature is missing or too large")
        verdict = check_detached_signature(statement, signature, trust_roots=self._roots, revocation="offline",
                                           validation_time=now, other_certs=self._intermediates)
        if not verdict.accepted:
            raise _Refused(f"the proof signature is not valid ({verdict.reason})")
        if verdict.signer_certificate_der != certificate_der:
            raise _Refused("the proof was signed with another certificate than the card's")

    def open(self, station: Principal, certificate_der: bytes, *, proof_statement: bytes = b"",
             proof_signature: bytes = b"") -> Opened:
        """A session for the holder of the card ``certificate_der``, proved present by ``proof_statement`` (the
        statement of :mod:`signet.cardproof`) and ``proof_signature`` (the card's detached CMS over it); anything
        else is CardRefused, said the same way whatever the cause."""
        _station(station)
        now = self._clock.now()
        try:
            statement = self._statement(station, certificate_der, proof_statement, now)
            rec = self._card(certificate_der, station.org_id, now)
            holder = str(rec.person_id)  # set: checked by _card
            person = self._identity.get_person(Principal(station.org_id, holder, Role.MEMBER), holder)
            if person.status is not Status.APPROVED:
                raise _Refused("the certificate's holder is not approved")
            self._signed_by_card(proof_statement, proof_signature, certificate_der, now)
            session_id = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
            try:
                with self._store.transaction():
                    self._store.execute("DELETE FROM kiosk_card_proofs WHERE expires_at < ?",
                                        (to_text(now - PROOF_WINDOW),))  # refused by their time long since
                    # the statement's hash is unique: a replayed proof (or the same one sent twice at once) fails
                    self._store.insert("kiosk_card_proofs", {
                        "statement_hash": hashlib.sha256(proof_statement).hexdigest(), "org_id": station.org_id,
                        "station": station.subject, "expires_at": to_text(statement.time + PROOF_WINDOW)})
                    self._store.insert("kiosk_card_sessions", {
                        "id_hash": self._hash(session_id), "org_id": station.org_id, "station": station.subject,
                        "person_id": holder, "issuer_key_hash": rec.issuer_key_hash,
                        "serial": db.serial_text(rec.serial), "created_at": to_text(now), "used_at": to_text(now),
                        "ended_at": None})
            except IntegrityError:
                raise _Refused(f"the proof was used before (statement nonce {statement.nonce})") from None
        except _Refused as why:
            log.info("kiosk station %s: card session refused: %s", station.subject, why)
            raise CardRefused(CARD_REFUSED) from None
        log.info("kiosk station %s opened a card session for person %s (certificate %s)", station.subject,
                 holder, db.serial_text(rec.serial))
        return Opened(session_id, holder, person.legal_name, int(IDLE.total_seconds()))

    def close(self, station: Principal, session_id: str) -> bool:
        _station(station)
        if not 30 <= len(session_id) <= 64:
            return False
        n = self._store.execute(
            "UPDATE kiosk_card_sessions SET ended_at = ? WHERE id_hash = ? AND org_id = ? AND station = ? "
            "AND ended_at IS NULL", (to_text(self._clock.now()), self._hash(session_id), station.org_id,
                                     station.subject))
        if n:
            log.info("kiosk station %s closed a card session", station.subject)
        return n > 0

    def holder(self, station: Principal, session_id: str) -> Principal:
        """The card holder a live session of ``station`` acts as (its idle timer restarts); CardSessionGone else."""
        if station.role is not Role.STATION or not 30 <= len(session_id) <= 64 \
                or not all(c.isalnum() or c in "-_" for c in session_id):
            raise CardSessionGone(SESSION_GONE)
        now = self._clock.now()
        with self._store.transaction():
            row = self._store.query_one("SELECT * FROM kiosk_card_sessions WHERE id_hash = ?",
                                        (self._hash(session_id),))
            if row is None or row["org_id"] != station.org_id or row["station"] != station.subject \
                    or row["ended_at"] is not None:
                raise CardSessionGone(SESSION_GONE)
            rec = db.find(self._store, row["issuer_key_hash"], int(row["serial"], 16))
            expired = now - from_text(row["used_at"]) > IDLE or now - from_text(row["created_at"]) > LONGEST
            if expired or rec is None or rec.revoked or now >= rec.not_after:
                self._store.execute("UPDATE kiosk_card_sessions SET ended_at = ? WHERE id_hash = ?",
                                    (to_text(now), row["id_hash"]))
        # raised after the transaction: the session's end is committed
        if expired or rec is None or rec.revoked or now >= rec.not_after:
            raise CardSessionGone(SESSION_GONE)
        self._store.execute("UPDATE kiosk_card_sessions SET used_at = ? WHERE id_hash = ?",
                            (to_text(now), row["id_hash"]))
        return Principal(station.org_id, str(row["person_id"]), Role.MEMBER, via=f"kiosk station {station.subject}")
