"""Signing details: the signing time is a parameter (exact, reproducible), and each certificate goes into the
CMS SignedData exactly once (pyHanko adds the signer certificate itself; TokenSigner must not add it again)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from asn1crypto import cms

from formats import InvalidOptions, PdfSignOptions, TokenSigner, sign_detached, sign_pdf, verify_pdf
from formats.pades import reserve_for

WHEN = dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC)


def _last_cms(pdf: bytes) -> cms.SignedData:
    start = pdf.rindex(b"/Contents <") + len(b"/Contents <")
    hexstr = pdf[start:pdf.index(b">", start)]
    return cms.ContentInfo.load(bytes.fromhex(hexstr.decode()), strict=False)["content"]  # zero padding follows


def _cert_ders(sd: cms.SignedData) -> list[bytes]:
    return [c.chosen.dump() for c in sd["certificates"]]


def _signing_time(sd: cms.SignedData) -> dt.datetime:
    (info,) = sd["signer_infos"]
    (value,) = next(a["values"] for a in info["signed_attrs"] if a["type"].native == "signing_time")
    return value.native


def test_sign_pdf_takes_the_signing_time(setup, contract, tmp_path, ca):
    out = tmp_path / "timed.pdf"
    sign_pdf(contract, out, setup.signer, PdfSignOptions(), signing_time=WHEN)
    data = out.read_bytes()
    # PAdES claims the time in the signature dictionary (/M): ETSI EN 319 142-1 forbids CMS signing-time
    assert b"/M (D\\07220250301093000Z)" in data  # "D:2025..." with the colon escaped
    attrs = {a["type"].native for a in _last_cms(data)["signer_infos"][0]["signed_attrs"]}
    assert "signing_time" not in attrs and "signing_certificate_v2" in attrs
    rep = verify_pdf(out, [ca.root_der])
    assert rep.valid and rep.signatures[0].signing_time == WHEN.isoformat()


def test_sign_detached_puts_it_in_the_signed_attributes(setup):
    sd = cms.ContentInfo.load(sign_detached(io.BytesIO(b"data"), setup.signer, signing_time=WHEN))["content"]
    assert _signing_time(sd) == WHEN


def test_naive_signing_time_is_refused(setup, contract, tmp_path):
    with pytest.raises(InvalidOptions, match="aware"):
        sign_pdf(contract, tmp_path / "x.pdf", setup.signer, PdfSignOptions(),
                 signing_time=dt.datetime(2025, 1, 1))


def test_each_certificate_once_in_pades_and_p7s(setup, contract, tmp_path, ca):
    out = tmp_path / "signed.pdf"
    sign_pdf(contract, out, setup.signer, PdfSignOptions())
    p7s = cms.ContentInfo.load(sign_detached(io.BytesIO(b"data"), setup.signer))["content"]
    for sd in (_last_cms(out.read_bytes()), p7s):
        ders = _cert_ders(sd)
        assert ders.count(setup.cert_der) == 1
        assert sorted(ders) == sorted([setup.cert_der, ca.root_der])


def test_chain_with_the_signer_and_duplicates_still_once(setup, ca, contract, tmp_path):
    signer = TokenSigner(setup.token, setup.key_id, certificate=setup.cert_der,
                         chain=[setup.cert_der, ca.root_der, ca.root_der])
    assert [c.dump() for c in signer.chain_certs] == [ca.root_der]
    out = tmp_path / "signed.pdf"
    sign_pdf(contract, out, signer, PdfSignOptions())
    der = _last_cms(out.read_bytes())
    assert sorted(_cert_ders(der)) == sorted([setup.cert_der, ca.root_der])
    assert signer.certificates_size() == len(setup.cert_der) + len(ca.root_der)
    whole = cms.ContentInfo({"content_type": "signed_data", "content": der}).dump()
    assert 2 * len(whole) <= reserve_for(signer, False)
