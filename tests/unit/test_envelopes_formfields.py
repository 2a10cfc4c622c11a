"""Form fields assigned to recipients, on a real store: checked at create, placed empty in the draft's PDF (the
revision locked at send), filled by their recipient in the signature's revision; filling another's field, or
leaving a required one empty, is refused and changes nothing."""

from __future__ import annotations

import pytest

from formats import PdfSignOptions, sign_pdf
from formats.formfields import form_field_values
from formats.samplepdf import contract_pdf_bytes
from server.envelopes import (
    DocumentInput,
    EnvelopeState,
    FormField,
    FormFieldKind,
    RecipientInput,
    SigningMethod,
)
from server.errors import FailedPrecondition, InvalidArgument

from .test_envelopes_world import CONTRACT, C, S, World, world_fixture  # noqa: F401 - the w fixture

PDF = "application/pdf"
T, D, X = FormFieldKind.TEXT, FormFieldKind.DATE, FormFieldKind.CHECKBOX


def _ff(name: str, kind: FormFieldKind = T, page: int = 1, required: bool = False) -> FormField:
    return FormField(name, kind, page, 56, 600, 250, 620, required)


def _create(w: World, fields: dict[str, tuple[FormField, ...]], *, roles=None, documents=None, **kw):
    roles = roles or {}
    specs = [RecipientInput(w.people[n].id, roles.get(n, S), i + 1, SigningMethod.TOKEN, None, ff)
             for i, (n, ff) in enumerate(fields.items())]
    return w.svc.create(w.me("alice"), title="Crane lease with forms", recipients=specs,
                        documents=documents or [DocumentInput("contract.pdf", PDF, CONTRACT)], **kw)


def _rcpt(env, w: World, name: str):
    return next(r for r in env.recipients if r.person_id == w.people[name].id)


def _fill_and_sign(w: World, data: bytes, name: str, field_name: str, values: dict[str, str]) -> bytes:
    src, out = w.tmp / "in.pdf", w.tmp / "out.pdf"
    src.write_bytes(data)
    sign_pdf(src, out, w.signers[name].signer(), PdfSignOptions(field_name=field_name, form_values=values))
    return out.read_bytes()


def _turn(w: World, env, name: str):
    """``name`` fetches the current revision and gets a code: (revision bytes, code, code id)."""
    w.deliver()
    doc = env.documents[0]
    got = w.svc.get_document(w.me(name), env.id, doc.id)
    challenge = w.svc.start_signing(w.me(name), env.id, doc.id, got.document.current_sha256)
    return got.content, w.code(name), challenge.code_id


def _refused(w: World, env, name: str, content: bytes, code: str, code_id: str) -> str:
    before = w.snapshot(env.id)
    with pytest.raises(FailedPrecondition) as e:
        w.svc.submit_signature(w.me(name), env.id, env.documents[0].id, content=content, code=code, code_id=code_id)
    assert w.snapshot(env.id) == before
    last = w.svc.list_events(w.me("alice"), env.id, page_size=200)[-1]
    assert last.type == "refused" and last.detail["reason"] == e.value.reason
    return e.value.reason


@pytest.mark.parametrize(("fields", "reason"), [
    ({"bob": (_ff("name"),), "carol": (_ff("name"),)}, "FORM_FIELD_DUPLICATE"),
    ({"bob": (_ff("name"), _ff("name", D))}, "FORM_FIELD_DUPLICATE"),
    ({"bob": (_ff("signet-rcp_1"),)}, "FORM_FIELD_INVALID"),
    ({"bob": (_ff("has.dot"),)}, "FORM_FIELD_INVALID"),
    ({"bob": (_ff("late", page=4),)}, "FORM_FIELD_INVALID"),  # the contract has 3 pages
    ({"bob": (FormField("flat", T, 1, 56, 600, 250, 600),)}, "FORM_FIELD_INVALID"),
])
def test_form_fields_are_checked_at_create(w: World, fields, reason) -> None:
    with pytest.raises(InvalidArgument) as e:
        _create(w, fields)
    assert e.value.reason == reason


