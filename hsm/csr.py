"""PKCS#10 certification requests built with asn1crypto and signed on the token."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from asn1crypto import csr, keys, x509

from .keys import KeyAlgorithm

_SIG_ALGO = {True: "sha256_rsa", False: "sha256_ecdsa"}


def build(
    subject: dict[str, str],
    spki_der: bytes,
    algorithm: KeyAlgorithm,
    sign_sha256: Callable[[bytes], bytes],
    *,
    dns_names: Sequence[str] = (),
    emails: Sequence[str] = (),
    key_usage: Sequence[str] = ("digital_signature", "non_repudiation"),
) -> bytes:
    """DER PKCS#10 request; ``sign_sha256`` signs data (SHA-256) with the token key.

    ``subject`` uses asn1crypto names: common_name, serial_number, organization_name,
    country_name, email_address, ...
    """
    if not subject:
        raise ValueError("a certificate request needs a subject (at least common_name)")
    try:
        name = x509.Name.build(subject)
    except (ValueError, KeyError) as e:
        raise ValueError(f"invalid subject {sorted(subject)}: {e}") from e
    exts = [{"extn_id": "key_usage", "critical": True, "extn_value": x509.KeyUsage(set(key_usage))}]
    general = [x509.GeneralName("dns_name", d) for d in dns_names]
    general += [x509.GeneralName("rfc822_name", e) for e in emails]
    if general:
        exts.append({"extn_id": "subject_alt_name", "critical": False, "extn_value": general})
    info = csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": name,
            "subject_pk_info": keys.PublicKeyInfo.load(spki_der),
            "attributes": [{"type": "extension_request", "values": [exts]}],
        }
    )
    signature = sign_sha256(info.dump())
    req = csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": {"algorithm": _SIG_ALGO[algorithm.is_rsa]},
            "signature": signature,
        }
    )
    der: bytes = req.dump()
    return der

