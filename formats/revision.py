"""Is a returned envelope revision acceptable?  One new signature, by a trusted signer, and nothing else changed.

A PDF in an envelope gathers one incremental PAdES revision per signer; any other file gathers one detached
CAdES signature per signer over the locked bytes.  :func:`check_pdf_revision` and
:func:`check_detached_signature` judge one returned revision and never raise for a bad document: the verdict
carries a stable reason code (a gRPC ErrorDetail reason) and a one-line message that quotes no document
contents.  Only bad arguments (a trust root that is not a certificate, a naive ``validation_time``, an unknown
``revocation`` mode) raise :class:`~formats.errors.InvalidOptions`, at once.

PDF checks, cheapest refusal first:

1. ``REVISION_NOT_INCREMENTAL``: ``new`` is not longer than ``previous`` or does not start with its exact
   bytes (before any parsing); or, once parsed, its revisions do not continue the previous revision chain.
2. ``REVISION_UNREADABLE``: either file fails the checks of :mod:`formats.pdfinput` (pre-scan included) or
   trips the parser at any later step.
3. ``REVISION_EARLIER_SIGNATURE_BROKEN`` (structure): an earlier signature field is gone, or its signature
   dictionary was replaced or redefined.
4. ``REVISION_NOT_ONE_SIGNATURE``: not exactly one new signature, a document timestamp instead of one, or
   revisions appended after the new signature's.
5. ``REVISION_WRONG_FIELD``: the new signature is not in ``expected_field``.
6. ``REVISION_DISALLOWED_CHANGES`` / ``REVISION_TRAILING_BYTES`` (byte coverage): the new signature must cover
   every byte of ``new`` except its own ``/Contents`` string (:func:`formats.strict.signed_range`), which must
   lie after ``previous`` and hold the CMS object then only zero padding.  A ``/ByteRange`` shaped otherwise is
   signature wrapping; bytes after the signed revision, or data in the padding, are trailing bytes.
7. ``REVISION_DISALLOWED_CHANGES`` (difference analysis): :data:`formats.strict.DIFF_POLICY` (pyHanko's rules,
   new objects nothing refers to not ignored, a form-less base read as an empty form, ``/SigFlags`` free) from
   the last revision of ``previous`` to the end of ``new`` allows at most FORM_FILLING.
   With ``assigned_fields`` (form field name -> kind: text, date, checkbox; :mod:`formats.formfields`), the
   fields the revision fills (``changed_fields`` less the new signature's own) must be among them
   (``REVISION_FOREIGN_FIELD``: another signer's field, or one assigned to nobody), each value must suit its
   kind (``REVISION_FIELD_VALUE_INVALID``), and every field of ``required_fields`` must hold a value (a checkbox:
   checked; ``REVISION_REQUIRED_FIELD_EMPTY``).
8. The verifier (:func:`formats.verify.async_verify_pdf`) on ``new``: ``REVISION_SIGNATURE_INVALID`` when the
   new signature is not intact, valid and trusted under ``trust_roots`` (revocation and the Signet policy
   rule included); ``REVISION_DISALLOWED_CHANGES`` when an earlier signature's own DocMDP/FieldMDP
   permissions refuse the change; ``REVISION_EARLIER_SIGNATURE_BROKEN`` when an earlier signature is no longer
   ok otherwise; ``REVISION_TRAILING_BYTES`` for document-level coverage problems.  With ``earlier_accepted``
   (the caller accepted ``previous`` with this check), only the new signature is validated; each earlier
   signature's DocMDP/FieldMDP permission is checked against step 7's changes instead
   (``REVISION_DISALLOWED_CHANGES``).

Detached: ``CMS_INVALID`` when the signature is not DER CMS SignedData with exactly one SignerInfo and no
encapsulated content, or :func:`formats.cades.async_verify_detached` over exactly ``content`` is not valid.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import cms
from asn1crypto import parser as asn1_parser
from pyhanko.pdf_utils import generic
from pyhanko.sign.diff_analysis import ModificationLevel, SuspiciousModification
from pyhanko.sign.fields import MDPPerm, enumerate_sig_fields
from pyhanko.sign.general import extract_certificate_info
from pyhanko.sign.validation import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel

from . import formfields, strict
from .cades import async_verify_detached
from .errors import InvalidDocument, InvalidOptions
from .failures import PARSE_ERRORS, describe
from .pdfinput import read_pdf
from .validation import Settings
from .verify import async_verify_pdf

log = logging.getLogger(__name__)

REVISION_UNREADABLE = "REVISION_UNREADABLE"
REVISION_NOT_INCREMENTAL = "REVISION_NOT_INCREMENTAL"
REVISION_NOT_ONE_SIGNATURE = "REVISION_NOT_ONE_SIGNATURE"
REVISION_WRONG_FIELD = "REVISION_WRONG_FIELD"
REVISION_SIGNATURE_INVALID = "REVISION_SIGNATURE_INVALID"
REVISION_EARLIER_SIGNATURE_BROKEN = "REVISION_EARLIER_SIGNATURE_BROKEN"
REVISION_DISALLOWED_CHANGES = "REVISION_DISALLOWED_CHANGES"
REVISION_TRAILING_BYTES = "REVISION_TRAILING_BYTES"
REVISION_FOREIGN_FIELD = "REVISION_FOREIGN_FIELD"
REVISION_REQUIRED_FIELD_EMPTY = "REVISION_REQUIRED_FIELD_EMPTY"
REVISION_FIELD_VALUE_INVALID = "REVISION_FIELD_VALUE_INVALID"
CMS_INVALID = "CMS_INVALID"

_PREVIOUS = "the previous revision"
_NEW = "the returned revision"
_MAX_MESSAGE = 400
_TIMESTAMP = "the returned revision adds a document timestamp, not a signature"


@dataclass(frozen=True)
class RevisionVerdict:
    accepted: bool
    reason: str  # "" when accepted, else one of the codes above
    message: str  # one line in words, safe to show the client (no document contents)
    signer_certificate_der: bytes | None  # the NEW signature's signer certificate (None if unreadable)
    signer_chain_der: tuple[bytes, ...]  # other certificates embedded in the new CMS
    field_name: str | None  # the new signature's field (PDF), None for CMS
    report: Any  # the VerificationReport behind the verdict, None when refused before verification
    changed_fields: frozenset[str] = frozenset()  # form fields the revision filled (PDF, difference analysis)


@dataclass
class _Facts:
    """What is known about the new signature so far (a refusal still reports it)."""

    field_name: str | None = None
    certificate: bytes | None = None
    chain: tuple[bytes, ...] = ()
    report: Any = None
    changed: frozenset[str] = field(default_factory=frozenset)
    level: ModificationLevel = ModificationLevel.NONE  # of the new revision's changes (step 7)

    def verdict(self, reason: str, message: str) -> RevisionVerdict:
        line = " ".join(message.split())
        if len(line) > _MAX_MESSAGE:
            line = line[:_MAX_MESSAGE - 3] + "..."
        return RevisionVerdict(not reason, reason, "" if not reason else line, self.certificate, self.chain,
                               self.field_name, self.report, self.changed)


class _Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


# -- PDF


@dataclass(frozen=True)
class _Sig:
    name: str
    ref: tuple[int, int] | None  # the signature dictionary's object (None: a direct /V)
    field_ref: Any


def _filled_signatures(reader: Any) -> list[_Sig]:
    out = []
    for name, _, field_ref in enumerate_sig_fields(reader, filled_status=True):
        value = field_ref.get_object().raw_get("/V")
        ref = (value.idnum, value.generation) if isinstance(value, generic.IndirectObject) else None
        out.append(_Sig(str(name), ref, field_ref))
    return out


def _last_change(reader: Any, ref: tuple[int, int]) -> int:
    try:
        return int(reader.xrefs.get_last_change(generic.Reference(*ref)))
    except KeyError:
        return -1


def _first_difference(a: bytes, b: bytes, step: int = 1 << 16) -> int:
    n = min(len(a), len(b))
    for lo in range(0, n, step):
        if a[lo:lo + step] != b[lo:lo + step]:
            return next(i for i in range(lo, min(lo + step, n)) if a[i] != b[i])
    return n


def _check_chain(prev_reader: Any, new_reader: Any) -> int:
    """The number of revisions of ``previous``; refuses a chain that skips or replaces one of them."""
    prev_total, new_total = prev_reader.xrefs.total_revisions, new_reader.xrefs.total_revisions
    same = new_total >= prev_total and all(
        new_reader.xrefs.get_startxref_for_revision(i) == prev_reader.xrefs.get_startxref_for_revision(i)
        for i in range(prev_total))
    if not same:
        raise _Refused(REVISION_NOT_INCREMENTAL, "the returned file starts with the previous revision but does not "
                                                 "continue its chain of revisions (one is skipped or replaced)")
    if new_total == prev_total:
        raise _Refused(REVISION_NOT_ONE_SIGNATURE, "the returned file adds no revision, so no signature")
    return int(prev_total)


def _census(prev_reader: Any, new_reader: Any, prev_total: int) -> tuple[_Sig, list[str]]:
    """The one new signature, and the names of the earlier ones (each still in place, untouched)."""
    earlier = _filled_signatures(prev_reader)
    current = _filled_signatures(new_reader)
    if len({s.name for s in current}) != len(current):
        raise _Refused(REVISION_NOT_ONE_SIGNATURE, "two signature fields of the returned file have the same name")
    by_name = {s.name: s for s in current}
    for i, old in enumerate(earlier, 1):
        now = by_name.get(old.name)
        if now is None or old.ref is None or now.ref != old.ref:
            raise _Refused(REVISION_EARLIER_SIGNATURE_BROKEN,
                           f"earlier signature {i} of {len(earlier)} was removed or replaced")
        if not 0 <= _last_change(new_reader, old.ref) < prev_total:
            raise _Refused(REVISION_EARLIER_SIGNATURE_BROKEN,
                           f"the returned revision rewrites the signature dictionary of earlier signature {i} "
                           f"of {len(earlier)}")
    known = {(s.name, s.ref) for s in earlier}
    added = [s for s in current if (s.name, s.ref) not in known]
    if len(added) != 1:
        raise _Refused(REVISION_NOT_ONE_SIGNATURE,
                       f"the returned revision adds {len(added)} signatures; exactly one is expected")
    return added[0], [s.name for s in earlier]


def _check_new_signature(new_reader: Any, sig: _Sig, expected_field: str | None, facts: _Facts) -> Any:
    """The new signature's embedded form, after the checks that need no cryptography."""
    last = new_reader.xrefs.total_revisions - 1
    value = sig.field_ref.get_object()["/V"]
    if isinstance(value, generic.DictionaryObject) and "/Type" in value and value["/Type"] == "/DocTimeStamp":
        raise _Refused(REVISION_NOT_ONE_SIGNATURE, _TIMESTAMP)
    if sig.ref is not None and _last_change(new_reader, sig.ref) != last:
        raise _Refused(REVISION_NOT_ONE_SIGNATURE,
                       "the new signature is not in the last revision: revisions were appended after it")
    if expected_field is not None and sig.name != expected_field:
        raise _Refused(REVISION_WRONG_FIELD, f"the new signature is not in the field {expected_field!r} assigned "
                                             f"to this signer")
    if sig.ref is None:
        raise _Refused(REVISION_SIGNATURE_INVALID, "the new signature's value is not an indirect object")
    try:
        emb = EmbeddedPdfSignature(new_reader, sig.field_ref, sig.name)
    except PARSE_ERRORS as e:
        raise _Refused(REVISION_SIGNATURE_INVALID, f"the new signature cannot be read: {describe(e)}") from None
    if emb.signed_data["encap_content_info"]["content_type"].native == "tst_info":  # a timestamp token
        raise _Refused(REVISION_NOT_ONE_SIGNATURE, _TIMESTAMP)
    try:
        certs = extract_certificate_info(emb.signed_data)
        facts.certificate = bytes(certs.signer_cert.dump())
        facts.chain = tuple(bytes(c.dump()) for c in certs.other_certs)
    except PARSE_ERRORS:
        pass  # the verifier says why; the verdict then names no certificate
    return emb


