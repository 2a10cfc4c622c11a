"""The envelope lifecycle on a real store: create (what a draft may hold), send (locked hashes, the send time,
notices), view, decline, void; every legal transition, every illegal one named by the current state; events;
idempotent retries."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from server.envelopes import (
    DocumentInput,
    EnvelopeState,
    Limits,
    RecipientInput,
    RecipientRole,
    RecipientState,
    SignatureField,
    SigningMethod,
)
from server.envelopes.model import ENVELOPE_MOVES, RECIPIENT_MOVES, envelope_move, recipient_move
from server.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

from .test_envelopes_world import CONTRACT, C, S, World, make_world, world_fixture  # noqa: F401 - the w fixture

PDF = "application/pdf"


def _ms(w: World):
    now = w.clock.now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _rcpt(env, w: World, name: str):
    return next(r for r in env.recipients if r.person_id == w.people[name].id)


# -- the state machine as data ------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", sorted(ENVELOPE_MOVES))
def test_every_envelope_move_from_every_state(action: str) -> None:
    allowed, after = ENVELOPE_MOVES[action]
    for state in EnvelopeState:
        if state in allowed:
            assert envelope_move(state, action) is (after or state)
        else:
            with pytest.raises(FailedPrecondition) as e:
                envelope_move(state, action)
            assert e.value.reason == f"ENVELOPE_{state.name}"


@pytest.mark.parametrize("action", sorted(RECIPIENT_MOVES))
def test_every_recipient_move_from_every_state(action: str) -> None:
    allowed, after = RECIPIENT_MOVES[action]
    for state in RecipientState:
        if state in allowed:
            assert recipient_move(state, action) is (after or state)
        else:
            with pytest.raises(FailedPrecondition) as e:
                recipient_move(state, action)
            assert e.value.reason == f"RECIPIENT_{state.name}"


# -- create --------------------------------------------------------------------------------------------------------
def test_create_stores_a_draft_with_its_documents_as_blobs(w: World) -> None:
    annex = b"annex bytes\n" * 100
    env = w.create("alice", [("bob", S, 1), ("carol", C, 2)], fields=True, tags=["lease", "lease", " crane "],
                   message="Please sign by Friday",
                   documents=[DocumentInput("contract.pdf", PDF, CONTRACT), DocumentInput("annex.txt", "text/plain",
                                                                                          annex)])
    assert env.state is EnvelopeState.DRAFT and env.version == 1 and env.sent_at is None
    assert env.sender_person_id == w.people["alice"].id and env.sender_name == "Alice Envelope"
    assert env.org_id == w.people["alice"].org_id and env.tags == ("lease", "crane")
    assert env.created_at == _ms(w) and env.expires_in_days == 30
    pdf, txt = env.documents
    assert (pdf.pages, txt.pages, pdf.size, txt.size, pdf.signatures) == (3, 0, len(CONTRACT), len(annex), 0)
    assert pdf.original_sha256 == "" and w.blobs.get(pdf.current_sha256) == CONTRACT  # locked only at send
    bob, carol = env.recipients
    assert (bob.role, bob.state, bob.legal_name, bob.field) == (S, RecipientState.PENDING, "Bob Envelope",
                                                                SignatureField(1, 56, 56, 276, 116))
    assert carol.role is C and carol.field is None
    assert w.outbox.list(to="bob@example.com") == []  # a draft tells nobody
    assert w.events(env.id) == ["created"]


def _bad_create(w: World, reason: str, error=InvalidArgument, **kw) -> None:
    args = {"title": "Lease", "documents": [DocumentInput("c.pdf", PDF, CONTRACT)],
            "recipients": [RecipientInput(w.people["bob"].id, S, 1)], **kw}
    with pytest.raises(error) as e:
        w.svc.create(w.me("alice"), **args)
    assert e.value.reason == reason, e.value.message


def test_create_refuses_what_a_draft_may_not_hold(tmp_path: Path) -> None:
    w = make_world(tmp_path, limits=Limits(max_document_bytes=len(CONTRACT)), approve=["alice", "bob", "carol"])
    bob, carol, dave = (w.people[n].id for n in ("bob", "carol", "dave"))
    field = SignatureField(1, 10, 10, 100, 50)
    _bad_create(w, "TITLE_INVALID", title="  ")
    _bad_create(w, "DOCUMENTS_INVALID", documents=[])
    _bad_create(w, "DOCUMENT_TOO_LARGE", documents=[DocumentInput("c.pdf", PDF, CONTRACT + b" ")])
    _bad_create(w, "DOCUMENT_EMPTY", documents=[DocumentInput("c.txt", "text/plain", b"")])
    _bad_create(w, "INVALID_DOCUMENT", documents=[DocumentInput("c.pdf", PDF, b"%PDF-1.7 not really")])
    _bad_create(w, "MEDIA_TYPE_INVALID", documents=[DocumentInput("c.pdf", "pdf", CONTRACT)])
    _bad_create(w, "DOCUMENT_NAME_INVALID", documents=[DocumentInput("../c.pdf", PDF, CONTRACT)])
    _bad_create(w, "RECIPIENTS_INVALID", recipients=[])
    _bad_create(w, "RECIPIENT_DUPLICATE", recipients=[RecipientInput(bob, S, 1), RecipientInput(bob, C, 2)])
    _bad_create(w, "ROUTING_ORDER_INVALID", recipients=[RecipientInput(bob, S, 0)])
    _bad_create(w, "RECIPIENT_ROLE_REQUIRED", recipients=[RecipientInput(bob, None, 1)])
    _bad_create(w, "SIGNER_REQUIRED", recipients=[RecipientInput(bob, C, 1)])
    _bad_create(w, "FIELD_FOR_COPY", recipients=[RecipientInput(bob, S, 1), RecipientInput(carol, C, 1,
                                                                                             field=field)])
    _bad_create(w, "FIELD_INVALID", recipients=[RecipientInput(bob, S, 1, field=replace(field, page=4))])
    _bad_create(w, "FIELD_INVALID", recipients=[RecipientInput(bob, S, 1, field=replace(field, x2=5))])
    _bad_create(w, "FIELD_INVALID", recipients=[RecipientInput(bob, S, 1, field=field)],
                documents=[DocumentInput("c.txt", "text/plain", b"terms")])
    _bad_create(w, "EXPIRY_INVALID", expires_in_days=366)
    _bad_create(w, "NOT_APPROVED", FailedPrecondition, recipients=[RecipientInput(dave, S, 1)])
    _bad_create(w, "PERSON_NOT_FOUND", NotFound, recipients=[RecipientInput("p_" + "0" * 24, S, 1)])
    with pytest.raises(PermissionDenied):  # operators send nothing: a sender is a person
        w.svc.create(w.acme_op, title="x", documents=[DocumentInput("c.pdf", PDF, CONTRACT)],
                     recipients=[RecipientInput(bob, S, 1)])
    with pytest.raises(FailedPrecondition) as e:  # nor does a person who has not passed the real-name check
        w.svc.create(w.me("dave"), title="x", documents=[DocumentInput("c.pdf", PDF, CONTRACT)],
                     recipients=[RecipientInput(bob, S, 1)])
    assert e.value.reason == "NOT_APPROVED"
    assert w.store.query("SELECT id FROM envelopes") == []
    assert not any(w.blobs.directory.iterdir())  # refused before a byte was stored


# -- send ------------------------------------------------------------------------------------------------------------
def test_send_locks_records_the_time_and_notifies_the_first_group(w: World) -> None:
    env = w.create("alice", [("bob", S, 1), ("carol", S, 1), ("dave", C, 2), ("erin", S, 3)], expires_in_days=10)
    w.clock.advance(61.2345)
    sent = w.svc.send(w.me("alice"), env.id)
    now = _ms(w)
    assert sent.state is EnvelopeState.SENT and sent.sent_at == now and sent.version == 2
    assert sent.expires_at is not None and (sent.expires_at - now).days == 10
    assert sent.documents[0].original_sha256 == sent.documents[0].current_sha256 == env.documents[0].current_sha256
    states = [r.state for r in sent.recipients]
    assert states == [RecipientState.NOTIFIED, RecipientState.NOTIFIED, RecipientState.PENDING,
                      RecipientState.PENDING]
    # the notices are queued in the send's transaction and handed to the channel after it
    assert [_rcpt(sent, w, n).notified_at for n in ("bob", "carol")] == [None, None]
    assert w.outbox.list(limit=100) == [e for e in w.outbox.list(limit=100) if not e.topic.startswith("envelope.")]
    w.clock.advance(0.25)
    assert w.deliver() == 2
    handed = _ms(w)
    got = w.svc.get(w.me("alice"), env.id)
    assert got.version == 4  # each first notice handed over changes the envelope (notified_at)
    for name in ("bob", "carol"):
        [notice] = w.outbox.list(to=f"{name}@example.com")
        assert notice.topic == "envelope.sent" and notice.created_at == w.clock.now()
        assert _rcpt(got, w, name).notified_at == handed  # the moment it was handed to the channel
        body = w.outbox.read(notice.id).body
        assert env.id in body and "Lease of the harbour crane" in body
    assert w.outbox.list(to="dave@example.com") == [] and w.outbox.list(to="erin@example.com") == []
    events = w.svc.list_events(w.me("alice"), env.id)
    assert [e.type for e in events] == ["created", "sent", "notified", "notified"]
    assert events[1].detail["sent_at"] == now.strftime("%Y-%m-%dT%H:%M:%S.%fZ") and events[1].at == now
    assert events[2].at == handed and events[2].detail["notified_at"] == handed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert w.deliver() == 0  # each notice once
    assert [e.id for e in events] == sorted(e.id for e in events)
    with pytest.raises(FailedPrecondition) as e:
        w.svc.send(w.me("alice"), env.id)
    assert e.value.reason == "ENVELOPE_SENT"


def test_only_the_sender_sends(w: World) -> None:
    env = w.create("alice", [("bob", S, 1)])
    with pytest.raises(PermissionDenied):
        w.svc.send(w.acme_op, env.id)  # an operator sees the draft, but sends nothing
    for name in ("bob", "dave"):  # a draft is invisible to its recipients, like to strangers
        with pytest.raises(NotFound):
            w.svc.send(w.me(name), env.id)


def test_a_first_fetch_marks_the_recipient_viewed_once(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)]).id)
    w.svc.get_document(w.me("alice"), env.id, env.documents[0].id)  # the sender's fetch is no view
    assert _rcpt(w.svc.get(w.me("bob"), env.id), w, "bob").state is RecipientState.NOTIFIED
    w.clock.advance(5)
    got = w.svc.get_document(w.me("bob"), env.id, env.documents[0].id)
    assert got.content == CONTRACT and got.signatures == ()
    bob = _rcpt(w.svc.get(w.me("bob"), env.id), w, "bob")
    assert bob.state is RecipientState.VIEWED and bob.viewed_at == _ms(w)
    w.clock.advance(5)
    w.svc.get_document(w.me("bob"), env.id, env.documents[0].id)
    assert _rcpt(w.svc.get(w.me("bob"), env.id), w, "bob").viewed_at == bob.viewed_at
    assert w.events(env.id).count("viewed") == 1
    with pytest.raises(NotFound) as e:
        w.svc.get_document(w.me("bob"), env.id, "doc_nope")
    assert e.value.reason == "DOCUMENT_NOT_FOUND"


# -- decline and void ---------------------------------------------------------------------------------------------
def test_decline_ends_the_envelope_and_tells_the_others(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("carol", S, 1), ("erin", S, 2)]).id)
    w.deliver()
    with pytest.raises(FailedPrecondition) as e:  # not Erin's turn yet
        w.svc.decline(w.me("erin"), env.id, "no")
    assert e.value.reason == "RECIPIENT_PENDING"
    with pytest.raises(InvalidArgument) as bad:
        w.svc.decline(w.me("bob"), env.id, "   ")
    assert bad.value.reason == "REASON_REQUIRED"
    with pytest.raises(PermissionDenied):
        w.svc.decline(w.me("alice"), env.id, "the sender is no recipient")
    done = w.svc.decline(w.me("bob"), env.id, "The rent is wrong")
    bob = _rcpt(done, w, "bob")
    assert done.state is EnvelopeState.DECLINED and bob.state is RecipientState.DECLINED
    assert bob.decline_reason == "The rent is wrong" and bob.declined_at == _ms(w)
    w.deliver()
    told = {e.to.value for e in w.outbox.list(limit=100) if e.topic == "envelope.declined"}
    assert told == {"alice@example.com", "carol@example.com"}  # not Bob himself, not Erin (never notified)
    for name, action in (("carol", "decline"), ("carol", "sign"), ("alice", "void"), ("alice", "send")):
        with pytest.raises(FailedPrecondition) as e:
            if action == "decline":
                w.svc.decline(w.me(name), env.id, "too late")
            elif action == "sign":
                w.svc.start_signing(w.me(name), env.id, env.documents[0].id, env.documents[0].current_sha256)
            elif action == "void":
                w.svc.void(w.me(name), env.id, "too late")
            else:
                w.svc.send(w.me(name), env.id)
        assert e.value.reason == "ENVELOPE_DECLINED"
    assert w.events(env.id)[-1] == "declined"


def test_a_copy_neither_signs_nor_declines(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("carol", C, 1)]).id)
    with pytest.raises(PermissionDenied) as e:
        w.svc.decline(w.me("carol"), env.id, "not mine to decline")
    assert e.value.reason == "COPY_RECIPIENT"


def test_void_by_the_sender_or_an_operator_of_its_organisation(w: World) -> None:
    draft = w.create("alice", [("bob", S, 1)])
    assert w.svc.void(w.me("alice"), draft.id, "typo in the title").state is EnvelopeState.VOIDED
    assert w.deliver() == 0
    assert [e.topic for e in w.outbox.list(limit=100) if e.topic.startswith("envelope.")] == []  # nobody knew
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("dave", S, 2)]).id)
    w.deliver()
    for who, error in ((w.other_op, NotFound), (w.me("erin"), NotFound), (w.me("bob"), PermissionDenied),
                       (w.me("dave"), PermissionDenied)):  # Dave (group 2) sees what is addressed to him
        with pytest.raises(error):
            w.svc.void(who, env.id, "not yours")
    done = w.svc.void(w.acme_op, env.id, "sent to the wrong customer")
    assert done.state is EnvelopeState.VOIDED
    w.deliver()
    told = {e.to.value for e in w.outbox.list(limit=100) if e.topic == "envelope.voided"}
    assert told == {"alice@example.com", "bob@example.com"}  # Dave was never notified
    voided = w.svc.list_events(w.acme_op, env.id)[-1]
    assert (voided.type, voided.actor, voided.detail) == ("voided", "operator:op",
                                                         {"reason": "sent to the wrong customer", "was": "sent"})
    with pytest.raises(FailedPrecondition) as e:
        w.svc.void(w.me("alice"), env.id, "again")
    assert e.value.reason == "ENVELOPE_VOIDED"


def test_completed_envelopes_cannot_be_voided_or_declined(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)]).id)
    done = w.sign(env, "bob")
    assert done.state is EnvelopeState.COMPLETED
    for call in (lambda: w.svc.void(w.me("alice"), env.id, "late"),
                 lambda: w.svc.decline(w.me("bob"), env.id, "late")):
        with pytest.raises(FailedPrecondition) as e:
            call()
        assert e.value.reason == "ENVELOPE_COMPLETED"


# -- idempotency ---------------------------------------------------------------------------------------------------
def test_retries_with_the_same_key_act_once_and_return_the_first_answer(w: World) -> None:
    first = w.create("alice", [("bob", S, 1)], idempotency_key="create-1")
    assert w.create("alice", [("bob", S, 1)], idempotency_key="create-1") == first
    assert len(w.store.query("SELECT id FROM envelopes")) == 1
    with pytest.raises(InvalidArgument) as e:
        w.create("alice", [("bob", S, 1)], title="Another title", idempotency_key="create-1")
    assert e.value.reason == "IDEMPOTENCY_KEY_REUSED"
    other = w.create("carol", [("bob", S, 1)], idempotency_key="create-1")  # keys belong to their caller
    assert other.id != first.id

    sent = w.svc.send(w.me("alice"), first.id, "send-1")
    w.clock.advance(10)
    assert w.svc.send(w.me("alice"), first.id, "send-1") == sent  # not ENVELOPE_SENT: the first answer
    w.deliver()
    assert len(w.outbox.list(to="bob@example.com")) == 1  # one notice
    declined = w.svc.decline(w.me("bob"), first.id, "no", "decline-1")
    assert w.svc.decline(w.me("bob"), first.id, "no", "decline-1") == declined
    with pytest.raises(InvalidArgument):
        w.svc.decline(w.me("bob"), first.id, "another reason", "decline-1")
    voided = w.svc.void(w.me("carol"), other.id, "draft no longer needed", "void-1")
    assert w.svc.void(w.me("carol"), other.id, "draft no longer needed", "void-1") == voided
    assert [e for e in w.events(first.id) if e == "declined"] == ["declined"]
    [stored] = w.store.query("SELECT answer FROM envelope_idempotency WHERE idempotency_key = 'send-1'")
    assert json.loads(stored["answer"])["state"] == "sent"


def test_idempotency_keys_are_checked(w: World) -> None:
    with pytest.raises(InvalidArgument) as e:
        w.create("alice", [("bob", S, 1)], idempotency_key="x" * 201)
    assert e.value.reason == "IDEMPOTENCY_KEY_INVALID"


def test_events_are_paginated_oldest_first(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("carol", S, 1)]).id)
    all_events = w.svc.list_events(w.me("bob"), env.id)
    first = w.svc.list_events(w.me("bob"), env.id, page_size=2)
    rest = w.svc.list_events(w.me("bob"), env.id, after_event_id=first[-1].id, page_size=2)
    assert [e.id for e in first + rest] == [e.id for e in all_events] and len(first) == 2
    assert w.svc.list_events(w.me("bob"), env.id, after_event_id=all_events[-1].id) == []
    assert len(w.svc.list_events(w.me("bob"), env.id, page_size=10_000)) == len(all_events)  # capped at 200


def test_remote_method_and_roles_survive_the_round_trip(w: World) -> None:
    env = w.svc.create(w.me("alice"), title="Roles", documents=[DocumentInput("c.pdf", PDF, CONTRACT)],
                       recipients=[RecipientInput(w.people["bob"].id, RecipientRole.APPROVER, 2,
                                                  SigningMethod.REMOTE),
                                   RecipientInput(w.people["carol"].id, S, 1, None)])
    assert [(r.role, r.routing_order, r.signing_method) for r in env.recipients] == [
        (RecipientRole.APPROVER, 2, SigningMethod.REMOTE), (S, 1, SigningMethod.TOKEN)]
