"""A cheap structural pre-scan of a PDF, run before pyHanko parses anything: one pass, constant memory.

pyHanko reads strings, names and numbers one byte at a time (a 50 MB signature /Contents cost 4.4 GiB and
45 s) and parses nesting recursively (RecursionError at about a thousand levels).  The scan refuses, with an
:class:`InvalidDocument` that says what and where in words, what no real document needs:

* a hex string after ``/Contents`` longer than ``max_contents_hex`` digits (a CMS signature, with its
  certificates, timestamp and revocation data, needs far less than 512 KiB);
* any other string (hex or literal) longer than ``max_string`` bytes outside a stream;
* a name, number or keyword longer than ``max_token`` bytes, or a comment longer than that;
* arrays and dictionaries nested deeper than ``max_depth``.

Stream data is skipped (from the ``stream`` keyword to the next ``endstream``), so binary content costs a
memory search, not Python work: measured at a few milliseconds per megabyte.  The scan is a filter, not a
parser: whatever it lets through is still read under :func:`formats.failures.reading`, which turns every
parser failure (e.g. an object stream that contains itself) into InvalidDocument.

``check_bytes(data)`` is the entry point for fuzzers.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, TypeAlias

from .errors import InvalidDocument

_WSD = rb"\x00\t\n\x0c\r ()<>\[\]{}/%"  # whitespace and delimiters (ISO 32000-1 7.2.2)
_CHUNK = 1 << 20
_LOOKBACK = 64  # bytes kept before the scan position: "/Contents" before a hex string, keyword boundaries
_CLASS = bytes(0x20 if bytes([i]) in b"\x00\t\n\x0c\r ()<>[]{}/%" else 0x61 for i in range(256))
_PLAIN = re.compile(rb"(?:[^()\\]+|\\.)*", re.S)  # literal-string content up to a parenthesis
_EOL = re.compile(rb"[\r\n]")
_State: TypeAlias = Callable[[], "_State | None"]


# What changes the scanner's state, found at memory-search speed: literal-first alternatives (measured 6x
# faster than ones led by a character class); keyword boundaries are checked in Python.  An odd run of "<"
# ends in a hex string (greedy "<<" first, as PDF lexers read it); even runs are only dictionaries.
_STATE = re.compile(rb"\(|%|<(?<!<<)(?:<<)*(?!<)|stream[ \t]{0,16}(?:\r\n|\n|\r)|endobj")
_KEEP = 32  # bytes kept at the end of the buffer: room for a split "stream  \r\n" or "<<<"
_BRACKETS = re.compile(rb"\[|\]|<<|>>")
_BEFORE_KEYWORD = frozenset(b"\x00\t\n\x0c\r >])")


@functools.lru_cache(maxsize=8)
def _long_run(max_token: int) -> re.Pattern[bytes]:
    """A regular run longer than ``max_token`` that starts after a delimiter (search), or at the start of a
    segment (match): what follows a state's end (e.g. "endstreamXXXX...") is measured from there."""
    return re.compile(rb"(?<![^" + _WSD + rb"])[^" + _WSD + rb"]{%d,}" % max_token)


@functools.lru_cache(maxsize=8)
def _long_run_here(max_token: int) -> re.Pattern[bytes]:
    return re.compile(rb"[^" + _WSD + rb"]{%d,}" % max_token)


@dataclass(frozen=True)
class Limits:
    """Bounds of the pre-scan (defaults fit every real document we know of by a wide margin)."""

    max_contents_hex: int = 2 * 512 * 1024  # hex digits of a /Contents string: 512 KiB of DER
    max_string: int = 2 * 512 * 1024  # bytes of any other string outside streams
    max_token: int = 64 * 1024  # bytes of a name, number, keyword or comment
    max_depth: int = 256  # nesting of arrays and dictionaries


DEFAULT_LIMITS = Limits()


