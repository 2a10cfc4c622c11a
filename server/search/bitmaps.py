"""Sets of contract numbers as blocked, compressed bitmaps (a small Roaring): what lets the blind index intersect
the contracts of common words, count them exactly and test membership without reading their postings.

A set is split into blocks of :data:`BLOCK` consecutive contract numbers (``doc >> 12``); in memory a block is one
Python integer (bit ``doc & 4095`` set for each member), so a union or intersection is one integer operation per
block and a count one ``int.bit_count``.  At rest a block is a container: the sorted 16-bit offsets of its members
while there are at most 63 of them (two bytes each), else the 512-byte bitmap; the length tells them apart
(an array is always shorter than 512 bytes).  A container holds contract numbers only (no term, no score): what
it reveals is what the posting rows beside it reveal.
"""

from __future__ import annotations

import bisect
import re
import sys
from array import array
from collections.abc import Iterable, Iterator

SHIFT = 12
BLOCK = 1 << SHIFT
MASK = BLOCK - 1
_BITMAP_BYTES = BLOCK // 8
_ARRAY_MAX = 63  # members of an array container (126 bytes): above, a bitmap, which decodes in one call
_NONZERO = re.compile(b"[^\x00]")
_BYTE_BITS = tuple(tuple(j for j in range(8) if b >> j & 1) for b in range(256))

Bits = dict[int, int]  # block -> its members as bits (never 0)


def encode(word: int) -> bytes:
    """The container of one block (``word`` not 0)."""
    if word.bit_count() > _ARRAY_MAX:
        return word.to_bytes(_BITMAP_BYTES, "little")
    return _pack(array("H", _offsets(word)))


def _array(blob: bytes) -> array[int]:
    offsets = array("H", blob)
    if sys.byteorder == "big":
        offsets.byteswap()
    return offsets


def _pack(offsets: array[int]) -> bytes:
    if sys.byteorder == "big":
        offsets = array("H", offsets)
        offsets.byteswap()
    return offsets.tobytes()


def with_member(blob: bytes | None, offset: int) -> bytes:
    """The container ``blob`` (None: empty) with ``offset`` added, without decoding a whole block."""
    if blob is None:
        return _pack(array("H", [offset]))
    if len(blob) == _BITMAP_BYTES:
        out = bytearray(blob)
        out[offset >> 3] |= 1 << (offset & 7)
        return bytes(out)
    offsets = _array(blob)
    i = bisect.bisect_left(offsets, offset)
    if i < len(offsets) and offsets[i] == offset:
        return blob
    if len(offsets) >= _ARRAY_MAX:
        return encode(decode(blob) | 1 << offset)
    offsets.insert(i, offset)
    return _pack(offsets)


def without_member(blob: bytes, offset: int) -> bytes | None:
    """The container ``blob`` with ``offset`` taken out (None: empty now)."""
    if len(blob) == _BITMAP_BYTES:
        return encode(decode(blob) & ~(1 << offset))
    offsets = _array(blob)
    i = bisect.bisect_left(offsets, offset)
    if i < len(offsets) and offsets[i] == offset:
        del offsets[i]
    return _pack(offsets) if offsets else None


def decode(blob: bytes) -> int:
    if len(blob) == _BITMAP_BYTES:
        return int.from_bytes(blob, "little")
    raw = bytearray(_BITMAP_BYTES)
    for offset in _array(blob):
        raw[offset >> 3] |= 1 << (offset & 7)
    return int.from_bytes(raw, "little")


def _offsets(word: int) -> Iterator[int]:
    raw = word.to_bytes(_BITMAP_BYTES, "little")
    for m in _NONZERO.finditer(raw):  # the scan for set bytes runs in C: sparse blocks cost little
        i = m.start()
        base = i * 8
        for j in _BYTE_BITS[raw[i]]:
            yield base + j


def members(bits: Bits) -> list[int]:
    """The contract numbers of a set, ascending."""
    out: list[int] = []
    for block in sorted(bits):
        base = block << SHIFT
        out.extend(base + o for o in _offsets(bits[block]))
    return out


def first(bits: Bits, n: int) -> list[int]:
    """The ``n`` smallest contract numbers of a set (all of them when fewer), ascending."""
    out: list[int] = []
    for block in sorted(bits):
        base = block << SHIFT
        for o in _offsets(bits[block]):
            if len(out) == n:
                return out
            out.append(base + o)
    return out


def from_docs(docs: Iterable[int]) -> Bits:
    out: Bits = {}
    for doc in docs:
        out[doc >> SHIFT] = out.get(doc >> SHIFT, 0) | 1 << (doc & MASK)
    return out


def count(bits: Bits) -> int:
    return sum(w.bit_count() for w in bits.values())


def has(bits: Bits, doc: int) -> bool:
    return bool(bits.get(doc >> SHIFT, 0) >> (doc & MASK) & 1)


def union(a: Bits, b: Bits) -> Bits:
    if len(a) < len(b):
        a, b = b, a
    out = dict(a)
    for block, w in b.items():
        out[block] = out.get(block, 0) | w
    return out


def intersect(a: Bits, b: Bits) -> Bits:
    if len(a) > len(b):
        a, b = b, a
    out: Bits = {}
    for block, w in a.items():
        v = b.get(block)
        if v and (x := w & v):
            out[block] = x
    return out


def difference(a: Bits, b: Bits) -> Bits:
    out: Bits = {}
    for block, w in a.items():
        x = w & ~b.get(block, 0)
        if x:
            out[block] = x
    return out
