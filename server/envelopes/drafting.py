"""What a new envelope may contain: its texts, documents and recipients, checked before anything is stored.

Limits: 1 to 20 documents of at most ``max_document_bytes`` each (a PDF must be readable: its page count is
recorded), 1 to 50 recipients, each an approved person named once, routing orders from 1, at least one signer
or approver; a copy neither signs nor has a signature field; a field sits on a page every PDF of the envelope
has.  Form fields (text, date, checkbox) assigned to a signer or approver need a PDF, a name unique in the
envelope (never ``signet-...``, the signature fields' prefix) and a box on a page every PDF has;
:func:`place_form_fields` adds them, empty, to each PDF as one incremental update before the draft is stored.  A
remote signer is accepted here (the model has it) and refused when it comes to signing.  A reminder schedule is
every 1 to 365 days, at most 20 times (3 unless said).  Asked for, :func:`signature_page` appends a signature
page to each PDF (another incremental update) and gives every signer and approver without a field their box on
it.  A draft meant as a bulk-send template (:mod:`.bulk`) may name a recipient by a placeholder ``{{name}}``
instead of a person id; it cannot be sent itself.  A signature box the sender moves on a draft afterwards
(:func:`placed_field`) must also lie inside its page on every PDF and be at least 36 by 18 points; so must a form
field the sender adds or moves on a draft (:func:`placed_form_fields`), whose PDFs then get one more incremental
update with the fields taken out and placed again (:func:`refilled`).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..errors import InvalidArgument
from .model import PDF, FormField, FormFieldKind, Recipient, RecipientRole, SignatureField, SigningMethod

if TYPE_CHECKING:
    from formats.pageboxes import PageBox

MAX_DOCUMENTS = 20
MAX_RECIPIENTS = 50
MAX_TITLE = 200
MAX_MESSAGE = 4000
MAX_TAGS = 20
MAX_TAG = 50
MAX_NAME = 200
MAX_EXPIRY_DAYS = 365
MAX_REMINDERS = 20
DEFAULT_REMINDERS = 3
MAX_FORM_FIELDS = 50  # per recipient
MIN_FIELD_WIDTH, MIN_FIELD_HEIGHT = 36, 18  # points: a signature box moved on a draft is at least this large
FORM_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")  # as formats.formfields.NAME
PLACEHOLDER = re.compile(r"\{\{([A-Za-z_][A-Za-z0-9_.-]{0,63})\}\}")  # {{name}}: a bulk-send template's blank
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$")


@dataclass(frozen=True)
class Limits:
    max_document_bytes: int = 16 * 1024 * 1024
    default_expiry_days: int = 30


@dataclass(frozen=True)
class DocumentInput:
    name: str
    media_type: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class RecipientInput:
    person_id: str
    role: RecipientRole | None
    routing_order: int
    signing_method: SigningMethod | None = None
    field: SignatureField | None = None
    form_fields: tuple[FormField, ...] = ()


@dataclass(frozen=True)
class Texts:
    title: str
    message: str
    tags: tuple[str, ...]


def _bad(message: str, reason: str) -> InvalidArgument:
    return InvalidArgument(message, reason=reason)


def texts(title: str, message: str, tags: Sequence[str]) -> Texts:
    title = " ".join(title.split())
    if not 0 < len(title) <= MAX_TITLE:
        raise _bad(f"an envelope needs a title of 1 to {MAX_TITLE} characters", "TITLE_INVALID")
    if len(message) > MAX_MESSAGE or not message.replace("\n", " ").isprintable():
        raise _bad(f"the message is at most {MAX_MESSAGE} printable characters", "MESSAGE_INVALID")
    cleaned = tuple(dict.fromkeys(" ".join(t.split()) for t in tags))
    if len(cleaned) > MAX_TAGS or any(not 0 < len(t) <= MAX_TAG for t in cleaned):
        raise _bad(f"at most {MAX_TAGS} tags of 1 to {MAX_TAG} characters", "TAGS_INVALID")
    return Texts(title, message, cleaned)


def reminders(every_days: int, most: int) -> tuple[int, int]:
    """(every N days, at most M): (0, 0) for no reminders; M defaults to 3 when N is given."""
    if not every_days:
        if most:
            raise _bad("reminder_max needs reminder_every_days", "REMINDERS_INVALID")
        return 0, 0
    if not 1 <= every_days <= MAX_EXPIRY_DAYS or not 0 <= most <= MAX_REMINDERS:
        raise _bad(f"reminders come every 1 to {MAX_EXPIRY_DAYS} days, at most {MAX_REMINDERS} times",
                   "REMINDERS_INVALID")
    return every_days, most or DEFAULT_REMINDERS


def expiry_days(requested: int, limits: Limits) -> int:
    days = requested or limits.default_expiry_days
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        raise _bad(f"an envelope expires 1 to {MAX_EXPIRY_DAYS} days after it is sent", "EXPIRY_INVALID")
    return days


def page_boxes(content: bytes, name: str) -> list[PageBox]:
    """Each page's box of a PDF that passed :func:`documents`; INVALID_DOCUMENT when its page tree cannot be read."""
    from formats.errors import InvalidDocument
    from formats.pageboxes import page_boxes as read

    try:
        return read(content, f"document {name!r}")
    except InvalidDocument as e:
        raise _bad(str(e), "INVALID_DOCUMENT") from None


