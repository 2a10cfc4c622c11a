"""PAdES B-B / B-T signing of a PDF file as an incremental update, written durably.

The input is read from its path (pyHanko seeks in it; it is never loaded whole) after the checks of
:mod:`formats.pdfinput` (pre-scan included), the output is streamed into a temporary file beside
``out_path`` which is fsynced and renamed into place, so a crash leaves either the complete signed document
or nothing.  ``bytes_reserved`` is computed from the signer's certificates instead of letting pyHanko run a
dry-run signature to size the placeholder (measured 12.7 ms instead of 20.7 ms per document).

The signing time (signed attribute, signature dictionary /M, appearance) is a parameter, default now, so
results can be reproduced.  pyHanko reads lazily: a document that passed the up-front checks can still fail
while being signed (XMP metadata, object streams); :func:`formats.failures.signing_errors` makes that an
InvalidDocument, while token errors pass through unchanged.  A visible signature's stamp shows the signer's
name, the signing time and the signer certificate's serial number (hex).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pyhanko.pdf_utils import misc
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.signers.constants import DEFAULT_SIGNING_STAMP_STYLE
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.timestamps import HTTPTimeStamper

from signet.durable import open_atomic

from .errors import InvalidOptions
from .failures import reading, signing_errors
from .formfields import fill_form_fields
from .pdfinput import open_pdf
from .signer import TokenSigner

log = logging.getLogger(__name__)

Level = Literal["B-B", "B-T"]
DEFAULT_BOX = (56, 56, 276, 116)  # bottom left of the page, in points
_TS_RESERVE = 12 * 1024  # DER bytes for a timestamp token incl. the TSA's certificates
_CMS_OVERHEAD = 2048  # signed attributes, SignerInfo, SignedData framing (measured ~1.1 KiB)
# a visible signature's stamp: pyHanko's, with the signer certificate's serial number (hex) added
STAMP_STYLE = replace(DEFAULT_SIGNING_STAMP_STYLE, stamp_text="Digitally signed by %(signer)s.\nTimestamp: %(ts)s.\n"
                                                              "Certificate serial: %(serial)s.")


@dataclass(frozen=True)
class PdfSignOptions:
    """How to sign: field, descriptive entries, appearance and PAdES level.

    ``field_name=None`` picks the first free ``SignatureN``.  ``box`` is (x1, y1, x2, y2) in PDF
    points on page ``page`` (0-based; -1 = last page) and is used only when ``visible``.  ``form_values``
    (field name -> value) fills existing text, date and checkbox fields in the signature's own incremental
    update (:mod:`formats.formfields`).
    """

    field_name: str | None = None
    reason: str | None = None
    location: str | None = None
    contact_info: str | None = None
    visible: bool = False
    page: int = 0
    box: tuple[int, int, int, int] | None = None
    level: Level = "B-B"
    timestamp_url: str | None = None
    timestamp_timeout: float = 10.0
    form_values: Mapping[str, str] = field(default_factory=dict)  # form fields filled before signing

    def __post_init__(self) -> None:
        if self.level not in ("B-B", "B-T"):
            raise InvalidOptions(f"unknown PAdES level {self.level!r}; use B-B or B-T")
        if self.level == "B-T" and not self.timestamp_url:
            raise InvalidOptions("PAdES B-T needs a timestamp_url (an RFC 3161 TSA)")
        if self.box is not None:
            if len(self.box) != 4:
                raise InvalidOptions("box is (x1, y1, x2, y2)")
            x1, y1, x2, y2 = self.box
            if x2 <= x1 or y2 <= y1:
                raise InvalidOptions(f"box {self.box} is empty: need x2 > x1 and y2 > y1")
        if self.field_name is not None and (not self.field_name or "." in self.field_name):
            raise InvalidOptions("field_name must be non-empty and contain no '.'")


@dataclass(frozen=True)
class PdfSignResult:
    field_name: str
    signer_subject: str
    sha256: str  # hex digest of the signed output file
    size: int  # bytes


def reserve_for(signer: TokenSigner, timestamped: bool) -> int:
    """Hex characters to reserve for the CMS object (twice its DER size, rounded up to 1 KiB)."""
    der = signer.certificates_size() + signer.raw_signature_size + _CMS_OVERHEAD
    if timestamped:
        der += _TS_RESERVE
    return -(-2 * der // 1024) * 1024


def _free_field_name(reader: Any) -> str:
    taken = {name for name, _, _ in fields.enumerate_sig_fields(reader, filled_status=None)}
    n = 1
    while f"Signature{n}" in taken:
        n += 1
    return f"Signature{n}"


def _sha256_of(f: BinaryIO) -> tuple[str, int]:
    f.seek(0)
    h = hashlib.sha256()
    size = 0
    while chunk := f.read(1 << 20):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def _check_fields(reader: Any, options: PdfSignOptions) -> str:
    """The field to sign (InvalidOptions when it is taken or the page does not exist)."""
    if options.field_name is None:
        field_name = _free_field_name(reader)
    else:
        field_name = options.field_name
        for name, value, _ in fields.enumerate_sig_fields(reader, filled_status=None):
            if name == field_name and value is not None:
                raise InvalidOptions(f"signature field {field_name!r} is already signed; choose another name")
    if options.visible:
        n_pages = int(reader.root["/Pages"]["/Count"])
        if not -n_pages <= options.page < n_pages:
            raise InvalidOptions(f"page {options.page} does not exist (the document has {n_pages} pages)")
    return field_name


async def _sign(pdf_signer: signers.PdfSigner, writer: IncrementalPdfFileWriter, when: dt.datetime,
                bytes_reserved: int, output: BinaryIO) -> None:
    """pyHanko's ``PdfSigner.async_sign_pdf``, with the signing time given instead of read from the clock."""
    session = pdf_signer.init_signing_session(writer)
    session.system_time = when
    validation_info = await session.perform_presign_validation(writer)
    cert = pdf_signer.signer.signing_cert
    serial = format(cert.serial_number, "x") if cert is not None else "-"
    tbs = session.prepare_tbs_document(validation_info=validation_info, bytes_reserved=bytes_reserved,
                                       appearance_text_params={"serial": serial})
    prepared, res_output = tbs.digest_tbs_document(output=output, in_place=False)
    post = await tbs.perform_signature(
        document_digest=prepared.document_digest,
        pdf_cms_signed_attrs=PdfCMSSignedAttributes(
            signing_time=when, cades_signed_attrs=pdf_signer.signature_meta.cades_signed_attr_spec,
        ),
    )
    await post.post_signature_processing(res_output)
    misc.finalise_output(output, res_output)  # type: ignore[no-untyped-call]


