"""Single-purpose links for recipients: a random token, bound to one envelope and one recipient, expiring.

The token (32 random bytes, URL-safe base64) is a bearer credential: the store keeps only a keyed hash of it
(HMAC-SHA256 under a key derived from the server's HMAC secret), so neither the database nor its backups can be
turned into links.  The token travels in the "your turn" notice (whose body and parameters are sealed at rest).
A link lets its holder act as that recipient on that envelope only, through the portal's pages; every other
envelope, and every other recipient's link, is "not found".
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..clock import Clock, from_text, to_text
from ..errors import NotFound
from ..sealing import derive_key, keyed_hash
from ..store import Store

COMPONENT = "portal"
DEFAULT_TTL = timedelta(days=14)


def _v1(store: Store) -> None:
    store.execute(
        "CREATE TABLE portal_links ("
        " token_hash TEXT PRIMARY KEY,"
        " envelope_id TEXT NOT NULL,"
        " recipient_id TEXT NOT NULL,"
        " person_id TEXT NOT NULL,"
        " org_id TEXT NOT NULL,"  # the recipient's organisation: the principal the link acts as
        " created_at TEXT NOT NULL,"
        " expires_at TEXT NOT NULL)")


MIGRATIONS = [_v1]


class LinkNotFound(NotFound):
    """Unknown, expired or malformed: said the same way, so a probe learns nothing."""

    reason = "PORTAL_LINK_NOT_FOUND"


@dataclass(frozen=True)
class Link:
    envelope_id: str
    recipient_id: str
    person_id: str
    org_id: str
    expires_at: datetime


class PortalLinks:
    def __init__(self, store: Store, hmac_secret: bytes, clock: Clock, *, ttl: timedelta = DEFAULT_TTL) -> None:
        self._store = store
        self._key = derive_key(hmac_secret, "portal-links")
        self._clock = clock
        self.ttl = ttl
        store.migrate(COMPONENT, MIGRATIONS)

    def _hash(self, token: str) -> str:
        return keyed_hash(self._key, token)

    def issue(self, envelope_id: str, recipient_id: str, person_id: str, org_id: str) -> str:
        """A new token for the recipient (inside the caller's transaction: it exists once the notice does)."""
        token = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        now = self._clock.now()
        self._store.insert("portal_links", {
            "token_hash": self._hash(token), "envelope_id": envelope_id, "recipient_id": recipient_id,
            "person_id": person_id, "org_id": org_id, "created_at": to_text(now),
            "expires_at": to_text(now + self.ttl)})
        return token

    def resolve(self, token: str) -> Link:
        if not 30 <= len(token) <= 64 or not all(c.isalnum() or c in "-_" for c in token):
            raise LinkNotFound("this link is not valid (unknown or expired)")
        row = self._store.query_one("SELECT * FROM portal_links WHERE token_hash = ?", (self._hash(token),))
        if row is None or from_text(row["expires_at"]) <= self._clock.now():
            raise LinkNotFound("this link is not valid (unknown or expired)")
        return Link(row["envelope_id"], row["recipient_id"], row["person_id"], row["org_id"],
                    from_text(row["expires_at"]))