def pdf_pages(content: bytes, name: str) -> int:
    """The page count of a PDF that formats can read; INVALID_DOCUMENT otherwise."""
    from formats.errors import InvalidDocument
    from formats.pdfinput import read_pdf

    label = f"document {name!r}"
    try:
        reader = read_pdf(io.BytesIO(content), label)
        pages = int(reader.root["/Pages"]["/Count"])
    except InvalidDocument as e:
        raise _bad(str(e), "INVALID_DOCUMENT") from None
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _bad(f"{label} has no readable page tree", "INVALID_DOCUMENT") from None
    if pages < 1:
        raise _bad(f"{label} has no pages", "INVALID_DOCUMENT")
    return pages


def documents(docs: Sequence[DocumentInput], limits: Limits) -> list[int]:
    """Check every document; returns their page counts (0 for files other than PDF)."""
    if not 0 < len(docs) <= MAX_DOCUMENTS:
        raise _bad(f"an envelope holds 1 to {MAX_DOCUMENTS} documents", "DOCUMENTS_INVALID")
    pages = []
    for d in docs:
        if not 0 < len(d.name) <= MAX_NAME or not d.name.isprintable() or "/" in d.name or "\\" in d.name:
            raise _bad(f"a document name is 1 to {MAX_NAME} printable characters without slashes",
                       "DOCUMENT_NAME_INVALID")
        if not _MEDIA_TYPE.match(d.media_type):
            raise _bad(f"document {d.name!r}: the media type must look like application/pdf", "MEDIA_TYPE_INVALID")
        if not d.content:
            raise _bad(f"document {d.name!r} is empty", "DOCUMENT_EMPTY")
        if len(d.content) > limits.max_document_bytes:
            raise _bad(f"document {d.name!r} is {len(d.content)} bytes; the limit is {limits.max_document_bytes}",
                       "DOCUMENT_TOO_LARGE")
        pages.append(pdf_pages(d.content, d.name) if d.media_type == PDF else 0)
    return pages


def recipients(specs: Sequence[RecipientInput], pdf_pages_: Sequence[int]) -> None:
    """Structural checks of the recipient list (the people themselves are checked by the service)."""
    if not 0 < len(specs) <= MAX_RECIPIENTS:
        raise _bad(f"an envelope has 1 to {MAX_RECIPIENTS} recipients", "RECIPIENTS_INVALID")
    seen: set[str] = set()
    names: set[str] = set()
    for s in specs:
        if s.person_id in seen:
            raise _bad(f"person {s.person_id} is named twice among the recipients", "RECIPIENT_DUPLICATE")
        seen.add(s.person_id)
        if s.role is None:
            raise _bad("every recipient needs a role: signer, approver or copy", "RECIPIENT_ROLE_REQUIRED")
        if s.routing_order < 1:
            raise _bad("routing orders start at 1 (equal orders sign in parallel)", "ROUTING_ORDER_INVALID")
        if s.field is not None:
            _field(s, pdf_pages_)
        _form_fields(s, pdf_pages_, names)
    if all(s.role is RecipientRole.COPY for s in specs):
        raise _bad("an envelope needs at least one signer or approver", "SIGNER_REQUIRED")


def is_placeholder(person_id: str) -> bool:
    """A template recipient whose person id is a placeholder (filled per row by a bulk send)."""
    return PLACEHOLDER.fullmatch(person_id) is not None


def role_of(s: RecipientInput) -> RecipientRole:
    if s.role is None:  # refused by recipients() first
        raise _bad("every recipient needs a role: signer, approver or copy", "RECIPIENT_ROLE_REQUIRED")
    return s.role


