"""CAdES detached signatures (``.p7s``) over any file: CAdES-BES, or CAdES-T with an RFC 3161 timestamp.

The content is hashed in chunks from a stream, never read whole.  The output is DER CMS SignedData with
signed attributes content-type, message-digest, signing-time, signing-certificate-v2 and CMS algorithm
protection; ``openssl cms -verify -binary -inform DER -content FILE`` accepts it.

Verification applies the same rules as for PDF signatures (:mod:`formats.verdict`): revocation of every
certificate of the signer's and the timestamp's paths, and the Signet signing-policy rule.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from asn1crypto import cms, x509
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import async_validate_detached_cms

from . import verdict
from .errors import InvalidDocument
from .failures import PARSE_ERRORS, VALIDATION_ERRORS, describe, signing_errors
from .report import VerificationReport
from .signer import TokenSigner
from .validation import SIGNER_KEY_USAGE, Evidence, Settings, cms_evidence, session

Data = BinaryIO | str | os.PathLike[str]
_CHUNK = 1 << 20


@contextmanager
def _stream(data: Data, what: str) -> Iterator[BinaryIO]:
    if isinstance(data, str | os.PathLike):
        try:
            f = open(data, "rb")
        except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
            raise InvalidDocument(f"{what} cannot be read ({type(e).__name__})") from None
        try:
            yield f
        finally:
            f.close()
    else:
        yield data


async def async_sign_detached(
    data: Data, signer: TokenSigner, *, timestamp_url: str | None = None,
    signing_time: dt.datetime | None = None, timestamp_timeout: float = 10.0,
) -> bytes:
    """Coroutine form of :func:`sign_detached`."""
    timestamper = HTTPTimeStamper(timestamp_url, timeout=timestamp_timeout) if timestamp_url else None
    attrs = PdfCMSSignedAttributes(signing_time=signing_time or dt.datetime.now(dt.UTC))
    with _stream(data, "the file to sign") as f:
        with signing_errors(timestamp_url, signer):
            ci = await signer.async_sign_general_data(
                f, signer.digest_algorithm, detached=True, use_cades=True, timestamper=timestamper,
                chunk_size=_CHUNK, signed_attr_settings=attrs,
            )
    return bytes(ci.dump())


def sign_detached(
    data: Data, signer: TokenSigner, *, timestamp_url: str | None = None,
    signing_time: dt.datetime | None = None,
) -> bytes:
    """A detached CAdES signature (DER) over ``data`` (a binary stream, read to its end, or a path).

    ``signing_time`` defaults to now; pass it for reproducible results.  With ``timestamp_url`` the
    signature gets an RFC 3161 signature timestamp (CAdES-T).
    """
    return asyncio.run(async_sign_detached(data, signer, timestamp_url=timestamp_url, signing_time=signing_time))


def _parse_signed_data(signature_der: bytes) -> cms.SignedData:
    if not signature_der:
        raise InvalidDocument("the signature is empty (0 bytes)")
    try:
        ci = cms.ContentInfo.load(bytes(signature_der))
        if ci["content_type"].native != "signed_data":
            raise InvalidDocument("the signature is a CMS object but not SignedData")
        sd = ci["content"]
        sd.native  # noqa: B018 - parse fully now
    except InvalidDocument:
        raise
    except PARSE_ERRORS as e:
        raise InvalidDocument(f"the signature is not DER CMS SignedData: {describe(e)}") from e
    if len(sd["signer_infos"]) != 1:
        raise InvalidDocument(f"the signature has {len(sd['signer_infos'])} signers; expected exactly one")
    return sd


async def async_verify_detached(
    data: Data, signature_der: bytes, trust_roots: Iterable[bytes | x509.Certificate], *, revocation: str = "online",
    validation_time: dt.datetime | None = None, other_certs: Iterable[bytes | x509.Certificate] = (),
    fetch_timeout: float = 10.0,
) -> VerificationReport:
    """Coroutine form of :func:`verify_detached`."""
    settings = Settings.make(trust_roots, revocation=revocation, validation_time=validation_time,
                             other_certs=other_certs, fetch_timeout=fetch_timeout)
    sd = _parse_signed_data(signature_der)
    try:
        evidence = cms_evidence(sd)
    except PARSE_ERRORS:  # malformed revocation data settles nothing
        evidence = Evidence()
    with _stream(data, "the signed file") as f:
        start = f.tell()
        h = hashlib.sha256()
        while chunk := f.read(_CHUNK):
            h.update(chunk)
        f.seek(start)
        async with session(settings) as s:
            try:
                # building the context registers the signature's certificates: a malformed name there
                # (asn1crypto's TypeError on a bytes-valued attribute, fuzz finding F16) is a verdict too
                vc = s.context(evidence, fetch=s.fetching)
                status = await async_validate_detached_cms(
                    f, sd, signer_validation_context=vc, key_usage_settings=SIGNER_KEY_USAGE, chunk_size=_CHUNK,
                )
                rep = await verdict.judge(status, kind="cms", field_name=None, settings=s, evidence=evidence,
                                          registry=vc.certificate_registry)
            except VALIDATION_ERRORS as e:  # a verdict, not a crash
                rep = verdict.broken("cms", None, e, f"the signature could not be validated: {describe(e)}")
    return VerificationReport(h.hexdigest(), (rep,))


def verify_detached(
    data: Data, signature_der: bytes, trust_roots: Iterable[bytes | x509.Certificate], *, revocation: str = "online",
    validation_time: dt.datetime | None = None, other_certs: Iterable[bytes | x509.Certificate] = (),
    fetch_timeout: float = 10.0,
) -> VerificationReport:
    """Check a detached CMS/CAdES signature over ``data`` (stream or path) against ``trust_roots``.

    Same keywords and rules as :func:`formats.verify.verify_pdf`.  A bad, untrusted or revoked signature is a
    report with ``valid == False``; only an unparseable signature or unreadable file raises InvalidDocument.
    """
    return asyncio.run(async_verify_detached(data, signature_der, trust_roots, revocation=revocation,
                                             validation_time=validation_time, other_certs=other_certs,
                                             fetch_timeout=fetch_timeout))
