"""Signature formats over any signer (pyHanko): PAdES sign/verify, CAdES detached sign/verify, timestamps.

Public contract (used by agent/ and server/; names and signatures are stable)::

    from formats import (TokenSigner, PdfSignOptions, PdfSignResult, sign_pdf, sign_detached,
                         verify_pdf, verify_pdf_bytes, verify_detached, VerificationReport, SignatureReport,
                         check_pdf_revision, check_detached_signature, RevisionVerdict,
                         FormatError, InvalidDocument, InvalidOptions, SigningError, VerificationFailed)

    signer = TokenSigner(token, key_id)               # hsm.Token (logged in) + CKA_ID hex
    signer = TokenSigner(token, key_id, certificate=der, chain=[der, ...])  # explicit certs
    TokenSigner.for_sizing(certificate_der, chain)    # dry-run signer: never touches a token
    # each certificate goes into the CMS SignedData exactly once (signer's + chain, duplicates dropped)

    opts = PdfSignOptions(field_name=None,  # None: first free "SignatureN"
                          reason=None, location=None, contact_info=None,
                          visible=False, page=0, box=None,        # box=(x1, y1, x2, y2) in PDF points
                          level="B-B",                           # or "B-T" (needs timestamp_url)
                          timestamp_url=None, timestamp_timeout=10.0)
    res = sign_pdf(in_path, out_path, signer, opts, signing_time=None)
                                                      # -> PdfSignResult(field_name, signer_subject,
                                                      #    sha256 (hex of output), size)
    p7s = sign_detached(path_or_binary_stream, signer, timestamp_url=None, signing_time=None)  # DER CAdES-BES
    # signing_time (aware datetime, default now): the claimed signing time, in the signed attributes of a
    # .p7s; in a PAdES signature it is the signature dictionary's /M (ETSI EN 319 142-1 forbids the CMS
    # signing-time attribute there), also used for the appearance

    rep = verify_pdf(path_or_stream, trust_roots=[root_der], *, revocation="online",   # or "offline"
                     validation_time=None, other_certs=(), fetch_timeout=10.0)
    rep = verify_pdf_bytes(data, trust_roots, ...same keywords)                       # bytes in memory
    rep = verify_detached(path_or_stream, p7s_der, trust_roots, ...same keywords)
    rep.valid            # overall verdict; rep.signatures: tuple[SignatureReport, ...]
    rep.reasons()        # why not valid, in words (never empty when not valid)
    rep.problems, rep.warnings   # document level; every SignatureReport has problems and warnings too
    rep.to_dict()        # JSON-ready: valid, reasons, every boolean of every signature (never omitted),
                         # the difference-analysis verdict (modification_level, docmdp_ok), signing_policy,
                         # policy_ok, per-certificate revocation status, problems and warnings

    # envelopes: judge one revision returned by a signer (formats.revision; never raises for a bad document)
    v = check_pdf_revision(previous, new, trust_roots=[root_der], expected_field=None,
                           validation_time=None, revocation="offline", other_certs=())
    v = check_detached_signature(content, p7s_der, trust_roots=[root_der], ...same keywords)
    v.accepted, v.reason, v.message   # RevisionVerdict; reason "" or a stable code (revision.REVISION_*,
                                      # revision.CMS_INVALID), message one line without document contents
    v.signer_certificate_der, v.signer_chain_der, v.field_name, v.changed_fields, v.report

    # coroutine forms for callers inside an event loop: pades.async_sign_pdf, cades.async_sign_detached,
    # verify.async_verify_pdf, cades.async_verify_detached, revision.async_check_pdf_revision,
    # revision.async_check_detached_signature (the sync forms call asyncio.run)

Verification rules (a signature is ok only when all hold; the document is valid only when it has signatures,
all are ok, and there is no document-level problem):

* intact, cryptographically valid, a path to one of ``trust_roots`` valid at ``validation_time`` (default
  now; pass an aware datetime to validate as of then, e.g. to check expiry exactly);
* revocation of every certificate of the signer's path and of every timestamp's TSA path (trust anchors
  excepted): embedded data first (CMS revocation attributes and ``crls``, the PDF's DSS); online (default)
  also the OCSP responders / CRL distribution points the certificates name, ``fetch_timeout`` per request.
  Revoked is a problem naming the certificate; unsettled is a problem online ("revocation status of <subject>
  unknown: <why>") and a warning offline ("revocation of <subject> was not checked (offline)").  A
  ``validation_time`` cannot fetch: it implies offline with embedded data;
* the Signet signing-policy rule (:mod:`formats.policy`), not for document timestamps: under an anchor
  marked as the Signet signing root the signer certificate must carry one of the anchor's signing policies;
  under the Signet TLS root no signature is valid; unmarked anchors set no requirement;
* PDF: the signature's ``/ByteRange`` signs every byte from the start of the file to the end of its revision
  except its own signature value (:mod:`formats.strict`; pyHanko alone accepts overlapping ranges whose
  lengths add up), difference analysis (:data:`formats.strict.DIFF_POLICY`: pyHanko's rules, new objects
  that nothing refers to not ignored) accepts what came after it, and every byte of the file is covered by a
  signature or in a revision difference analysis accepted (bytes appended after the last revision are a
  document-level problem).

Errors (formats.errors): FormatError is the base.  InvalidDocument: input is missing, empty, not a PDF,
truncated, encrypted, refused by the structural pre-scan (:mod:`formats.prescan`: /Contents beyond what a
CMS signature needs, strings, names or comments beyond their bounds, nesting deeper than 256), damaged in a
way the parser trips over at any step of reading, validating or signing (pyHanko's errors, RecursionError,
AssertionError, ValueError...), or a .p7s is not CMS SignedData; the message says which in words and never
contains document bytes.  InvalidOptions (also a ValueError): options that do not fit (B-T without
timestamp_url, page out of range, field already signed, naive datetimes, unknown revocation mode, a trust
root that is not a certificate).  SigningError: the signature could not be produced (TSA down, certificate
missing or not matching the key; ``__cause__`` kept).  Token errors (``hsm.HsmError``: PinIncorrect,
TokenRemoved, LoginRequired...) pass through unchanged so the agent can map them.  VerificationFailed: only
from ``report.raise_for_invalid()``; verify_* return a report for bad, tampered, untrusted, revoked or
uncovered signatures and raise only InvalidDocument (or InvalidOptions for bad arguments).

For fuzzers: ``formats.prescan.check_bytes(data)`` (the pre-scan alone) and ``verify_pdf_bytes(data, roots)``.
"""

from __future__ import annotations

from typing import Any

from .errors import FormatError, InvalidDocument, InvalidOptions, SigningError, VerificationFailed

__all__ = [
    "CertificateStatus", "FormatError", "InvalidDocument", "InvalidOptions", "PdfSignOptions", "PdfSignResult",
    "RevisionVerdict", "SignatureReport", "SigningError", "TimestampReport", "TokenSigner", "VerificationFailed",
    "VerificationReport", "check_detached_signature", "check_pdf_revision", "sign_detached", "sign_pdf",
    "verify_detached", "verify_pdf", "verify_pdf_bytes",
]

_LAZY = {
    "TokenSigner": "signer", "PdfSignOptions": "pades", "PdfSignResult": "pades", "sign_pdf": "pades",
    "sign_detached": "cades", "verify_detached": "cades", "verify_pdf": "verify", "verify_pdf_bytes": "verify",
    "VerificationReport": "report", "SignatureReport": "report", "TimestampReport": "report",
    "CertificateStatus": "report", "RevisionVerdict": "revision", "check_pdf_revision": "revision",
    "check_detached_signature": "revision",
}


def __getattr__(name: str) -> Any:  # lazy: importing formats.errors must not pull in pyHanko
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'formats' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
