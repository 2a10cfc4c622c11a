"""PDF signature validation with pyHanko, turned into a :class:`VerificationReport` (never a stack trace).

Only an unusable input (not a PDF, empty, truncated, encrypted, refused by the pre-scan, unreadable by the
parser) raises :class:`InvalidDocument`; a bad, untrusted, revoked or tampered signature, or bytes that no
signature covers, make a report whose ``valid`` is False and whose ``reasons()`` say why.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import logging
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

from asn1crypto import crl, ocsp, x509
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import SigSeedSubFilter, enumerate_sig_fields
from pyhanko.sign.validation import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.status import SignatureCoverageLevel

from . import coverage, strict, verdict
from .failures import PARSE_ERRORS, VALIDATION_ERRORS, describe
from .pdfinput import open_pdf
from .report import SignatureReport, VerificationReport
from .validation import SIGNER_KEY_USAGE, Evidence, Settings, cms_evidence, session

log = logging.getLogger(__name__)
_SUBFILTERS = {f.value for f in SigSeedSubFilter}
_NAME = "the document to verify"

Certs = Iterable[bytes | x509.Certificate]


def _str(v: Any) -> str | None:
    """Plain str: pyHanko's string objects keep references to the open document."""
    return None if v is None else str(v)


def _collect(reader: Any) -> tuple[list[EmbeddedPdfSignature], list[SignatureReport]]:
    """Filled signature fields, in signing order; ones that cannot even be parsed become reports.

    (pyHanko's ``reader.embedded_signatures`` fails as a whole on one malformed CMS object and skips
    unknown SubFilters silently; both must show up as problems here.)
    """
    good: list[EmbeddedPdfSignature] = []
    broken: list[SignatureReport] = []
    for name, sig_obj, sig_field in enumerate_sig_fields(reader, filled_status=True):
        try:
            sig = sig_obj.get_object()
            sub = sig.get("/SubFilter")
            kind = "document-timestamp" if sig.get("/Type") == "/DocTimeStamp" else "signature"
        except PARSE_ERRORS as e:
            broken.append(verdict.broken("signature", _str(name), e))
            continue
        if sub not in _SUBFILTERS:
            broken.append(verdict.broken(kind, _str(name), None, f"unsupported signature format {_str(sub)}"))
            continue
        try:
            good.append(EmbeddedPdfSignature(reader, sig_field, name))
        except PARSE_ERRORS as e:
            broken.append(verdict.broken(kind, _str(name), e))
    good.sort(key=lambda emb: emb.signed_revision)
    return good, broken


def _dss_evidence(reader: Any) -> tuple[Evidence, tuple[str, ...]]:
    """Certificates, OCSP responses and CRLs of the document security store (B-LT/B-LTA validation data)."""
    try:
        dss = DocumentSecurityStore.read_dss(reader)
        ocsps = tuple(ocsp.OCSPResponse.load(ref.get_object().read_data(DecodePurpose.OCSP_RESPONSE))
                      for ref in dss.ocsps)
        crls = tuple(crl.CertificateList.load(ref.get_object().read_data(DecodePurpose.CRL)) for ref in dss.crls)
        return Evidence(tuple(dss.load_certs()), crls, ocsps), ()
    except NoDSSFoundError:
        return Evidence(), ()
    except PARSE_ERRORS as e:
        return Evidence(), (f"the document security store (DSS) is unreadable: {describe(e)}; its validation "
                            f"data was not used",)


@dataclass(frozen=True)
class _PdfFacts:
    """What the PDF structure says about one signature: its problems, and the verdicts its report shows."""

    problems: tuple[str, ...]
    coverage: str | None
    modification_level: str | None
    docmdp_ok: bool | None
    signed: strict.SignedRange | None  # None: no bytes count as covered by it


def _pdf_facts(emb: EmbeddedPdfSignature, status: Any) -> _PdfFacts:
    """Coverage first (strict.signed_range over pyHanko's verdict), then difference analysis, then seed values.

    A range pyHanko would call ENTIRE_FILE or ENTIRE_REVISION that strict.signed_range refuses is reported as
    pyHanko reports any other nonstandard range: UNCLEAR, with difference analysis refused (OTHER)."""
    signed = strict.signed_range(emb)
    cov, level, docmdp_ok = status.coverage, status.modification_level, status.docmdp_ok
    problems = []
    if signed is None:
        problems.append(strict.BYTE_RANGE_PROBLEM)
        if cov is not None and cov >= SignatureCoverageLevel.ENTIRE_REVISION:
            cov, level, docmdp_ok = SignatureCoverageLevel.UNCLEAR, ModificationLevel.OTHER, False
    elif cov is not None and cov < SignatureCoverageLevel.ENTIRE_REVISION:
        problems.append(f"the signature does not cover its whole revision ({cov.name})")
    elif docmdp_ok is False:
        problems.append("a later revision changed what was signed (difference analysis: a change no rule allows)"
                        if level is None or level == ModificationLevel.OTHER else
                        f"a later revision made changes this signature's DocMDP/FieldMDP permissions forbid "
                        f"({level.name})")
    if getattr(status, "seed_value_constraint_error", None) is not None:
        problems.append("the signature violates its field's seed value constraints")
    return _PdfFacts(tuple(problems), cov.name if cov is not None else None,
                     level.name if level is not None else None, docmdp_ok, signed)


