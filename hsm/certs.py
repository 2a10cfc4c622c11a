"""X.509 certificates stored on a token next to their key (same CKA_ID)."""

from __future__ import annotations

import hashlib
from typing import Any

from asn1crypto import x509
from pkcs11 import Attribute, CertificateType, ObjectClass

from . import objects
from .errors import CertificateError
from .rv import STALE_OBJECT_ERRORS

# CKA_CERTIFICATE_CATEGORY values (PKCS#11 v2.40 4.6.2); python-pkcs11 packs the attribute only with
# hsm.compat.ATTRIBUTE_MAPPER, which every pooled session uses
CATEGORY_TOKEN_USER = 1
CATEGORY_AUTHORITY = 2


def parse(der: bytes) -> x509.Certificate:
    try:
        cert = x509.Certificate.load(der)
        _ = cert.subject, cert.public_key  # force parsing now
        return cert
    except (ValueError, TypeError) as e:
        raise CertificateError(f"not a DER X.509 certificate: {e}") from e


def _template(cert: x509.Certificate, der: bytes, key_id: bytes, label: str, category: int) -> dict[Any, Any]:
    return {
        Attribute.CLASS: ObjectClass.CERTIFICATE,
        Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
        Attribute.TOKEN: True,  # else it vanishes with the session
        Attribute.PRIVATE: False,
        Attribute.MODIFIABLE: False,
        Attribute.LABEL: label,
        Attribute.ID: key_id,
        Attribute.SUBJECT: cert.subject.dump(),
        Attribute.ISSUER: cert.issuer.dump(),
        Attribute.SERIAL_NUMBER: cert["tbs_certificate"]["serial_number"].dump(),
        Attribute.VALUE: der,
        Attribute.CERTIFICATE_CATEGORY: category,
    }


def find_certificate(session: Any, key_id: bytes) -> bytes | None:
    found = objects.find(session, {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key_id})
    return bytes(found[0][Attribute.VALUE]) if found else None


def holder_certificates(session: Any) -> list[tuple[bytes, bytes]]:
    """(CKA_ID, DER) of every certificate stored next to a public key of the same CKA_ID (a key pair's own
    certificate, not the CA certificates above it); certificates and public keys are public objects: no login."""
    out = []
    for cert in objects.find(session, {Attribute.CLASS: ObjectClass.CERTIFICATE}):
        key_id = bytes(cert[Attribute.ID])
        if key_id and objects.find(session, {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key_id}):
            out.append((key_id, bytes(cert[Attribute.VALUE])))
    return out


def import_certificate(
    session: Any, key_id: bytes, key_spki: bytes, label: str, der: bytes, chain: list[bytes]
) -> None:
    """Store the end-entity certificate (must match the key) and its CA chain."""
    cert = parse(der)
    if cert.public_key.dump() != key_spki:
        raise CertificateError(
            f"the certificate for {cert.subject.human_friendly!r} does not belong to key "
            f"{key_id.hex()} (public keys differ)"
        )
    for old in objects.find(session, {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key_id}):
        old.destroy()  # a renewed certificate replaces the previous one
    session.create_object(_template(cert, der, key_id, label, CATEGORY_TOKEN_USER))
    for ca_der in chain:
        ca = parse(ca_der)
        # CKA_ID of a CA certificate: SHA-1 of its public key, as RFC 5280's key identifier method 1 and
        # most token tools do; an identifier, not a security function
        ca_id = hashlib.sha1(ca.public_key.dump(), usedforsecurity=False).digest()
        existing = objects.find(session, {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: ca_id})
        if any(bytes(o[Attribute.VALUE]) == ca_der for o in existing):
            continue
        name = ca.subject.native.get("common_name") or ca.subject.human_friendly
        session.create_object(_template(ca, ca_der, ca_id, f"CA {name}"[:64], CATEGORY_AUTHORITY))


def read_chain(session: Any, leaf_der: bytes) -> list[bytes]:
    """CA certificates on the token that chain up from ``leaf_der``, leaf excluded."""
    by_subject: dict[bytes, bytes] = {}
    for obj in objects.find(session, {Attribute.CLASS: ObjectClass.CERTIFICATE}):
        try:
            value = bytes(obj[Attribute.VALUE])
        except STALE_OBJECT_ERRORS:
            continue  # deleted through another session or process while we read: in no chain now
        c = parse(value)
        if c.ca:
            by_subject[c.subject.dump()] = value
    chain: list[bytes] = []
    cur = parse(leaf_der)
    while not cur.self_issued and cur.issuer.dump() in by_subject and len(chain) < 8:
        nxt = by_subject[cur.issuer.dump()]
        chain.append(nxt)
        cur = parse(nxt)
    return chain
