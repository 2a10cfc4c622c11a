"""CAdES detached signatures (``.p7s``) over any file: CAdES-BES, or CAdES-T with an RFC 3161 timestamp.

The content is hashed in chunks from a stream, never read whole.  The output is DER CMS SignedData with
signed attributes content-type, message-digest, signing-time, signing-certificate-v2 and CMS algorithm
protection; ``openssl cms -verify -binary -inform DER -content FILE`` accepts it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from asn1crypto import cms
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import async_validate_detached_cms

from .errors import InvalidDocument
from .report import SignatureReport, VerificationReport, chain_subjects, iso, timestamp_report
from .signer import TokenSigner, signing_errors
from .verify import SIGNER_KEY_USAGE, status_problems, validation_context

Data = BinaryIO | str | os.PathLike[str]
_CHUNK = 1 << 20


@contextmanager
def _stream(data: Data, what: str) -> Iterator[BinaryIO]:
    if isinstance(data, str | os.PathLike):
        try:
            f = open(data, "rb")  # noqa: SIM115 - closed below
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
        with signing_errors(timestamp_url):
            ci = await signer.async_sign_general_data(
                f, signer.digest_algorithm, detached=True, use_cades=True, timestamper=timestamper,
                chunk_size=_CHUNK, signed_attr_settings=attrs,
            )
    return ci.dump()


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
    except (ValueError, TypeError, KeyError) as e:
        raise InvalidDocument(f"the signature is not DER CMS SignedData ({type(e).__name__})") from e
    if len(sd["signer_infos"]) != 1:
        raise InvalidDocument(f"the signature has {len(sd['signer_infos'])} signers; expected exactly one")
    return sd


async def async_verify_detached(data: Data, signature_der: bytes, trust_roots: list[bytes]) -> VerificationReport:
    """Coroutine form of :func:`verify_detached`."""
    sd = _parse_signed_data(signature_der)
    vc = validation_context(trust_roots)
    with _stream(data, "the signed file") as f:
        start = f.tell()
        h = hashlib.sha256()
        while chunk := f.read(_CHUNK):
            h.update(chunk)
        f.seek(start)
        try:
            status = await async_validate_detached_cms(
                f, sd, signer_validation_context=vc, key_usage_settings=SIGNER_KEY_USAGE, chunk_size=_CHUNK,
            )
        except Exception as e:  # a verdict, not a crash
            why = f"the signature could not be validated ({type(e).__name__})"
            return VerificationReport(h.hexdigest(), (), (why,))
    cert = status.signing_cert
    rep = SignatureReport(
        field_name=None, kind="cms", signer_subject=cert.subject.human_friendly if cert is not None else None,
        chain=chain_subjects(status), intact=bool(status.intact), valid=bool(status.valid),
        trusted=bool(status.trusted), coverage=None, modification_level=None, docmdp_ok=None,
        signing_time=iso(status.signer_reported_dt), timestamp=timestamp_report(status.timestamp_validity),
        md_algorithm=status.md_algorithm, problems=tuple(status_problems(status)),
    )
    return VerificationReport(h.hexdigest(), (rep,))


def verify_detached(data: Data, signature_der: bytes, trust_roots: list[bytes]) -> VerificationReport:
    """Check a detached CMS/CAdES signature over ``data`` (stream or path) against ``trust_roots``.

    A bad or untrusted signature is a report with ``valid == False``; only an unparseable signature or
    unreadable file raises InvalidDocument.
    """
    return asyncio.run(async_verify_detached(data, signature_der, trust_roots))
