"""Hand-built hostile PDFs: incremental updates with a huge /Contents, deep nesting, self-referencing object
streams, long tokens.  Each is made in memory from a sample contract in milliseconds (the 50 MB one writes
its filler in chunks, never building one 50 MB string twice).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from formats.samplepdf import contract_pdf_bytes

_STARTXREF = re.compile(rb"startxref\s+(\d+)")
_SIZE = re.compile(rb"/Size\s+(\d+)")


def base_contract() -> bytes:
    return contract_pdf_bytes("Hostile Test", ["Alice Example", "Bob Example"], pages=1)


def _last(pattern: re.Pattern[bytes], data: bytes, default: int = 0) -> int:
    found = list(pattern.finditer(data))
    return int(found[-1].group(1)) if found else default


def incremental(base: bytes, objs: dict[int, bytes], root: int = 1) -> bytes:
    """``base`` plus one incremental update (classic xref table) that (re)defines ``objs``."""
    prev = _last(_STARTXREF, base)
    size = max(_last(_SIZE, base), max(objs) + 1)
    out = bytearray(base if base.endswith(b"\n") else base + b"\n")
    offsets = {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objs[num] + b"\nendobj\n"
    xref_at = len(out)
    out += b"xref\n"
    for num in sorted(objs):
        out += b"%d 1\n%010d 00000 n \n" % (num, offsets[num])
    out += b"trailer\n<< /Size %d /Root %d 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (size, root, prev, xref_at)
    return bytes(out)


def _catalog_with(extra: bytes) -> bytes:
    return b"<< /Type /Catalog /Pages 2 0 R " + extra + b" >>"


def with_signature_dict(base: bytes, contents: bytes, sig_extra: bytes = b"") -> bytes:
    """A filled signature field whose signature dictionary has ``/Contents contents`` (raw PDF syntax)."""
    sig = (b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached /ByteRange [0 10 20 30] "
           + sig_extra + b" /Contents " + contents + b" >>")
    return incremental(base, {
        1: _catalog_with(b"/AcroForm << /Fields [21 0 R] >>"),
        20: sig,
        21: b"<< /FT /Sig /T (Sig1) /V 20 0 R /Type /Annot /Subtype /Widget /Rect [0 0 0 0] /P 5 0 R >>",
    })


def write_huge_contents(path: Path, hex_chars: int, base: bytes | None = None) -> None:
    """A PDF whose signature /Contents is ``hex_chars`` hex digits, written in 1 MiB chunks."""
    base = base if base is not None else base_contract()
    prev = _last(_STARTXREF, base)
    size = max(_last(_SIZE, base), 22)
    chunk = b"0" * (1 << 20)
    with open(path, "wb") as f:
        f.write(base if base.endswith(b"\n") else base + b"\n")
        pos = f.tell()
        offsets = {}
        for num, body in ((1, _catalog_with(b"/AcroForm << /Fields [21 0 R] >>")),
                          (21, b"<< /FT /Sig /T (Sig1) /V 20 0 R /Type /Annot /Subtype /Widget /Rect [0 0 0 0] "
                               b"/P 5 0 R >>")):
            offsets[num] = pos
            blob = b"%d 0 obj\n" % num + body + b"\nendobj\n"
            f.write(blob)
            pos += len(blob)
        offsets[20] = pos
        f.write(b"20 0 obj\n<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /ETSI.CAdES.detached "
                b"/ByteRange [0 10 20 30] /Contents <")
        left = hex_chars
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
        f.write(b"> >>\nendobj\n")
        xref_at = f.tell()
        f.write(b"xref\n")
        for num in sorted(offsets):
            f.write(b"%d 1\n%010d 00000 n \n" % (num, offsets[num]))
        f.write(b"trailer\n<< /Size %d /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n" % (size, prev, xref_at))


def deep_nesting(base: bytes, depth: int, kind: str = "array") -> bytes:
    """The catalog gains ``/Deep`` nested ``depth`` levels (arrays, dictionaries or both alternating)."""
    if kind == "array":
        value = b"[" * depth + b"1" + b"]" * depth
    elif kind == "dict":
        value = b"<< /A " * depth + b"1" + b" >>" * depth
    else:
        value = b"[<< /A " * (depth // 2) + b"1" + b" >>]" * (depth // 2)
    return incremental(base, {1: _catalog_with(b"/Deep " + value)})


def deep_signature_value(base: bytes, depth: int) -> bytes:
    """A signature dictionary whose /Reason is an array nested ``depth`` deep."""
    return with_signature_dict(base, b"<3000>", b"/Reason " + b"[" * depth + b"]" * depth)


def self_referencing_object_stream() -> bytes:
    """A PDF 1.5 file whose catalog lives in object stream 5, which the xref stream says lives in itself."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    direct = {
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
    }
    for num, body in direct.items():
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    objstm_body = b"1 0 5 40 "
    first = len(objstm_body)
    objstm_body += b"<< /Type /Catalog /Pages 2 0 R >>".ljust(40) + b"<< /Type /ObjStm >>"
    offsets[5] = len(out)
    out += (b"5 0 obj\n<< /Type /ObjStm /N 2 /First %d /Length %d >>\nstream\n" % (first, len(objstm_body))
            + objstm_body + b"\nendstream\nendobj\n")
    xref_at = len(out)
    rows = [
        (0, 0, 65535),
        (2, 5, 0),  # object 1: in object stream 5, index 0
        (1, offsets[2], 0),
        (1, offsets[3], 0),
        (0, 0, 0),
        (2, 5, 1),  # object 5: in object stream 5 -- itself
        (1, xref_at, 0),
    ]
    data = b"".join(t.to_bytes(1, "big") + f2.to_bytes(4, "big") + f3.to_bytes(2, "big") for t, f2, f3 in rows)
    out += (b"6 0 obj\n<< /Type /XRef /Size 7 /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n" % len(data)
            + data + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref_at)
    return bytes(out)


