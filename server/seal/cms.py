"""The platform's countersignature of the parties' detached CAdES signatures of a file other than PDF.

For each SignerInfo of a party's detached CMS signature, the seal key on the server token makes an RFC 5652
§11.4 countersignature: a SignerInfo whose signed attributes carry the message digest of the party's signature
value (no content-type attribute, as the RFC requires) and the signing time, itself given an RFC 3161
signature timestamp (unsigned attribute ``signature-time-stamp-token``) over its own signature value by the
server's TSA.  It is added as the ``countersignature`` unsigned attribute of the party's SignerInfo, and the seal
certificate and its chain join the SignedData's certificates: the party's signed bytes do not change, so
``openssl cms -verify`` still verifies the party's signature.  A TSA that fails raises
:class:`~.pdf.SealFailed`.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from datetime import datetime

from asn1crypto import cms, x509
from pyhanko.sign.timestamps import TimeStamper

from ..ca.signer import HsmSigner
from .pdf import SealFailed


def _attrs(si: cms.SignerInfo) -> list[cms.CMSAttribute]:
    unsigned = si["unsigned_attrs"]
    return list(unsigned) if unsigned.native is not None else []


async def _countersign(cms_der: bytes, seal: HsmSigner, certificates: Sequence[bytes], timestamper: TimeStamper,
                       now: datetime) -> bytes:
    info = cms.ContentInfo.load(cms_der)
    if info["content_type"].native != "signed_data":
        raise SealFailed("a party's signature is not CMS SignedData")
    sd = info["content"]
    seal_cert = x509.Certificate.load(certificates[0])
    for si in sd["signer_infos"]:
        signed_attrs = cms.CMSAttributes([
            cms.CMSAttribute({"type": "message_digest", "values": [seal.digest(si["signature"].native)]}),
            cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": now})]}),
        ])
        counter = cms.SignerInfo({
            "version": "v1",
            "sid": cms.SignerIdentifier({"issuer_and_serial_number": cms.IssuerAndSerialNumber(
                {"issuer": seal_cert.issuer, "serial_number": seal_cert.serial_number})}),
            "digest_algorithm": {"algorithm": seal.hash_name},
            "signed_attrs": signed_attrs,
            "signature_algorithm": seal.cms_signature_algorithm(),
            "signature": seal.sign(signed_attrs.dump()),
        })
        token = await timestamper.async_timestamp(hashlib.sha256(counter["signature"].native).digest(), "sha256")
        counter["unsigned_attrs"] = cms.CMSAttributes([
            cms.CMSAttribute({"type": "signature_time_stamp_token", "values": [token]})])
        si["unsigned_attrs"] = cms.CMSAttributes(
            [*_attrs(si), cms.CMSAttribute({"type": "counter_signature", "values": [counter]})])
    have = {c.chosen.dump() for c in sd["certificates"]} if sd["certificates"].native is not None else set()
    certs = list(sd["certificates"]) if sd["certificates"].native is not None else []
    for der in certificates:
        if der not in have:
            certs.append(cms.CertificateChoices({"certificate": x509.Certificate.load(der)}))
            have.add(der)
    sd["certificates"] = cms.CertificateSet(certs)
    return bytes(info.dump())


def countersign(cms_der: bytes, seal: HsmSigner, certificates: Sequence[bytes], timestamper: TimeStamper,
                now: datetime) -> bytes:
    """``cms_der`` with the platform's timestamped countersignature on every SignerInfo; ``certificates``: the
    seal certificate first, then its chain."""
    try:
        return asyncio.run(_countersign(cms_der, seal, certificates, timestamper, now))
    except SealFailed:
        raise
    except Exception as e:  # TSA, token, a malformed CMS: not sealed now
        raise SealFailed(f"the countersignature could not be made now ({type(e).__name__}); it is retried "
                         "later") from e
