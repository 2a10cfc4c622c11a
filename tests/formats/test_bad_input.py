"""Unusable documents are refused up front with InvalidDocument, never a stack trace or a half-written file."""

from __future__ import annotations

import subprocess

import pytest

from formats import InvalidDocument, PdfSignOptions, sign_pdf, verify_pdf


def _bad(kind: str, contract, tmp_path):
    p = tmp_path / f"{kind}.pdf"
    data = contract.read_bytes()
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "not-pdf":
        p.write_bytes(b"PK\x03\x04 this is a zip, honest" * 10)
    elif kind == "truncated":
        p.write_bytes(data[: len(data) // 2])
    elif kind == "tail-cut":
        p.write_bytes(data[:-10])  # only the end-of-file marker is gone
    elif kind == "encrypted":
        subprocess.run(["qpdf", "--encrypt", "u", "o", "256", "--", str(contract), str(p)], check=True)
    elif kind == "missing":
        pass
    return p


KINDS = {"empty": "empty", "not-pdf": "not a PDF", "truncated": "truncated", "tail-cut": "truncated",
         "encrypted": "encrypted", "missing": "does not exist"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_sign_refuses(kind, rsa_setup, contract, tmp_path):
    bad = _bad(kind, contract, tmp_path)
    out = tmp_path / "out.pdf"
    with pytest.raises(InvalidDocument, match=KINDS[kind]) as ei:
        sign_pdf(bad, out, rsa_setup.signer, PdfSignOptions())
    assert not out.exists()
    assert "honest" not in str(ei.value)  # never echoes document contents


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_verify_refuses(kind, contract, tmp_path, ca):
    with pytest.raises(InvalidDocument, match=KINDS[kind]):
        verify_pdf(_bad(kind, contract, tmp_path), [ca.root_der])


def test_unsigned_pdf_is_a_report_not_an_error(contract, ca):
    rep = verify_pdf(contract, [ca.root_der])
    assert not rep.valid and rep.signatures == () and rep.problems == ("the document has no signatures",)


def test_damaged_signature_is_a_report(rsa_setup, contract, tmp_path, ca):
    out = tmp_path / "s.pdf"
    sign_pdf(contract, out, rsa_setup.signer, PdfSignOptions())
    data = bytearray(out.read_bytes())
    start = data.rindex(b"/Contents <") + len(b"/Contents <")
    data[start:start + 40] = b"0" * 40  # wreck the CMS header: unparseable signature, same length
    out.write_bytes(bytes(data))
    rep = verify_pdf(out, [ca.root_der])
    assert not rep.valid and len(rep.signatures) == 1
    assert rep.signatures[0].problems and not rep.signatures[0].intact
