"""A small, valid, multi-page text PDF written by hand: sample contracts for demos, tests and benchmarks."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence

from signet.durable import write_atomic

_PAGE_W, _PAGE_H = 595, 842  # A4 in points


def _pdf_text(s: str) -> bytes:
    """A PDF literal string in WinAnsi (Helvetica's encoding): escape delimiters, replace the unencodable."""
    s = s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + s.encode("cp1252", errors="replace") + b")"


def _page_lines(title: str, parties: Sequence[str], page: int, pages: int) -> list[tuple[int, int, str]]:
    """(font size, leading, text) lines for one page."""
    lines: list[tuple[int, int, str]] = []
    if page == 0:
        lines.append((18, 28, title))
        lines.append((11, 18, "Between:"))
        lines.extend((11, 16, f"  {i}. {p}") for i, p in enumerate(parties, 1))
        lines.append((11, 22, ""))
    body = (
        f"Clause {page + 1}. The parties agree to the terms set out in this clause. Each party confirms "
        "that it has read and understood the agreement, that it signs of its own free will, and that "
        "an advanced electronic signature created with its hardware token has the same effect as a "
        "handwritten signature."
    )
    lines.extend((11, 15, ln) for ln in textwrap.wrap(body, 90))
    if page == pages - 1:
        lines.append((11, 30, "Signatures:"))
        lines.extend((11, 18, f"  {p}: ______________________") for p in parties)
    lines.append((9, 40, f"Page {page + 1} of {pages}"))
    return lines


def _content_stream(lines: list[tuple[int, int, str]]) -> bytes:
    out = [b"BT", f"1 0 0 1 56 {_PAGE_H - 72} Tm".encode()]
    for i, (size, leading, text) in enumerate(lines):
        if i:
            out.append(f"0 -{leading} Td".encode())
        out.append(f"/F1 {size} Tf".encode())
        out.append(_pdf_text(text) + b" Tj")
    out.append(b"ET")
    return b"\n".join(out) + b"\n"


def contract_pdf_bytes(title: str, parties: Sequence[str], pages: int = 1) -> bytes:
    """The bytes of a ``pages``-page contract naming ``parties`` (deterministic: no dates, no ids)."""
    if pages < 1:
        raise ValueError("a contract has at least one page")
    return text_pdf_bytes(title, [_page_lines(title, parties, p, pages) for p in range(pages)])


Line = tuple[int, int, str]  # font size, leading (points below the previous line), text


def text_pdf_bytes(title: str, pages: Sequence[Sequence[Line]]) -> bytes:
    """A PDF of A4 pages of Helvetica text lines, one list of lines per page (text the WinAnsi encoding cannot
    show becomes '?')."""
    if not pages:
        raise ValueError("a PDF has at least one page")
    # objects: 1 catalog, 2 pages, 3 font, 4 info, then (page, content) pairs
    objs: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        4: b"<< /Title " + _pdf_text(title) + b" /Producer (Signet samplepdf) >>",
    }
    kids = []
    for p, lines in enumerate(pages):
        page_no, content_no = 5 + 2 * p, 6 + 2 * p
        kids.append(f"{page_no} 0 R".encode())
        stream = _content_stream(list(lines))
        objs[page_no] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_PAGE_W} {_PAGE_H}] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_no} 0 R >>"
        ).encode()
        objs[content_no] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream"
    objs[2] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % len(pages)

    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objs[num] + b"\nendobj\n"
    xref_at = len(out)
    size = max(objs) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for num in range(1, size):
        out += b"%010d 00000 n \n" % offsets[num]
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref_at)
    return bytes(out)


def make_contract_pdf(
    path: str | os.PathLike[str], title: str, parties: Sequence[str], pages: int = 1
) -> None:
    """Write a sample contract PDF to ``path`` durably."""
    write_atomic(path, contract_pdf_bytes(title, parties, pages), mode=0o644)
