"""The sender's create form (``multipart/form-data``): parsed here, bounded, into the service's inputs.

The body is split on its boundary by hand (exact bytes: a PDF is binary), each part's headers read with the
standard library's header parser; at most :data:`MAX_PARTS` parts, text fields at most :data:`MAX_FIELD` bytes,
one file.  The caller caps the whole body before reading it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import HTTP

from ..envelopes import DocumentInput, RecipientInput, RecipientRole, SignatureField, SigningMethod
from ..errors import InvalidArgument
from .console_pages import FIELD_DEFAULTS, ROWS

MAX_PARTS = 80
MAX_FIELD = 4096
_BOUNDARY = re.compile(r'boundary=(?:"([^"]{1,70})"|([^\s;"]{1,70}))', re.IGNORECASE)


@dataclass(frozen=True)
class Upload:
    fields: dict[str, str]
    filename: str
    content: bytes


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument(message, reason="FORM_INVALID")


def parse(content_type: str, body: bytes) -> Upload:
    """The text fields and the one file of a ``multipart/form-data`` body."""
    if not content_type.lower().startswith("multipart/form-data"):
        raise _bad("the form must be sent as multipart/form-data")
    m = _BOUNDARY.search(content_type)
    if m is None:
        raise _bad("the form has no boundary")
    delimiter = b"\r\n--" + (m.group(1) or m.group(2)).encode("latin-1")
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 2 or len(chunks) > MAX_PARTS + 2:
        raise _bad("the form cannot be read (no parts, or too many)")
    fields: dict[str, str] = {}
    filename, content, closed = "", b"", False
    for chunk in chunks[1:]:  # chunks[0] is the preamble
        if chunk.startswith(b"--"):
            closed = True
            break
        name, file, data = _part(chunk)
        if file is not None:
            if filename or content:
                raise _bad("send one document")
            filename, content = file, data
        elif len(data) > MAX_FIELD:
            raise _bad(f"the field {name[:40]!r} is too long")
        else:
            try:
                fields[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise _bad("a form field is not UTF-8 text") from None
    if not closed:
        raise _bad("the form ends early")
    return Upload(fields, filename, content)


def _part(chunk: bytes) -> tuple[str, str | None, bytes]:
    """(field name, file name or None, content) of one part (what follows its delimiter)."""
    head, sep, data = chunk.partition(b"\r\n\r\n")
    if not sep:
        raise _bad("a part of the form has no headers")
    headers = BytesHeaderParser(policy=HTTP).parsebytes(head.lstrip(b" \t").removeprefix(b"\r\n") + b"\r\n\r\n")
    name = headers.get_param("name", header="content-disposition")
    if headers.get_content_disposition() != "form-data" or not isinstance(name, str):
        raise _bad("a part of the form is not a named form field")
    return name, headers.get_filename(), data


def _number(fields: dict[str, str], key: str, label: str, *, integer: bool = False, default: str = "") -> float:
    raw = fields.get(key, "").strip() or default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise _bad(f"{label} must be a number") from None
    if not 0 <= value <= 100_000:
        raise _bad(f"{label} is out of range")
    return value


def recipients(fields: dict[str, str]) -> list[RecipientInput]:
    """The recipient rows that name a person, in row order."""
    out = []
    for i in range(1, ROWS + 1):
        person = fields.get(f"r{i}_person", "").strip()
        if not person:
            continue
        try:
            role = RecipientRole(fields.get(f"r{i}_role", "signer"))
            method = SigningMethod(fields.get(f"r{i}_method", "token"))
        except ValueError:
            raise _bad(f"recipient {i}: choose a role and a signing method from the lists") from None
        order = int(_number(fields, f"r{i}_order", f"recipient {i}'s order", integer=True, default=str(i)))
        box = None
        if role is not RecipientRole.COPY:
            page = int(_number(fields, f"r{i}_page", f"recipient {i}'s page", integer=True, default="1"))
            x1, y1, x2, y2 = (_number(fields, f"r{i}_{k}", f"recipient {i}'s {k}", default=FIELD_DEFAULTS[k])
                              for k in ("x1", "y1", "x2", "y2"))
            box = SignatureField(page, x1, y1, x2, y2)
        out.append(RecipientInput(person, role, order, method, box))
    if not out:
        raise _bad("name at least one recipient (a person id)")
    return out


def document(up: Upload) -> DocumentInput:
    """The one uploaded PDF (named after the file's base name)."""
    if not up.content:
        raise _bad("choose the PDF to send")
    if not up.content.startswith(b"%PDF-"):
        raise _bad("the document must be a PDF")
    name = re.sub(r"[^\w.\- ]", "_", up.filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()[:120] or \
        "document.pdf"
    return DocumentInput(name if name.lower().endswith(".pdf") else name + ".pdf", "application/pdf", up.content)
