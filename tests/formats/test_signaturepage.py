"""The signature page (formats.signaturepage): appended as one incremental update, one box per label, readable by
pyHanko and poppler; a visible signature in a box shows the signer, the time and the certificate serial."""

from __future__ import annotations

import io
import shutil
import subprocess

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from formats import InvalidOptions, PdfSignOptions, sign_pdf, verify_pdf
from formats.samplepdf import contract_pdf_bytes
from formats.signaturepage import MAX_BOXES, PAGE_H, PAGE_W, append_signature_page, layout
from tests import pki

LABELS = ["Signer 1: Alice Example", "Approver 2: Bob Example", "Signer 3: 王小明"]


def _streams(obj, seen=None) -> bytes:
    """The data of a form XObject and every form it draws (the text of an appearance)."""
    seen = seen if seen is not None else set()
    obj = obj.get_object()
    if id(obj) in seen:
        return b""
    seen.add(id(obj))
    out = obj.data
    for x in obj.get("/Resources", {}).get("/XObject", {}).values():
        out += _streams(x, seen)
    return out


def test_the_page_is_appended_as_an_incremental_update() -> None:
    original = contract_pdf_bytes("Service Agreement", ["Alice Example", "Bob Example"], pages=2)
    made = append_signature_page(original, "Service Agreement (2026)", LABELS)
    assert made.content.startswith(original) and len(made.content) > len(original)
    assert made.page == 2 and len(made.boxes) == 3
    r = PdfFileReader(io.BytesIO(made.content))
    assert int(r.root["/Pages"]["/Count"]) == 3 and r.xrefs.total_revisions == 2  # one update
    page = r.root["/Pages"]["/Kids"][2].get_object()
    assert [int(v) for v in page["/MediaBox"]] == [0, 0, PAGE_W, PAGE_H]
    text = page["/Contents"].get_object().data
    assert b"(Service Agreement \\(2026\\))" in text and b"(Signer 1: Alice Example)" in text
    assert b"(Signer 3: ???)" in text  # outside WinAnsi: drawn as '?'
    for x1, y1, x2, y2 in made.boxes:  # on the page, framed, not overlapping
        assert 0 < x1 < x2 < PAGE_W and 0 < y1 < y2 < PAGE_H
        assert b"%d %d %d %d re S" % (x1, y1, x2 - x1, y2 - y1) in text
    (a, b, c) = made.boxes
    assert a[1] == b[1] and a[2] < b[0] and c[3] < a[1]  # two columns, row by row


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_poppler_reads_the_page(tmp_path) -> None:
    made = append_signature_page(contract_pdf_bytes("Lease", ["A", "B"]), "Lease", LABELS)
    (tmp_path / "p.pdf").write_bytes(made.content)
    out = subprocess.run(["pdftotext", "-f", "2", "-l", "2", str(tmp_path / "p.pdf"), "-"], capture_output=True,
                         text=True, check=True).stdout
    assert "Lease" in out and "Signer 1: Alice Example" in out and "Approver 2: Bob Example" in out


def test_many_signers_fit_and_none_or_too_many_are_refused() -> None:
    boxes, font = layout(MAX_BOXES)
    assert len(set(boxes)) == MAX_BOXES and font >= 6
    assert min(y1 for _, y1, _, _ in boxes) >= 56 and all(y2 - y1 >= 8 for _, y1, _, y2 in boxes)
    for labels in ([], ["x"] * (MAX_BOXES + 1)):
        with pytest.raises(InvalidOptions):
            append_signature_page(contract_pdf_bytes("Lease", ["A"]), "Lease", labels)


def test_a_visible_signature_in_a_box_shows_the_certificate_serial(ec_setup, tmp_path, ca, nssdb) -> None:
    made = append_signature_page(contract_pdf_bytes("Lease", ["A", "B"]), "Lease", LABELS[:2])
    src, out = tmp_path / "in.pdf", tmp_path / "out.pdf"
    src.write_bytes(made.content)
    sign_pdf(src, out, ec_setup.signer, PdfSignOptions(field_name="signet-a", visible=True, page=made.page,
                                                       box=made.boxes[1]))
    assert verify_pdf(out, [ca.root_der]).valid and pki.pdfsig(out, nssdb).ok
    with open(out, "rb") as f:
        r = PdfFileReader(f)
        (field,) = r.root["/AcroForm"]["/Fields"]
        widget = field.get_object()
        assert [int(float(v)) for v in widget["/Rect"]] == list(made.boxes[1])
        assert widget["/P"].get_object() == r.root["/Pages"]["/Kids"][made.page].get_object()
        appearance = _streams(widget["/AP"]["/N"])
    serial = format(ec_setup.signer.signing_cert.serial_number, "x")
    assert b"(Certificate serial\\072 " + serial.encode() in appearance  # pyHanko escapes the colon
