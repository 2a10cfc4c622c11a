"""Form fields a sender assigns to recipients: placed (empty) in a PDF, filled by their recipient in the same
incremental update as the recipient's signature, read back when the revision is judged.

Three kinds, all plain AcroForm fields (the field dictionary merged with its one widget annotation):

* ``text``: a ``/Tx`` field; filling writes ``/V`` and a static appearance (pyHanko's
  :func:`~pyhanko.pdf_utils.form_tools.populate_static_text_field`, which also marks the field read-only);
* ``date``: a ``/Tx`` field whose value must be an ISO date ``YYYY-MM-DD`` (:func:`check_value`);
* ``checkbox``: a ``/Btn`` field with the appearance states ``/Yes`` and ``/Off``; filling sets ``/V`` and
  ``/AS`` to ``/Yes`` (value ``"yes"``) or leaves ``/Off`` (value ``"no"``).

:func:`add_form_fields` writes the empty fields as one incremental update (the revision every recipient then
signs), :func:`replace_form_fields` takes fields out and places others as one (a draft's fields moved by its
sender); :func:`fill_form_fields` fills them in a pyHanko incremental writer before the signature is added to it,
so pyHanko's difference analysis sees form filling plus one signature (:mod:`formats.revision` reports the
changed field names); :func:`form_field_values` reads the values of a document.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.form_tools import populate_static_text_field
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.text import TextBoxStyle

from .errors import InvalidDocument, InvalidOptions
from .failures import PARSE_ERRORS, reading
from .pdfinput import read_pdf

Kind = Literal["text", "date", "checkbox"]
KINDS: tuple[str, ...] = ("text", "date", "checkbox")
MAX_NAME = 64
MAX_TEXT = 500
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")  # no '.', which would make a field hierarchy
CHECKED, UNCHECKED = "yes", "no"
_FONT = "/Helv"
_G: Any = generic  # pyHanko's PDF object constructors are untyped


@dataclass(frozen=True)
class FormField:
    """A field to place: ``page`` 0-based, ``box`` (x1, y1, x2, y2) in points."""

    name: str
    kind: Kind
    page: int
    box: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise InvalidOptions(f"form field name {self.name!r}: a letter, then up to {MAX_NAME - 1} letters, "
                                 "digits, '_' or '-'")
        if self.kind not in KINDS:
            raise InvalidOptions(f"form field kind {self.kind!r}: text, date or checkbox")
        x1, y1, x2, y2 = self.box
        if min(x1, y1) < 0 or x2 <= x1 or y2 <= y1:
            raise InvalidOptions(f"form field {self.name!r}: the box needs 0 <= x1 < x2 and 0 <= y1 < y2")


def check_value(kind: str, value: str) -> str:
    """The value as it goes into the field; InvalidOptions when it does not suit the kind."""
    if kind == "checkbox":
        v = value.strip().lower()
        if v in ("yes", "true", "1", "on", "x"):
            return CHECKED
        if v in ("no", "false", "0", "off", ""):
            return UNCHECKED
        raise InvalidOptions("a checkbox value is yes or no")
    if kind == "date":
        try:
            return dt.date.fromisoformat(value.strip()).isoformat() if len(value.strip()) == 10 else _no_date()
        except ValueError:
            return _no_date()
    if len(value) > MAX_TEXT or not value.isprintable():
        raise InvalidOptions(f"a text value is at most {MAX_TEXT} printable characters on one line")
    return value


def _no_date() -> str:
    raise InvalidOptions("a date value is YYYY-MM-DD")


# -- placing


def _appearance(w: IncrementalPdfFileWriter, width: float, height: float, body: bytes) -> generic.IndirectObject:
    stream = _G.StreamObject({
        generic.pdf_name("/Type"): generic.pdf_name("/XObject"),
        generic.pdf_name("/Subtype"): generic.pdf_name("/Form"),
        generic.pdf_name("/BBox"): generic.ArrayObject([_G.FloatObject(0), _G.FloatObject(0),
                                                        _G.FloatObject(width), _G.FloatObject(height)]),
        generic.pdf_name("/Resources"): _G.DictionaryObject(),
    }, stream_data=body)
    return w.add_object(stream)


def _checkbox_appearances(w: IncrementalPdfFileWriter, width: float, height: float) -> Any:
    frame = b"0 G 1 w 0.5 0.5 %.2f %.2f re S\n" % (width - 1, height - 1)
    tick = b"0 g 1.5 w %.2f %.2f m %.2f %.2f l %.2f %.2f l S\n" % (
        width * 0.2, height * 0.5, width * 0.42, height * 0.22, width * 0.8, height * 0.8)
    return _G.DictionaryObject({
        generic.pdf_name("/Yes"): _appearance(w, width, height, frame + tick),
        generic.pdf_name("/Off"): _appearance(w, width, height, frame),
    })


def _field_dict(w: IncrementalPdfFileWriter, f: FormField, page_ref: Any) -> Any:
    x1, y1, x2, y2 = f.box
    d = _G.DictionaryObject({
        generic.pdf_name("/Type"): generic.pdf_name("/Annot"),
        generic.pdf_name("/Subtype"): generic.pdf_name("/Widget"),
        generic.pdf_name("/T"): generic.TextStringObject(f.name),
        generic.pdf_name("/Rect"): generic.ArrayObject([_G.FloatObject(v) for v in (x1, y1, x2, y2)]),
        generic.pdf_name("/F"): _G.NumberObject(4),  # print
        generic.pdf_name("/P"): page_ref,
    })
    if f.kind == "checkbox":
        d[generic.pdf_name("/FT")] = generic.pdf_name("/Btn")
        d[generic.pdf_name("/V")] = generic.pdf_name("/Off")
        d[generic.pdf_name("/AS")] = generic.pdf_name("/Off")
        d[generic.pdf_name("/AP")] = _G.DictionaryObject({
            generic.pdf_name("/N"): _checkbox_appearances(w, x2 - x1, y2 - y1)})
    else:
        d[generic.pdf_name("/FT")] = generic.pdf_name("/Tx")
        d[generic.pdf_name("/DA")] = generic.TextStringObject(f"{_FONT} 10 Tf 0 g")
        d[generic.pdf_name("/MaxLen")] = _G.NumberObject(10 if f.kind == "date" else MAX_TEXT)
    return d


def _form(w: IncrementalPdfFileWriter) -> Any:
    root = w.root
    if "/AcroForm" in root:
        form = root["/AcroForm"]
        if "/Fields" not in form:
            form[generic.pdf_name("/Fields")] = generic.ArrayObject()
        return form
    helv = _G.DictionaryObject({
        generic.pdf_name("/Type"): generic.pdf_name("/Font"),
        generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
        generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
        generic.pdf_name("/Encoding"): generic.pdf_name("/WinAnsiEncoding"),
    })
    form = _G.DictionaryObject({
        generic.pdf_name("/Fields"): generic.ArrayObject(),
        generic.pdf_name("/DA"): generic.TextStringObject(f"{_FONT} 10 Tf 0 g"),
        generic.pdf_name("/DR"): _G.DictionaryObject({
            generic.pdf_name("/Font"): _G.DictionaryObject({
                generic.pdf_name(_FONT): w.add_object(helv)})}),
    })
    root[generic.pdf_name("/AcroForm")] = w.add_object(form)
    cast(Any, w).update_root()
    return form


def field_names(reader: Any) -> set[str]:
    """The fully qualified names of every field of the document's form."""
    try:
        fields = reader.root["/AcroForm"]["/Fields"]
    except KeyError:
        return set()
    out: set[str] = set()

    def walk(items: Any, prefix: str, depth: int) -> None:
        if depth > 32:
            raise InvalidDocument("the document's form nests fields too deeply")
        for ref in items:
            d = ref.get_object()
            if not isinstance(d, generic.DictionaryObject) or "/T" not in d:
                continue
            name = f"{prefix}{d['/T']}"
            out.add(name)
            if "/Kids" in d:
                walk(d["/Kids"], name + ".", depth + 1)

    walk(fields, "", 0)
    return out


