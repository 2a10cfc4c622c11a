"""Remote-signing keys: a signing key held for a person on the server token, for people without a token of their own.

An operator of the person's organisation creates it (``signet-admin remote-key create`` or the CreateRemoteKey
RPC), with evidence, under the four-eyes rule of approval (the operator who registered the person may not).  The
key is generated on the server token by hsm with explicit attributes (private, sensitive, never extractable, sign
only); its certificate comes from the signing CA and names the person's verified identity exactly as a token
certificate does (:meth:`server.enrollment.Enrollment.subject_identity`), with the remote-signing policy
``[ca] remote_policy_oid`` and :data:`formats.policy.REMOTE_KEY_MARKER` instead of the token signing policy.  With
the key the person may get a TLS client certificate (role ``agent``, subject = person id) for the API: the
operator sends a PKCS#10 request for a key they made (signet-admin makes it and writes the files to ``--out``), so
the server never holds the person's TLS key.  It also gets a client secret for the Cloud Signature Consortium API
(:mod:`server.csc`: HTTP Basic ``person id : secret``), shown once and kept only as a keyed hash.  Creation is
recorded in the person's evidence chain.

The server signs with the key only for an envelope activation (:mod:`server.envelopes.remote`): a one-time code
sent to the person's phone, bound to one document hash, spent once.  A person has at most one usable remote key; a
new one replaces a key whose certificate was revoked or has expired (the old key is deleted from the token).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from asn1crypto import x509

from formats import TokenSigner
from formats.policy import REMOTE_KEY_MARKER

from .ca import CertificateAuthority, db
from .ca import Role as KeyRole
from .ca.authority import IssuedCertificate
from .ca.csr import check_csr
from .ca.errors import InvalidRequest
from .clock import Clock, to_text
from .enrollment import Enrollment
from .errors import AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied
from .identity import IdentityService, Principal, Role
from .identity import evidence as chain
from .identity.principal import require_operator
from .keys import ServerKeys
from .sealing import derive_key
from .store import Store
from .tls import Caller, issue_client_certificate

if TYPE_CHECKING:
    from hsm import Token

log = logging.getLogger(__name__)

LABEL_PREFIX = "signet-remote-"
ALGORITHM = "p256"
MAX_EVIDENCE = 1000


def _v1(store: Store) -> None:
    store.execute("CREATE TABLE remote_keys (person_id TEXT PRIMARY KEY, org_id TEXT NOT NULL, key_id TEXT NOT NULL,"
                  " label TEXT NOT NULL, certificate_serial TEXT NOT NULL, tls_serial TEXT NOT NULL,"
                  " created_at TEXT NOT NULL, created_by TEXT NOT NULL, csc_secret_hash TEXT NOT NULL)")


MIGRATIONS = [_v1]


@dataclass(frozen=True)
class RemoteKey:
    person_id: str
    org_id: str
    key_id: str
    label: str
    certificate_serial: str  # lowercase hex, as db.serial_text
    tls_serial: str  # "" when no TLS client certificate was issued with it
    created_by: str


@dataclass(frozen=True)
class CreatedRemoteKey:
    key: RemoteKey
    certificate: IssuedCertificate
    record: db.CertRecord
    tls_certificate_der: bytes | None
    tls_chain_der: tuple[bytes, ...]  # TLS CA, TLS root
    csc_client_secret: str = field(repr=False, default="")  # for the CSC API's auth/login; shown once


class RemoteKeys:
    """The remote keys of people; signing with them goes through :meth:`signer` (the server token's sessions)."""

    def __init__(self, token: Token, identity: IdentityService, enrollment: Enrollment, ca: CertificateAuthority, *,
                 policy_oid: str, secret_key: bytes, client_validity: timedelta = timedelta(days=365)) -> None:
        """``ca``: the signing CA on the server keys of ``token``; its store and clock are this one's."""
        self._token = token
        self._identity = identity
        self._enrollment = enrollment
        self._ca = ca
        self._keys: ServerKeys = ca.keys
        self._store: Store = ca.store
        self._clock: Clock = ca.clock
        store = ca.store
        self._policies = (policy_oid, REMOTE_KEY_MARKER)
        self._client_validity = client_validity
        self._secret_key = derive_key(secret_key, "csc/client-secret")
        store.migrate("remote_keys", MIGRATIONS)

    def get(self, person_id: str) -> RemoteKey | None:
        row = self._store.query_one("SELECT * FROM remote_keys WHERE person_id = ?", (person_id,))
        if row is None:
            return None
        return RemoteKey(row["person_id"], row["org_id"], row["key_id"], row["label"], row["certificate_serial"],
                         row["tls_serial"], row["created_by"])

    def _record(self, key: RemoteKey) -> db.CertRecord | None:
        return db.find(self._store, self._ca.issuer_key_hash, int(key.certificate_serial, 16))

    def _usable(self, rec: db.CertRecord | None) -> bool:
        return rec is not None and not rec.revoked and self._clock.now() < rec.not_after

    def create(self, operator: Principal, person_id: str, evidence: str, tls_csr_der: bytes = b"") -> CreatedRemoteKey:
        """Generate the person's remote key on the server token and certify it (and, with ``tls_csr_der``, their API
        client key); recorded in the person's evidence chain."""
        require_operator(operator, "create remote-signing keys")
        self._identity.get_person(operator, person_id)  # NotFound across organisations
        why = " ".join(evidence.split())
        if not 0 < len(why) <= MAX_EVIDENCE:
            raise InvalidArgument(f"say what the remote key is based on (evidence text, 1 to {MAX_EVIDENCE} "
                                  "characters)", reason="EVIDENCE_REQUIRED")
        by = f"{operator.role.value}:{operator.subject}"
        if self._identity.four_eyes and self._identity.registered_by(operator, person_id) == by:
            raise PermissionDenied("four eyes: the operator who registered this person may not also create their "
                                   "remote-signing key; another operator of the organisation must", reason="FOUR_EYES")
        subject = self._enrollment.subject_identity(person_id)  # approved, phone verified, else FAILED_PRECONDITION
        previous = self.get(person_id)
        if previous is not None and self._usable(self._record(previous)):
            raise AlreadyExists(f"person {person_id} has a remote-signing key already (certificate "
                                f"{previous.certificate_serial}); revoke it first to replace it",
                                reason="REMOTE_KEY_EXISTS")
        if tls_csr_der:
            try:
                check_csr(tls_csr_der)
            except InvalidRequest as e:
                raise InvalidArgument(f"the TLS client request: {e}", reason="TLS_CSR_INVALID") from None
        info = self._token.generate_key(ALGORITHM, f"{LABEL_PREFIX}{person_id}-{secrets.token_hex(4)}")
        issued: IssuedCertificate | None = None
        tls_der: bytes | None = None
        try:
            csr = self._token.create_csr(info.key_id, {"common_name": subject.legal_name})
            issued = self._ca.issue(csr, subject, person_id, policy_oids=self._policies)
            if tls_csr_der:
                tls_der = issue_client_certificate(self._keys, self._store, self._clock, self._ca.urls, tls_csr_der,
                                                   Caller(operator.org_id, Role.AGENT, person_id),
                                                   validity=self._client_validity)
            csc_secret = secrets.token_urlsafe(32)
            tls_serial = db.serial_text(x509.Certificate.load(tls_der).serial_number) if tls_der else ""
            key = RemoteKey(person_id, operator.org_id, info.key_id, info.label, issued.serial_hex, tls_serial, by)
            now = self._clock.now()
            with self._store.transaction():
                if self.get(person_id) != previous:  # another operator's creation got in meanwhile
                    raise AlreadyExists(f"person {person_id} got a remote-signing key meanwhile",
                                        reason="REMOTE_KEY_EXISTS")
                self._store.execute("DELETE FROM remote_keys WHERE person_id = ?", (person_id,))
                self._store.insert("remote_keys", {
                    "person_id": person_id, "org_id": operator.org_id, "key_id": key.key_id, "label": key.label,
                    "certificate_serial": key.certificate_serial, "tls_serial": tls_serial,
                    "created_at": to_text(now), "created_by": by, "csc_secret_hash": self._hash(csc_secret)})
                chain.append(self._store, person_id=person_id, org_id=operator.org_id, kind="remote_key_created",
                             at=now, actor=by, provider="ca", reference=issued.serial_hex,
                             detail={"serial": issued.serial_hex, "key_id": key.key_id, "algorithm": ALGORITHM,
                                     "key_sha256": db.spki_hash(info.public_key_der), "tls_serial": tls_serial,
                                     "evidence": why, **({"via": operator.via} if operator.via else {})})
        except BaseException:
            self._token.delete_key(info.key_id)  # nothing refers to it unless the transaction committed
            for serial in ([issued.serial] if issued else []) + \
                    ([x509.Certificate.load(tls_der).serial_number] if tls_der else []):
                self._ca.revoke(serial, "cessation_of_operation")  # no good certificate for a key that is gone
            raise
        if previous is not None:
            self._token.delete_key(previous.key_id)
        log.info("remote-signing key %s created for person %s (certificate %s) by %s", key.key_id, person_id,
                 issued.serial_hex, by)
        rec = self._record(key)
        if rec is None:  # recorded by the CA a moment ago
            raise FailedPrecondition("the remote key's certificate is not recorded", reason="REMOTE_KEY_MISSING")
        tls_chain = (self._keys.certificate_der(KeyRole.TLS_CA), self._keys.certificate_der(KeyRole.TLS_ROOT))
        return CreatedRemoteKey(key, issued, rec, tls_der, tls_chain if tls_der else (), csc_secret)

    def _hash(self, secret: str) -> str:
        return hmac.new(self._secret_key, secret.encode(), "sha256").hexdigest()

    def client(self, person_id: str, secret: str) -> RemoteKey | None:
        """The remote key of ``person_id`` when ``secret`` is their CSC client secret (constant-time compare)."""
        row = self._store.query_one("SELECT csc_secret_hash FROM remote_keys WHERE person_id = ?", (person_id,))
        if row is None or not hmac.compare_digest(row["csc_secret_hash"], self._hash(secret)):
            return None
        return self.get(person_id)

    def signer(self, person_id: str) -> TokenSigner:
        """A pyHanko signer for the person's remote key (FAILED_PRECONDITION ``REMOTE_KEY_MISSING`` without one,
        ``REMOTE_KEY_REVOKED`` / ``REMOTE_KEY_EXPIRED`` when its certificate may not sign)."""
        key = self.get(person_id)
        if key is None:
            raise FailedPrecondition("this person has no remote-signing key: an operator of their organisation "
                                     "creates one (signet-admin remote-key create)", reason="REMOTE_KEY_MISSING")
        rec = self._record(key)
        if rec is None:
            raise FailedPrecondition("the remote key's certificate is not recorded", reason="REMOTE_KEY_MISSING")
        if rec.revoked:
            raise FailedPrecondition(f"the remote key's certificate {key.certificate_serial} is revoked",
                                     reason="REMOTE_KEY_REVOKED")
        if self._clock.now() >= rec.not_after:
            raise FailedPrecondition(f"the remote key's certificate {key.certificate_serial} has expired",
                                     reason="REMOTE_KEY_EXPIRED")
        return TokenSigner(self._token, key.key_id, certificate=rec.der, chain=self._ca.chain)