def _check_coverage(emb: Any, new: bytes, prefix: int) -> None:
    """The new signature covers all of ``new`` but its own /Contents, which lies after the previous bytes."""
    signed = strict.signed_range(emb)
    if signed is None or signed.value_start < prefix:
        raise _Refused(REVISION_DISALLOWED_CHANGES, "the new signature's /ByteRange does not cover its revision "
                                                    "exactly, around its own signature value (signature wrapping)")
    contents = emb.pkcs7_content
    _, _, _, header, body, trailer = asn1_parser.parse(contents, strict=False)
    if contents[len(header) + len(body) + len(trailer):].strip(b"\0"):  # a hiding place nobody signed
        raise _Refused(REVISION_TRAILING_BYTES, "the new signature's /Contents holds data after its CMS object "
                                                "instead of zero padding")
    if signed.end < len(new):
        if emb.evaluate_signature_coverage() == SignatureCoverageLevel.ENTIRE_REVISION:
            raise _Refused(REVISION_TRAILING_BYTES, f"{len(new) - signed.end} bytes after the new signature's "
                                                    f"revision are covered by no signature")
        raise _Refused(REVISION_DISALLOWED_CHANGES, f"{len(new) - signed.end} bytes of the new signature's own "
                                                    f"revision are outside its /ByteRange (signature wrapping)")


