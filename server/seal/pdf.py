"""PAdES B-LTA seal of a PDF that carries the parties' signatures.

In three incremental updates, none of which touches a byte already signed:

1. a Document Security Store with the certificates and the OCSP responses / CRLs of every signature already in
   the document (and of their signature timestamps), gathered by validating each signer's chain under the
   signing root with revocation information *required*;
2. the platform seal signature (the seal key on the server token, its certificate from the signing CA with the
   seal policy), its own validation data added to the DSS after it;
3. an RFC 3161 document timestamp from the server's TSA over the whole file (pyHanko's ``use_pades_lta``).

Revocation information comes from the server's own OCSP responder and CRLs, fetched over HTTP at the URLs in the
certificates, and the timestamps from its TSA: a responder or TSA that fails makes :func:`seal_pdf` raise
:class:`SealFailed` -- the seal is retried later, never completed with the local clock or without revocation
data.  The sealed file is returned as bytes; the caller stores it (write-once).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Sequence
from datetime import datetime

from asn1crypto import x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.validation.dss import DocumentSecurityStore, collect_validation_info
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
from pyhanko_certvalidator.fetchers.api import Fetchers

from formats.signer import TokenSigner

from ..errors import ServerError

log = logging.getLogger(__name__)

SEAL_FIELD = "signet-seal"


class SealFailed(ServerError):
    """The seal could not be made now (TSA or revocation information unavailable, the token failed): retry."""

    reason = "SEAL_FAILED"


def validation_context(trust_roots: Sequence[bytes], fetchers: Fetchers) -> ValidationContext:
    """Signing root(s) as the only anchors; revocation information required and fetched (OCSP, CRL)."""
    return ValidationContext(trust_roots=[x509.Certificate.load(r) for r in trust_roots], allow_fetching=True,
                             revocation_mode="require", fetchers=fetchers)


async def _async_seal(pdf: bytes, seal: TokenSigner, timestamper: TimeStamper, trust_roots: Sequence[bytes],
                      reason: str) -> bytes:
    async with AIOHttpFetcherBackend() as fetchers:  # the session closed when done
        return await _seal_with(pdf, seal, timestamper, validation_context(trust_roots, fetchers), reason)


async def _seal_with(pdf: bytes, seal: TokenSigner, timestamper: TimeStamper, vc: ValidationContext,
                     reason: str) -> bytes:
    reader = PdfFileReader(io.BytesIO(pdf))
    signatures = list(reader.embedded_signatures)
    paths = []
    for sig in signatures:
        paths += await collect_validation_info(sig, vc)
    buf = io.BytesIO(pdf)
    if paths:
        w = IncrementalPdfFileWriter(buf, strict=False)
        DocumentSecurityStore.supply_dss_in_writer(w, None, paths=paths, validation_context=vc)
        w.write_in_place()  # type: ignore[no-untyped-call]
    w = IncrementalPdfFileWriter(buf, strict=False)
    taken = {name for name, _, _ in fields.enumerate_sig_fields(w.prev, filled_status=None)}
    name = SEAL_FIELD if SEAL_FIELD not in taken else f"{SEAL_FIELD}-{len(taken)}"
    meta = signers.PdfSignatureMetadata(
        field_name=name, reason=reason, subfilter=fields.SigSeedSubFilter.PADES, md_algorithm="sha256",
        embed_validation_info=True, use_pades_lta=True, validation_context=vc)
    out = await signers.PdfSigner(meta, signer=seal, timestamper=timestamper).async_sign_pdf(w, output=io.BytesIO())
    return bytes(out.getvalue())


def seal_pdf(pdf: bytes, seal: TokenSigner, timestamper: TimeStamper, trust_roots: Sequence[bytes], *,
             reason: str = "Signet platform seal") -> bytes:
    """``pdf`` sealed to PAdES B-LTA (see the module docstring); SealFailed when it cannot be done now."""
    try:
        return asyncio.run(_async_seal(pdf, seal, timestamper, trust_roots, reason))
    except SealFailed:
        raise
    except Exception as e:  # pyHanko/certvalidator/HTTP/token: every failure means "not sealed"
        log.warning("PDF seal failed: %s: %s", type(e).__name__, str(e)[:300])
        raise SealFailed(f"the seal could not be made now ({type(e).__name__}); it is retried later") from e


def last_timestamp_expiry(pdf: bytes) -> datetime | None:
    """When the certificate of the newest document timestamp in ``pdf`` expires (None: no document timestamp)."""
    reader = PdfFileReader(io.BytesIO(pdf))
    stamps = [s for s in reader.embedded_signatures if s.sig_object_type == "/DocTimeStamp"]
    if not stamps:
        return None
    newest = max(stamps, key=lambda s: s.signed_revision)
    after: datetime = newest.signer_cert.not_valid_after
    return after


async def _async_renew(pdf: bytes, timestamper: TimeStamper, trust_roots: Sequence[bytes]) -> bytes:
    async with AIOHttpFetcherBackend() as fetchers:
        vc = validation_context(trust_roots, fetchers)
        out = io.BytesIO(pdf)
        await PdfTimeStamper(timestamper).async_update_archival_timestamp_chain(PdfFileReader(out), vc,
                                                                                in_place=True)
        return out.getvalue()


def renew_lta(pdf: bytes, timestamper: TimeStamper, trust_roots: Sequence[bytes]) -> bytes:
    """``pdf`` (already B-LTA) with fresh validation data for its last document timestamp and a new document
    timestamp over everything (PAdES LTA renewal); SealFailed when it cannot be done now."""
    try:
        return asyncio.run(_async_renew(pdf, timestamper, trust_roots))
    except Exception as e:  # TSA, revocation data, a damaged file: not renewed now
        log.warning("LTA renewal failed: %s: %s", type(e).__name__, str(e)[:300])
        raise SealFailed(f"the archival timestamp could not be renewed now ({type(e).__name__})") from e