def _field(s: RecipientInput, pdf_pages_: Sequence[int]) -> None:
    f = s.field
    assert f is not None  # noqa: S101 - checked by the caller
    if s.role is RecipientRole.COPY:
        raise _bad("a copy recipient never signs: it has no signature field", "FIELD_FOR_COPY")
    if not pdf_pages_:
        raise _bad("a signature field needs a PDF document", "FIELD_INVALID")
    if not 1 <= f.page <= min(pdf_pages_):
        raise _bad(f"signature field page {f.page} is not a page of every PDF (pages are numbered from 1)",
                   "FIELD_INVALID")
    if min(f.x1, f.y1) < 0 or f.x2 <= f.x1 or f.y2 <= f.y1:
        raise _bad("a signature field box needs 0 <= x1 < x2 and 0 <= y1 < y2 (points)", "FIELD_INVALID")


def placed_field(f: SignatureField, pages: Sequence[Sequence[PageBox]], who: str) -> SignatureField:
    """A signature box the sender moves on a draft (:meth:`.service.EnvelopeService.update_fields`), checked more
    strictly than at create: on a page every PDF has (``pages``: each PDF's page boxes), inside that page on every
    PDF, ``x1 < x2`` and ``y1 < y2``, at least :data:`MIN_FIELD_WIDTH` by :data:`MIN_FIELD_HEIGHT` points; its
    numbers rounded to hundredths of a point.  INVALID_ARGUMENT ``FIELD_INVALID`` otherwise."""
    return SignatureField(*_placed_box(f.page, (f.x1, f.y1, f.x2, f.y2), pages, who, "FIELD_INVALID",
                                       "a signature field"))


def _placed_box(page_: int, numbers: tuple[float, float, float, float], pages: Sequence[Sequence[PageBox]],
                who: str, reason: str, what: str) -> tuple[int, float, float, float, float]:
    if not pages:
        raise _bad(f"{what} needs a PDF document", reason)
    if not all(math.isfinite(v) for v in numbers):
        raise _bad(f"{who}: the box's coordinates must be numbers (points)", reason)
    x1, y1, x2, y2 = (round(float(v), 2) for v in numbers)
    count = min(len(p) for p in pages)
    if not 1 <= page_ <= count:
        raise _bad(f"{who}: page {page_} is not a page of every PDF (pages 1 to {count})", reason)
    if not (x1 < x2 and y1 < y2):
        raise _bad(f"{who}: the box needs x1 < x2 and y1 < y2 (points from the bottom left)", reason)
    if x2 - x1 < MIN_FIELD_WIDTH or y2 - y1 < MIN_FIELD_HEIGHT:
        raise _bad(f"{who}: the box must be at least {MIN_FIELD_WIDTH} by {MIN_FIELD_HEIGHT} points", reason)
    for boxes in pages:
        page = boxes[page_ - 1]
        if not page.holds(x1, y1, x2, y2):
            raise _bad(f"{who}: the box must lie inside page {page_} ({page.x0:g} to {page.x1:g} across, "
                       f"{page.y0:g} to {page.y1:g} up, in points)", reason)
    return page_, x1, y1, x2, y2


def _field_count(n: int) -> None:
    if n > MAX_FORM_FIELDS:
        raise _bad(f"a recipient has at most {MAX_FORM_FIELDS} form fields", "FORM_FIELD_INVALID")


def _field_name(name: str, names: set[str]) -> None:
    """A form field's name: :data:`FORM_FIELD_NAME`, never ``signet-...``, and not in ``names`` (then added)."""
    if not FORM_FIELD_NAME.match(name) or name.lower().startswith("signet-"):
        raise _bad(f"form field name {name[:70]!r}: a letter, then up to 63 letters, digits, '_' or '-', not "
                   "starting with signet- (the signature fields' names)", "FORM_FIELD_INVALID")
    if name in names:
        raise _bad(f"form field {name!r} is named twice in the envelope", "FORM_FIELD_DUPLICATE")
    names.add(name)


