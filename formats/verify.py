"""PDF signature validation with pyHanko, turned into a :class:`VerificationReport` (never a stack trace).

Only an unusable input (not a PDF, empty, truncated, encrypted) raises :class:`InvalidDocument`; a bad,
untrusted or tampered signature is a report whose ``valid`` is False and whose ``problems`` say why.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Iterable
from typing import Any

from asn1crypto import x509
from pyhanko.sign.fields import SigSeedSubFilter, enumerate_sig_fields
from pyhanko.sign.validation import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from .errors import InvalidDocument
from .pdfinput import open_pdf
from .report import SignatureReport, VerificationReport, chain_subjects, iso, timestamp_report

log = logging.getLogger(__name__)
_SUBFILTERS = {f.value for f in SigSeedSubFilter}

# A signer certificate needs digitalSignature or nonRepudiation (either one: ETSI EN 319 412-2 allows both).
SIGNER_KEY_USAGE = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"},
                                       match_all_key_usages=False)


def load_certs(ders: Iterable[bytes | x509.Certificate], what: str) -> list[x509.Certificate]:
    out = []
    for d in ders:
        if isinstance(d, x509.Certificate):
            out.append(d)
            continue
        try:
            c = x509.Certificate.load(bytes(d))
            c.native  # noqa: B018 - parse fully now
        except (ValueError, TypeError) as e:
            raise ValueError(f"{what}: not a DER X.509 certificate") from e
        out.append(c)
    return out


def validation_context(
    trust_roots: Iterable[bytes | x509.Certificate], *, allow_fetching: bool = False,
    other_certs: Iterable[bytes | x509.Certificate] = (),
) -> ValidationContext:
    """Trust exactly ``trust_roots``; revocation soft-fails (no revocation data is not an error)."""
    return ValidationContext(
        trust_roots=load_certs(trust_roots, "trust root"),
        other_certs=load_certs(other_certs, "other certificate"),
        allow_fetching=allow_fetching,
        revocation_mode="soft-fail",
    )


def status_problems(status: Any) -> list[str]:
    """What is wrong with a pyHanko signature status, in words."""
    problems = []
    if not status.intact:
        problems.append("the signed content was modified (digest mismatch)")
    if not status.valid:
        problems.append("the cryptographic signature does not verify")
    if status.revoked:
        problems.append("the signer's certificate is revoked")
    elif not status.trusted:
        indic = getattr(status, "trust_problem_indic", None)
        why = f" ({indic.name})" if indic is not None else ""
        problems.append(f"the signer's certificate does not chain to a trusted root{why}")
    ts = getattr(status, "timestamp_validity", None)
    if ts is not None and not (ts.intact and ts.valid and ts.trusted):
        problems.append("the signature timestamp is not valid or not trusted")
    return problems


def _str(v: Any) -> str | None:
    """Plain str: pyHanko's string objects keep references to the open document."""
    return None if v is None else str(v)


def _pdf_report(emb: Any, status: Any, kind: str) -> SignatureReport:
    problems = status_problems(status)
    coverage = status.coverage
    if coverage is not None and coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        problems.append(f"the signature does not cover its whole revision ({coverage.name})")
    level = status.modification_level
    if status.docmdp_ok is False:
        problems.append("the document was changed after signing in a way that is not permitted"
                        + (f" ({level.name})" if level is not None else ""))
    if getattr(status, "seed_value_constraint_error", None) is not None:
        problems.append("the signature violates its field's seed value constraints")
    cert = status.signing_cert
    return SignatureReport(
        field_name=_str(emb.field_name),
        kind=kind,
        signer_subject=cert.subject.human_friendly if cert is not None else None,
        chain=chain_subjects(status),
        intact=bool(status.intact), valid=bool(status.valid), trusted=bool(status.trusted),
        coverage=coverage.name if coverage is not None else None,
        modification_level=level.name if level is not None else None,
        docmdp_ok=status.docmdp_ok,
        signing_time=iso(getattr(status, "signer_reported_dt", None)),
        timestamp=timestamp_report(getattr(status, "timestamp_validity", None)) if kind == "signature"
        else timestamp_report(status),
        md_algorithm=status.md_algorithm,
        problems=tuple(problems),
    )


