"""The server's key set on its own token: two hierarchies (signing root -> signing CA; TLS root -> TLS CA),
the OCSP responder, TSA, platform seal, audit-log key and the archive key-encryption key, with certificates
for the signing keys.

:func:`init_server_keys` is idempotent: it creates only what is missing, never replaces a key or a
certificate, and reports what it created and what already existed (a second run after a crash
finishes the job).  Every key is generated on the token with explicit non-extractable attributes
(hsm does that); certificates are built here, signed on the token and kept in the CA tables of
the store (found by the key's SPKI hash), so loading the key set needs both token and store.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from asn1crypto import x509

from hsm.errors import KeyExists, KeyNotFound

from .ca import db
from .ca import x509build as xb
from .ca.errors import ServerKeysMissing
from .ca.profiles import COMMON_NAMES, ISSUER, ROOTS, PolicySet, Role, server_extensions
from .ca.signer import HsmSigner
from .clock import Clock
from .store import Store

if TYPE_CHECKING:
    from hsm import KeyInfo, Token

log = logging.getLogger(__name__)

LABEL_PREFIX = "signet-"
ARCHIVE_KEK_LABEL = "signet-archive-kek"
# issuers before the keys they certify
ORDER = (Role.SIGNING_ROOT, Role.SIGNING_CA, Role.TLS_ROOT, Role.TLS_CA, Role.OCSP, Role.TSA, Role.SEAL, Role.AUDIT)
_ALGORITHMS = {
    "rsa": dict.fromkeys(ORDER, "rsa-3072"),
    "ec": {role: ("p384" if role in (Role.SIGNING_ROOT, Role.SIGNING_CA, Role.TLS_ROOT, Role.TLS_CA) else "p256")
           for role in ORDER},
}
# key labels of the single-hierarchy layout before the split (one CA certified token keys and TLS keys)
OLD_LAYOUT_LABELS = ("signet-root", "signet-issuing")
REINIT_HINT = (
    "this server token and state were made by an earlier Signet whose one CA certified both token signing keys "
    "and software TLS keys; that hierarchy cannot be trusted for signatures. Re-initialise: stop signet-server, "
    "move the state directory away, delete and re-create the server token (softhsm2-util --delete-token --token "
    "LABEL, then --init-token), run `signet-server init`, and enroll every signer again"
)


def label_for(role: Role) -> str:
    return LABEL_PREFIX + role.value


@dataclass(frozen=True)
class KeySetPolicy:
    """Algorithms and lifetimes of the server's keys (``family`` "rsa": RSA-3072; "ec": P-384 CAs, P-256 others)."""

    family: str = "rsa"
    root_validity: timedelta = timedelta(days=20 * 365)
    issuing_validity: timedelta = timedelta(days=10 * 365)
    service_validity: timedelta = timedelta(days=3 * 365)
    country: str | None = None
    policies: PolicySet = field(default_factory=PolicySet)

    def __post_init__(self) -> None:
        if self.family not in _ALGORITHMS:
            raise ValueError(f"key family {self.family!r} is not one of {sorted(_ALGORITHMS)}")

    def validity(self, role: Role) -> timedelta:
        if role in ROOTS:
            return self.root_validity
        return self.issuing_validity if role in (Role.SIGNING_CA, Role.TLS_CA) else self.service_validity


@dataclass(frozen=True)
class ServerKey:
    role: Role
    label: str
    key_id: str
    public_key_der: bytes
    certificate_der: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.Certificate.load(self.certificate_der)


@dataclass(frozen=True)
class ServerKeys:
    """The loaded key set; signing goes through the (logged-in) token."""

    token: Token = field(repr=False)
    keys: dict[Role, ServerKey]
    archive_kek_label: str = ARCHIVE_KEK_LABEL

    def __getitem__(self, role: Role) -> ServerKey:
        return self.keys[role]

    def signer(self, role: Role) -> HsmSigner:
        key = self.keys[role]
        return HsmSigner(self.token, key.key_id, key.public_key_der)

    def certificate_der(self, role: Role) -> bytes:
        return self.keys[role].certificate_der

    def chain_der(self, role: Role) -> tuple[bytes, ...]:
        """The certificates above ``role``'s own, up to and including its root."""
        out: list[bytes] = []
        cur = role
        while ISSUER[cur] is not cur:
            cur = ISSUER[cur]
            out.append(self.keys[cur].certificate_der)
        return tuple(out)


@dataclass(frozen=True)
class InitReport:
    """Labels of what ``init_server_keys`` created and of what it found already there (and left alone)."""

    created: tuple[str, ...]
    existing: tuple[str, ...]


def _find(token: Token, label: str) -> KeyInfo | None:
    try:
        return token.key(label=label)
    except KeyNotFound:
        return None


