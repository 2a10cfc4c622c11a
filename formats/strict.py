"""The strict checks the verifier (:mod:`formats.verify`, :mod:`formats.coverage`) and the revision check
(:mod:`formats.revision`) share, where pyHanko's own judgement is too lenient.

* :func:`signed_range`: a signature's ``/ByteRange`` must be ``[0 a b c]`` with ``[a, b)`` exactly its own
  signature value (the ``<hex>`` string of its ``/Contents``) and ``b + c`` within the file: every byte from
  the start of the file to ``b + c`` signed but the signature value itself.  pyHanko calls a range
  "ENTIRE_FILE" whenever its lengths add up to the file size, so ``[0 a 0 n-b]`` (the first ``n - b`` bytes
  signed twice over) passes its coverage check, though it leaves everything after the signature value (the
  rest of the signature dictionary, the cross-reference section, the trailer) uncovered.
* :data:`DIFF_POLICY`: pyHanko's default difference analysis with three changes.  New objects that nothing
  new refers to are not ignored: the default takes them for orphans a careless writer left, so a revision
  may define an object number the signed document referred to but never defined, and new content appears on
  a signed page while every signature still validates.  A base revision without a form reads as one with an
  empty form (pyHanko's own analysis always starts from a signed revision, which has one; the revision check
  may start from an unsigned document).  The form's ``/SigFlags`` may change (a first signature sets bits
  that a form placed before signing does not have yet; they change no content).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.sign.diff_analysis import (
    DEFAULT_DIFF_POLICY,
    FormUpdatingRule,
    GenericFieldModificationRule,
    SigFieldCreationRule,
    SigFieldModificationRule,
    StandardDiffPolicy,
)
from pyhanko.sign.diff_analysis.constants import ACROFORM_EXEMPT_STRICT_COMPARISON

# The reason the verifier gives for a signature whose range signed_range refuses.
BYTE_RANGE_PROBLEM = ("the signature's byte range does not cover every byte from the start of the file to the "
                      "end of its revision except its own signature value (signature wrapping)")


@dataclass(frozen=True)
class SignedRange:
    """What a well-formed ``/ByteRange`` ``[0 a b c]`` signs: bytes [0, a) and [b, end), with end = b + c."""

    value_start: int  # a: the offset of the "<" that opens the signature value
    value_end: int  # b: just after its ">"
    end: int  # b + c: just after the last signed byte


def signed_range(emb: Any) -> SignedRange | None:
    """The range an embedded signature (pyHanko's EmbeddedPdfSignature) signs, or None when its ``/ByteRange``
    is not four integers ``[0 a b c]`` around exactly its own signature value and within the file."""
    br = emb.byte_range
    if not (isinstance(br, list) and len(br) == 4 and all(isinstance(x, int) for x in br)):
        return None
    start, a, b, c = (int(x) for x in br)
    contents = emb.pkcs7_content
    if not isinstance(contents, bytes) or start != 0 or a < 0 or c < 0 or b != a + 2 * len(contents) + 2:
        return None
    stream = emb.reader.stream
    size = stream.seek(0, 2)
    if b + c > size:
        return None
    stream.seek(a)
    value = stream.read(b - a)
    if value[:1] != b"<" or value[-1:] != b">" or value[1:-1].lower() != contents.hex().encode():
        return None
    return SignedRange(a, b, b + c)


class _EmptyFormView:
    """A historical revision whose catalog shows an empty form."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def root(self) -> Any:
        root = generic.DictionaryObject(self._inner.root)  # type: ignore[no-untyped-call]
        empty = {generic.pdf_name("/Fields"): generic.ArrayObject()}
        root[generic.pdf_name("/AcroForm")] = generic.DictionaryObject(empty)  # type: ignore[no-untyped-call]
        return root


class _FormRule(FormUpdatingRule):
    def apply(self, old: Any, new: Any) -> Any:
        if "/AcroForm" not in old.root:
            old = _EmptyFormView(old)
        return super().apply(old, new)


_FIELD_RULES = [  # those of DEFAULT_DIFF_POLICY
    SigFieldCreationRule(),  # type: ignore[no-untyped-call]
    SigFieldModificationRule(),
    GenericFieldModificationRule(),
]

DIFF_POLICY = StandardDiffPolicy(
    global_rules=DEFAULT_DIFF_POLICY.global_rules,
    form_rule=_FormRule(_FIELD_RULES, ignored_acroform_keys=ACROFORM_EXEMPT_STRICT_COMPARISON | {"/SigFlags"}),
    ignore_orphaned_objects=False,
)