def long_token(base: bytes, kind: str, n: int) -> bytes:
    """The catalog gains one very long name, number, literal string or a comment before it."""
    if kind == "name":
        return incremental(base, {1: _catalog_with(b"/Long /" + b"N" * n)})
    if kind == "number":
        return incremental(base, {1: _catalog_with(b"/Long " + b"7" * n)})
    if kind == "string":
        return incremental(base, {1: _catalog_with(b"/Long (" + b"s" * n + b")")})
    if kind == "hex":
        return incremental(base, {1: _catalog_with(b"/Long <" + b"ab" * (n // 2) + b">")})
    return incremental(base, {1: b"%" + b"c" * n + b"\n" + _catalog_with(b"")})


def corpus_files() -> Iterator[tuple[str, bytes]]:
    """Small hostile files (a few KB each) for the seed corpus of a fuzzer."""
    base = base_contract()
    yield "deep-array.pdf", deep_nesting(base, 1000, "array")
    yield "deep-dict.pdf", deep_nesting(base, 1000, "dict")
    yield "deep-mixed-in-signature.pdf", deep_signature_value(base, 1000)
    yield "objstm-self-reference.pdf", self_referencing_object_stream()
    yield "startxref-negative.pdf", base.replace(b"startxref\n", b"startxref\n-", 1)
    start = base.rindex(b"startxref\n") + len(b"startxref\n")
    yield "startxref-beyond-eof.pdf", base[:start] + b"99999999\n%%EOF\n"
    upd = incremental(base, {1: _catalog_with(b"/Lang (en)")})
    yield "prev-negative.pdf", re.sub(rb"/Prev \d+", b"/Prev -40", upd)
    yield "prev-self.pdf", re.sub(rb"/Prev \d+", b"/Prev %d" % _last(_STARTXREF, upd), upd)
    yield "contents-not-hex.pdf", with_signature_dict(base, b"<30 82 zz>")
    yield "trailing-junk.pdf", upd + b"\x00junk after the last revision\n" * 4