class _Scan:
    def __init__(self, f: BinaryIO, name: str, limits: Limits) -> None:
        self.f, self.name, self.lim = f, name, limits
        self.buf = b""
        self.base = 0  # file offset of buf[0]
        self.pos = 0
        self.eof = False
        self.depth = 0

    def refuse(self, what: str, at: int) -> InvalidDocument:
        return InvalidDocument(f"{self.name} is refused: it has {what} (at byte {at})")

    def more(self, keep_from: int) -> bool:
        """Drop what is scanned (keeping a little context), read the next chunk; False at end of file."""
        if self.eof:
            return False
        keep_from = max(0, min(keep_from, self.pos) - _LOOKBACK)
        data = self.f.read(_CHUNK)
        self.base += keep_from
        self.pos -= keep_from
        self.buf = self.buf[keep_from:] + data
        if not data:
            self.eof = True
        return bool(data)

    def run(self) -> None:
        self.more(0)
        step: _State | None = self.scan_normal
        while step is not None:
            step = step()

    # -- states: each returns the next state's method, or None at the end of the file

    def scan_normal(self) -> _State | None:
        seg = self.pos  # start of the plain text not yet counted
        while True:
            m = _STATE.search(self.buf, self.pos)
            if m is None or (m.end() == len(self.buf) and not self.eof):
                tail = self._tail_start(seg)  # a run split by the read is measured whole, in the next segment
                self.pos = tail if m is None else min(m.start(), tail)
                self._plain(seg, self.pos)
                if not self.more(self.pos):
                    self._plain(self.pos, len(self.buf))  # the end of the file: what was kept for a next read
                    return None
                seg = self.pos
                continue
            tok = m.group()
            if tok[0] in b"se" and not self._keyword(m):  # "stream"/"endobj" inside a longer token
                self.pos = m.start() + 1
                continue
            self._plain(seg, m.start())
            self.pos = m.end()
            nxt = self._token(m.start(), tok)
            if nxt is not None:
                return nxt
            seg = self.pos

    def _keyword(self, m: re.Match[bytes]) -> bool:
        before = self.buf[m.start() - 1] if m.start() else 0x20
        after = self.buf[m.end()] if m.end() < len(self.buf) else 0x20
        if m.group()[0] == 0x73:  # stream: after a dictionary, then an end of line (in the match)
            return before in _BEFORE_KEYWORD
        return before in _BEFORE_KEYWORD and bytes([after]) in b"\x00\t\n\x0c\r ()<>[]{}/%"

    def _plain(self, start: int, end: int) -> None:
        """Count nesting in plain text (no strings, comments or streams) and look for overlong tokens."""
        if end <= start:
            return
        buf = self.buf
        if end - start >= self.lim.max_token:
            m = (_long_run_here(self.lim.max_token).match(buf, start, end)
                 or _long_run(self.lim.max_token).search(buf, start, end))
            if m is not None:
                raise self.refuse(f"a name, number or keyword longer than {self.lim.max_token} bytes",
                                  self.base + m.start())
        opens = buf.count(b"[", start, end) + buf.count(b"<<", start, end)
        closes = buf.count(b"]", start, end) + buf.count(b">>", start, end)
        # neither overflow nor a stray closing bracket clamped at 0 is possible here: count, do not walk
        if self.depth + opens <= self.lim.max_depth and closes <= self.depth:
            self.depth += opens - closes
            return
        for b in _BRACKETS.finditer(buf, start, end):
            if b.group() in (b"[", b"<<"):
                self.depth += 1
                if self.depth > self.lim.max_depth:
                    raise self.refuse(f"arrays or dictionaries nested deeper than {self.lim.max_depth} levels",
                                      self.base + b.start())
            else:
                self.depth = max(0, self.depth - 1)

    def _token(self, start: int, tok: bytes) -> _State | None:
        at = self.base + start
        if tok[0] == 0x3C:  # an odd run of "<": dictionaries, then a hex string
            self._plain(start, start + len(tok) - 1)
            return self.hex_string(self.base + start + len(tok) - 1, self._after_contents(start))
        if tok == b"(":
            return self.literal_string(at)
        if tok == b"%":
            return self.comment(at)
        self.depth = 0  # stream data follows a closed dictionary; an object has ended
        return self.stream if tok[0] == 0x73 else None

    def _tail_start(self, seg: int) -> int:
        """Where an unfinished token at the end of the buffer may start (a regular run, "stream\\r", "<"), not
        before ``seg`` (the start of the plain text not yet counted; ``self.pos`` may sit inside that run)."""
        cut = self._run_cut(seg)
        # "<<" and ">>" are never split between two reads (each part would count one bracket fewer):
        # a run of "<" is read whole (its parity also says whether a hex string follows: an odd run ends in
        # one), a run of ">" is cut after a whole number of pairs from its start.  A run longer than
        # 2 * max_depth + 2 is deeper nesting than allowed ("<"), or closes every open level whatever its
        # parity (">").
        longest = 2 * self.lim.max_depth + 2
        tail = self.buf[max(seg, cut - longest - 2):cut]
        opens = len(tail) - len(tail.rstrip(b"<"))
        if opens > longest:
            raise self.refuse(f"arrays or dictionaries nested deeper than {self.lim.max_depth} levels",
                              self.base + cut - opens)
        if opens:
            return cut - opens
        closes = len(tail) - len(tail.rstrip(b">"))
        if closes < len(tail) or len(tail) < longest:  # the run's start is in view
            return cut - closes % 2
        return cut

    def _run_cut(self, seg: int) -> int:
        window = self.buf[-(self.lim.max_token + 16):].translate(_CLASS)
        last_delimiter = window.rfind(b" ")
        if last_delimiter < 0 and len(window) > self.lim.max_token:  # the run goes on past the window
            raise self.refuse(f"a name, number or keyword longer than {self.lim.max_token} bytes",
                              self.base + len(self.buf) - len(window))
        off = len(self.buf) - len(window)
        run_start = off + last_delimiter + 1
        cut = len(self.buf) - _KEEP  # room for a split "stream  \r\n"
        if run_start <= cut:
            return max(seg, run_start)
        # the last run is short: cut _KEEP bytes before the end, but never inside a run that straddles the cut
        # (its two parts would be measured apart): at that run's start, looked for up to max_token bytes back
        # (plain text only: what lies before ``seg`` was a string, comment or stream)
        lo = max(seg, cut - self.lim.max_token - 1)
        if cut <= lo:
            return seg
        d = self.buf[lo:cut].translate(_CLASS).rfind(b" ")
        if d >= 0:
            return lo + d + 1
        if lo > seg:  # max_token + 1 regular bytes before the cut
            raise self.refuse(f"a name, number or keyword longer than {self.lim.max_token} bytes", self.base + lo)
        return seg

    def _after_contents(self, i: int) -> bool:
        return self.buf[max(0, i - _LOOKBACK):i].rstrip().endswith(b"/Contents")

    def hex_string(self, start: int, contents: bool) -> _State | None:
        limit = self.lim.max_contents_hex if contents else self.lim.max_string
        while True:
            end = self.buf.find(b">", self.pos)
            if end >= 0 and end - (start - self.base) - 1 <= limit:
                self.pos = end + 1
                return self.scan_normal
            if self.base + len(self.buf) - start - 1 > limit:
                if contents:
                    raise self.refuse(f"a signature value (/Contents) longer than {limit} hex digits, more than "
                                      f"any CMS signature needs ({limit // 2} bytes)", start)
                raise self.refuse(f"a hex string longer than {limit} bytes", start)
            self.pos = len(self.buf)
            if not self.more(self.pos):
                return None

    def literal_string(self, start: int) -> _State | None:
        depth = 1
        while True:
            m = _PLAIN.match(self.buf, self.pos)
            self.pos = m.end() if m is not None else self.pos  # it always matches, if only emptily
            if self.base + self.pos - start > self.lim.max_string:
                raise self.refuse(f"a string longer than {self.lim.max_string} bytes", start)
            if self.pos >= len(self.buf) or self.buf[self.pos] == 0x5C:  # end of buffer, or a split escape
                if not self.more(self.pos):
                    return None
                continue
            depth += 1 if self.buf[self.pos] == 0x28 else -1
            self.pos += 1
            if depth == 0:
                return self.scan_normal

    def comment(self, start: int) -> _State | None:
        while True:
            m = _EOL.search(self.buf, self.pos)
            if m is not None and self.base + m.start() - start <= self.lim.max_token:
                self.pos = m.end()
                return self.scan_normal
            if self.base + len(self.buf) - start > self.lim.max_token:
                raise self.refuse(f"a comment longer than {self.lim.max_token} bytes", start)
            self.pos = len(self.buf)
            if not self.more(self.pos):
                return None

    def stream(self) -> _State | None:
        while True:
            end = self.buf.find(b"endstream", self.pos)
            if end >= 0:
                self.pos = end + len(b"endstream")
                return self.scan_normal
            self.pos = max(self.pos, len(self.buf) - _KEEP)
            if not self.more(self.pos):
                return None


def scan(f: BinaryIO, name: str = "the document", limits: Limits = DEFAULT_LIMITS) -> None:
    """Pre-scan ``f`` from its start; InvalidDocument for anything beyond ``limits``.  Leaves ``f`` at 0."""
    f.seek(0)
    try:
        _Scan(f, name, limits).run()
    finally:
        f.seek(0)


def check_bytes(data: bytes, name: str = "the document", limits: Limits = DEFAULT_LIMITS) -> None:
    """:func:`scan` over bytes in memory (for fuzzers and callers that hold the document already)."""
    scan(io.BytesIO(data), name, limits)
