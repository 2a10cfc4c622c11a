"""Checking a PDF before any work is done on it: present, non-empty, a PDF, complete, not encrypted.

Every failure is an :class:`InvalidDocument` whose message says what is wrong in words a person can act
on; parser messages are not passed on, because they can quote bytes of the document.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader

from .errors import InvalidDocument

# The PDF header may follow some junk (ISO 32000-1 §7.5.2 readers accept up to 1024 bytes);
# %%EOF must be near the end (trailing whitespace or a short junk tail is tolerated by readers).
_HEAD_WINDOW = 1024
_TAIL_WINDOW = 2048


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


def read_pdf(f: BinaryIO, name: str = "the document", *, strict: bool = False) -> PdfFileReader:
    """Open a reader on ``f`` after the byte checks; refuse encrypted documents."""
    size = f.seek(0, os.SEEK_END)
    check_bytes(f, size, name)
    try:
        reader = PdfFileReader(f, strict=strict)
        encrypted = reader.encrypted
        if not encrypted:
            reader.root["/Pages"]  # noqa: B018 - the page tree must resolve
    except InvalidDocument:
        raise
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        raise InvalidDocument(
            f"{name} is not a readable PDF: its cross-reference table or trailer is damaged "
            f"({type(e).__name__})"
        ) from e
    if encrypted:
        raise InvalidDocument(f"{name} is encrypted; remove the password protection before signing or verifying")
    return reader


@contextmanager
def open_pdf(path: str | os.PathLike[str], name: str | None = None) -> Iterator[tuple[BinaryIO, PdfFileReader]]:
    """Open ``path`` read-only and yield (file, reader); InvalidDocument for anything unusable."""
    label = name or "the document"
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise InvalidDocument(f"{label} does not exist") from None
    except IsADirectoryError:
        raise InvalidDocument(f"{label} is a directory, not a file") from None
    except PermissionError:
        raise InvalidDocument(f"{label} cannot be read (permission denied)") from None
    try:
        yield f, read_pdf(f, label)
    finally:
        f.close()
