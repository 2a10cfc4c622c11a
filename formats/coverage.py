"""Accounting for every byte of a signed PDF: covered by a signature, or in a revision difference analysis accepted.

pyHanko judges each signature's own coverage, and treats bytes appended after the last revision that form
no reachable revision as harmless (DESIGN.md, known pitfalls).  A strict verifier cannot: such bytes are
content nobody signed that some reader might still interpret.  So, for the document as a whole:

* bytes after the end of the newest revision pyHanko reads (the ``%%EOF`` line after its cross-reference
  section) that no signature covers are a problem ("N bytes after the last revision are covered by no
  signature");
* bytes of revisions added after the last signature are acceptable only when difference analysis of that
  signature accepted them (pyHanko's ``docmdp_ok``, under :data:`formats.strict.DIFF_POLICY`), else a problem.

A signature counts only up to where its ``/ByteRange`` really signs, and only when that range is the strict
``[0 a b c]`` around its own signature value (:func:`formats.strict.signed_range`): pyHanko's "ENTIRE_FILE"
verdict, which only adds up lengths, is not trusted here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, BinaryIO

from .strict import SignedRange

_CHUNK = 1 << 16


@dataclass(frozen=True)
class Span:
    """What one intact signature (or document timestamp) covers: bytes [0, end), and the verdict on the rest."""

    end: int
    later_accepted: bool | None  # difference analysis of the revisions after this one (None: not run)


def span_of(signed: SignedRange | None, later_accepted: bool | None) -> Span | None:
    """The span of an intact signature whose range :func:`formats.strict.signed_range` accepted (None: no span)."""
    return None if signed is None else Span(signed.end, later_accepted)


def newest_revision_end(f: BinaryIO, reader: Any, size: int) -> int:
    """Offset just after the ``%%EOF`` (and one end of line) that closes the newest revision pyHanko reads."""
    xrefs = reader.xrefs
    meta = xrefs.get_xref_container_info(xrefs.total_revisions - 1)
    pos = int(meta.end_location)
    carry = b""
    while pos < size:
        f.seek(pos)
        chunk = carry + f.read(_CHUNK)
        if not chunk:
            break
        i = chunk.find(b"%%EOF")
        if i >= 0:
            end = pos - len(carry) + i + len(b"%%EOF")
            f.seek(end)
            eol = f.read(2)
            return end + (2 if eol == b"\r\n" else 1 if eol[:1] in (b"\r", b"\n") else 0)
        pos += len(chunk) - len(carry)
        carry = chunk[-4:]
    return size


def account(f: BinaryIO, reader: Any, size: int, spans: list[Span]) -> list[str]:
    """Document-level problems for bytes that no signature covers and no accepted revision explains."""
    problems = []
    newest = newest_revision_end(f, reader, size)
    last = max(spans, key=lambda s: s.end, default=None)
    covered = last.end if last is not None else 0
    tail = size - max(newest, covered)
    if tail > 0:
        problems.append(f"{tail} bytes after the last revision are covered by no signature")
    if last is not None and covered < newest and last.later_accepted is not True:
        problems.append(f"{newest - covered} bytes of revisions added after the last signature are covered by no "
                        f"signature, and difference analysis did not accept them")
    return problems
