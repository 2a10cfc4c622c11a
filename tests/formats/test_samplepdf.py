"""The hand-written sample contract is a well-formed PDF (qpdf --check) with the expected pages and text."""

from __future__ import annotations

import subprocess

import pytest

from formats.samplepdf import contract_pdf_bytes, make_contract_pdf


@pytest.mark.parametrize("pages", [1, 3, 40])
def test_qpdf_accepts_and_text_extracts(tmp_path, pages):
    p = tmp_path / "c.pdf"
    make_contract_pdf(p, "Lease (draft) \\ v2", ["Alice Example", "Bob Müller", "张三"], pages=pages)
    check = subprocess.run(["qpdf", "--check", str(p)], capture_output=True, text=True)
    assert check.returncode == 0 and "No syntax or stream encoding errors" in check.stdout, check.stdout
    npages = subprocess.run(["qpdf", "--show-npages", str(p)], capture_output=True, text=True).stdout.strip()
    assert npages == str(pages)
    text = subprocess.run(["pdftotext", str(p), "-"], capture_output=True, text=True).stdout
    assert "Lease (draft) \\ v2" in text and "Bob Müller" in text and f"Page {pages} of {pages}" in text


def test_deterministic_and_rejects_zero_pages():
    assert contract_pdf_bytes("T", ["A"], 2) == contract_pdf_bytes("T", ["A"], 2)
    with pytest.raises(ValueError):
        contract_pdf_bytes("T", ["A"], 0)
