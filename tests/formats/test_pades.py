"""PAdES signing with token keys, checked by pdfsig (independent) and by our own verifier."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from asn1crypto import cms

from formats import PdfSignOptions, TokenSigner, sign_pdf, verify_pdf
from formats.errors import InvalidOptions
from formats.pades import reserve_for
from tests import pki


def _contents(pdf: bytes) -> cms.ContentInfo:
    """The CMS object of the last signature (hex between the /Contents angle brackets)."""
    start = pdf.rindex(b"/Contents <") + len(b"/Contents <")
    hexstr = pdf[start:pdf.index(b">", start)]
    return cms.ContentInfo.load(bytes.fromhex(hexstr.decode()), strict=False)  # zero padding follows


def test_b_b_pdfsig_accepts(setup, contract, tmp_path, nssdb):
    out = tmp_path / "signed.pdf"
    res = sign_pdf(contract, out, setup.signer, PdfSignOptions(reason="I agree", location="Beijing"))
    data = out.read_bytes()
    assert data.startswith(contract.read_bytes())  # incremental update: original bytes untouched
    assert res.sha256 == hashlib.sha256(data).hexdigest() and res.size == len(data)
    assert res.field_name == "Signature1"
    assert "Alice RSA" in res.signer_subject or "Bob ECDSA" in res.signer_subject
    v = pki.pdfsig(out, nssdb)
    assert v.ok, v.text
    assert b"/SubFilter /ETSI.CAdES.detached" in data
    algo = _contents(data)["content"]["signer_infos"][0]["signature_algorithm"]["algorithm"].native
    assert algo == ("sha256_rsa" if setup.signer.signing_cert.public_key.algorithm == "rsa" else "sha256_ecdsa")


def test_b_b_verify_pdf(setup, contract, tmp_path, ca):
    out = tmp_path / "signed.pdf"
    sign_pdf(contract, out, setup.signer, PdfSignOptions(field_name="Party A"))
    rep = verify_pdf(out, [ca.root_der])
    assert rep.valid, rep.to_dict()
    (s,) = rep.signatures
    assert (s.field_name, s.intact, s.valid, s.trusted, s.coverage) == ("Party A", True, True, True, "ENTIRE_FILE")
    assert s.modification_level == "NONE" and s.timestamp is None
    assert len(s.chain) == 2 and s.chain[0] == s.signer_subject and "Signet Test Root CA" in s.chain[1]
    assert rep.document_sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert rep.to_dict()["signatures"][0]["coverage"] == "ENTIRE_FILE"


def test_tampered_byte_is_invalid(rsa_setup, contract, tmp_path, ca, nssdb):
    out = tmp_path / "signed.pdf"
    sign_pdf(contract, out, rsa_setup.signer, PdfSignOptions())
    data = bytearray(out.read_bytes())
    i = data.index(b"Clause 1")
    data[i + 2] = ord("b")  # "Clbuse 1": same length, inside the signed byte range
    bad = tmp_path / "tampered.pdf"
    bad.write_bytes(bytes(data))
    rep = verify_pdf(bad, [ca.root_der])
    assert not rep.valid
    assert not rep.signatures[0].intact
    assert any("modified" in p for p in rep.signatures[0].problems)
    assert "Signature is Valid." not in pki.pdfsig(bad, nssdb).text


def test_untrusted_root(ec_setup, contract, tmp_path):
    out = tmp_path / "signed.pdf"
    sign_pdf(contract, out, ec_setup.signer, PdfSignOptions())
    rep = verify_pdf(out, [pki.make_ca("Unrelated Root").root_der])
    (s,) = rep.signatures
    assert s.intact and s.valid and not s.trusted and not rep.valid
    assert any("trusted root" in p for p in s.problems)


def test_second_signer_keeps_first_valid(rsa_setup, ec_setup, contract, tmp_path, ca, nssdb):
    one, two = tmp_path / "one.pdf", tmp_path / "two.pdf"
    sign_pdf(contract, one, rsa_setup.signer, PdfSignOptions())
    res = sign_pdf(one, two, ec_setup.signer, PdfSignOptions())
    assert res.field_name == "Signature2"  # first free name
    rep = verify_pdf(two, [ca.root_der])
    assert rep.valid, rep.to_dict()
    first, second = rep.signatures
    assert first.coverage == "ENTIRE_REVISION" and first.modification_level == "FORM_FILLING"
    assert second.coverage == "ENTIRE_FILE"
    assert "Alice RSA" in first.signer_subject and "Bob ECDSA" in second.signer_subject
    text = pki.pdfsig(two, nssdb).text
    assert text.count("Signature is Valid.") == 2 and text.count("Certificate is Trusted.") == 2
    with pytest.raises(InvalidOptions):
        sign_pdf(two, tmp_path / "three.pdf", ec_setup.signer, PdfSignOptions(field_name="Signature1"))


def test_visible_signature(ec_setup, contract, tmp_path, ca, nssdb):
    out = tmp_path / "visible.pdf"
    sign_pdf(contract, out, ec_setup.signer,
             PdfSignOptions(visible=True, page=1, box=(300, 60, 540, 130), reason="Approved"))
    assert verify_pdf(out, [ca.root_der]).valid
    assert pki.pdfsig(out, nssdb).ok
    from pyhanko.pdf_utils.reader import PdfFileReader

    with open(out, "rb") as f:
        r = PdfFileReader(f)
        (field,) = r.root["/AcroForm"]["/Fields"]
        widget = field.get_object()
        assert [float(x) for x in widget["/Rect"]] == [300, 60, 540, 130]
        assert widget["/P"].get_object() == r.root["/Pages"]["/Kids"][1].get_object()  # on page 2
        assert "/AP" in widget  # an appearance stream was drawn
    with pytest.raises(InvalidOptions):
        sign_pdf(contract, tmp_path / "x.pdf", ec_setup.signer, PdfSignOptions(visible=True, page=7))


def test_invisible_signature_has_empty_rect(rsa_setup, contract, tmp_path):
    out = tmp_path / "invisible.pdf"
    sign_pdf(contract, out, rsa_setup.signer, PdfSignOptions())
    from pyhanko.pdf_utils.reader import PdfFileReader

    with open(out, "rb") as f:
        (field,) = PdfFileReader(f).root["/AcroForm"]["/Fields"]
        assert [float(x) for x in field.get_object()["/Rect"]] == [0, 0, 0, 0]


def test_b_t_timestamp(setup, contract, tmp_path, ca, tsa_url, nssdb):
    out = tmp_path / "bt.pdf"
    sign_pdf(contract, out, setup.signer, PdfSignOptions(level="B-T", timestamp_url=tsa_url))
    rep = verify_pdf(out, [ca.root_der])
    assert rep.valid, rep.to_dict()
    ts = rep.signatures[0].timestamp
    assert ts is not None and ts.ok and ts.time and "Signet Test TSA" in ts.tsa_subject
    unsigned = _contents(out.read_bytes())["content"]["signer_infos"][0]["unsigned_attrs"]
    assert [a["type"].native for a in unsigned] == ["signature_time_stamp_token"]
    assert pki.pdfsig(out, nssdb).ok


def test_b_t_needs_url_and_reachable_tsa(rsa_setup, contract, tmp_path):
    from formats import SigningError

    with pytest.raises(InvalidOptions):
        PdfSignOptions(level="B-T")
    out = tmp_path / "never.pdf"
    with pytest.raises(SigningError, match="timestamp authority"):
        sign_pdf(contract, out, rsa_setup.signer,
                 PdfSignOptions(level="B-T", timestamp_url="http://127.0.0.1:9/", timestamp_timeout=2))
    assert not out.exists() and not list(tmp_path.glob(".never.pdf.*"))  # no partial output left behind


def test_reserved_space_fits(setup, ca, tsa_url, contract, tmp_path):
    """The computed /Contents reservation holds the real CMS object with room to spare, B-B and B-T."""
    for opts in (PdfSignOptions(), PdfSignOptions(level="B-T", timestamp_url=tsa_url)):
        out = tmp_path / "r.pdf"
        sign_pdf(contract, out, setup.signer, opts)
        der = _contents(out.read_bytes()).dump()
        assert 2 * len(der) <= reserve_for(setup.signer, opts.level == "B-T") < 2 * len(der) + 32 * 1024


def test_sizing_signer_never_touches_token(setup):
    sizing = TokenSigner.for_sizing(setup.cert_der, [setup.signer.chain_certs[0].dump()])
    assert sizing.token is None
    ci = asyncio.run(sizing.async_sign(b"\x00" * 32, "sha256", dry_run=True))
    assert len(ci.dump()) * 2 <= reserve_for(sizing, False)
    from formats import SigningError

    with pytest.raises(SigningError):
        asyncio.run(sizing.async_sign(b"\x00" * 32, "sha256"))


def test_in_place(rsa_setup, contract, ca):
    before = contract.read_bytes()
    sign_pdf(contract, contract, rsa_setup.signer, PdfSignOptions())
    assert contract.read_bytes().startswith(before) and verify_pdf(contract, [ca.root_der]).valid
