"""EnvelopeService.update_fields: the sender moves signature boxes on a draft (the portal's placement page).  The
boxes are stored, journalled as one ``placed`` event (and its audit leaf), and used when the recipient signs; a box
off its page, too small, on a page some PDF lacks, for a copy recipient or someone not on the envelope, from anyone
but the sender or after the send is refused, and nothing changes."""

from __future__ import annotations

import json

import pytest

from formats.pageboxes import page_boxes
from formats.samplepdf import contract_pdf_bytes
from server.envelopes import DocumentInput, EnvelopeState, SignatureField
from server.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

from .test_envelopes_world import CONTRACT, C, S, World, world_fixture  # noqa: F401 - the w fixture

PDF = "application/pdf"


def _rcpt(env, w: World, name: str):
    return next(r for r in env.recipients if r.person_id == w.people[name].id)


def test_the_sender_moves_boxes_on_a_draft_and_the_move_is_journalled(w: World) -> None:
    env = w.create("alice", [("bob", S, 1), ("carol", S, 2)], fields=True)
    bob, carol = _rcpt(env, w, "bob"), _rcpt(env, w, "carol")
    moved = w.svc.update_fields(w.me("alice"), env.id, {
        bob.id: SignatureField(3, 300.004, 500, 520, 560.5), carol.id: carol.field})  # Carol's box stays
    assert moved.version == env.version + 1 and moved.state is EnvelopeState.DRAFT
    assert _rcpt(moved, w, "bob").field == SignatureField(3, 300.0, 500.0, 520.0, 560.5)
    assert _rcpt(moved, w, "carol").field == carol.field
    [placed] = [e for e in w.svc.list_events(w.me("alice"), env.id, page_size=50) if e.type == "placed"]
    assert placed.actor == f"person:{w.people['alice'].id}"
    assert placed.detail == {"fields": {bob.id: "page 3: 300.00 500.00 520.00 560.50"}}
    leaf = w.store.query_one("SELECT payload FROM audit_leaves WHERE kind = 'envelope.placed'")
    assert leaf is not None and json.loads(leaf["payload"])["detail"] == placed.detail
    # the same boxes again: nothing to record
    again = w.svc.update_fields(w.me("alice"), env.id, {bob.id: SignatureField(3, 300, 500, 520, 560.5)})
    assert again.version == moved.version and w.events(env.id).count("placed") == 1


def test_the_moved_box_is_the_one_the_recipient_signs_in(w: World) -> None:
    env = w.create("alice", [("bob", S, 1)], fields=True)
    bob = _rcpt(env, w, "bob")
    w.svc.update_fields(w.me("alice"), env.id, {bob.id: SignatureField(2, 100, 600, 300, 660)})
    sent = w.svc.send(w.me("alice"), env.id)
    assert _rcpt(w.svc.get(w.me("bob"), env.id), w, "bob").field == SignatureField(2, 100, 600, 300, 660)
    assert w.sign(sent, "bob").state is EnvelopeState.COMPLETED  # in the recipient's field (signet-<id>)


@pytest.mark.parametrize(("box", "words"), [
    (SignatureField(4, 56, 56, 276, 116), "page 4 is not a page of every PDF"),
    (SignatureField(0, 56, 56, 276, 116), "page 0"),
    (SignatureField(1, 500, 56, 700, 116), "inside page 1"),
    (SignatureField(1, 56, 800, 276, 860), "inside page 1"),
    (SignatureField(1, -1, 56, 276, 116), "inside page 1"),
    (SignatureField(1, 276, 56, 56, 116), "x1 < x2"),
    (SignatureField(1, 56, 116, 276, 116), "y1 < y2"),
    (SignatureField(1, 56, 56, 80, 116), "at least 36 by 18"),
    (SignatureField(1, 56, 56, 276, 60), "at least 36 by 18"),
    (SignatureField(1, float("nan"), 56, 276, 116), "must be numbers"),
])
def test_a_box_off_its_page_or_too_small_is_refused_and_nothing_changes(w: World, box, words) -> None:
    env = w.create("alice", [("bob", S, 1)], fields=True)
    before = w.snapshot(env.id)
    with pytest.raises(InvalidArgument) as e:
        w.svc.update_fields(w.me("alice"), env.id, {_rcpt(env, w, "bob").id: box})
    assert e.value.reason == "FIELD_INVALID" and words in e.value.message
    assert w.snapshot(env.id) == before and "placed" not in w.events(env.id)


def test_a_page_every_pdf_has_inside_every_pdf(w: World) -> None:
    small = contract_pdf_bytes("Annex", ["Alice Envelope"], pages=1)
    env = w.create("alice", [("bob", S, 1)], fields=True, documents=[
        DocumentInput("contract.pdf", PDF, CONTRACT), DocumentInput("annex.pdf", PDF, small)])
    bob = _rcpt(env, w, "bob")
    with pytest.raises(InvalidArgument, match="page 2 is not a page of every PDF"):
        w.svc.update_fields(w.me("alice"), env.id, {bob.id: SignatureField(2, 56, 56, 276, 116)})
    [box] = {b for b in page_boxes(small)}
    assert w.svc.update_fields(w.me("alice"), env.id, {bob.id: SignatureField(1, 0, 0, box.x1, box.y1)})


def test_only_signers_of_this_envelope_and_only_the_sender_before_the_send(w: World) -> None:
    env = w.create("alice", [("bob", S, 1), ("carol", C, 2)], fields=True)
    bob, carol = _rcpt(env, w, "bob"), _rcpt(env, w, "carol")
    box = SignatureField(1, 100, 100, 300, 160)
    before = w.snapshot(env.id)
    with pytest.raises(InvalidArgument, match="not a signer or approver"):
        w.svc.update_fields(w.me("alice"), env.id, {carol.id: box})  # a copy recipient has no box
    with pytest.raises(InvalidArgument, match="not a signer or approver"):
        w.svc.update_fields(w.me("alice"), env.id, {"rcp_000000000000000000000000": box})
    with pytest.raises(InvalidArgument):
        w.svc.update_fields(w.me("alice"), env.id, {})
    with pytest.raises(NotFound):  # a draft is the sender's alone: for anyone else it does not exist
        w.svc.update_fields(w.me("bob"), env.id, {bob.id: box})
    with pytest.raises(NotFound):
        w.svc.update_fields(w.me("dave"), env.id, {bob.id: box})
    with pytest.raises(PermissionDenied):  # an operator acts for no person
        w.svc.update_fields(w.acme_op, env.id, {bob.id: box})
    assert w.snapshot(env.id) == before
    sent = w.svc.send(w.me("alice"), env.id)
    with pytest.raises(PermissionDenied):  # once sent, Bob sees it, but he is not its sender
        w.svc.update_fields(w.me("bob"), env.id, {bob.id: box})
    after_send = w.snapshot(env.id)
    with pytest.raises(FailedPrecondition) as e:
        w.svc.update_fields(w.me("alice"), sent.id, {bob.id: box})
    assert e.value.reason == "ENVELOPE_SENT"
    assert w.snapshot(env.id) == after_send and "placed" not in w.events(env.id)
