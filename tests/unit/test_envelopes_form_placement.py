"""EnvelopeService.update_fields with ``form_fields``: the sender adds, moves and removes form fields on a draft (the
portal's placement page), with the rules of create.  The fields are stored, each PDF gets one incremental update
with them taken out and placed again, one ``placed`` event journals it with the version moved, and the recipients
fill them where they now are.  A field for a copy recipient or someone not on the envelope, a name twice, a
``signet-`` name or one the document has already, a box off its page or too small, from anyone but the sender or
after the send is refused, and nothing changes (no blob either)."""

from __future__ import annotations

import io
import json

import pytest

from formats import PdfSignOptions, sign_pdf
from formats.formfields import FormField as PdfField
from formats.formfields import add_form_fields, form_field_values
from server.envelopes import (
    DocumentInput,
    EnvelopeState,
    FormField,
    FormFieldKind,
    RecipientInput,
    SignatureField,
    SigningMethod,
)
from server.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

from .test_envelopes_world import CONTRACT, C, S, World, world_fixture  # noqa: F401 - the w fixture

PDF = "application/pdf"
T, D, X = FormFieldKind.TEXT, FormFieldKind.DATE, FormFieldKind.CHECKBOX


def _create(w: World, fields: dict[str, tuple[FormField, ...]], *, roles=None, documents=None):
    roles = roles or {}
    specs = [RecipientInput(w.people[n].id, roles.get(n, S), i + 1, SigningMethod.TOKEN,
                            SignatureField(1, 56, 56 + 80 * i, 276, 116 + 80 * i) if roles.get(n, S) is S else None,
                            ff)
             for i, (n, ff) in enumerate(fields.items())]
    return w.svc.create(w.me("alice"), title="Crane lease with placed forms", recipients=specs,
                        documents=documents or [DocumentInput("contract.pdf", PDF, CONTRACT)])


def _rcpt(env, w: World, name: str):
    return next(r for r in env.recipients if r.person_id == w.people[name].id)


def _snapshot(w: World, envelope_id: str) -> tuple:
    forms = w.store.query("SELECT * FROM envelope_form_fields WHERE envelope_id = ? ORDER BY recipient_id, position",
                          (envelope_id,))
    return w.snapshot(envelope_id), forms