def add_form_fields(pdf: bytes, specs: Sequence[FormField]) -> bytes:
    """``pdf`` plus one incremental update that places the empty fields ``specs`` (InvalidOptions when a name is
    taken already or a page does not exist; InvalidDocument for a document that cannot be read)."""
    return replace_form_fields(pdf, (), specs)


def replace_form_fields(pdf: bytes, remove: Sequence[str], add: Sequence[FormField]) -> bytes:
    """``pdf`` plus one incremental update that takes the top-level fields named ``remove`` out of the form and off
    their pages, then places the empty fields ``add`` (a field moved is removed and added under its name);
    ``pdf`` itself when both are empty.  InvalidOptions when a field to remove is not there, a name to add is taken
    or a page does not exist; InvalidDocument for a document that cannot be read."""
    if not remove and not add:
        return pdf
    with reading("the document"):
        reader = read_pdf(io.BytesIO(pdf), "the document")
        w = IncrementalPdfFileWriter.from_reader(reader)
        taken = field_names(reader)
        pages = int(w.root["/Pages"]["/Count"])
        form = _form(w)
        if remove:
            _remove(w, form, set(remove), pages)
            taken -= set(remove)
        for f in add:
            if f.name in taken:
                raise InvalidOptions(f"the document has a form field named {f.name!r} already")
            if not 0 <= f.page < pages:
                raise InvalidOptions(f"form field {f.name!r}: page {f.page + 1} does not exist")
            taken.add(f.name)
            page_ref = cast(Any, w).find_page_for_modification(f.page)[0]
            page = page_ref.get_object()
            ref = w.add_object(_field_dict(w, f, page_ref))
            if "/Annots" in page:
                annots = page["/Annots"]
                if isinstance(page.raw_get("/Annots"), generic.IndirectObject):
                    annots.append(ref)
                    w.update_container(annots)
                else:
                    annots.append(ref)
            else:
                page[generic.pdf_name("/Annots")] = generic.ArrayObject([ref])
            w.update_container(page)
            form["/Fields"].append(ref)
        w.update_container(form)
        if isinstance(form.get("/Fields"), generic.ArrayObject) and isinstance(
                w.root["/AcroForm"].raw_get("/Fields"), generic.IndirectObject):
            w.update_container(form["/Fields"])
        out = io.BytesIO()
        cast(Any, w).write(out)
    return out.getvalue()


