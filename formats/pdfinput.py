"""Checking a PDF before any work is done on it: present, non-empty, a PDF, complete, sane, not encrypted.

Order: cheap byte checks (header, end-of-file marker), the structural pre-scan (:mod:`formats.prescan`),
then pyHanko's reader under :func:`formats.failures.reading`.  Every failure is an :class:`InvalidDocument`
whose message says what is wrong in words a person can act on; parser messages are not passed on, because
they can quote bytes of the document.

Files are read through :class:`_InputFile`, whose seeks outside the file raise ValueError (as BytesIO's do)
rather than OSError: a broken startxref or /Prev offset is a damaged document, while an OSError stays what
it is, a failure of the machine.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from pyhanko.pdf_utils.reader import PdfFileReader

from . import prescan
from .errors import InvalidDocument
from .failures import reading

# The PDF header may follow some junk (ISO 32000-1 §7.5.2 readers accept up to 1024 bytes);
# %%EOF must be near the end (trailing whitespace or a short junk tail is tolerated by readers).
_HEAD_WINDOW = 1024
_TAIL_WINDOW = 2048


class _InputFile(io.FileIO):
    """A read-only file whose impossible seeks are ValueError, as for in-memory streams."""

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        try:
            return super().seek(pos, whence)
        except OSError as e:
            raise ValueError("seek outside the file") from e


def check_bytes(f: BinaryIO, size: int, name: str) -> None:
    """Cheap checks on the raw bytes: empty, header, end-of-file marker."""
    if size == 0:
        raise InvalidDocument(f"{name} is empty (0 bytes)")
    f.seek(0)
    head = f.read(_HEAD_WINDOW)
    if b"%PDF-" not in head:
        raise InvalidDocument(f"{name} is not a PDF (no %PDF- header in the first {_HEAD_WINDOW} bytes)")
    f.seek(max(0, size - _TAIL_WINDOW))
    if b"%%EOF" not in f.read():
        raise InvalidDocument(f"{name} is truncated or damaged (no %%EOF marker at the end of the file)")
    f.seek(0)


def read_pdf(f: BinaryIO, name: str = "the document", *, strict: bool = False,
             limits: prescan.Limits = prescan.DEFAULT_LIMITS) -> PdfFileReader:
    """Open a reader on ``f`` after the byte checks and the pre-scan; refuse encrypted documents."""
    size = f.seek(0, os.SEEK_END)
    check_bytes(f, size, name)
    prescan.scan(f, name, limits)
    with reading(name):
        reader = PdfFileReader(f, strict=strict)
        encrypted = reader.encrypted
        if not encrypted:
            reader.root["/Pages"]
    if encrypted:
        raise InvalidDocument(f"{name} is encrypted; remove the password protection before signing or verifying")
    return reader


def open_input(path: str | os.PathLike[str], name: str) -> BinaryIO:
    """``path`` opened for reading (buffered, with ValueError for impossible seeks); InvalidDocument if it can't be."""
    try:
        return io.BufferedReader(_InputFile(path, "r"), buffer_size=1 << 16)
    except FileNotFoundError:
        raise InvalidDocument(f"{name} does not exist") from None
    except IsADirectoryError:
        raise InvalidDocument(f"{name} is a directory, not a file") from None
    except PermissionError:
        raise InvalidDocument(f"{name} cannot be read (permission denied)") from None


@contextmanager
def open_pdf(
    source: str | os.PathLike[str] | BinaryIO, name: str | None = None
) -> Iterator[tuple[BinaryIO, PdfFileReader]]:
    """Open a path read-only (or take a seekable binary stream) and yield (file, reader)."""
    label = name or "the document"
    if isinstance(source, str | os.PathLike):
        f = open_input(source, label)
        try:
            yield f, read_pdf(f, label)
        finally:
            f.close()
    else:
        yield source, read_pdf(source, label)
