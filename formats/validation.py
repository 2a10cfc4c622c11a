"""Verification settings and what pyHanko needs from them: trust, validation time, revocation sources.

pyHanko validates signatures and certificate paths with revocation checking switched off here
(``NO_REVOCATION``): :mod:`formats.revocation` then checks every certificate of every validated path itself,
embedded data first, so that each unsettled certificate can be named with the reason in words.

``revocation="online"`` fetches OCSP/CRL named in the certificates (and missing issuers named in AIA), with
``fetch_timeout`` per request; ``"offline"`` fetches nothing.  A ``validation_time`` validates as of that
moment (pyHanko's ``moment``); it cannot fetch, so it implies offline revocation with embedded data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from asn1crypto import crl, ocsp, x509
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.fetchers import Fetchers
from pyhanko_certvalidator.policy_decl import NO_REVOCATION, CertRevTrustPolicy

from .errors import InvalidOptions
from .failures import PARSE_ERRORS

Revocation = Literal["online", "offline"]

# A signer certificate needs digitalSignature or nonRepudiation (either one: ETSI EN 319 412-2 allows both).
SIGNER_KEY_USAGE = KeyUsageConstraints(key_usage={"digital_signature", "non_repudiation"},
                                       match_all_key_usages=False)
_NO_REVOCATION = CertRevTrustPolicy(NO_REVOCATION)


def load_certs(ders: Iterable[bytes | x509.Certificate], what: str) -> list[x509.Certificate]:
    out = []
    for d in ders:
        if isinstance(d, x509.Certificate):
            out.append(d)
            continue
        try:
            c = x509.Certificate.load(bytes(d))
            c.native  # noqa: B018 - parse fully now
        except PARSE_ERRORS as e:
            raise InvalidOptions(f"{what}: not a DER X.509 certificate") from e
        out.append(c)
    return out


@dataclass(frozen=True)
class Evidence:
    """Revocation data and certificates found in the document (CMS attributes, timestamp tokens, the DSS)."""

    certs: tuple[x509.Certificate, ...] = ()
    crls: tuple[crl.CertificateList, ...] = ()
    ocsps: tuple[ocsp.OCSPResponse, ...] = ()

    def __add__(self, other: Evidence) -> Evidence:
        return Evidence(self.certs + other.certs, self.crls + other.crls, self.ocsps + other.ocsps)


@dataclass(frozen=True)
class Settings:
    trust_roots: tuple[x509.Certificate, ...]
    other_certs: tuple[x509.Certificate, ...] = ()
    revocation: Revocation = "online"
    validation_time: dt.datetime | None = None
    fetch_timeout: float = 10.0
    fetchers: Fetchers | None = field(default=None, compare=False)

    @classmethod
    def make(
        cls, trust_roots: Iterable[bytes | x509.Certificate], *, revocation: str, validation_time: dt.datetime | None,
        other_certs: Iterable[bytes | x509.Certificate], fetch_timeout: float,
    ) -> Settings:
        if revocation not in ("online", "offline"):
            raise InvalidOptions(f"revocation must be 'online' or 'offline', not {revocation!r}")
        if validation_time is not None and validation_time.utcoffset() is None:
            raise InvalidOptions("validation_time must be an aware datetime (with a time zone)")
        if not fetch_timeout > 0:
            raise InvalidOptions("fetch_timeout must be a positive number of seconds")
        roots = tuple(load_certs(trust_roots, "trust root"))
        if not roots:
            raise InvalidOptions("at least one trust root is needed")
        return cls(roots, tuple(load_certs(other_certs, "other certificate")),
                   "online" if revocation == "online" else "offline", validation_time, fetch_timeout)

    @property
    def fetching(self) -> bool:
        return self.revocation == "online" and self.validation_time is None

    def context(self, evidence: Evidence = Evidence(), *, fetch: bool = False,
                registry: Any = None) -> ValidationContext:
        """A context trusting exactly the roots; revocation data as given; fetching only when asked."""
        kwargs: dict[str, Any] = {}
        if fetch and self.fetchers is not None:
            kwargs = {"allow_fetching": True, "fetchers": self.fetchers}
        if registry is not None:
            kwargs["certificate_registry"] = registry
        else:
            kwargs["other_certs"] = list(self.other_certs + evidence.certs)
        return ValidationContext(
            trust_roots=list(self.trust_roots), moment=self.validation_time, revinfo_policy=_NO_REVOCATION,
            crls=list(evidence.crls), ocsps=list(evidence.ocsps), **kwargs,
        )


@asynccontextmanager
async def session(settings: Settings) -> AsyncIterator[Settings]:
    """``settings`` with fetchers for online checks, closed (with their HTTP session) at the end."""
    if not settings.fetching:
        yield settings
        return
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

    backend = AIOHttpFetcherBackend(per_request_timeout=settings.fetch_timeout)
    try:
        yield Settings(settings.trust_roots, settings.other_certs, settings.revocation, settings.validation_time,
                       settings.fetch_timeout, backend.get_fetchers())
    finally:
        await backend.close()  # type: ignore[no-untyped-call]


def cms_evidence(signed_data: Any) -> Evidence:
    """Certificates and revocation data carried by a CMS SignedData: its ``certificates`` and ``crls`` fields
    (CRLs and OCSP responses, RFC 5940), the Adobe revocation-info attribute, and the same again inside a
    signature timestamp token.  Raises a parser error on malformed structures (callers then use none of it:
    data that cannot be read settles nothing)."""
    certs: list[x509.Certificate] = []
    crls: list[crl.CertificateList] = []
    ocsps: list[ocsp.OCSPResponse] = []
    todo = [signed_data]
    while todo:
        sd = todo.pop()
        for choice in sd["certificates"] or ():
            if choice.name == "certificate":
                certs.append(choice.chosen)
        for choice in sd["crls"] or ():
            if choice.name == "crl":
                crls.append(choice.chosen)
            elif choice.name == "other" and choice.chosen["other_rev_info_format"].native == "ocsp_response":
                ocsps.append(ocsp.OCSPResponse.load(choice.chosen["other_rev_info"].dump()))
        for info in sd["signer_infos"]:
            for attr in info["signed_attrs"] or ():
                if attr["type"].native == "adobe_revocation_info_archival":
                    for value in attr["values"]:
                        crls.extend(value["crl"] or ())
                        ocsps.extend(value["ocsp"] or ())
            for attr in info["unsigned_attrs"] or ():
                if attr["type"].native == "signature_time_stamp_token":
                    todo.extend(tst["content"] for tst in attr["values"])
    return Evidence(tuple(certs), tuple(crls), tuple(ocsps))
