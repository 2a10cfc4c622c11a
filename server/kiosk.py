"""Card sessions of signing stations: a station (signet-agent in kiosk mode) acts for the holder of the card inserted
in it, for as long as the card stays in and the holder keeps using it.

A station opens a session with the certificate it read from the card.  The certificate must be a signer certificate
this server's signing CA issued (the same bytes on record), to a person of the station's organisation who is
approved, not revoked, within its validity, and not a remote-signing certificate (whose key is on the server token,
not on a card).  Any refusal is said the same way (``CARD_REFUSED``): a station learns nothing about certificates it
may not use.

The session id (32 random bytes, URL-safe base64) is a bearer secret the station keeps in memory only; the store
keeps a keyed hash of it (HMAC-SHA256 under a key derived from the server's HMAC secret).  A session ends when the
station closes it (the card was pulled), after :data:`IDLE` without a call, after :data:`LONGEST` in any case, or as
soon as the card's certificate is revoked (checked on every call).  Only its own station may use it.

What a session allows is decided where callers are authenticated (:mod:`server.api.stations`); signing still needs
the one-time code bound to the revision and the holder's key on the card.
"""

from __future__ import annotations

import base64
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import x509

from formats.policy import REMOTE_KEY_MARKER

from .ca import Role as db_role
from .ca import db
from .clock import Clock, from_text, to_text
from .errors import NotFound, PermissionDenied, Unauthenticated
from .identity import IdentityService, Principal, Role, Status
from .keys import ServerKeys
from .sealing import derive_key, keyed_hash
from .store import Store

log = logging.getLogger(__name__)

COMPONENT = "kiosk"
IDLE = timedelta(minutes=5)
LONGEST = timedelta(hours=1)
CARD_REFUSED = "this card cannot be used at this station (unknown, revoked or expired certificate, or a person of " \
               "another organisation)"
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


MIGRATIONS = [_v1]


class CardRefused(Unauthenticated):
    reason = "CARD_REFUSED"


class CardSessionGone(Unauthenticated):
    reason = "CARD_SESSION_ENDED"


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
                 signing_ca_key_hash: str) -> None:
        self._store = store
        self._key = derive_key(hmac_secret, "kiosk-card-sessions")
        self._clock = clock
        self._identity = identity
        self._issuer = signing_ca_key_hash
        store.migrate(COMPONENT, MIGRATIONS)

    @classmethod
    def of(cls, store: Store, hmac_secret: bytes, clock: Clock, identity: IdentityService,
           keys: ServerKeys) -> CardSessions:
        """Card sessions for certificates of the server's signing CA."""
        return cls(store, hmac_secret, clock, identity, db.spki_hash(keys[db_role.SIGNING_CA].public_key_der))

    def _hash(self, session_id: str) -> str:
        return keyed_hash(self._key, session_id)

    def _card(self, certificate_der: bytes, org_id: str, now: datetime) -> db.CertRecord:
        try:
            cert = x509.Certificate.load(certificate_der)
            serial = cert.serial_number
            policies = {p["policy_identifier"].dotted for p in (cert.certificate_policies_value or [])}
        except (ValueError, TypeError, KeyError):
            raise CardRefused(CARD_REFUSED) from None
        rec = db.find(self._store, self._issuer, serial)
        if rec is None or rec.der != certificate_der or rec.origin != db.ORIGIN_ISSUED or rec.person_id is None \
                or rec.revoked or not rec.not_before <= now < rec.not_after or REMOTE_KEY_MARKER in policies:
            raise CardRefused(CARD_REFUSED)
        try:
            holder_org = self._identity.org_of(rec.person_id)
        except NotFound:
            raise CardRefused(CARD_REFUSED) from None
        if holder_org != org_id:
            raise CardRefused(CARD_REFUSED)
        return rec

    def open(self, station: Principal, certificate_der: bytes) -> Opened:
        _station(station)
        now = self._clock.now()
        rec = self._card(certificate_der, station.org_id, now)
        holder = str(rec.person_id)  # set: checked by _card
        person = self._identity.get_person(Principal(station.org_id, holder, Role.MEMBER), holder)
        if person.status is not Status.APPROVED:
            raise CardRefused(CARD_REFUSED)
        session_id = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        self._store.insert("kiosk_card_sessions", {
            "id_hash": self._hash(session_id), "org_id": station.org_id, "station": station.subject,
            "person_id": holder, "issuer_key_hash": rec.issuer_key_hash, "serial": db.serial_text(rec.serial),
            "created_at": to_text(now), "used_at": to_text(now), "ended_at": None})
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
