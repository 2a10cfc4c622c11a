"""One signature's verdict, for PDF and CMS alike, in words: pyHanko's status (integrity, signature, trust,
validity at the validation time), the revocation of every certificate of its validated paths (the signer's
and its timestamp's TSA), and the Signet signing-policy rule."""

from __future__ import annotations

import datetime as dt
from typing import Any

from . import policy, revocation
from .failures import describe
from .report import SignatureReport, chain_subjects, iso, subject_of, timestamp_report
from .validation import Evidence, Settings


def _certificate_time_problem(cert: Any, moment: dt.datetime | None, who: str) -> str | None:
    when = moment or dt.datetime.now(dt.UTC)
    validity = cert["tbs_certificate"]["validity"]
    not_before, not_after = validity["not_before"].native, validity["not_after"].native
    if when > not_after:
        return f"{who} expired on {not_after.isoformat()}, before the validation time {when.isoformat()}"
    if when < not_before:
        return f"{who} is valid only from {not_before.isoformat()}, after the validation time {when.isoformat()}"
    return None


_INDICATIONS = {
    "NO_CERTIFICATE_CHAIN_FOUND": "does not chain to a trusted root",
    "CHAIN_CONSTRAINTS_FAILURE": "is not allowed to sign (key usage or path constraints)",
    "CRYPTO_CONSTRAINTS_FAILURE": "or its chain uses an algorithm that is not allowed",
    "CRYPTO_CONSTRAINTS_FAILURE_NO_POE": "or its chain uses an algorithm that is no longer allowed",
    "OUT_OF_BOUNDS_NO_POE": "was not valid at the validation time",
    "OUT_OF_BOUNDS_NOT_REVOKED": "was not valid at the validation time",
}


def _trust_problem(status: Any, moment: dt.datetime | None, who: str) -> str:
    indic = getattr(status, "trust_problem_indic", None)
    name = indic.name if indic is not None else ""
    if name != "NO_CERTIFICATE_CHAIN_FOUND":
        path = getattr(status, "validation_path", None)
        certs = list(path.iter_certs(include_root=True)) if path is not None else [status.signing_cert]
        leaf = status.signing_cert.dump()
        for cert in reversed(certs):  # the signer's certificate first
            what = who if cert.dump() == leaf else f"the CA certificate {cert.subject.human_friendly}"
            problem = _certificate_time_problem(cert, moment, what)
            if problem is not None:
                return problem
    return f"{who} " + _INDICATIONS.get(name, f"does not chain to a trusted root ({name or 'unknown reason'})")


def status_problems(status: Any, moment: dt.datetime | None, who: str = "the signer's certificate") -> list[str]:
    """What is wrong with a pyHanko signature status, in words."""
    problems = []
    if not status.intact:
        problems.append("the signed content was modified (digest mismatch)")
    if not status.valid:
        problems.append("the cryptographic signature does not verify")
    if status.intact and status.valid and not status.trusted:
        problems.append(_trust_problem(status, moment, who))
    ts = getattr(status, "timestamp_validity", None)
    if ts is not None and not (ts.intact and ts.valid and ts.trusted):
        problems.append("the signature timestamp is not valid or not trusted")
    return problems



async def judge(
    status: Any, *, kind: str, field_name: str | None, settings: Settings, evidence: Evidence, registry: Any,
    pdf_problems: tuple[str, ...] = (), coverage: str | None = None, modification_level: str | None = None,
    docmdp_ok: bool | None = None,
) -> SignatureReport:
    """The report of one signature (``kind`` "signature" or "cms") or document timestamp (a timestamp status)."""
    is_timestamp = kind == "document-timestamp"
    problems = status_problems(status, settings.validation_time,
                               "the TSA certificate" if is_timestamp else "the signer's certificate")
    problems += pdf_problems
    checked = revocation.Outcome()
    if status.trusted:
        checked += await revocation.check_path(status.validation_path, "tsa" if is_timestamp else "signer",
                                               settings, evidence, registry)
    ts = None if is_timestamp else getattr(status, "timestamp_validity", None)
    if ts is not None and ts.trusted:
        checked += await revocation.check_path(ts.validation_path, "tsa", settings, evidence, registry)
    problems += checked.problems
    verdict = policy.NO_REQUIREMENT
    if not is_timestamp and status.trusted:
        verdict = policy.check(policy.anchor_certificate(status.validation_path), status.signing_cert)
        if verdict.problem is not None:
            problems.append(verdict.problem)
    return SignatureReport(
        field_name=field_name, kind=kind, signer_subject=subject_of(status.signing_cert),
        chain=chain_subjects(status), intact=bool(status.intact), valid=bool(status.valid),
        trusted=bool(status.trusted), coverage=coverage, modification_level=modification_level, docmdp_ok=docmdp_ok,
        signing_time=iso(getattr(status, "signer_reported_dt", None)),
        timestamp=timestamp_report(status if is_timestamp else ts), md_algorithm=status.md_algorithm,
        problems=tuple(dict.fromkeys(problems)), warnings=checked.warnings, signing_policy=verdict.matched,
        policy_ok=verdict.ok, remote_key=verdict.remote_key, revocation=checked.statuses,
    )


def broken(kind: str, field_name: str | None, err: BaseException | None, why: str | None = None,
           signer_subject: str | None = None) -> SignatureReport:
    """The report of a signature that could not be validated at all."""
    return SignatureReport(
        field_name=field_name, kind=kind, signer_subject=signer_subject, chain=(), intact=False, valid=False,
        trusted=False, coverage=None, modification_level=None, docmdp_ok=None, signing_time=None, timestamp=None,
        md_algorithm=None,
        problems=(why or f"the signature could not be validated: "
                         f"{describe(err) if err is not None else 'unknown reason'}",),
    )