async def async_sign_pdf(
    in_path: str | os.PathLike[str], out_path: str | os.PathLike[str], signer: TokenSigner,
    options: PdfSignOptions = PdfSignOptions(),
    *, signing_time: dt.datetime | None = None,
) -> PdfSignResult:
    """Coroutine form of :func:`sign_pdf` for callers that already run an event loop."""
    if signing_time is not None and signing_time.utcoffset() is None:
        raise InvalidOptions("signing_time must be an aware datetime (with a time zone)")
    when = signing_time or dt.datetime.now(dt.UTC)
    out = Path(out_path)
    with open_pdf(in_path, "the document to sign") as (_, reader):
        with reading("the document to sign"):
            field_name = _check_fields(reader, options)
        meta = signers.PdfSignatureMetadata(
            field_name=field_name,
            reason=options.reason,
            location=options.location,
            contact_info=options.contact_info,
            subfilter=fields.SigSeedSubFilter.PADES,
            md_algorithm=signer.digest_algorithm,
        )
        spec = fields.SigFieldSpec(
            sig_field_name=field_name,
            on_page=options.page,
            box=(options.box or DEFAULT_BOX) if options.visible else None,
        )
        timestamper = None
        if options.level == "B-T":
            timestamper = HTTPTimeStamper(options.timestamp_url, timeout=options.timestamp_timeout)
        pdf_signer = signers.PdfSigner(meta, signer, timestamper=timestamper, new_field_spec=spec,
                                       stamp_style=STAMP_STYLE)
        with signing_errors(options.timestamp_url, signer), open_atomic(out, 0o644) as f:
            writer = IncrementalPdfFileWriter.from_reader(reader)
            if options.form_values:  # in the signature's own revision: form filling, then the signature
                fill_form_fields(writer, options.form_values)
            await _sign(pdf_signer, writer, when, reserve_for(signer, timestamper is not None), f)
            digest, size = _sha256_of(f)
    log.info("signed PDF field=%s size=%d sha256=%s", field_name, size, digest)
    return PdfSignResult(field_name, signer.subject, digest, size)


def sign_pdf(
    in_path: str | os.PathLike[str], out_path: str | os.PathLike[str], signer: TokenSigner,
    options: PdfSignOptions = PdfSignOptions(),
    *, signing_time: dt.datetime | None = None,
) -> PdfSignResult:
    """Sign ``in_path`` into ``out_path`` (may be the same path) as PAdES ``options.level``.

    ``signing_time`` (aware) goes into the signed attributes and the signature dictionary; default now.
    Raises InvalidDocument (unusable input), InvalidOptions (bad options for this document),
    SigningError (signature or timestamp failed) or an ``hsm.HsmError`` from the token.
    """
    return asyncio.run(async_sign_pdf(in_path, out_path, signer, options, signing_time=signing_time))