def placed_form_fields(recipients: Sequence[Recipient], wanted: Mapping[str, Sequence[FormField]],
                       pages: Sequence[Sequence[PageBox]]) -> dict[str, tuple[FormField, ...]]:
    """Every form field of a draft as its sender places them (:meth:`.service.EnvelopeService.update_fields`):
    ``wanted`` maps recipient ids to their fields (a recipient left out has none).  The rules of create
    (:func:`recipients`): a signer or approver of the envelope, at most :data:`MAX_FORM_FIELDS` each, a name of
    :data:`FORM_FIELD_NAME` never ``signet-...`` and unique in the envelope, a PDF; a field added or moved (its page
    or box not as stored) is also checked as :func:`placed_field` checks a signature box, its numbers rounded to
    hundredths.  The fields by recipient id (every signer and approver, ``()`` for none); INVALID_ARGUMENT
    ``FORM_FIELD_INVALID``, ``FORM_FIELD_FOR_COPY`` or ``FORM_FIELD_DUPLICATE`` otherwise."""
    by_id = {r.id: r for r in recipients}
    stored = {f.name: f for r in recipients for f in r.form_fields}
    for rid in sorted(wanted):
        r = by_id.get(rid)
        if r is None:
            raise _bad(f"{rid[:64]!r} is not a signer or approver of this envelope", "FORM_FIELD_INVALID")
        if not r.signs and wanted[rid]:
            raise _bad(f"{r.legal_name} is a copy recipient, who never signs: they fill no form fields",
                       "FORM_FIELD_FOR_COPY")
    if any(wanted.values()) and not pages:
        raise _bad("form fields need a PDF document", "FORM_FIELD_INVALID")
    names: set[str] = set()
    out: dict[str, tuple[FormField, ...]] = {}
    for r in recipients:
        if not r.signs:
            continue
        given = tuple(wanted.get(r.id, ()))
        _field_count(len(given))
        placed = []
        for f in given:
            _field_name(f.name, names)
            if not isinstance(f.kind, FormFieldKind):
                raise _bad(f"form field {f.name!r}: the kind is text, date or checkbox", "FORM_FIELD_INVALID")
            before = stored.get(f.name)
            box = (f.page, f.x1, f.y1, f.x2, f.y2)
            if before is not None and (before.page, before.x1, before.y1, before.x2, before.y2) == box:
                placed.append(f)  # where it was: as checked when it was placed
                continue
            page, x1, y1, x2, y2 = _placed_box(f.page, (f.x1, f.y1, f.x2, f.y2), pages,
                                               f"form field {f.name!r}", "FORM_FIELD_INVALID", "a form field")
            placed.append(replace(f, page=page, x1=x1, y1=y1, x2=x2, y2=y2))
        out[r.id] = tuple(placed)
    return out


def refilled(content: bytes, before: Sequence[FormField], after: Sequence[FormField], name: str) -> bytes:
    """A draft's PDF ``content`` (its form fields ``before`` placed in it) with the fields ``after`` instead: one
    incremental update taking out those removed or changed and placing those added or changed; ``content`` as it
    is when nothing changes.  INVALID_ARGUMENT ``FORM_FIELD_DUPLICATE`` when the document has a field of a new
    name already."""
    from formats.errors import FormatError
    from formats.formfields import FormField as PdfField
    from formats.formfields import replace_form_fields

    old = {f.name: f for f in before}
    new = {f.name: f for f in after}
    out = [n for n, f in old.items() if _pdf_field(new.get(n)) != _pdf_field(f)]
    put = [f for n, f in new.items() if _pdf_field(old.get(n)) != _pdf_field(f)]
    try:
        return replace_form_fields(content, out, [PdfField(f.name, f.kind.value, f.page - 1, (f.x1, f.y1, f.x2, f.y2))
                                                  for f in put])
    except FormatError as e:
        reason = "FORM_FIELD_DUPLICATE" if "already" in str(e) else "FORM_FIELD_INVALID"
        raise _bad(f"document {name!r}: {e}", reason) from None


def _pdf_field(f: FormField | None) -> tuple[object, ...] | None:
    """What of a form field is in the PDF (whether it is required is not)."""
    return None if f is None else (f.kind, f.page, f.x1, f.y1, f.x2, f.y2)


def _form_fields(s: RecipientInput, pdf_pages_: Sequence[int], names: set[str]) -> None:
    """The recipient's form fields: PDFs only, names unique in the envelope and never a signature field's."""
    if not s.form_fields:
        return
    if s.role is RecipientRole.COPY:
        raise _bad("a copy recipient never signs: it fills no form fields", "FORM_FIELD_FOR_COPY")
    if not pdf_pages_:
        raise _bad("form fields need a PDF document", "FORM_FIELD_INVALID")
    _field_count(len(s.form_fields))
    for f in s.form_fields:
        _field_name(f.name, names)
        if not 1 <= f.page <= min(pdf_pages_):
            raise _bad(f"form field {f.name!r}: page {f.page} is not a page of every PDF (pages are numbered from 1)",
                       "FORM_FIELD_INVALID")
        if min(f.x1, f.y1) < 0 or f.x2 <= f.x1 or f.y2 <= f.y1:
            raise _bad(f"form field {f.name!r}: the box needs 0 <= x1 < x2 and 0 <= y1 < y2 (points)",
                       "FORM_FIELD_INVALID")