def _check_differences(new_reader: Any, prev_total: int, facts: _Facts) -> None:
    result = strict.DIFF_POLICY.review_file(new_reader, prev_total - 1)
    if isinstance(result, SuspiciousModification):
        raise _Refused(REVISION_DISALLOWED_CHANGES, "the returned revision changes the document beyond adding a "
                                                    "signature (difference analysis: a change no rule allows)")
    facts.changed = frozenset(str(n) for n in result.changed_form_fields)
    level = facts.level = result.modification_level
    if level > ModificationLevel.FORM_FILLING:
        raise _Refused(REVISION_DISALLOWED_CHANGES, f"the returned revision changes the document beyond adding a "
                                                    f"signature and filling form fields (difference analysis: "
                                                    f"{level.name})")


def _check_permissions(new_reader: Any, earlier: list[str], facts: _Facts) -> None:
    """What the verifier's DocMDP/FieldMDP verdict on each earlier signature would say, from step 7's facts: a
    certification that permits no changes, or permits form filling and the revision goes further, or a field
    lock on a field the revision changed, refuses it."""
    by_name = {str(e.field_name): e for e in new_reader.embedded_signatures}
    for i, name in enumerate(earlier, 1):
        emb = by_name.get(name)
        if emb is None:
            raise _Refused(REVISION_EARLIER_SIGNATURE_BROKEN, f"earlier signature {i} of {len(earlier)} is gone")
        perm, lock = emb.docmdp_level, emb.fieldmdp
        too_far = perm is MDPPerm.FILL_FORMS and facts.level > ModificationLevel.FORM_FILLING
        locked = lock is not None and any(lock.is_locked(f) for f in facts.changed)
        if perm is MDPPerm.NO_CHANGES or too_far or locked:
            raise _Refused(REVISION_DISALLOWED_CHANGES, f"earlier signature {i} of {len(earlier)} does not permit "
                                                        f"the changes of the returned revision")


