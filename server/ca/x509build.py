"""X.509 building blocks: ordered names, RFC 5280 times, serials, extensions, and HSM-signed assembly.

Certificates are built as a TBSCertificate with asn1crypto, the DER is signed on the HSM
(:class:`HsmSigner`), and the three parts are assembled; nothing here holds a private key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asn1crypto import core, keys, x509

from .errors import InvalidRequest
from .signer import HsmSigner

# What asn1crypto raises reading a damaged structure (it parses lazily, so a late field read fails): ValueError
# (bad tags, times, lengths), TypeError, LookupError (KeyError, IndexError: an empty BIT STRING),
# AttributeError (a value read as a type without ``native``, e.g. [9] as a REAL).
ASN1_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, LookupError, AttributeError)

Rng = Callable[[int], bytes]

DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"  # id-kp-documentSigning, RFC 9336
_PRINTABLE = re.compile(r"^[A-Za-z0-9 '()+,\-./:=?]*$")
_UTF8_ATTRS = {"common_name": 64, "organization_name": 64, "organizational_unit_name": 64, "pseudonym": 128,
               "given_name": 64, "surname": 64, "locality_name": 128, "state_or_province_name": 128}
_PRINTABLE_ATTRS = {"country_name": 2, "serial_number": 64, "organization_identifier": 64}


@dataclass(frozen=True)
class PkiUrls:
    """Where relying parties fetch what the certificates point to (the HTTP listener's public base URL)."""

    base: str

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[^\s/]+(/[^\s]*)?$", self.base) or self.base.endswith("/"):
            raise ValueError(f"the PKI base URL must be http(s)://host[:port][/path] without a trailing /: "
                             f"{self.base!r}")

    @property
    def ocsp(self) -> str:
        return f"{self.base}/ocsp"

    @property
    def tsa(self) -> str:
        return f"{self.base}/tsa"

    def crl(self, ca: str) -> str:
        return f"{self.base}/crl/{ca}.crl"

    def ca_certificate(self, name: str) -> str:
        return f"{self.base}/ca/{name}.crt"


def build_name(attributes: Sequence[tuple[str, str]]) -> x509.Name:
    """A distinguished name with the attributes in the given order, one per RDN, length-checked."""
    rdns = []
    for attr, value in attributes:
        if not value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value) or value != value.strip():
            raise InvalidRequest(f"the {attr.replace('_', ' ')} of a certificate subject must be non-empty text "
                                 "without control characters or surrounding spaces")
        if attr in _PRINTABLE_ATTRS:
            if len(value) > _PRINTABLE_ATTRS[attr] or not _PRINTABLE.match(value):
                raise InvalidRequest(f"the {attr.replace('_', ' ')} {value!r} must be at most "
                                     f"{_PRINTABLE_ATTRS[attr]} letters, digits or - . : / ( ) characters")
            if attr == "country_name" and not re.match(r"^[A-Z]{2}$", value):
                raise InvalidRequest(f"country {value!r} must be an ISO 3166 two-letter code such as CN or DE")
            encoded = x509.DirectoryString(name="printable_string", value=core.PrintableString(value))
        elif attr in _UTF8_ATTRS:
            if len(value) > _UTF8_ATTRS[attr]:
                raise InvalidRequest(f"the {attr.replace('_', ' ')} is longer than {_UTF8_ATTRS[attr]} characters")
            encoded = x509.DirectoryString(name="utf8_string", value=core.UTF8String(value))
        else:
            raise InvalidRequest(f"subject attribute {attr!r} is not supported")
        rdns.append(x509.RelativeDistinguishedName([x509.NameTypeAndValue({"type": attr, "value": encoded})]))
    return x509.Name(name="", value=x509.RDNSequence(rdns))


def x509_time(when: datetime) -> x509.Time:
    """UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5); whole seconds, UTC."""
    when = when.astimezone(UTC).replace(microsecond=0)
    return x509.Time(name="utc_time" if when.year < 2050 else "general_time", value=when)


