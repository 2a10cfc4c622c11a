"""RFC 5280 CRLs of the server's CAs, signed on the HSM, cached in the store and reissued on change.

A fetch returns the newest CRL unless a revocation was recorded since it was made or it is older
than ``refresh``; then a new one is signed with the next CRL number.  The check and the insert run
in one store transaction, so concurrent fetches (threads or server processes) never sign two CRLs
with the same number.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from asn1crypto import crl

from ..clock import Clock
from ..store import Store
from . import db
from . import x509build as xb
from .errors import CertificateNotFound
from .profiles import CERTIFICATION_AUTHORITIES
from .signer import HsmSigner

if TYPE_CHECKING:
    from datetime import datetime

    from ..keys import ServerKeys

log = logging.getLogger(__name__)

CRL_ISSUERS = {role.value: role for role in CERTIFICATION_AUTHORITIES}


def build_crl(signer: HsmSigner, issuer_cert_der: bytes, revoked: list[db.CertRecord], *, number: int,
              this_update: datetime, next_update: datetime) -> bytes:
    """A v2 CRL listing ``revoked`` (reason codes except ``unspecified``), AKI and CRL number."""
    from asn1crypto import x509

    issuer = x509.Certificate.load(issuer_cert_der)
    entries = []
    for rec in revoked:
        if rec.revoked_at is None:  # never leave a revoked certificate off the list: refuse to publish instead
            raise RuntimeError(f"certificate {rec.serial:x} is revoked without a revocation time")
        entry: dict[str, Any] = {"user_certificate": rec.serial, "revocation_date": xb.x509_time(rec.revoked_at)}
        if rec.revocation_reason and rec.revocation_reason != "unspecified":
            # RFC 5280 5.3.1: the reason code SHOULD be absent rather than "unspecified"
            entry["crl_entry_extensions"] = [{"extn_id": "crl_reason", "critical": False,
                                              "extn_value": rec.revocation_reason}]
        entries.append(entry)
    tbs_fields: dict[str, Any] = {
        "version": "v2",
        "signature": signer.signature_algorithm(),
        "issuer": issuer.subject,
        "this_update": xb.x509_time(this_update),
        "next_update": xb.x509_time(next_update),
        "crl_extensions": [
            {"extn_id": "authority_key_identifier", "critical": False,
             "extn_value": {"key_identifier": xb.key_identifier(issuer.public_key.dump())}},
            {"extn_id": "crl_number", "critical": False, "extn_value": number},
        ],
    }
    if entries:  # RFC 5280 5.1.2.6: absent, not empty, when nothing is revoked
        tbs_fields["revoked_certificates"] = entries
    tbs_der = crl.TbsCertList(tbs_fields).dump()
    signature = signer.sign(tbs_der)
    return bytes(crl.CertificateList({
        "tbs_cert_list": crl.TbsCertList.load(tbs_der),
        "signature_algorithm": signer.signature_algorithm(),
        "signature": signature,
    }).dump())


class CrlPublisher:
    """The current CRL of each server CA (signing-root, signing-ca, tls-root, tls-ca)."""

    def __init__(self, keys: ServerKeys, store: Store, clock: Clock, *, validity: timedelta = timedelta(days=1),
                 refresh: timedelta = timedelta(hours=1)) -> None:
        if not timedelta(0) < refresh <= validity:
            raise ValueError("the CRL refresh interval must be positive and not longer than its validity")
        self.keys = keys
        self.store = store
        self.clock = clock
        self.validity = validity
        self.refresh = refresh
        db.migrate(store)

    def current(self, ca: str) -> bytes:
        """DER of the up-to-date CRL of CA ``ca``; :class:`CertificateNotFound` for an unknown CA name."""
        role = CRL_ISSUERS.get(ca)
        if role is None:
            raise CertificateNotFound(f"no CRL for CA {ca!r}; the CAs are {', '.join(CRL_ISSUERS)}")
        key = self.keys[role]
        issuer_hash = db.spki_hash(key.public_key_der)
        with self.store.transaction():
            # read inside the write transaction: revocations record their time inside theirs too, so
            # a revocation committed after this CRL was made always carries a later time
            made_at = self.clock.now()
            now = xb.whole_second(made_at)
            latest = db.latest_crl(self.store, issuer_hash)
            changed = db.last_revocation_recorded(self.store, issuer_hash)
            if (latest is not None and made_at < latest.made_at + self.refresh
                    and (changed is None or changed < latest.made_at)):
                return latest.der
            number = latest.number + 1 if latest else 1
            der = build_crl(self.keys.signer(role), key.certificate_der, db.revoked_by(self.store, issuer_hash),
                            number=number, this_update=now, next_update=now + self.validity)
            db.insert_crl(self.store, issuer_hash, db.CrlRecord(number, made_at, now, now + self.validity, der))
        log.info("published CRL %d of the %s CA", number, ca)
        return der