def _check_form(new_reader: Any, sig_name: str, changed: frozenset[str], assigned: Mapping[str, str],
                required: Collection[str]) -> None:
    """The form fields the revision filled are the signer's own, with values that suit them, required ones set."""
    foreign = sorted(changed - {sig_name} - set(assigned))
    if foreign:
        raise _Refused(REVISION_FOREIGN_FIELD, f"the returned revision fills {len(foreign)} form field(s) not "
                                               f"assigned to this signer, e.g. {foreign[0][:64]!r}")
    values = formfields.values_of(new_reader)
    for name in sorted(changed & set(assigned)):
        try:
            formfields.check_value(assigned[name], values.get(name, ""))
        except InvalidOptions:
            raise _Refused(REVISION_FIELD_VALUE_INVALID, f"form field {name!r} holds no valid "
                                                         f"{assigned[name]} value") from None
    for name in sorted(required):
        if values.get(name, "") in ("", formfields.UNCHECKED):
            raise _Refused(REVISION_REQUIRED_FIELD_EMPTY, f"the required form field {name!r} is not filled")


def _judge(report: Any, name: str, earlier: list[str]) -> None:
    """The verifier's report: the new signature ok, every earlier one (those it validated) still ok, no
    uncovered bytes."""
    by_name = {s.field_name: s for s in report.signatures}
    mine = by_name.get(name)
    if mine is None or mine.kind != "signature" or not mine.ok:
        why = "; ".join(mine.problems) if mine is not None else "it was not found by the verifier"
        raise _Refused(REVISION_SIGNATURE_INVALID, f"the new signature is not valid: {why}")
    for i, old in enumerate(earlier, 1):
        rep = by_name.get(old)
        if rep is not None and rep.ok:
            continue
        if rep is not None and rep.docmdp_ok is False:
            raise _Refused(REVISION_DISALLOWED_CHANGES, f"earlier signature {i} of {len(earlier)} does not permit "
                                                        f"the changes of the returned revision")
        why = "; ".join(rep.problems) if rep is not None else "it was not found by the verifier"
        raise _Refused(REVISION_EARLIER_SIGNATURE_BROKEN,
                       f"earlier signature {i} of {len(earlier)} is no longer valid: {why}")
    if report.problems:
        uncovered = any("covered by no signature" in p for p in report.problems)
        raise _Refused(REVISION_TRAILING_BYTES if uncovered else REVISION_UNREADABLE, "; ".join(report.problems))


