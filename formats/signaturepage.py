"""A signature page appended to a PDF: the title and one labelled, empty box per signer, as one incremental update.

:func:`append_signature_page` adds an A4 page after the last one (the uploaded bytes stay an exact prefix of the
result) that shows ``title`` and, for each label in order, the label above a framed box; it returns the new bytes,
the new page (0-based) and the boxes, which become the signers' visible signature fields.  Boxes sit in two
columns; with many signers the rows get lower (at most :data:`MAX_BOXES`).  The text is Helvetica in WinAnsi
encoding (no font is embedded): characters outside it, Chinese names among them, are drawn as ``?`` -- the
signature stamp in the box names the signer from their certificate.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from .errors import InvalidOptions
from .failures import reading
from .pdfinput import read_pdf

MAX_BOXES = 50
PAGE_W, PAGE_H = 595, 842  # A4 in points
_MARGIN = 56
_TOP = PAGE_H - 140  # where the first row starts (below the title)
_GAP = 24  # between the two columns
_G: Any = generic  # pyHanko's PDF object constructors are untyped

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in points


@dataclass(frozen=True)
class SignaturePage:
    content: bytes  # the PDF with the page appended
    page: int  # the new page, 0-based (the last)
    boxes: tuple[Box, ...]  # one per label, in order


def _text(s: str) -> bytes:
    """A PDF literal string in WinAnsi (Helvetica's encoding): escape delimiters, replace the unencodable."""
    s = "".join(c if c.isprintable() else " " for c in s)
    s = s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + s.encode("cp1252", errors="replace") + b")"


def layout(n: int) -> tuple[tuple[Box, ...], int]:
    """The boxes of ``n`` signers (two columns, row by row from the top) and the label's font size."""
    rows = max(1, math.ceil(n / 2))
    row_h = min(100, (_TOP - _MARGIN) // rows)
    font = max(6, min(10, row_h // 5))
    box_h = row_h - font - 10
    col_w = (PAGE_W - 2 * _MARGIN - _GAP) // 2
    boxes = []
    for i in range(n):
        row, col = divmod(i, 2)
        x1 = _MARGIN + col * (col_w + _GAP)
        y2 = _TOP - row * row_h - font - 4
        boxes.append((x1, y2 - box_h, x1 + col_w, y2))
    return tuple(boxes), font


def _content(title: str, labels: Sequence[str], boxes: Sequence[Box], font: int) -> bytes:
    out = [b"BT /F1 16 Tf 1 0 0 1 %d %d Tm " % (_MARGIN, PAGE_H - 80) + _text(title[:200]) + b" Tj ET",
           b"BT /F1 11 Tf 1 0 0 1 %d %d Tm " % (_MARGIN, PAGE_H - 104) + _text("Signatures") + b" Tj ET",
           b"0 G 0.75 w"]
    for label, (x1, y1, x2, y2) in zip(labels, boxes, strict=True):
        fits = (x2 - x1) * 2 // font  # characters of about half an em
        out.append(b"BT /F1 %d Tf 1 0 0 1 %d %d Tm " % (font, x1, y2 + 4) + _text(label[:fits]) + b" Tj ET")
        out.append(b"%d %d %d %d re S" % (x1, y1, x2 - x1, y2 - y1))
    return b"\n".join(out) + b"\n"


def append_signature_page(pdf: bytes, title: str, labels: Sequence[str]) -> SignaturePage:
    """``pdf`` plus one incremental update appending the signature page (InvalidOptions for no labels or more than
    :data:`MAX_BOXES`; InvalidDocument for a document that cannot be read)."""
    if not 0 < len(labels) <= MAX_BOXES:
        raise InvalidOptions(f"a signature page holds 1 to {MAX_BOXES} signers' boxes")
    boxes, font = layout(len(labels))
    with reading("the document"):
        reader = read_pdf(io.BytesIO(pdf), "the document")
        w = IncrementalPdfFileWriter.from_reader(reader)
        helv = w.add_object(_G.DictionaryObject({
            generic.pdf_name("/Type"): generic.pdf_name("/Font"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
            generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
            generic.pdf_name("/Encoding"): generic.pdf_name("/WinAnsiEncoding"),
        }))
        contents = w.add_object(_G.StreamObject(stream_data=_content(title, labels, boxes, font)))
        page = _G.DictionaryObject({
            generic.pdf_name("/Type"): generic.pdf_name("/Page"),
            generic.pdf_name("/MediaBox"): generic.ArrayObject([_G.NumberObject(v) for v in (0, 0, PAGE_W, PAGE_H)]),
            generic.pdf_name("/Resources"): _G.DictionaryObject({
                generic.pdf_name("/Font"): _G.DictionaryObject({generic.pdf_name("/F1"): helv})}),
            generic.pdf_name("/Contents"): contents,
        })
        cast(Any, w).insert_page(page)
        pages = int(w.root["/Pages"]["/Count"])
        out = io.BytesIO()
        cast(Any, w).write(out)
    return SignaturePage(out.getvalue(), pages - 1, boxes)
