"""Signature formats over any signer (pyHanko): PAdES sign/verify, CAdES detached sign/verify, timestamps.

Public contract (used by agent/ and server/; names and signatures are stable)::

    from formats import (TokenSigner, PdfSignOptions, PdfSignResult, sign_pdf, sign_detached,
                         verify_pdf, verify_detached, VerificationReport, SignatureReport,
                         FormatError, InvalidDocument, SigningError, VerificationFailed)

    signer = TokenSigner(token, key_id)               # hsm.Token (logged in) + CKA_ID hex
    signer = TokenSigner(token, key_id, certificate=der, chain=[der, ...])  # explicit certs
    TokenSigner.for_sizing(certificate_der, chain)    # dry-run signer: never touches a token

    opts = PdfSignOptions(field_name=None,  # None: first free "SignatureN"
                          reason=None, location=None, contact_info=None,
                          visible=False, page=0, box=None,        # box=(x1, y1, x2, y2) in PDF points
                          level="B-B",                           # or "B-T" (needs timestamp_url)
                          timestamp_url=None, timestamp_timeout=10.0)
    res = sign_pdf(in_path, out_path, signer, opts)   # -> PdfSignResult(field_name, signer_subject,
                                                      #    sha256 (hex of output), size)
    p7s = sign_detached(path_or_binary_stream, signer, timestamp_url=None)   # -> DER CMS (CAdES-BES)

    rep = verify_pdf(path, trust_roots=[root_der], allow_fetching=False, other_certs=())
    rep = verify_detached(path_or_stream, p7s_der, trust_roots=[root_der])
    rep.valid            # overall verdict; rep.signatures: tuple[SignatureReport, ...]
    rep.to_dict()        # JSON-ready

    # coroutine forms for callers inside an event loop: pades.async_sign_pdf, cades.async_sign_detached,
    # verify.async_verify_pdf, cades.async_verify_detached (the sync forms call asyncio.run)
    # sign_detached(..., signing_time=datetime) makes the result reproducible (default: now)

Errors (formats.errors): FormatError is the base.  InvalidDocument: input is missing, empty, not a PDF,
truncated or encrypted, or a .p7s is not CMS SignedData (message says which, never contains document
bytes).  InvalidOptions (also a ValueError): options that do not fit (B-T without timestamp_url, page
out of range, field already signed).  SigningError: the signature could not be produced (TSA down,
certificate missing or not matching the key; ``__cause__`` kept).  Token errors (``hsm.HsmError``:
PinIncorrect, TokenRemoved, LoginRequired...) pass through unchanged so the agent can map them.
VerificationFailed: only from ``report.raise_for_invalid()``; verify_* return a report for bad,
tampered or untrusted signatures and raise only InvalidDocument.
"""

from __future__ import annotations

from .errors import FormatError, InvalidDocument, InvalidOptions, SigningError, VerificationFailed

__all__ = [
    "FormatError", "InvalidDocument", "InvalidOptions", "PdfSignOptions", "PdfSignResult", "SignatureReport",
    "SigningError", "TokenSigner", "VerificationFailed", "VerificationReport", "sign_detached", "sign_pdf",
    "verify_detached", "verify_pdf",
]


def __getattr__(name: str):  # lazy: importing formats.errors must not pull in pyHanko
    if name in ("TokenSigner",):
        from .signer import TokenSigner
        return TokenSigner
    if name in ("PdfSignOptions", "PdfSignResult", "sign_pdf"):
        from . import pades
        return getattr(pades, name)
    if name in ("sign_detached", "verify_detached"):
        from . import cades
        return getattr(cades, name)
    if name in ("verify_pdf", "VerificationReport", "SignatureReport", "TimestampReport"):
        from . import report, verify
        return getattr(verify if name == "verify_pdf" else report, name)
    raise AttributeError(f"module 'formats' has no attribute {name!r}")
