"""Verification reports: frozen dataclasses built from pyHanko statuses, JSON-ready through ``to_dict``.

``to_dict`` writes every field of every signature, booleans included even when False (a reader of the JSON
must never have to guess a default, see DESIGN.md on proto3 JSON), plus the overall ``valid`` and
``reasons``.  Problems make a signature (or the document) invalid; warnings do not (e.g. revocation not
checked in offline mode) but are always shown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .errors import VerificationFailed


@dataclass(frozen=True)
class TimestampReport:
    """An RFC 3161 timestamp: the signature timestamp of a B-T signature, or a document timestamp."""

    time: str | None  # ISO 8601, UTC
    tsa_subject: str | None
    intact: bool
    valid: bool
    trusted: bool

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.trusted

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time, "tsa_subject": self.tsa_subject, "intact": self.intact, "valid": self.valid,
                "trusted": self.trusted, "ok": self.ok}


@dataclass(frozen=True)
class CertificateStatus:
    """The revocation status of one certificate of a validated path (the trust anchor is not checked)."""

    subject: str
    chain: str  # "signer" (the signature's path) | "tsa" (a timestamp's path)
    status: str  # "good" | "revoked" | "unknown" | "not-checked"
    source: str | None  # "embedded" (CMS attributes, DSS) | "fetched" (OCSP/CRL from the certificate) | None
    detail: str | None  # in words: why unknown, when revoked

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "chain": self.chain, "status": self.status, "source": self.source,
                "detail": self.detail}


@dataclass(frozen=True)
class SignatureReport:
    """One signature (or document timestamp) and everything a person needs to judge it."""

    field_name: str | None
    kind: str  # "signature" (PAdES) | "cms" (detached CAdES) | "document-timestamp"
    signer_subject: str | None
    chain: tuple[str, ...]  # subjects, signer first, trust anchor last (empty when no path was found)
    intact: bool  # the signed bytes hash to the signed digest
    valid: bool  # the cryptographic signature verifies
    trusted: bool  # a path to one of the trust roots was validated
    coverage: str | None  # ENTIRE_FILE / ENTIRE_REVISION / CONTIGUOUS_BLOCK_FROM_START / UNCLEAR (PDF only)
    modification_level: str | None  # difference analysis: NONE / LTA_UPDATES / FORM_FILLING / ANNOTATIONS / OTHER
    docmdp_ok: bool | None  # difference analysis accepted what was added after this signature (PDF only)
    signing_time: str | None  # signer-reported (not proof), ISO 8601
    timestamp: TimestampReport | None
    md_algorithm: str | None
    problems: tuple[str, ...]  # human-readable reasons when not ok
    warnings: tuple[str, ...] = ()  # shown, but not a reason to reject (e.g. revocation not checked offline)
    signing_policy: str | None = None  # the Signet signing policy OID the signer certificate matched
    policy_ok: bool | None = None  # None: the trust anchor sets no Signet policy requirement
    remote_key: bool | None = None  # True: a remote-signing key held on the Signet server token (None: no rule)
    revocation: tuple[CertificateStatus, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        what = {"document-timestamp": "document timestamp", "cms": "signature"}.get(self.kind, "signature")
        return f"{what} {self.field_name!r}" if self.field_name else what

    def to_dict(self) -> dict[str, Any]:
        return {
            "field_name": self.field_name, "kind": self.kind, "signer_subject": self.signer_subject,
            "chain": list(self.chain), "ok": self.ok, "intact": self.intact, "valid": self.valid,
            "trusted": self.trusted, "coverage": self.coverage, "modification_level": self.modification_level,
            "docmdp_ok": self.docmdp_ok, "signing_time": self.signing_time,
            "timestamp": self.timestamp.to_dict() if self.timestamp is not None else None,
            "md_algorithm": self.md_algorithm, "signing_policy": self.signing_policy, "policy_ok": self.policy_ok,
            "remote_key": self.remote_key, "revocation": [c.to_dict() for c in self.revocation],
            "problems": list(self.problems), "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class VerificationReport:
    """The verdict over a document: ``valid`` only if it has signatures, no problem, and every one is ok."""

    document_sha256: str | None
    signatures: tuple[SignatureReport, ...]
    problems: tuple[str, ...] = ()  # document-level problems (no signatures, bytes no signature covers...)
    warnings: tuple[str, ...] = ()  # document-level warnings

    @property
    def valid(self) -> bool:
        return bool(self.signatures) and not self.problems and all(s.ok for s in self.signatures)

    def reasons(self) -> list[str]:
        """Why the document is not valid, in words (empty only when it is valid)."""
        if self.valid:
            return []
        out = list(self.problems)
        out += [f"{s.label}: {p}" for s in self.signatures for p in s.problems]
        if not out:
            out.append("the document has no signatures" if not self.signatures else "no valid signature")
        return out

    def all_warnings(self) -> list[str]:
        """Document-level warnings, then every signature's, labelled."""
        return list(self.warnings) + [f"{s.label}: {w}" for s in self.signatures for w in s.warnings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "document_sha256": self.document_sha256,
            "signatures": [s.to_dict() for s in self.signatures],
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "reasons": self.reasons(),
        }

    def raise_for_invalid(self) -> None:
        if not self.valid:
            raise VerificationFailed("verification failed: " + "; ".join(self.reasons()), self)


def iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC)
    return t.isoformat()


def subject_of(cert: Any) -> str | None:
    return str(cert.subject.human_friendly) if cert is not None else None


def timestamp_report(ts: Any) -> TimestampReport | None:
    """From a pyHanko TimestampSignatureStatus (or None)."""
    if ts is None:
        return None
    return TimestampReport(
        time=iso(getattr(ts, "timestamp", None)),
        tsa_subject=subject_of(getattr(ts, "signing_cert", None)),
        intact=bool(ts.intact), valid=bool(ts.valid), trusted=bool(ts.trusted),
    )


def chain_subjects(status: Any) -> tuple[str, ...]:
    path = getattr(status, "validation_path", None)
    if path is None:
        return ()
    # a ValidationPath runs from the trust anchor to the leaf; reports read signer first
    return tuple(str(c.subject.human_friendly) for c in reversed(list(path.iter_certs(include_root=True))))