def _broken_report(
    emb: Any, kind: str, err: Exception | None, name: str | None = None, why: str | None = None
) -> SignatureReport:
    try:
        subject = emb.signer_cert.subject.human_friendly
    except Exception:  # the CMS object itself may be what is broken (or there is no emb)
        subject = None
    return SignatureReport(
        field_name=_str(name if name is not None else getattr(emb, "field_name", None)), kind=kind,
        signer_subject=subject, chain=(), intact=False, valid=False, trusted=False, coverage=None,
        modification_level=None, docmdp_ok=None, signing_time=None, timestamp=None, md_algorithm=None,
        problems=(why or f"the signature could not be validated: it is malformed ({type(err).__name__})",),
    )


def _collect(reader: Any) -> tuple[list[EmbeddedPdfSignature], list[SignatureReport]]:
    """Filled signature fields, in signing order; ones that cannot even be parsed become reports.

    (pyHanko's ``reader.embedded_signatures`` fails as a whole on one malformed CMS object and skips
    unknown SubFilters silently; both must show up as problems here.)
    """
    good: list[EmbeddedPdfSignature] = []
    broken: list[SignatureReport] = []
    for name, sig_obj, sig_field in enumerate_sig_fields(reader, filled_status=True):
        sub = sig_obj.get_object().get("/SubFilter")
        kind = "document-timestamp" if sig_obj.get_object().get("/Type") == "/DocTimeStamp" else "signature"
        if sub not in _SUBFILTERS:
            broken.append(_broken_report(None, kind, None, name, f"unsupported signature format {sub}"))
            continue
        try:
            good.append(EmbeddedPdfSignature(reader, sig_field, name))
        except Exception as e:
            broken.append(_broken_report(None, kind, e, name))
    good.sort(key=lambda emb: emb.signed_revision)
    return good, broken


def _file_sha256(f: Any) -> str:
    f.seek(0)
    h = hashlib.sha256()
    while chunk := f.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


async def async_verify_pdf(
    path: str | os.PathLike[str], trust_roots: list[bytes], *, allow_fetching: bool = False,
    other_certs: Iterable[bytes] = (),
) -> VerificationReport:
    """Coroutine form of :func:`verify_pdf`."""
    with open_pdf(path, "the document to verify") as (f, reader):
        digest = _file_sha256(f)
        try:
            embedded, broken = _collect(reader)
        except Exception as e:  # a damaged AcroForm: report it, do not crash
            log.info("signature fields unreadable: %s", type(e).__name__)
            return VerificationReport(digest, (), (f"the signature fields cannot be read ({type(e).__name__})",))
        if not embedded and not broken:
            return VerificationReport(digest, (), ("the document has no signatures",))
        vc = validation_context(trust_roots, allow_fetching=allow_fetching, other_certs=other_certs)
        reports = []
        for emb in embedded:
            kind = "document-timestamp" if emb.sig_object_type == "/DocTimeStamp" else "signature"
            try:
                status: Any
                if kind == "signature":
                    status = await async_validate_pdf_signature(
                        emb, signer_validation_context=vc, ts_validation_context=vc,
                        key_usage_settings=SIGNER_KEY_USAGE,
                    )
                else:
                    status = await async_validate_pdf_timestamp(emb, validation_context=vc)
                reports.append(_pdf_report(emb, status, kind))
            except InvalidDocument:
                raise
            except Exception as e:  # any failure inside validation is a verdict, not a crash
                log.info("signature %s failed validation: %s", getattr(emb, "field_name", "?"), type(e).__name__)
                reports.append(_broken_report(emb, kind, e))
    return VerificationReport(digest, tuple(reports) + tuple(broken))


def verify_pdf(
    path: str | os.PathLike[str], trust_roots: list[bytes], *, allow_fetching: bool = False,
    other_certs: Iterable[bytes] = (),
) -> VerificationReport:
    """Validate every signature and document timestamp in the PDF at ``path`` against ``trust_roots``."""
    return asyncio.run(async_verify_pdf(path, trust_roots, allow_fetching=allow_fetching, other_certs=other_certs))