def whole_second(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(microsecond=0)


def random_serial(rng: Rng = os.urandom) -> int:
    """A positive 16-byte serial (126 random bits; the top bits fixed so the DER stays 16 bytes)."""
    raw = bytearray(rng(16))
    raw[0] = (raw[0] & 0x3F) | 0x40
    return int.from_bytes(raw, "big")


def key_identifier(spki_der: bytes) -> bytes:
    """RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING."""
    return bytes(keys.PublicKeyInfo.load(spki_der).sha1)


def ext(extn_id: str, value: Any, critical: bool = False) -> dict[str, Any]:
    return {"extn_id": extn_id, "critical": critical, "extn_value": value}


def basic_constraints(ca: bool, path_len: int | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"ca": ca}
    if ca and path_len is not None:
        value["path_len_constraint"] = path_len
    return ext("basic_constraints", value, critical=True)


def key_usage(*usages: str) -> dict[str, Any]:
    return ext("key_usage", x509.KeyUsage(set(usages)), critical=True)


def extended_key_usage(*purposes: str, critical: bool = False) -> dict[str, Any]:
    return ext("extended_key_usage", list(purposes), critical=critical)


def subject_key_id(spki_der: bytes) -> dict[str, Any]:
    return ext("key_identifier", key_identifier(spki_der))


def authority_key_id(issuer_spki_der: bytes) -> dict[str, Any]:
    return ext("authority_key_identifier", {"key_identifier": key_identifier(issuer_spki_der)})


def crl_distribution_point(url: str) -> dict[str, Any]:
    return ext("crl_distribution_points", [
        {"distribution_point": x509.DistributionPointName(name="full_name", value=[
            x509.GeneralName(name="uniform_resource_identifier", value=url)])}
    ])


def authority_info_access(*, ocsp: str | None, ca_issuers: str | None) -> dict[str, Any]:
    descs = []
    if ocsp:
        descs.append({"access_method": "ocsp",
                      "access_location": x509.GeneralName(name="uniform_resource_identifier", value=ocsp)})
    if ca_issuers:
        descs.append({"access_method": "ca_issuers",
                      "access_location": x509.GeneralName(name="uniform_resource_identifier", value=ca_issuers)})
    return ext("authority_information_access", descs)


def email_san(emails: Sequence[str]) -> dict[str, Any]:
    for e in emails:
        if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", e) or not e.isascii():
            raise InvalidRequest(f"{e!r} is not an e-mail address usable in a certificate (ASCII only)")
    return ext("subject_alt_name", [x509.GeneralName(name="rfc822_name", value=e) for e in emails])


def certificate_policies(*policy_oids: str) -> dict[str, Any]:
    return ext("certificate_policies", [{"policy_identifier": oid} for oid in policy_oids])


def ocsp_no_check() -> dict[str, Any]:
    return ext("ocsp_no_check", core.Null())


def sign_certificate(
    signer: HsmSigner,
    *,
    serial: int,
    issuer: x509.Name,
    subject: x509.Name,
    subject_spki_der: bytes,
    not_before: datetime,
    not_after: datetime,
    extensions: Sequence[dict[str, Any]],
) -> bytes:
    """Build the TBSCertificate, sign its DER on the HSM, return the certificate DER."""
    if not_after <= not_before:
        raise InvalidRequest("a certificate must end after it starts")
    tbs = x509.TbsCertificate({
        "version": "v3",
        "serial_number": serial,
        "signature": signer.signature_algorithm(),
        "issuer": issuer,
        "validity": {"not_before": x509_time(not_before), "not_after": x509_time(not_after)},
        "subject": subject,
        "subject_public_key_info": keys.PublicKeyInfo.load(subject_spki_der),
        "extensions": list(extensions),
    })
    tbs_der = tbs.dump()
    signature = signer.sign(tbs_der)
    cert = x509.Certificate({
        "tbs_certificate": x509.TbsCertificate.load(tbs_der),
        "signature_algorithm": signer.signature_algorithm(),
        "signature_value": signature,
    })
    return bytes(cert.dump())