def _subject(role: Role, org: str, country: str | None) -> x509.Name:
    cn = f"{org[: 63 - len(COMMON_NAMES[role])]} {COMMON_NAMES[role]}"
    attrs = [("country_name", country)] if country else []
    return xb.build_name([*attrs, ("organization_name", org), ("common_name", cn)])


def refuse_old_layout(token: Token) -> None:
    """:class:`ServerKeysMissing` with re-initialisation advice when the token holds the old single CA."""
    for label in OLD_LAYOUT_LABELS:
        if _find(token, label) is not None:
            raise ServerKeysMissing(REINIT_HINT.replace("LABEL", token.label or "signet-server"))


def init_server_keys(
    token: Token,
    store: Store,
    subject_org: str,
    clock: Clock,
    *,
    urls: xb.PkiUrls,
    policy: KeySetPolicy | None = None,
    rng: xb.Rng = os.urandom,
) -> InitReport:
    """Create the missing server keys and certificates on ``token`` (logged in); record the certificates."""
    policy = policy or KeySetPolicy()
    refuse_old_layout(token)
    db.migrate(store)
    now = xb.whole_second(clock.now())
    created: list[str] = []
    existing: list[str] = []
    done: dict[Role, tuple[KeyInfo, bytes]] = {}
    for role in ORDER:
        label = label_for(role)
        info = _find(token, label)
        if info is None:
            info = token.generate_key(_ALGORITHMS[policy.family][role], label)
            created.append(label)
            log.info("generated server key %s (%s) id %s", label, info.algorithm.name, info.key_id)
        else:
            existing.append(label)
        rec = db.find_by_key(store, db.spki_hash(info.public_key_der))
        cert_der = rec.der if rec else None
        if cert_der is None:
            issuer_info, issuer_cert = done.get(ISSUER[role], (info, b""))
            issuer_name = (x509.Certificate.load(issuer_cert).subject if issuer_cert
                           else _subject(role, subject_org, policy.country))
            not_after = now + policy.validity(role)
            if issuer_cert:
                not_after = min(not_after, x509.Certificate.load(issuer_cert).not_valid_after)
            cert_der = xb.sign_certificate(
                HsmSigner(token, issuer_info.key_id, issuer_info.public_key_der),
                serial=xb.random_serial(rng), issuer=issuer_name,
                subject=_subject(role, subject_org, policy.country), subject_spki_der=info.public_key_der,
                not_before=now, not_after=not_after,
                extensions=server_extensions(role, info.public_key_der, issuer_info.public_key_der, urls,
                                             policy.policies),
            )
            created.append(f"{label} certificate")
            log.info("issued the certificate of server key %s", label)
        done[role] = (info, cert_der)
        _record(store, role, cert_der, done, now)
    try:
        token.generate_kek(ARCHIVE_KEK_LABEL)
        created.append(ARCHIVE_KEK_LABEL)
    except KeyExists:
        existing.append(ARCHIVE_KEK_LABEL)
    return InitReport(tuple(created), tuple(existing))


def _record(store: Store, role: Role, cert_der: bytes, done: dict[Role, tuple[KeyInfo, bytes]],
            now: datetime) -> None:
    """Enter a server certificate in the CA tables (so OCSP knows it and no CSR can reuse its key)."""
    cert = x509.Certificate.load(cert_der)
    key_hash = db.spki_hash(cert.public_key.dump())
    if db.find_by_key(store, key_hash) is not None:
        return
    issuer_spki = done[ISSUER[role]][0].public_key_der
    db.insert(store, db.CertRecord(
        issuer_key_hash=db.spki_hash(issuer_spki), serial=cert.serial_number, origin=db.ORIGIN_SERVER,
        subject=cert.subject.human_friendly, person_id=None, key_hash=key_hash,
        not_before=cert.not_valid_before, not_after=cert.not_valid_after, status="good",
        revocation_reason=None, revoked_at=None, der=cert_der,
    ), now=now)


def load_server_keys(token: Token, store: Store) -> ServerKeys:
    """The key set (keys on the token, certificates in the store); :class:`ServerKeysMissing` names what
    `signet-server init` must create."""
    refuse_old_layout(token)
    db.migrate(store)
    found: dict[Role, ServerKey] = {}
    missing: list[str] = []
    for role in ORDER:
        info = _find(token, label_for(role))
        rec = db.find_by_key(store, db.spki_hash(info.public_key_der)) if info else None
        if info is None or rec is None:
            missing.append(label_for(role) + ("" if info is None else " certificate"))
            continue
        found[role] = ServerKey(role, info.label, info.key_id, info.public_key_der, rec.der)
    if missing:
        raise ServerKeysMissing("the server token lacks " + ", ".join(missing) + "; run `signet-server init`")
    return ServerKeys(token, found)