def _widgets(pdf: bytes) -> dict[str, tuple[int, list[float]]]:
    """Each form field's page (from 1) and /Rect, by name, and that every widget is on its page's /Annots."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf))
    kids = reader.root["/Pages"]["/Kids"]
    pages = [kids.raw_get(i).idnum for i in range(len(kids))]
    annots = {i + 1: {a.idnum for a in kids[i].get("/Annots", [])} for i in range(len(kids))}
    out = {}
    for i in range(len(reader.root["/AcroForm"]["/Fields"])):
        ref = reader.root["/AcroForm"]["/Fields"].raw_get(i)
        f = ref.get_object()
        page = pages.index(f.raw_get("/P").idnum) + 1
        assert ref.idnum in annots[page]
        out[str(f["/T"])] = (page, [float(v) for v in f["/Rect"]])
    on_pages = {a for ids in annots.values() for a in ids}
    assert on_pages == {reader.root["/AcroForm"]["/Fields"].raw_get(i).idnum
                        for i in range(len(reader.root["/AcroForm"]["/Fields"]))}  # no widget left behind
    return out


def _content(w: World, env) -> bytes:
    return w.svc.get_document(w.me("alice"), env.id, env.documents[0].id).content


def test_the_sender_adds_moves_and_removes_form_fields_on_a_draft(w: World) -> None:
    env = _create(w, {"bob": (FormField("bob_name", T, 1, 56, 600, 250, 620),), "carol": ()})
    bob, carol = _rcpt(env, w, "bob"), _rcpt(env, w, "carol")
    added = w.svc.update_fields(w.me("alice"), env.id, {}, form_fields={
        bob.id: (FormField("bob_name", T, 1, 56, 600, 250, 620), FormField("bob_date", D, 2, 300.004, 500, 400, 524)),
        carol.id: (FormField("carol_ok", X, 1, 320, 700, 356, 718, required=True),)})
    assert added.version == env.version + 1 and added.state is EnvelopeState.DRAFT
    assert _rcpt(added, w, "bob").form_fields == (FormField("bob_name", T, 1, 56, 600, 250, 620),
                                                  FormField("bob_date", D, 2, 300.0, 500, 400, 524))
    assert _rcpt(added, w, "carol").form_fields == (FormField("carol_ok", X, 1, 320, 700, 356, 718, True),)
    assert added.documents[0].current_sha256 != env.documents[0].current_sha256  # the PDF with the fields placed
    assert _widgets(_content(w, added)) == {"bob_name": (1, [56, 600, 250, 620]), "bob_date": (2, [300, 500, 400, 524]),
                                            "carol_ok": (1, [320, 700, 356, 718])}
    [placed] = [e for e in w.svc.list_events(w.me("alice"), env.id, page_size=50) if e.type == "placed"]
    assert placed.detail == {"fields": {}, "form_fields": {
        "bob_date": f"{bob.id} date page 2: 300.00 500.00 400.00 524.00",
        "carol_ok": f"{carol.id} checkbox required page 1: 320.00 700.00 356.00 718.00"},
        "documents": {env.documents[0].id: added.documents[0].current_sha256}}
    leaf = w.store.query_one("SELECT payload FROM audit_leaves WHERE kind = 'envelope.placed'")
    assert leaf is not None and json.loads(leaf["payload"])["detail"] == placed.detail

    # moved to another page with Bob's signature box, one removed, one given to Bob instead of Carol: one event
    moved = w.svc.update_fields(w.me("alice"), env.id, {bob.id: SignatureField(2, 56, 56, 276, 116)}, form_fields={
        bob.id: (FormField("bob_name", T, 3, 100, 100, 300, 130), FormField("carol_ok", X, 1, 320, 700, 356, 718))})
    assert moved.version == added.version + 1
    assert _rcpt(moved, w, "bob").field == SignatureField(2, 56, 56, 276, 116)
    assert [f.name for f in _rcpt(moved, w, "bob").form_fields] == ["bob_name", "carol_ok"]
    assert _rcpt(moved, w, "carol").form_fields == ()
    assert _widgets(_content(w, moved)) == {"bob_name": (3, [100, 100, 300, 130]),
                                            "carol_ok": (1, [320, 700, 356, 718])}
    assert form_field_values(_content(w, moved)) == {"bob_name": "", "carol_ok": "no"}
    last = [e for e in w.svc.list_events(w.me("alice"), env.id, page_size=50) if e.type == "placed"][-1]
    assert last.detail["fields"] == {bob.id: "page 2: 56.00 56.00 276.00 116.00"}
    assert last.detail["form_fields"] == {"bob_date": "removed",
                                          "bob_name": f"{bob.id} text page 3: 100.00 100.00 300.00 130.00",
                                          "carol_ok": f"{bob.id} checkbox page 1: 320.00 700.00 356.00 718.00"}
    # the same again: nothing to record; form_fields left out: the fields stay as they are
    same = w.svc.update_fields(w.me("alice"), env.id, {}, form_fields={
        bob.id: _rcpt(moved, w, "bob").form_fields})
    assert same.version == moved.version and same.documents == moved.documents
    kept = w.svc.update_fields(w.me("alice"), env.id, {bob.id: SignatureField(2, 56, 60, 276, 120)})
    assert _rcpt(kept, w, "bob").form_fields == _rcpt(moved, w, "bob").form_fields
    assert kept.documents == moved.documents and w.events(env.id).count("placed") == 3
    # all removed
    bare = w.svc.update_fields(w.me("alice"), env.id, {}, form_fields={})
    assert all(not r.form_fields for r in bare.recipients) and form_field_values(_content(w, bare)) == {}


def test_the_recipients_fill_their_fields_where_the_sender_placed_them(w: World) -> None:
    env = _create(w, {"bob": (), "carol": ()})
    bob, carol = _rcpt(env, w, "bob"), _rcpt(env, w, "carol")
    w.svc.update_fields(w.me("alice"), env.id, {}, form_fields={
        bob.id: (FormField("bob_note", T, 2, 300, 440, 520, 470),),
        carol.id: (FormField("carol_ok", X, 1, 320, 700, 356, 718, required=True),)})
    sent = w.svc.send(w.me("alice"), env.id)
    locked = sent.documents[0]
    for name, values in (("bob", {"bob_note": "Paid in full"}), ("carol", {"carol_ok": "yes"})):
        w.deliver()
        me = w.me(name)
        got = w.svc.get_document(me, env.id, locked.id)
        challenge = w.svc.start_signing(me, env.id, locked.id, got.document.current_sha256)
        src, out = w.tmp / "in.pdf", w.tmp / "out.pdf"
        src.write_bytes(got.content)
        sign_pdf(src, out, w.signers[name].signer(),
                 PdfSignOptions(field_name=_rcpt(sent, w, name).field_name, form_values=values))
        done = w.svc.submit_signature(me, env.id, locked.id, content=out.read_bytes(), code=w.code(name),
                                      code_id=challenge.code_id)
    assert done.state is EnvelopeState.COMPLETED
    final = w.svc.get_document(w.me("alice"), env.id, locked.id).content
    assert form_field_values(final) == {"bob_note": "Paid in full", "carol_ok": "yes"}
    widgets = _widgets(final)
    assert widgets["bob_note"] == (2, [300, 440, 520, 470]) and widgets["carol_ok"] == (1, [320, 700, 356, 718])
    assert bob.id != carol.id


def test_a_field_left_where_it_was_keeps_its_size_and_one_moved_meets_the_minimum(w: World) -> None:
    small = FormField("tick", X, 1, 56, 600, 70, 614)  # 14 by 14 points, as create allows
    env = _create(w, {"bob": (small,)})
    bob = _rcpt(env, w, "bob")
    kept = w.svc.update_fields(w.me("alice"), env.id, {}, form_fields={bob.id: (small,)})
    assert kept.version == env.version and _rcpt(kept, w, "bob").form_fields == (small,)
    made_required = w.svc.update_fields(w.me("alice"), env.id, {}, form_fields={
        bob.id: (FormField("tick", X, 1, 56, 600, 70, 614, required=True),)})
    assert _rcpt(made_required, w, "bob").form_fields[0].required
    assert made_required.documents == env.documents  # what is required is not in the PDF
    with pytest.raises(InvalidArgument, match="at least 36 by 18"):
        w.svc.update_fields(w.me("alice"), env.id, {},
                            form_fields={bob.id: (FormField("tick", X, 1, 60, 600, 74, 614),)})


@pytest.mark.parametrize(("who", "fields", "reason", "words"), [
    ("carol", (FormField("copy_note", T, 1, 56, 600, 250, 620),), "FORM_FIELD_FOR_COPY", "copy recipient"),
    ("nobody", (FormField("stray", T, 1, 56, 600, 250, 620),), "FORM_FIELD_INVALID", "not a signer or approver"),
    ("bob", (FormField("same", T, 1, 56, 600, 250, 620), FormField("same", D, 1, 56, 500, 250, 520)),
     "FORM_FIELD_DUPLICATE", "named twice"),
    ("bob", (FormField("dave_name", T, 1, 56, 500, 250, 520),), "FORM_FIELD_DUPLICATE", "named twice"),  # Dave's
    ("bob", (FormField("signet-x", T, 1, 56, 600, 250, 620),), "FORM_FIELD_INVALID", "signet-"),
    ("bob", (FormField("Signet-rcp_1", T, 1, 56, 600, 250, 620),), "FORM_FIELD_INVALID", "signet-"),
    ("bob", (FormField("has.dot", T, 1, 56, 600, 250, 620),), "FORM_FIELD_INVALID", "a letter, then"),
    ("bob", (FormField("", T, 1, 56, 600, 250, 620),), "FORM_FIELD_INVALID", "a letter, then"),
    ("bob", (FormField("late", T, 4, 56, 600, 250, 620),), "FORM_FIELD_INVALID", "page 4 is not a page"),
    ("bob", (FormField("zero", T, 0, 56, 600, 250, 620),), "FORM_FIELD_INVALID", "page 0"),
    ("bob", (FormField("wide", T, 1, 500, 600, 700, 620),), "FORM_FIELD_INVALID", "inside page 1"),
    ("bob", (FormField("high", T, 1, 56, 830, 250, 850),), "FORM_FIELD_INVALID", "inside page 1"),
    ("bob", (FormField("tiny", X, 1, 56, 600, 70, 614),), "FORM_FIELD_INVALID", "at least 36 by 18"),
    ("bob", (FormField("flip", T, 1, 250, 600, 56, 620),), "FORM_FIELD_INVALID", "x1 < x2"),
    ("bob", (FormField("nan", T, 1, float("nan"), 600, 250, 620),), "FORM_FIELD_INVALID", "must be numbers"),
    ("bob", (FormField("odd", "radio", 1, 56, 600, 250, 620),),  # type: ignore[arg-type]  # as a caller might
     "FORM_FIELD_INVALID", "text, date or checkbox"),
    ("bob", (FormField("theirs", T, 1, 56, 600, 250, 620),), "FORM_FIELD_DUPLICATE", "already"),  # in the upload
])
def test_a_refused_form_field_changes_nothing(w: World, who, fields, reason, words) -> None:
    uploaded = add_form_fields(CONTRACT, [PdfField("theirs", "text", 0, (56, 300, 250, 320))])
    env = _create(w, {"bob": (), "carol": (), "dave": (FormField("dave_name", T, 1, 56, 600, 250, 620),)},
                  roles={"carol": C}, documents=[DocumentInput("contract.pdf", PDF, uploaded)])
    rid = "rcp_000000000000000000000000" if who == "nobody" else _rcpt(env, w, who).id
    wanted = {rid: fields}
    wanted[_rcpt(env, w, "dave").id] = _rcpt(env, w, "dave").form_fields
    before = _snapshot(w, env.id)
    with pytest.raises(InvalidArgument) as e:
        w.svc.update_fields(w.me("alice"), env.id, {_rcpt(env, w, "bob").id: SignatureField(2, 56, 56, 276, 116)},
                            form_fields=wanted)
    assert e.value.reason == reason and words in e.value.message, e.value.message
    assert _snapshot(w, env.id) == before and "placed" not in w.events(env.id)


def test_only_the_sender_of_a_draft_places_form_fields(w: World) -> None:
    env = _create(w, {"bob": ()})
    bob = _rcpt(env, w, "bob")
    fields = {bob.id: (FormField("bob_note", T, 1, 56, 600, 250, 620),)}
    before = _snapshot(w, env.id)
    for who in ("bob", "dave"):  # a draft is the sender's alone: for anyone else it does not exist
        with pytest.raises(NotFound):
            w.svc.update_fields(w.me(who), env.id, {}, form_fields=fields)
    with pytest.raises(PermissionDenied):  # an operator acts for no person
        w.svc.update_fields(w.acme_op, env.id, {}, form_fields=fields)
    assert _snapshot(w, env.id) == before
    w.svc.send(w.me("alice"), env.id)
    after_send = _snapshot(w, env.id)
    with pytest.raises(FailedPrecondition) as e:
        w.svc.update_fields(w.me("alice"), env.id, {}, form_fields=fields)
    assert e.value.reason == "ENVELOPE_SENT"
    assert _snapshot(w, env.id) == after_send and "placed" not in w.events(env.id)
