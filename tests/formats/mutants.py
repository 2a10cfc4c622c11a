"""Deterministic mutants of sample PDFs: seeded byte flips, truncations, xref surgery, broken startxref and
/Prev offsets, token splices, deep nesting.  The same seed always gives the same bytes, so a failure names a
mutant that can be rebuilt and debugged.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

from . import hostile

_XREF_ROW = re.compile(rb"\d{10} \d{5} [nf]\s*\r?\n")
_STARTXREF_NUM = re.compile(rb"startxref\s+(\d+)")
_PREV = re.compile(rb"/Prev (\d+)")
_SPLICES = (b"<<", b">>", b"[", b"]", b"(", b")", b"<", b">", b"endobj", b"stream\n", b"endstream", b"obj",
            b"%%EOF", b"xref", b"trailer", b"0 R", b"-1", b"99999999999", b"/Length 1", b"\\", b"%", b"\x00")


def _flips(rng: random.Random, data: bytes, n: int) -> Iterator[tuple[str, bytes]]:
    for i in range(n):
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(b))
            b[pos] = rng.randrange(256) if rng.random() < 0.5 else b[pos] ^ (1 << rng.randrange(8))
        yield f"flip-{i}", bytes(b)


def _truncations(rng: random.Random, data: bytes, n: int) -> Iterator[tuple[str, bytes]]:
    for i in range(n):
        cut = rng.randrange(16, len(data))
        tail = b"\n%%EOF\n" if i % 2 else b""  # half of them pass the cheap end-of-file check
        yield f"truncate-{i}", data[:cut] + tail


def _xref_surgery(rng: random.Random, data: bytes, n: int) -> Iterator[tuple[str, bytes]]:
    rows = list(_XREF_ROW.finditer(data))
    if not rows:
        return
    for i in range(n):
        row = rows[rng.randrange(len(rows))]
        op = i % 3
        if op == 0:  # removed entry
            out = data[:row.start()] + data[row.end():]
        elif op == 1:  # duplicated entry
            out = data[:row.end()] + row.group() + data[row.end():]
        else:  # entry pointing somewhere else
            off = rng.choice([0, 1, len(data) - 1, len(data) * 2, rng.randrange(len(data))])
            out = data[:row.start()] + b"%010d 00000 n \n" % (off % 10**10) + data[row.end():]
        yield f"xref-{('removed', 'duplicated', 'moved')[op]}-{i}", out


def _offsets(rng: random.Random, data: bytes, pattern: re.Pattern[bytes], what: str,
             n: int) -> Iterator[tuple[str, bytes]]:
    hits = list(pattern.finditer(data))
    if not hits:
        return
    for i in range(n):
        m = hits[rng.randrange(len(hits))]
        value = int(m.group(1))
        new = rng.choice([b"-%d" % rng.randrange(1, 10**6), b"%d" % (value + rng.randint(-40, 40)), b"0",
                          b"%d" % (len(data) + rng.randrange(10**6)), b"%d" % value * 3, b"-0", b"1e9",
                          b"%d" % rng.randrange(len(data))])
        yield f"{what}-{i}", data[:m.start(1)] + new + data[m.end(1):]


def _splices(rng: random.Random, data: bytes, n: int) -> Iterator[tuple[str, bytes]]:
    for i in range(n):
        pos = rng.randrange(len(data))
        tok = rng.choice(_SPLICES) * rng.choice([1, 1, 2, 50])
        drop = rng.randint(0, 4)
        yield f"splice-{i}", data[:pos] + tok + data[pos + drop:]


def mutants(seeds: dict[str, bytes], per_seed: int, seed: int = 2025) -> list[tuple[str, bytes]]:
    """About ``per_seed`` mutants of every seed document, plus the structural hostile cases."""
    out: list[tuple[str, bytes]] = []
    for name, data in sorted(seeds.items()):
        rng = random.Random(f"{seed}/{name}")
        k = max(1, per_seed // 10)
        parts = [
            _flips(rng, data, 4 * k),
            _truncations(rng, data, k),
            _xref_surgery(rng, data, k),
            _offsets(rng, data, _STARTXREF_NUM, "startxref", k),
            _offsets(rng, data, _PREV, "prev", k),
            _splices(rng, data, 2 * k),
        ]
        for part in parts:
            out.extend((f"{name}:{label}", b) for label, b in part)
        for depth in (300, 1000, 5000):
            for kind in ("array", "dict", "mixed"):
                out.append((f"{name}:deep-{kind}-{depth}", hostile.deep_nesting(data, depth, kind)))
        out.append((f"{name}:deep-signature-value", hostile.deep_signature_value(data, 1000)))
    out.append(("objstm-self-reference", hostile.self_referencing_object_stream()))
    out.extend((f"corpus:{n}", b) for n, b in hostile.corpus_files())
    return out
