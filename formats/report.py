"""Verification reports: frozen dataclasses built from pyHanko statuses, JSON-ready through ``to_dict``."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
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


@dataclass(frozen=True)
class SignatureReport:
    """One signature (or document timestamp) and everything a person needs to judge it."""

    field_name: str | None
    kind: str  # "signature" (PAdES / CMS) | "document-timestamp"
    signer_subject: str | None
    chain: tuple[str, ...]  # subjects, signer first, trust anchor last (empty when no path was found)
    intact: bool  # the signed bytes hash to the signed digest
    valid: bool  # the cryptographic signature verifies
    trusted: bool  # a path to one of the trust roots was validated
    coverage: str | None  # ENTIRE_FILE / ENTIRE_REVISION / CONTIGUOUS_BLOCK_FROM_START / UNCLEAR (PDF only)
    modification_level: str | None  # NONE / LTA_UPDATES / FORM_FILLING / ANNOTATIONS / OTHER (PDF only)
    docmdp_ok: bool | None
    signing_time: str | None  # signer-reported (not proof), ISO 8601
    timestamp: TimestampReport | None
    md_algorithm: str | None
    problems: tuple[str, ...]  # human-readable reasons when not ok

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class VerificationReport:
    """The verdict over a document: ``valid`` only if it has signatures and every one is ok."""

    document_sha256: str | None
    signatures: tuple[SignatureReport, ...]
    problems: tuple[str, ...] = ()  # document-level problems (e.g. no signatures)

    @property
    def valid(self) -> bool:
        return bool(self.signatures) and not self.problems and all(s.ok for s in self.signatures)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["valid"] = self.valid
        for s, sd in zip(self.signatures, d["signatures"], strict=True):
            sd["ok"] = s.ok
            sd["chain"] = list(s.chain)
            sd["problems"] = list(s.problems)
        d["problems"] = list(self.problems)
        return d

    def raise_for_invalid(self) -> None:
        if not self.valid:
            reasons = list(self.problems) + [p for s in self.signatures for p in s.problems]
            raise VerificationFailed("verification failed: " + "; ".join(reasons or ["no valid signature"]), self)


def iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC)
    return t.isoformat()


def timestamp_report(ts: Any) -> TimestampReport | None:
    """From a pyHanko TimestampSignatureStatus (or None)."""
    if ts is None:
        return None
    cert = getattr(ts, "signing_cert", None)
    return TimestampReport(
        time=iso(getattr(ts, "timestamp", None)),
        tsa_subject=cert.subject.human_friendly if cert is not None else None,
        intact=bool(ts.intact), valid=bool(ts.valid), trusted=bool(ts.trusted),
    )


def chain_subjects(status: Any) -> tuple[str, ...]:
    path = getattr(status, "validation_path", None)
    if path is None:
        return ()
    # a ValidationPath runs from the trust anchor to the leaf; reports read signer first
    return tuple(c.subject.human_friendly for c in reversed(list(path.iter_certs(include_root=True))))