def _remove(w: IncrementalPdfFileWriter, form: Any, names: set[str], pages: int) -> None:
    """Take the top-level fields ``names`` (each one widget, as :func:`_field_dict` makes them) out of ``/Fields``
    and out of every page's ``/Annots``."""
    fields = form["/Fields"]
    gone: set[int] = set()
    found: set[str] = set()
    for i in reversed(range(len(fields))):
        item = fields.raw_get(i)
        d = item.get_object()
        if isinstance(d, generic.DictionaryObject) and str(d.get("/T", "")) in names and "/Kids" not in d:
            found.add(str(d["/T"]))
            if isinstance(item, generic.IndirectObject):
                gone.add(item.idnum)
            del fields[i]
    if missing := sorted(names - found):
        raise InvalidOptions(f"the document has no form field {missing[0]!r}")
    for n in range(pages):
        page = cast(Any, w).find_page_for_modification(n)[0].get_object()
        if "/Annots" not in page:
            continue
        annots = page["/Annots"]
        hits = [j for j in range(len(annots))
                if isinstance(annots.raw_get(j), generic.IndirectObject) and annots.raw_get(j).idnum in gone]
        for j in reversed(hits):
            del annots[j]
        if hits:
            w.update_container(annots if isinstance(page.raw_get("/Annots"), generic.IndirectObject) else page)


# -- filling and reading


def _field(w: Any, name: str) -> tuple[Any, generic.DictionaryObject]:
    try:
        for ref in w.root["/AcroForm"]["/Fields"]:
            d = ref.get_object()
            if isinstance(d, generic.DictionaryObject) and d.get("/T") == name:
                return ref, d
    except KeyError:
        pass
    raise InvalidOptions(f"the document has no form field {name!r}")


def _kind(d: generic.DictionaryObject) -> str:
    ft = d.get("/FT")
    if ft == "/Btn":
        return "checkbox"
    if ft == "/Tx":
        return "date" if int(d.get("/MaxLen", 0)) == 10 else "text"
    return "other"


def fill_form_fields(w: IncrementalPdfFileWriter, values: Mapping[str, str]) -> None:
    """Fill the top-level fields ``values`` names in ``w`` (the writer the signature is then added to)."""
    for name, raw in values.items():
        ref, d = _field(w, name)
        kind = _kind(d)
        if kind == "other":
            raise InvalidOptions(f"form field {name!r} is not a text, date or checkbox field")
        value = check_value(kind, raw)
        if kind == "checkbox":
            state = generic.pdf_name("/Yes" if value == CHECKED else "/Off")
            d[generic.pdf_name("/V")] = state
            d[generic.pdf_name("/AS")] = state
            w.mark_update(ref)
        elif value:
            if d.get("/V"):
                raise InvalidOptions(f"form field {name!r} is filled already")
            populate_static_text_field(w, name, TextBoxStyle(font_size=10), value)


def form_field_values(pdf: bytes) -> dict[str, str]:
    """Every top-level text, date or checkbox field of ``pdf`` and its value ("" for an empty text field, "yes" or
    "no" for a checkbox); InvalidDocument when the document cannot be read."""
    try:
        with reading("the document"):
            reader = read_pdf(io.BytesIO(pdf), "the document")
            return values_of(reader)
    except PARSE_ERRORS as e:
        raise InvalidDocument("the document's form cannot be read") from e


def values_of(reader: Any) -> dict[str, str]:
    """The values of :func:`form_field_values`, from a reader."""
    out: dict[str, str] = {}
    try:
        fields = reader.root["/AcroForm"]["/Fields"]
    except KeyError:
        return out
    for ref in fields:
        d = ref.get_object()
        if not isinstance(d, generic.DictionaryObject) or "/T" not in d:
            continue
        kind = _kind(d)
        if kind == "checkbox":
            out[str(d["/T"])] = CHECKED if d.get("/V") == "/Yes" else UNCHECKED
        elif kind in ("text", "date"):
            v = d.get("/V")
            out[str(d["/T"])] = str(v) if v is not None else ""
    return out