async def _validate(emb: EmbeddedPdfSignature, settings: Settings,
                    dss: Evidence) -> tuple[SignatureReport, coverage.Span | None]:
    kind = "document-timestamp" if emb.sig_object_type == "/DocTimeStamp" else "signature"
    try:
        evidence = dss + cms_evidence(emb.signed_data)
    except PARSE_ERRORS:
        evidence = dss
    vc = settings.context(evidence, fetch=settings.fetching)
    status: Any
    if kind == "signature":
        status = await async_validate_pdf_signature(emb, signer_validation_context=vc, ts_validation_context=vc,
                                                    key_usage_settings=SIGNER_KEY_USAGE,
                                                    diff_policy=strict.DIFF_POLICY)
    else:
        status = await async_validate_pdf_timestamp(emb, validation_context=vc, diff_policy=strict.DIFF_POLICY)
    pdf = _pdf_facts(emb, status)
    rep = await verdict.judge(
        status, kind=kind, field_name=_str(emb.field_name), settings=settings, evidence=evidence,
        registry=vc.certificate_registry, pdf_problems=pdf.problems, coverage=pdf.coverage,
        modification_level=pdf.modification_level, docmdp_ok=pdf.docmdp_ok,
    )
    span = coverage.span_of(pdf.signed, pdf.docmdp_ok) if status.intact else None
    return rep, span


def _digest(f: BinaryIO) -> tuple[str, int]:
    f.seek(0)
    h = hashlib.sha256()
    size = 0
    while chunk := f.read(1 << 20):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


async def _verify(f: BinaryIO, reader: Any, settings: Settings,
                  only: Collection[str] | None = None) -> VerificationReport:
    digest, size = _digest(f)
    try:
        embedded, broken = _collect(reader)
    except PARSE_ERRORS as e:  # a damaged AcroForm: report it, do not crash
        log.info("signature fields unreadable: %s", type(e).__name__)
        return VerificationReport(digest, (), (f"the signature fields cannot be read: {describe(e)}",))
    if not embedded and not broken:
        return VerificationReport(digest, (), ("the document has no signatures",))
    dss, warnings = _dss_evidence(reader)
    reports: list[SignatureReport] = []
    spans: list[coverage.Span] = []
    async with session(settings) as s:
        for emb in embedded:
            if only is not None and _str(emb.field_name) not in only:
                continue  # the caller vouches for it (formats.revision: an earlier, already accepted signature)
            kind = "document-timestamp" if emb.sig_object_type == "/DocTimeStamp" else "signature"
            try:
                rep, span = await _validate(emb, s, dss)
            except VALIDATION_ERRORS as e:  # a verdict on this signature, not a crash
                log.info("signature %s failed validation: %s", _str(emb.field_name), type(e).__name__)
                reports.append(verdict.broken(kind, _str(emb.field_name), e))
                continue
            reports.append(rep)
            if span is not None:
                spans.append(span)
    try:
        problems = coverage.account(f, reader, size, spans)
    except PARSE_ERRORS as e:
        problems = [f"the revisions of the document cannot be accounted for: {describe(e)}"]
    return VerificationReport(digest, tuple(reports) + tuple(broken), tuple(problems), warnings)


async def async_verify_pdf(
    path: str | os.PathLike[str] | BinaryIO, trust_roots: Certs, *, revocation: str = "online",
    validation_time: dt.datetime | None = None, other_certs: Certs = (), fetch_timeout: float = 10.0,
    only: Collection[str] | None = None,
) -> VerificationReport:
    """Coroutine form of :func:`verify_pdf` (also takes a seekable binary stream).  ``only``: validate just the
    signatures in these fields (the others are left out of the report)."""
    settings = Settings.make(trust_roots, revocation=revocation, validation_time=validation_time,
                             other_certs=other_certs, fetch_timeout=fetch_timeout)
    with open_pdf(path, _NAME) as (f, reader):
        return await _verify(f, reader, settings, only)


def verify_pdf(
    path: str | os.PathLike[str] | BinaryIO, trust_roots: Certs, *, revocation: str = "online",
    validation_time: dt.datetime | None = None, other_certs: Certs = (), fetch_timeout: float = 10.0,
) -> VerificationReport:
    """Validate every signature and document timestamp in the PDF at ``path`` against ``trust_roots``.

    ``revocation``: "online" (default) checks every certificate of every signer and TSA chain, embedded data
    first, then OCSP/CRL fetched with ``fetch_timeout``; an unsettled certificate is a problem.  "offline"
    fetches nothing and turns unsettled certificates into warnings.  ``validation_time`` (aware) validates
    as of that moment, with embedded revocation data only.
    """
    return asyncio.run(async_verify_pdf(path, trust_roots, revocation=revocation, validation_time=validation_time,
                                        other_certs=other_certs, fetch_timeout=fetch_timeout))


def verify_pdf_bytes(
    data: bytes, trust_roots: Certs, *, revocation: str = "online", validation_time: dt.datetime | None = None,
    other_certs: Certs = (), fetch_timeout: float = 10.0,
) -> VerificationReport:
    """:func:`verify_pdf` over a document in memory (for fuzzers and callers that hold the bytes already)."""
    return verify_pdf(io.BytesIO(data), trust_roots, revocation=revocation, validation_time=validation_time,
                      other_certs=other_certs, fetch_timeout=fetch_timeout)
