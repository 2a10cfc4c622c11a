"""The CA's tables: every certificate it issued or registered, revocations, and published CRLs.

Portable SQL through :class:`server.store.Store` only.  Serials are lowercase hex text; key and
issuer hashes are SHA-256 hex of the SubjectPublicKeyInfo DER.  ``key_hash`` is UNIQUE: a public
key is certified at most once, whatever the subject.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .. import audit  # the module, not its names: server.audit imports server.ca (its head signature check)
from ..clock import from_text, to_text
from ..store import IntegrityError, Sealed, Store
from .errors import KeyAlreadyCertified

COMPONENT = "ca"

ORIGIN_ISSUED = "issued"  # an end-entity certificate from a CSR
ORIGIN_SERVER = "server"  # the server's own CA, OCSP, TSA, seal and audit certificates
ORIGIN_EXTERNAL = "external"  # issued by another CA, registered after chain validation


def _v1(store: Store) -> None:
    store.execute("""
        CREATE TABLE ca_certificates (
            issuer_key_hash TEXT NOT NULL,
            serial TEXT NOT NULL,
            origin TEXT NOT NULL,
            subject TEXT NOT NULL,
            person_id TEXT,
            key_hash TEXT NOT NULL UNIQUE,
            cert_sha256 TEXT NOT NULL UNIQUE,
            not_before TEXT NOT NULL,
            not_after TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('good', 'revoked')),
            revocation_reason TEXT,
            revoked_at TEXT,
            revocation_recorded_at TEXT,
            der BLOB NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (issuer_key_hash, serial)
        )""")
    store.execute("CREATE INDEX ca_certificates_person ON ca_certificates (person_id)")
    store.execute("CREATE INDEX ca_certificates_status ON ca_certificates (issuer_key_hash, status)")
    store.execute("""
        CREATE TABLE ca_crls (
            issuer_key_hash TEXT NOT NULL,
            number INTEGER NOT NULL,
            made_at TEXT NOT NULL,
            this_update TEXT NOT NULL,
            next_update TEXT NOT NULL,
            der BLOB NOT NULL,
            PRIMARY KEY (issuer_key_hash, number)
        )""")


MIGRATIONS = [_v1]


def migrate(store: Store) -> int:
    """The CA's tables, and the audit log's beside them (issuing and revoking append leaves: :mod:`.authority`)."""
    audit.migrate(store)
    return store.migrate(COMPONENT, MIGRATIONS)


def spki_hash(spki_der: bytes) -> str:
    return hashlib.sha256(spki_der).hexdigest()


def serial_text(serial: int) -> str:
    return format(serial, "x")


@dataclass(frozen=True)
class CertRecord:
    issuer_key_hash: str
    serial: int
    origin: str
    subject: str
    person_id: str | None
    key_hash: str
    not_before: datetime
    not_after: datetime
    status: str
    revocation_reason: str | None
    revoked_at: datetime | None
    der: bytes

    @property
    def revoked(self) -> bool:
        return self.status == "revoked"


def _record(row: dict[str, Any]) -> CertRecord:
    return CertRecord(
        issuer_key_hash=row["issuer_key_hash"], serial=int(row["serial"], 16), origin=row["origin"],
        subject=row["subject"], person_id=row["person_id"], key_hash=row["key_hash"],
        not_before=from_text(row["not_before"]), not_after=from_text(row["not_after"]), status=row["status"],
        revocation_reason=row["revocation_reason"],
        revoked_at=from_text(row["revoked_at"]) if row["revoked_at"] else None, der=bytes(row["der"]),
    )


def key_is_certified(store: Store, key_hash: str) -> bool:
    return store.query_one("SELECT 1 AS x FROM ca_certificates WHERE key_hash = ?", (key_hash,)) is not None


def insert(store: Store, rec: CertRecord, *, now: datetime) -> None:
    try:
        store.insert("ca_certificates", {
            "issuer_key_hash": rec.issuer_key_hash, "serial": serial_text(rec.serial), "origin": rec.origin,
            "subject": Sealed(rec.subject), "person_id": rec.person_id, "key_hash": rec.key_hash,
            "cert_sha256": hashlib.sha256(rec.der).hexdigest(), "not_before": to_text(rec.not_before),
            "not_after": to_text(rec.not_after), "status": rec.status, "revocation_reason": None,
            "revoked_at": None, "revocation_recorded_at": None, "der": Sealed(rec.der), "created_at": to_text(now),
        })
    except IntegrityError as e:
        raise KeyAlreadyCertified(
            "this public key already has a certificate; generate a new key on the token and request again"
        ) from e


def find(store: Store, issuer_key_hash: str, serial: int) -> CertRecord | None:
    row = store.query_one("SELECT * FROM ca_certificates WHERE issuer_key_hash = ? AND serial = ?",
                          (issuer_key_hash, serial_text(serial)))
    return _record(row) if row else None


def find_by_key(store: Store, key_hash: str) -> CertRecord | None:
    row = store.query_one("SELECT * FROM ca_certificates WHERE key_hash = ?", (key_hash,))
    return _record(row) if row else None


@dataclass(frozen=True)
class RevocationState:
    """What OCSP says about a certificate, read without its DER; equal states give equal answers."""

    status: str
    reason: str | None
    revoked_at: datetime | None
    recorded_at: datetime | None  # when the revocation was written (CertificateAuthority.revoke)


def revocation_state(store: Store, issuer_key_hash: str, serial: int) -> RevocationState | None:
    row = store.query_one("SELECT status, revocation_reason, revoked_at, revocation_recorded_at FROM ca_certificates "
                          "WHERE issuer_key_hash = ? AND serial = ?", (issuer_key_hash, serial_text(serial)))
    if row is None:
        return None
    return RevocationState(row["status"], row["revocation_reason"],
                           from_text(row["revoked_at"]) if row["revoked_at"] else None,
                           from_text(row["revocation_recorded_at"]) if row["revocation_recorded_at"] else None)


def for_person(store: Store, person_id: str) -> list[CertRecord]:
    rows = store.query("SELECT * FROM ca_certificates WHERE person_id = ? ORDER BY created_at", (person_id,))
    return [_record(r) for r in rows]


def mark_revoked(store: Store, issuer_key_hash: str, serial: int, reason: str, at: datetime,
                 recorded_at: datetime) -> bool:
    """Revoke a good certificate; False when it was already revoked (or does not exist)."""
    return store.execute(
        "UPDATE ca_certificates SET status = 'revoked', revocation_reason = ?, revoked_at = ?, "
        "revocation_recorded_at = ? WHERE issuer_key_hash = ? AND serial = ? AND status = 'good'",
        (reason, to_text(at), to_text(recorded_at), issuer_key_hash, serial_text(serial)),
    ) == 1


def revoked_by(store: Store, issuer_key_hash: str) -> list[CertRecord]:
    rows = store.query("SELECT * FROM ca_certificates WHERE issuer_key_hash = ? AND status = 'revoked' "
                       "ORDER BY revoked_at, serial", (issuer_key_hash,))
    return [_record(r) for r in rows]


def last_revocation_recorded(store: Store, issuer_key_hash: str) -> datetime | None:
    row = store.query_one("SELECT MAX(revocation_recorded_at) AS t FROM ca_certificates "
                          "WHERE issuer_key_hash = ? AND status = 'revoked'", (issuer_key_hash,))
    return from_text(row["t"]) if row and row["t"] else None


@dataclass(frozen=True)
class CrlRecord:
    number: int
    made_at: datetime  # precise, compared with revocation_recorded_at; thisUpdate is whole seconds
    this_update: datetime
    next_update: datetime
    der: bytes


def latest_crl(store: Store, issuer_key_hash: str) -> CrlRecord | None:
    row = store.query_one("SELECT * FROM ca_crls WHERE issuer_key_hash = ? ORDER BY number DESC LIMIT 1",
                          (issuer_key_hash,))
    if row is None:
        return None
    return CrlRecord(int(row["number"]), from_text(row["made_at"]), from_text(row["this_update"]),
                     from_text(row["next_update"]), bytes(row["der"]))


def insert_crl(store: Store, issuer_key_hash: str, crl: CrlRecord) -> None:
    store.insert("ca_crls", {"issuer_key_hash": issuer_key_hash, "number": crl.number, "made_at": to_text(crl.made_at),
                             "this_update": to_text(crl.this_update), "next_update": to_text(crl.next_update),
                             "der": crl.der})