async def async_check_pdf_revision(
    previous: bytes, new: bytes, *, trust_roots: Sequence[bytes], expected_field: str | None = None,
    validation_time: dt.datetime | None = None, revocation: str = "offline", other_certs: Sequence[bytes] = (),
    fetch_timeout: float = 10.0, assigned_fields: Mapping[str, str] | None = None,
    required_fields: Collection[str] = (), earlier_accepted: bool = False,
) -> RevisionVerdict:
    """Coroutine form of :func:`check_pdf_revision`."""
    Settings.make(trust_roots, revocation=revocation, validation_time=validation_time, other_certs=other_certs,
                  fetch_timeout=fetch_timeout)  # InvalidOptions now, not after the document checks
    facts = _Facts()
    if len(new) <= len(previous):
        return facts.verdict(REVISION_NOT_INCREMENTAL, f"the returned file ({len(new)} bytes) is not longer than "
                                                       f"the previous revision ({len(previous)} bytes)")
    if not new.startswith(previous):
        return facts.verdict(REVISION_NOT_INCREMENTAL, f"the returned file does not start with the exact bytes of "
                                                       f"the previous revision (first difference at byte "
                                                       f"{_first_difference(previous, new)}): it is not an "
                                                       f"incremental update")
    try:
        prev_reader = read_pdf(io.BytesIO(previous), _PREVIOUS)
        new_reader = read_pdf(io.BytesIO(new), _NEW)
        prev_total = _check_chain(prev_reader, new_reader)
        sig, earlier = _census(prev_reader, new_reader, prev_total)
        facts.field_name = sig.name
        emb = _check_new_signature(new_reader, sig, expected_field, facts)
        _check_coverage(emb, new, len(previous))
        _check_differences(new_reader, prev_total, facts)
        if assigned_fields is not None:
            _check_form(new_reader, sig.name, facts.changed, assigned_fields, required_fields)
        if earlier_accepted:
            _check_permissions(new_reader, earlier, facts)
        facts.report = await async_verify_pdf(io.BytesIO(new), trust_roots, revocation=revocation,
                                              validation_time=validation_time, other_certs=other_certs,
                                              fetch_timeout=fetch_timeout,
                                              only=[sig.name] if earlier_accepted else None)
        _judge(facts.report, sig.name, [] if earlier_accepted else earlier)
    except _Refused as r:
        log.info("revision refused: %s (%d bytes added)", r.reason, len(new) - len(previous))
        return facts.verdict(r.reason, r.message)
    except InvalidDocument as e:
        return facts.verdict(REVISION_UNREADABLE, str(e))
    except PARSE_ERRORS as e:
        log.info("revision unreadable: %s", type(e).__name__)
        return facts.verdict(REVISION_UNREADABLE, f"the returned revision cannot be read: {describe(e)}")
    return facts.verdict("", "")