def test_form_fields_need_a_pdf_a_signer_and_a_free_name(w: World) -> None:
    with pytest.raises(InvalidArgument) as e:
        _create(w, {"bob": (_ff("name"),)}, documents=[DocumentInput("terms.txt", "text/plain", b"terms\n")])
    assert e.value.reason == "FORM_FIELD_INVALID"
    with pytest.raises(InvalidArgument) as e:
        _create(w, {"bob": (), "carol": (_ff("name"),)}, roles={"carol": C})
    assert e.value.reason == "FORM_FIELD_FOR_COPY"
    env = _create(w, {"bob": (_ff("name"),)})
    taken = w.svc.get_document(w.me("alice"), env.id, env.documents[0].id).content  # has a field "name" already
    with pytest.raises(InvalidArgument) as e:
        _create(w, {"carol": (_ff("name"),)}, documents=[DocumentInput("again.pdf", PDF, taken)])
    assert e.value.reason == "FORM_FIELD_DUPLICATE"


def test_fields_are_placed_in_the_draft_and_locked_at_send(w: World) -> None:
    fields = {"bob": (_ff("bob_name", required=True), _ff("bob_date", D)), "carol": (_ff("carol_agree", X, 2, True),)}
    env = _create(w, fields, idempotency_key="forms-1")
    assert _create(w, fields, idempotency_key="forms-1") == env  # the remembered answer keeps the fields
    assert _rcpt(env, w, "bob").form_fields == fields["bob"]
    assert _rcpt(env, w, "carol").form_fields == fields["carol"]
    doc = env.documents[0]
    content = w.svc.get_document(w.me("alice"), env.id, doc.id).content
    assert content.startswith(CONTRACT) and len(content) == doc.size > len(CONTRACT)
    assert form_field_values(content) == {"bob_name": "", "bob_date": "", "carol_agree": "no"}
    sent = w.svc.send(w.me("alice"), env.id)
    assert sent.documents[0].original_sha256 == doc.current_sha256 and sent.documents[0].signatures == 0
    assert w.svc.get(w.me("bob"), env.id).recipients == sent.recipients  # reloaded from the store, fields included


def test_each_recipient_fills_only_their_own_fields(w: World) -> None:
    env = _create(w, {"bob": (_ff("bob_name", required=True), _ff("bob_date", D), _ff("bob_note", page=3)),
                      "carol": (_ff("carol_agree", X, 2, True),)})
    env = w.svc.send(w.me("alice"), env.id)
    bob_field, carol_field = _rcpt(env, w, "bob").field_name, _rcpt(env, w, "carol").field_name

    current, code, code_id = _turn(w, env, "bob")
    empty = _fill_and_sign(w, current, "bob", bob_field, {"bob_date": "2026-12-01"})
    assert _refused(w, env, "bob", empty, code, code_id) == "REVISION_REQUIRED_FIELD_EMPTY"
    foreign = _fill_and_sign(w, current, "bob", bob_field, {"bob_name": "Bob Envelope", "carol_agree": "yes"})
    assert _refused(w, env, "bob", foreign, code, code_id) == "REVISION_FOREIGN_FIELD"
    good = _fill_and_sign(w, current, "bob", bob_field, {"bob_name": "Bob Envelope", "bob_date": "2026-12-01"})
    env = w.svc.submit_signature(w.me("bob"), env.id, env.documents[0].id, content=good, code=code, code_id=code_id)
    signed = [e for e in w.svc.list_events(w.me("alice"), env.id, page_size=200) if e.type == "signed"]
    assert len(signed) == 1

    current, code, code_id = _turn(w, env, "carol")
    bobs = _fill_and_sign(w, current, "carol", carol_field, {"carol_agree": "yes", "bob_note": "void"})  # left empty
    assert _refused(w, env, "carol", bobs, code, code_id) == "REVISION_FOREIGN_FIELD"
    unchecked = _fill_and_sign(w, current, "carol", carol_field, {})
    assert _refused(w, env, "carol", unchecked, code, code_id) == "REVISION_REQUIRED_FIELD_EMPTY"
    done = w.svc.submit_signature(w.me("carol"), env.id, env.documents[0].id,
                                  content=_fill_and_sign(w, current, "carol", carol_field, {"carol_agree": "yes"}),
                                  code=code, code_id=code_id)
    assert done.state is EnvelopeState.COMPLETED
    final = w.svc.get_document(w.me("alice"), env.id, done.documents[0].id).content
    assert form_field_values(final) == {"bob_name": "Bob Envelope", "bob_date": "2026-12-01", "bob_note": "",
                                        "carol_agree": "yes"}


