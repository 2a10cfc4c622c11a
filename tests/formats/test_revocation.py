"""Revocation and validation time: every certificate of every signer and TSA chain is settled, or named.

Real parts: token keys (SoftHSM), certificates from CAs whose OCSP responder and CRL server run on
127.0.0.1 (tests/formats/minipki.py), the local RFC 3161 TSA.  Nothing here asserts a wall time.
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from asn1crypto import cms

from formats import InvalidOptions, PdfSignOptions, TokenSigner, sign_detached, sign_pdf, verify_detached, verify_pdf
from tests import pki

from . import minipki

WHEN = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def _signer(setup, ca: minipki.MiniCA, cn: str, **kw) -> tuple[TokenSigner, bytes]:
    cert = minipki.token_certificate(setup.token, setup.key_id, ca, cn, **kw)
    return TokenSigner(setup.token, setup.key_id, certificate=cert, chain=ca.chain_der), cert


def _serial(cert_der: bytes) -> int:
    from cryptography import x509

    return x509.load_der_x509_certificate(cert_der).serial_number


def _signed(contract, tmp_path, signer, **opts):
    out = tmp_path / "signed.pdf"
    sign_pdf(contract, out, signer, PdfSignOptions(**opts))
    return out


def test_online_is_the_default_and_settles_every_certificate(setup, contract, tmp_path, ca, revocation_srv):
    before = revocation_srv.requests
    rep = verify_pdf(_signed(contract, tmp_path, setup.signer), [ca.root_der])
    assert rep.valid, rep.reasons()
    (s,) = rep.signatures
    assert [(c.chain, c.status, c.source) for c in s.revocation] == [("signer", "good", "fetched")]
    assert s.warnings == () and rep.all_warnings() == []
    assert revocation_srv.requests > before  # it really asked the responder


def test_tsa_chain_is_checked_too(ec_setup, contract, tmp_path, ca, tsa_url):
    rep = verify_pdf(_signed(contract, tmp_path, ec_setup.signer, level="B-T", timestamp_url=tsa_url), [ca.root_der])
    assert rep.valid, rep.reasons()
    assert {(c.chain, c.status) for c in rep.signatures[0].revocation} == {("signer", "good"), ("tsa", "good")}


def test_tsa_without_revocation_pointers_is_a_problem_online(ec_setup, contract, tmp_path, ca):
    tsa_ca = pki.make_ca("Pointerless TSA Root")  # tests.pki: certificates name no OCSP/CRL
    with pki.tsa_server(tsa_ca) as url:
        out = _signed(contract, tmp_path, ec_setup.signer, level="B-T", timestamp_url=url)
    rep = verify_pdf(out, [ca.root_der, tsa_ca.root_der])
    assert not rep.valid
    assert rep.signatures[0].problems == (
        "revocation status of Common Name: Signet Test TSA, Organization: Signet Test, Country: CN unknown: the "
        "certificate names no OCSP responder or CRL distribution point, and no revocation data for it is embedded",)
    offline = verify_pdf(out, [ca.root_der, tsa_ca.root_der], revocation="offline")
    assert offline.valid and offline.signatures[0].warnings == (
        "revocation of Common Name: Bob ECDSA, Country: CN was not checked (offline)",
        "revocation of Common Name: Signet Test TSA, Organization: Signet Test, Country: CN was not checked (offline)")


@pytest.mark.parametrize("via", ["ocsp", "crl"])
def test_revoked_signer_is_a_problem_naming_it(via, rsa_setup, contract, tmp_path, ca, revocation_srv):
    if via == "ocsp":
        signer, cert = _signer(rsa_setup, ca, "Revoked Via ocsp")
    else:  # the OCSP responder is down: the CRL must settle it
        signer, cert = _signer(rsa_setup, ca, "Revoked Via crl", ocsp_url=minipki.closed_port_url())
    revocation_srv.revoke(ca, _serial(cert))
    out = _signed(contract, tmp_path, signer)
    rep = verify_pdf(out, [ca.root_der])
    assert not rep.valid
    (problem,) = rep.signatures[0].problems
    assert problem.startswith(f"the certificate Common Name: Revoked Via {via}, Country: CN is revoked on ")
    assert problem.endswith("for a compromised key" if via == "ocsp" else "for an unspecified reason"), problem
    (status,) = rep.signatures[0].revocation
    assert status.status == "revoked" and status.source == "fetched"
    # and the same for a detached signature
    p7s = sign_detached(io.BytesIO(b"payload"), signer)
    assert not verify_detached(io.BytesIO(b"payload"), p7s, [ca.root_der]).valid


def test_certificate_without_pointers_is_unknown_online(ec_setup, contract, tmp_path):
    quiet = minipki.MiniCA("Quiet Root", None)  # no responder: its certificates name no OCSP/CRL
    signer, _ = _signer(ec_setup, quiet, "No Pointers")
    out = _signed(contract, tmp_path, signer)
    rep = verify_pdf(out, [quiet.root_der])
    assert not rep.valid
    assert rep.reasons() == [
        "signature 'Signature1': revocation status of Common Name: No Pointers, Country: CN unknown: the certificate "
        "names no OCSP responder or CRL distribution point, and no revocation data for it is embedded"]


def test_unreachable_responder_is_unknown(ec_setup, contract, tmp_path, ca):
    url = minipki.closed_port_url()
    signer, _ = _signer(ec_setup, ca, "Unreachable", ocsp_url=url, crl=False)
    rep = verify_pdf(_signed(contract, tmp_path, signer), [ca.root_der])
    assert not rep.valid
    (problem,) = rep.signatures[0].problems
    assert problem.startswith("revocation status of Common Name: Unreachable, Country: CN unknown: the OCSP "
                              f"responder at {url} could not be reached (")


def test_garbage_response_is_unknown(ec_setup, contract, tmp_path, ca, revocation_srv):
    signer, cert = _signer(ec_setup, ca, "Garbage Answer", crl=False)
    revocation_srv.answers[ca.slug].garbage.add(_serial(cert))
    rep = verify_pdf(_signed(contract, tmp_path, signer), [ca.root_der])
    (problem,) = rep.signatures[0].problems
    assert problem.startswith("revocation status of Common Name: Garbage Answer, Country: CN unknown: the OCSP "
                              "responder at http://127.0.0.1:")
    assert problem.endswith("gave no usable answer")


def test_slow_responder_is_unknown_after_fetch_timeout(ec_setup, contract, tmp_path, ca, revocation_srv):
    signer, cert = _signer(ec_setup, ca, "Slow Answer", crl=False)
    revocation_srv.answers[ca.slug].slow.add(_serial(cert))
    rep = verify_pdf(_signed(contract, tmp_path, signer), [ca.root_der], fetch_timeout=0.5)
    (problem,) = rep.signatures[0].problems
    assert problem.endswith("did not answer within 0.5 s"), problem


def test_ocsp_down_but_crl_good_settles_it(ec_setup, contract, tmp_path, ca):
    signer, _ = _signer(ec_setup, ca, "Crl Fallback", ocsp_url=minipki.closed_port_url(), crl=True)
    rep = verify_pdf(_signed(contract, tmp_path, signer), [ca.root_der])
    assert rep.valid, rep.reasons()
    assert rep.signatures[0].revocation[0].detail == "CRL"


def test_offline_fetches_nothing_and_warns(setup, contract, tmp_path, ca, revocation_srv):
    out = _signed(contract, tmp_path, setup.signer)
    before = revocation_srv.requests
    rep = verify_pdf(out, [ca.root_der], revocation="offline")
    assert revocation_srv.requests == before
    assert rep.valid and rep.problems == ()
    subject = rep.signatures[0].signer_subject
    assert rep.signatures[0].warnings == (f"revocation of {subject} was not checked (offline)",)
    assert rep.to_dict()["signatures"][0]["warnings"] == [f"revocation of {subject} was not checked (offline)"]


def _with_embedded_ocsp(p7s: bytes, response: bytes) -> bytes:
    """The same signature with an OCSP response in SignedData.crls (RFC 5940), which is not signed over."""
    ci = cms.ContentInfo.load(p7s)
    sd = ci["content"]
    sd["crls"] = [cms.RevocationInfoChoice(name="other", value=cms.OtherRevocationInfoFormat({
        "other_rev_info_format": "ocsp_response", "other_rev_info": cms.OCSPResponse.load(response)}))]
    return cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump(force=True)


def test_embedded_ocsp_settles_offline_and_revoked_embedded_is_a_problem(ec_setup, ca, revocation_srv):
    signer, cert = _signer(ec_setup, ca, "Embedded Evidence")
    p7s = sign_detached(io.BytesIO(b"content"), signer)
    good = _with_embedded_ocsp(p7s, ca.ocsp_response_for(cert))
    before = revocation_srv.requests
    rep = verify_detached(io.BytesIO(b"content"), good, [ca.root_der], revocation="offline")
    assert rep.valid and rep.all_warnings() == [], rep.to_dict()
    assert [(c.status, c.source) for c in rep.signatures[0].revocation] == [("good", "embedded")]
    online = verify_detached(io.BytesIO(b"content"), good, [ca.root_der])  # embedded first: no fetch
    assert online.valid and revocation_srv.requests == before

    revocation_srv.revoke(ca, _serial(cert))
    bad = _with_embedded_ocsp(p7s, ca.ocsp_response_for(cert))
    rep = verify_detached(io.BytesIO(b"content"), bad, [ca.root_der], revocation="offline")
    assert not rep.valid and "is revoked on" in rep.reasons()[0]


def test_dss_revocation_data_is_used(ec_setup, contract, tmp_path, ca):
    from asn1crypto import ocsp
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    signer, cert = _signer(ec_setup, ca, "Dss Evidence")
    out = _signed(contract, tmp_path, signer)
    buf = io.BytesIO(out.read_bytes())
    DocumentSecurityStore.add_dss(buf, None, ocsps=[ocsp.OCSPResponse.load(ca.ocsp_response_for(cert))])
    out.write_bytes(buf.getvalue())
    rep = verify_pdf(out, [ca.root_der], revocation="offline")
    assert rep.valid and rep.all_warnings() == [], rep.to_dict()
    (s,) = rep.signatures
    assert s.modification_level == "LTA_UPDATES" and s.docmdp_ok is True
    assert [(c.status, c.source) for c in s.revocation] == [("good", "embedded")]


def test_validation_time_checks_expiry_exactly(rsa_setup, contract, tmp_path, ca):
    expiry = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    signer, _ = _signer(rsa_setup, ca, "Short Lived", not_after=expiry)
    out = tmp_path / "s.pdf"
    sign_pdf(contract, out, signer, PdfSignOptions(), signing_time=expiry - dt.timedelta(days=30))
    before = verify_pdf(out, [ca.root_der], validation_time=expiry - dt.timedelta(days=1))
    assert before.valid, before.reasons()
    assert before.signatures[0].warnings == (  # a validation time cannot fetch: offline
        "revocation of Common Name: Short Lived, Country: CN was not checked (offline)",)
    after = verify_pdf(out, [ca.root_der], validation_time=expiry + dt.timedelta(days=1))
    assert not after.valid
    assert after.signatures[0].problems == (
        "the signer's certificate expired on 2025-01-01T00:00:00+00:00, before the validation time "
        "2025-01-02T00:00:00+00:00",)
    assert not verify_pdf(out, [ca.root_der]).valid  # and now, long after


def test_bad_arguments_are_invalid_options(setup, contract, tmp_path, ca):
    out = _signed(contract, tmp_path, setup.signer)
    with pytest.raises(InvalidOptions, match="online"):
        verify_pdf(out, [ca.root_der], revocation="sometimes")
    with pytest.raises(InvalidOptions, match="aware"):
        verify_pdf(out, [ca.root_der], validation_time=dt.datetime(2025, 1, 1))
    with pytest.raises(InvalidOptions, match="trust root"):
        verify_pdf(out, [b"not a certificate"])
    with pytest.raises(InvalidOptions, match="aware"):
        verify_detached(io.BytesIO(b"x"), b"\x30\x00", [ca.root_der], validation_time=dt.datetime(2025, 1, 1))


def test_document_timestamp_tsa_chain_is_checked(ec_setup, contract, tmp_path, ca, tsa_url):
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.signers import PdfTimeStamper
    from pyhanko.sign.timestamps import HTTPTimeStamper

    out = _signed(contract, tmp_path, ec_setup.signer)
    with open(out, "r+b") as f:
        PdfTimeStamper(HTTPTimeStamper(tsa_url)).timestamp_pdf(IncrementalPdfFileWriter(f), "sha256", in_place=True)
    rep = verify_pdf(out, [ca.root_der])
    assert rep.valid, rep.reasons()
    sig, ts = rep.signatures
    assert ts.kind == "document-timestamp" and ts.policy_ok is None  # the policy rule is for signatures only
    assert [(c.chain, c.status) for c in ts.revocation] == [("tsa", "good")]
    assert sig.modification_level == "LTA_UPDATES" and sig.docmdp_ok is True
    offline = verify_pdf(out, [ca.root_der], revocation="offline")
    assert offline.valid and len(offline.all_warnings()) == 2  # the signer, and the TSA of the document timestamp
