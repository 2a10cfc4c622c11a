"""Revocation status of every certificate of a validated path, each settled or named with the reason.

For each certificate below the trust anchor (the signer's path, and the TSA path of every timestamp):
embedded data first (CMS revocation attributes and ``crls``, the PDF's DSS), OCSP before CRL; if that does
not settle it and fetching is allowed (online, no validation time), the OCSP responders and CRL
distribution points the certificate names, each request bounded by ``fetch_timeout``.  pyHanko's OCSP and
CRL validators do the checking (signatures, responder authorisation, freshness against the validation time).

Verdicts: revoked is always a problem naming the certificate.  Unknown is a problem online ("revocation
status of <subject> unknown: <why>"), and offline a warning ("revocation of <subject> was not checked
(offline)").  Never silence.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
from pyhanko_certvalidator.errors import (
    CRLFetchError,
    CRLNoMatchesError,
    CRLValidationError,
    OCSPFetchError,
    OCSPNoMatchesError,
    OCSPValidationError,
    RevokedError,
)
from pyhanko_certvalidator.revinfo.validate_crl import verify_crl
from pyhanko_certvalidator.revinfo.validate_ocsp import verify_ocsp_response
from pyhanko_certvalidator.util import get_ocsp_urls

from .failures import PARSE_ERRORS
from .report import CertificateStatus
from .validation import Evidence, Settings

log = logging.getLogger(__name__)
_MAX_URL = 120


@dataclass(frozen=True)
class Outcome:
    statuses: tuple[CertificateStatus, ...] = ()
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(self.statuses + other.statuses, self.problems + other.problems,
                       self.warnings + other.warnings)


@dataclass(frozen=True)
class _Verdict:
    status: str  # good | revoked | unknown
    detail: str | None  # when revoked: date and reason; when unknown: why, or None for "no data at all"


def _urls(urls: Iterable[str]) -> str:
    shown = [u if len(u) <= _MAX_URL else u[:_MAX_URL] + "..." for u in urls]
    return ", ".join(shown) or "none named"


def _failures(e: BaseException) -> str:
    msgs = [f[0] if isinstance(f, tuple) else str(f) for f in getattr(e, "failures", ())]
    return "; ".join(dict.fromkeys(m.rstrip(".") for m in msgs)) or type(e).__name__


def _revoked(e: RevokedError) -> _Verdict:
    reason = e.reason.human_friendly if e.reason is not None else "an unspecified reason"
    return _Verdict("revoked", f"revoked on {e.revocation_dt.isoformat()}, for {reason}")


def _fetch_failure(what: str, where: str, e: BaseException, timeout: float) -> str:
    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, TimeoutError | aiohttp.ClientError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, TimeoutError):
        return f"the {what} at {where} did not answer within {timeout:g} s"
    if cause is not None:
        return f"the {what} at {where} could not be reached ({type(cause).__name__})"
    return f"the {what} at {where} gave no usable answer"


@dataclass(frozen=True)
class _Source:
    server: str  # who answers
    data: str  # what they answer with
    verify: Callable[[Any, Any, Any], Awaitable[Any]]
    urls: Callable[[Any], list[str]]
    no_match: type[Exception]
    fetch_error: type[Exception]
    error: type[Exception]


_OCSP = _Source("OCSP responder", "OCSP response", verify_ocsp_response, get_ocsp_urls,
                OCSPNoMatchesError, OCSPFetchError, OCSPValidationError)
_CRL = _Source("CRL distribution point", "CRL", verify_crl,
               lambda cert: [dp.url for dp in cert.crl_distribution_points if dp.url],
               CRLNoMatchesError, CRLFetchError, CRLValidationError)


async def _ask(src: _Source, cert: Any, path: Any, vc: Any, timeout: float) -> _Verdict | str | None:
    """A verdict, a reason why ``src`` did not settle it, or None when it had no data about the certificate."""
    try:
        await src.verify(cert, path, vc)
    except RevokedError as e:
        return _revoked(e)
    except src.no_match:
        return None
    except (src.fetch_error, TimeoutError, aiohttp.ClientError) as e:
        return _fetch_failure(src.server, _urls(src.urls(cert)), e, timeout)
    except src.error as e:
        return f"the {src.data} is not acceptable: {_failures(e)}"
    except PARSE_ERRORS as e:
        log.info("malformed %s: %s", src.data, type(e).__name__)
        return f"the {src.data} is malformed ({type(e).__name__})"
    return _Verdict("good", src.data)


async def _status(cert: Any, path: Any, vc: Any, timeout: float) -> _Verdict:
    reasons = []
    for src in (_OCSP, _CRL):
        got = await _ask(src, cert, path, vc, timeout)
        if isinstance(got, _Verdict):
            return got
        if got is not None:
            reasons.append(got)
    return _Verdict("unknown", "; ".join(reasons) or None)


def _no_data(cert: Any) -> str:
    if not get_ocsp_urls(cert) and cert.crl_distribution_points_value is None:
        return "the certificate names no OCSP responder or CRL distribution point, and no revocation data for it " \
               "is embedded"
    return "no revocation data for it is embedded and none was fetched"


async def check_path(path: Any, chain: str, settings: Settings, evidence: Evidence, registry: Any) -> Outcome:
    """Settle every certificate of ``path`` below its trust anchor; ``chain`` names the path in the report."""
    if path is None:
        return Outcome()
    embedded = settings.context(evidence, registry=registry)
    fetching = settings.context(fetch=True, registry=registry) if settings.fetching else None
    out = Outcome()
    for cert in reversed(list(path.iter_certs(include_root=False))):  # the end-entity certificate first
        subject = str(cert.subject.human_friendly)
        verdict, source = await _status(cert, path, embedded, settings.fetch_timeout), "embedded"
        if verdict.status == "unknown" and fetching is not None:
            verdict, source = await _status(cert, path, fetching, settings.fetch_timeout), "fetched"
        if verdict.status == "good":
            out += Outcome((CertificateStatus(subject, chain, "good", source, verdict.detail),))
        elif verdict.status == "revoked":
            out += Outcome((CertificateStatus(subject, chain, "revoked", source, verdict.detail),),
                           problems=(f"the certificate {subject} is {verdict.detail}",))
        elif settings.fetching:
            why = verdict.detail or _no_data(cert)
            out += Outcome((CertificateStatus(subject, chain, "unknown", None, why),),
                           problems=(f"revocation status of {subject} unknown: {why}",))
        else:
            out += Outcome((CertificateStatus(subject, chain, "not-checked", None, verdict.detail),),
                           warnings=(f"revocation of {subject} was not checked (offline)",))
    return out
