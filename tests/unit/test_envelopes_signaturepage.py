"""The signature page on a real store: asked for at create, the server appends it to each PDF as one more
incremental update (the uploaded bytes a prefix), gives every signer and approver without a field their box on it
and locks it at send; a signature in that box is accepted; a sender-placed field is kept."""

from __future__ import annotations

import io

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from formats import PdfSignOptions, sign_pdf
from formats.samplepdf import contract_pdf_bytes
from server.envelopes import DocumentInput, RecipientInput, RecipientRole, SignatureField, SigningMethod
from server.errors import InvalidArgument

from .test_envelopes_world import CONTRACT, A, C, S, World, world_fixture  # noqa: F401 - the w fixture

PDF = "application/pdf"
OWN = SignatureField(1, 56, 56, 276, 116)  # carol's, placed by the sender


def _create(w: World, people, *, documents=None, **kw):
    specs = [RecipientInput(w.people[n].id, role, order, SigningMethod.TOKEN, field)
             for n, role, order, field in people]
    return w.svc.create(w.me("alice"), title="Crane lease (2026)", recipients=specs, append_signature_page=True,
                        documents=documents or [DocumentInput("contract.pdf", PDF, CONTRACT)], **kw)


def _rcpt(env, w: World, name: str):
    return next(r for r in env.recipients if r.person_id == w.people[name].id)


def test_the_page_is_appended_and_the_fields_set(w: World) -> None:
    people = [("erin", A, 2, None), ("bob", S, 1, None), ("carol", S, 2, OWN), ("dave", C, 3, None)]
    env = _create(w, people, idempotency_key="page-1")
    assert _create(w, people, idempotency_key="page-1") == env  # the remembered answer
    doc = env.documents[0]
    content = w.svc.get_document(w.me("alice"), env.id, doc.id).content
    assert content.startswith(CONTRACT) and len(content) == doc.size > len(CONTRACT)
    r = PdfFileReader(io.BytesIO(content))
    assert doc.pages == 4 == int(r.root["/Pages"]["/Count"])
    text = r.root["/Pages"]["/Kids"][3].get_object()["/Contents"].get_object().data
    assert b"(Crane lease \\(2026\\))" in text
    assert text.index(b"(Signer 1: Bob Envelope)") < text.index(b"(Approver 2: Erin Envelope)")  # routing order
    assert b"Carol" not in text and b"Dave" not in text  # her own field; a copy never signs
    bob, erin = _rcpt(env, w, "bob").field, _rcpt(env, w, "erin").field
    assert bob is not None and erin is not None and bob.page == erin.page == 4 and bob != erin
    assert _rcpt(env, w, "carol").field == OWN and _rcpt(env, w, "dave").field is None

    sent = w.svc.send(w.me("alice"), env.id)
    assert sent.documents[0].original_sha256 == doc.current_sha256
    assert w.svc.get(w.me("bob"), env.id).recipients == sent.recipients  # the fields, reloaded from the store

    w.deliver()  # bob signs visibly in his box on the page
    got = w.svc.get_document(w.me("bob"), env.id, doc.id)
    challenge = w.svc.start_signing(w.me("bob"), env.id, doc.id, got.document.current_sha256)
    src, out = w.tmp / "in.pdf", w.tmp / "out.pdf"
    src.write_bytes(got.content)
    sign_pdf(src, out, w.signers["bob"].signer(), PdfSignOptions(
        field_name=_rcpt(sent, w, "bob").field_name, visible=True, page=bob.page - 1,
        box=(int(bob.x1), int(bob.y1), int(bob.x2), int(bob.y2))))
    after = w.svc.submit_signature(w.me("bob"), env.id, doc.id, content=out.read_bytes(), code=w.code("bob"),
                                   code_id=challenge.code_id)
    assert after.documents[0].signatures == 1


@pytest.mark.parametrize("case", ["no pdf", "page counts differ", "every signer placed"])
def test_a_page_that_cannot_be_made_is_refused(w: World, case: str) -> None:
    people: list[tuple[str, RecipientRole, int, SignatureField | None]] = [("bob", S, 1, None)]
    docs = None
    if case == "no pdf":
        docs = [DocumentInput("terms.txt", "text/plain", b"terms")]
    elif case == "page counts differ":
        docs = [DocumentInput("a.pdf", PDF, CONTRACT), DocumentInput("b.pdf", PDF, contract_pdf_bytes("B", ["x"]))]
    else:
        people = [("bob", S, 1, OWN)]
    with pytest.raises(InvalidArgument) as e:
        _create(w, people, documents=docs)
    assert e.value.reason == "SIGNATURE_PAGE_INVALID"
    assert not w.svc.list_envelopes(w.me("alice"), "", 10, "").envelopes  # nothing stored


def test_other_files_are_left_alone(w: World) -> None:
    env = _create(w, [("bob", S, 1, None)], documents=[DocumentInput("contract.pdf", PDF, CONTRACT),
                                                         DocumentInput("terms.txt", "text/plain", b"terms")])
    assert [d.pages for d in env.documents] == [4, 0]
    assert w.svc.get_document(w.me("alice"), env.id, env.documents[1].id).content == b"terms"