def check_pdf_revision(
    previous: bytes, new: bytes, *, trust_roots: Sequence[bytes], expected_field: str | None = None,
    validation_time: dt.datetime | None = None, revocation: str = "offline", other_certs: Sequence[bytes] = (),
    assigned_fields: Mapping[str, str] | None = None, required_fields: Collection[str] = (),
    earlier_accepted: bool = False,
) -> RevisionVerdict:
    """Judge ``new``, returned by a signer, as the next revision of the accepted PDF ``previous``.

    Accepted only when ``new`` is ``previous`` plus incremental updates that add exactly one signature (in
    ``expected_field`` when given) covering every byte, change nothing beyond what filling that field needs,
    and leave every earlier signature intact and valid; the new signature must be valid and trusted under
    ``trust_roots`` (``revocation`` "offline" or "online", ``validation_time`` as for
    :func:`formats.verify.verify_pdf`).  With ``assigned_fields`` (name -> kind), the form fields it fills must be
    among them, hold valid values, and ``required_fields`` must be filled (step 7 of the module's list).
    ``earlier_accepted``: the caller itself accepted ``previous`` with this function, every signature in it
    validated then (the envelope server, from the second signature on); step 8 then validates only the new
    signature, and checks each earlier signature's DocMDP/FieldMDP permissions against step 7's changes itself
    (their signed bytes are ``previous``'s, untouched: step 1).  Never raises for a bad document; InvalidOptions
    for bad arguments.
    """
    return asyncio.run(async_check_pdf_revision(previous, new, trust_roots=trust_roots, expected_field=expected_field,
                                                validation_time=validation_time, revocation=revocation,
                                                other_certs=other_certs, assigned_fields=assigned_fields,
                                                required_fields=required_fields, earlier_accepted=earlier_accepted))


# -- detached CMS


def _signed_data(signature_der: bytes) -> Any:
    if not signature_der:
        raise _Refused(CMS_INVALID, "the signature is empty (0 bytes)")
    try:
        ci = cms.ContentInfo.load(bytes(signature_der))
        if ci["content_type"].native != "signed_data":
            raise _Refused(CMS_INVALID, "the signature is a CMS object but not SignedData")
        sd = ci["content"]
        sd.native  # noqa: B018 - parse fully now
    except PARSE_ERRORS as e:
        raise _Refused(CMS_INVALID, f"the signature is not DER CMS SignedData: {describe(e)}") from None
    if len(sd["signer_infos"]) != 1:
        raise _Refused(CMS_INVALID, f"the signature has {len(sd['signer_infos'])} signers; exactly one is expected")
    if sd["encap_content_info"]["content"].native is not None:
        raise _Refused(CMS_INVALID, "the signature encapsulates content; a detached signature over the locked "
                                    "document is expected")
    return sd


async def async_check_detached_signature(
    content: bytes, signature_der: bytes, *, trust_roots: Sequence[bytes], validation_time: dt.datetime | None = None,
    revocation: str = "offline", other_certs: Sequence[bytes] = (), fetch_timeout: float = 10.0,
) -> RevisionVerdict:
    """Coroutine form of :func:`check_detached_signature`."""
    Settings.make(trust_roots, revocation=revocation, validation_time=validation_time, other_certs=other_certs,
                  fetch_timeout=fetch_timeout)
    facts = _Facts()
    try:
        sd = _signed_data(signature_der)
        try:
            certs = extract_certificate_info(sd)
            facts.certificate = bytes(certs.signer_cert.dump())
            facts.chain = tuple(bytes(c.dump()) for c in certs.other_certs)
        except PARSE_ERRORS:
            pass
        facts.report = await async_verify_detached(io.BytesIO(content), signature_der, trust_roots,
                                                   revocation=revocation, validation_time=validation_time,
                                                   other_certs=other_certs, fetch_timeout=fetch_timeout)
        if not facts.report.valid:
            raise _Refused(CMS_INVALID, "the signature is not valid over the locked document: "
                                        + "; ".join(facts.report.reasons()))
    except _Refused as r:
        log.info("detached signature refused: %s", r.reason)
        return facts.verdict(r.reason, r.message)
    except InvalidDocument as e:
        return facts.verdict(CMS_INVALID, str(e))
    return facts.verdict("", "")


def check_detached_signature(
    content: bytes, signature_der: bytes, *, trust_roots: Sequence[bytes], validation_time: dt.datetime | None = None,
    revocation: str = "offline", other_certs: Sequence[bytes] = (),
) -> RevisionVerdict:
    """Judge a detached CAdES signature returned by a signer over exactly ``content`` (the locked bytes).

    Accepted only when it is DER CMS SignedData with one signer and no encapsulated content, intact over
    ``content``, valid and trusted under ``trust_roots`` (revocation and the Signet policy rule included).
    Never raises for a bad signature (``CMS_INVALID``); InvalidOptions for bad arguments.
    """
    return asyncio.run(async_check_detached_signature(content, signature_der, trust_roots=trust_roots,
                                                      validation_time=validation_time, revocation=revocation,
                                                      other_certs=other_certs))