def test_a_recipient_without_fields_may_fill_none(w: World) -> None:
    """Filling a field assigned to nobody (one the uploaded PDF had) is refused too."""
    with_form = w.svc.get_document(w.me("alice"), (e := _create(w, {"bob": (_ff("preexisting"),)})).id,
                                   e.documents[0].id).content
    env = w.svc.send(w.me("alice"), _create(w, {"bob": ()}, documents=[DocumentInput("f.pdf", PDF, with_form)]).id)
    current, code, code_id = _turn(w, env, "bob")
    filled = _fill_and_sign(w, current, "bob", _rcpt(env, w, "bob").field_name, {"preexisting": "x"})
    assert _refused(w, env, "bob", filled, code, code_id) == "REVISION_FOREIGN_FIELD"
    done = w.svc.submit_signature(w.me("bob"), env.id, env.documents[0].id,
                                  content=_fill_and_sign(w, current, "bob", _rcpt(env, w, "bob").field_name, {}),
                                  code=code, code_id=code_id)
    assert done.state is EnvelopeState.COMPLETED


def test_other_documents_are_left_alone(w: World) -> None:
    other = contract_pdf_bytes("Annex", ["A", "B"], pages=1)
    env = _create(w, {"bob": ()}, documents=[DocumentInput("annex.pdf", PDF, other)])
    assert w.svc.get_document(w.me("alice"), env.id, env.documents[0].id).content == other  # no fields: as uploaded


def test_a_remote_signer_fills_their_fields_through_sign_remotely(tmp_path) -> None:
    from .test_envelopes_remote import remote_world

    w = remote_world.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    specs = [RecipientInput(w.people["carol"].id, S, 1, SigningMethod.REMOTE, None,
                            (_ff("carol_name", required=True), _ff("carol_agree", X, 2)))]
    env = w.svc.create(w.me("alice"), title="Remote form", recipients=specs,
                       documents=[DocumentInput("contract.pdf", PDF, CONTRACT)], expires_in_days=3)
    env = w.svc.send(w.me("alice"), env.id)
    w.deliver()
    doc = w.svc.get_document(w.me("carol"), env.id, env.documents[0].id).document
    challenge = w.svc.start_signing(w.me("carol"), env.id, doc.id, doc.current_sha256)
    code = w.code("carol")
    before = w.snapshot(env.id)
    for values, error, reason in [({"carol_agree": "yes"}, FailedPrecondition, "REVISION_REQUIRED_FIELD_EMPTY"),
                                  ({"carol_name": "C", "bob_x": "1"}, FailedPrecondition, "REVISION_FOREIGN_FIELD"),
                                  ({"carol_name": "C", "carol_agree": "maybe"}, InvalidArgument,
                                   "FIELD_VALUE_INVALID")]:
        with pytest.raises(error) as e:  # refused before the key is activated: the code stays usable
            w.svc.sign_remotely(w.me("carol"), env.id, doc.id, doc.current_sha256, code=code,
                                code_id=challenge.code_id, field_values=values)
        assert e.value.reason == reason
    assert w.snapshot(env.id) == before and "activated" not in w.events(env.id)
    done = w.svc.sign_remotely(w.me("carol"), env.id, doc.id, doc.current_sha256, code=code,
                               code_id=challenge.code_id, field_values={"carol_name": "Carol", "carol_agree": "yes"})
    assert done.state is EnvelopeState.COMPLETED
    final = w.svc.get_document(w.me("alice"), env.id, doc.id).content
    assert form_field_values(final) == {"carol_name": "Carol", "carol_agree": "yes"}