def place_form_fields(content: bytes, specs: Sequence[RecipientInput], name: str) -> bytes:
    """``content`` (a PDF that passed :func:`documents`) plus one incremental update placing every recipient's form
    fields, empty; the uploaded bytes unchanged when there are none.  INVALID_ARGUMENT ``FORM_FIELD_DUPLICATE``
    when the document has a field of that name already."""
    from formats.errors import FormatError
    from formats.formfields import FormField as PdfField
    from formats.formfields import add_form_fields

    fields = [PdfField(f.name, f.kind.value, f.page - 1, (f.x1, f.y1, f.x2, f.y2))
              for s in specs for f in s.form_fields]
    if not fields:
        return content
    try:
        return add_form_fields(content, fields)
    except FormatError as e:
        reason = "FORM_FIELD_DUPLICATE" if "already" in str(e) else "FORM_FIELD_INVALID"
        raise _bad(f"document {name!r}: {e}", reason) from None


def prepare(docs: Sequence[DocumentInput], pages: Sequence[int], specs: Sequence[RecipientInput],
            rcpts: tuple[Recipient, ...], title: str, with_signature_page: bool,
            ) -> tuple[list[bytes], list[int], tuple[Recipient, ...]]:
    """The contents, page counts and recipients of a new draft: every PDF with the form fields placed
    (:func:`place_form_fields`) and, asked for, the signature page appended (:func:`signature_page`)."""
    contents = [place_form_fields(d.content, specs, d.name) if d.media_type == PDF else d.content for d in docs]
    if not with_signature_page:
        return contents, list(pages), rcpts
    return signature_page(docs, contents, pages, title, rcpts)


def signature_page(docs: Sequence[DocumentInput], contents: Sequence[bytes], pages: Sequence[int], title: str,
                   rcpts: Sequence[Recipient]) -> tuple[list[bytes], list[int], tuple[Recipient, ...]]:
    """Each PDF of ``contents`` plus an incremental update appending the signature page (:mod:`formats.signaturepage`):
    the title and a box per signer and approver without a field, in routing order, labelled with their role and
    legal name (none for a template's ``{{name}}`` blank); those recipients get their box on the new last page as
    their field.  INVALID_ARGUMENT ``SIGNATURE_PAGE_INVALID`` without a PDF, for PDFs of different page counts
    (the field's page is one for all of them) or when every signer has a field already."""
    from formats.errors import FormatError
    from formats.signaturepage import append_signature_page

    counts = {n for d, n in zip(docs, pages, strict=True) if d.media_type == PDF}
    if len(counts) != 1:
        raise _bad("a signature page needs a PDF document, and every PDF of the envelope the same page count",
                   "SIGNATURE_PAGE_INVALID")
    boxed = sorted((r for r in rcpts if r.role is not RecipientRole.COPY and r.field is None),
                   key=lambda r: r.routing_order)
    if not boxed:
        raise _bad("every signer and approver has a signature field already: no signature page needed",
                   "SIGNATURE_PAGE_INVALID")
    labels = [f"{r.role.value.capitalize()} {i}" + (f": {r.legal_name}" if r.legal_name else "")
              for i, r in enumerate(boxed, 1)]
    out: list[bytes] = []
    boxes: tuple[tuple[int, int, int, int], ...] = ()
    last = 0
    for d, c in zip(docs, contents, strict=True):
        if d.media_type != PDF:
            out.append(c)
            continue
        try:
            made = append_signature_page(c, title, labels)
        except FormatError as e:
            raise _bad(f"document {d.name!r}: {e}", "SIGNATURE_PAGE_INVALID") from None
        out.append(made.content)
        boxes, last = made.boxes, made.page + 1  # the same for every PDF: same labels, same page count
    fields = {r.id: SignatureField(last, *b) for r, b in zip(boxed, boxes, strict=True)}
    return (out, [n + 1 if d.media_type == PDF else n for d, n in zip(docs, pages, strict=True)],
            tuple(replace(r, field=fields[r.id]) if r.id in fields else r for r in rcpts))
