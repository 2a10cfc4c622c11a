"""Bulk send on a real store: one envelope per row from a template draft ({{name}} placeholders in the title, the
message and recipient person ids), each row created and sent whole or not at all, a report per row, idempotent per
(key, row); what concerns the whole call refused before any row."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.envelopes import (
    MAX_ROWS,
    DocumentInput,
    Envelope,
    EnvelopeState,
    RecipientInput,
    RecipientState,
    RowResult,
    SigningMethod,
)
from server.envelopes.bulk import fill
from server.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, ServerError

from .test_envelopes_world import CONTRACT, C, S, World, make_world, world_fixture  # noqa: F401 - the w fixture

PDF = "application/pdf"


def _template(w: World, *, title: str = "Lease for {{name}}", message: str = "Dear {{name}}, please sign.") -> str:
    """Alice's template: {{signer}} signs first, Carol gets a copy after."""
    env = w.svc.create(w.me("alice"), title=title, message=message, tags=["lease"], expires_in_days=10,
                       reminder_every_days=2, reminder_max=4,
                       documents=[DocumentInput("contract.pdf", PDF, CONTRACT),
                                  DocumentInput("annex.txt", "text/plain", b"annex\n")],
                       recipients=[RecipientInput("{{signer}}", S, 1, SigningMethod.TOKEN),
                                   RecipientInput(w.people["carol"].id, C, 2)])
    assert env.state is EnvelopeState.DRAFT
    assert (env.recipients[0].person_id, env.recipients[0].org_id, env.recipients[0].legal_name) == ("{{signer}}",
                                                                                                      "", "")
    return env.id


def _row(w: World, who: str, name: str | None = None) -> dict[str, str]:
    return {"signer": w.people[who].id, "name": name or who.title()}


def _count(w: World, table: str) -> int:
    row = w.store.query_one(f"SELECT COUNT(*) AS n FROM {table}")  # noqa: S608 - test tables
    assert row is not None
    return int(row["n"])


def _sent(r: RowResult) -> Envelope:
    assert r.envelope is not None and r.error is None, r.error
    return r.envelope


def _error(r: RowResult) -> ServerError:
    assert r.error is not None and r.envelope is None
    return r.error


def _outcome(r: RowResult) -> str:
    return r.envelope.id if r.envelope is not None else _error(r).reason


def _tables(w: World) -> dict[str, int]:
    return {t: _count(w, t) for t in ("envelopes", "envelope_documents", "envelope_revisions", "envelope_recipients",
                                      "envelope_events", "envelope_notices", "envelope_idempotency")}


def test_each_row_becomes_its_own_sent_envelope(w: World) -> None:
    template_id = _template(w)
    template = w.svc.get(w.me("alice"), template_id)
    results = w.svc.bulk_send(w.me("alice"), template_id, [_row(w, "bob"), _row(w, "erin"), _row(w, "dave")],
                              idempotency_key="march-leases")
    assert [r.row for r in results] == [0, 1, 2] and all(r.error is None for r in results)
    envs = [_sent(r) for r in results]
    assert len({e.id for e in envs}) == 3 and template_id not in {e.id for e in envs}
    doc_ids: set[str] = set()
    for env, who in zip(envs, ("bob", "erin", "dave"), strict=True):
        got = w.svc.get(w.me("alice"), env.id)
        assert got.state is EnvelopeState.SENT and got.sent_at is not None and got.expires_at is not None
        assert (got.title, got.message, got.tags) == (f"Lease for {who.title()}", f"Dear {who.title()}, please sign.",
                                                      ("lease",))
        assert (got.expires_in_days, got.reminder_every_days, got.reminder_max) == (10, 2, 4)
        signer, copy = got.recipients
        person = w.people[who]
        assert (signer.person_id, signer.org_id, signer.legal_name, signer.role, signer.state) == (
            person.id, person.org_id, f"{who.title()} Envelope", S, RecipientState.NOTIFIED)
        assert signer.next_reminder_at is not None  # the template's reminder schedule runs
        assert (copy.person_id, copy.state) == (w.people["carol"].id, RecipientState.PENDING)
        # its own documents, locked at send on the template's bytes (the same blobs)
        for d, t in zip(got.documents, template.documents, strict=True):
            assert d.id != t.id and d.id not in doc_ids
            doc_ids.add(d.id)
            assert d.original_sha256 == d.current_sha256 == t.current_sha256 and (d.name, d.pages) == (t.name, t.pages)
        locked = w.store.query("SELECT locked_sha256 FROM envelope_documents WHERE envelope_id = ?", (env.id,))
        assert [r["locked_sha256"] for r in locked] == [d.current_sha256 for d in template.documents]
        assert w.events(env.id) == ["created", "sent"]
        [created] = [e for e in w.svc.list_events(w.me("alice"), env.id) if e.type == "created"]
        assert created.detail["bulk"] == {"template_id": template_id, "row": envs.index(env)}
        # the recipient sees it in their inbox, like any sent envelope
        assert env.id in [e.id for e in w.svc.list_envelopes(w.me(who), "inbox").envelopes]
    # the template is untouched: still a draft, its blanks in place, its documents not locked
    after = w.svc.get(w.me("alice"), template_id)
    assert after.state is EnvelopeState.DRAFT and after.version == template.version
    assert after.recipients[0].person_id == "{{signer}}" and after.documents[0].original_sha256 == ""
    w.deliver()
    for who in ("bob", "erin", "dave"):  # each signer told of their own envelope; the copy's turn has not come
        assert len(w.outbox.list(to=f"{who}@example.com")) == 1
    assert w.outbox.list(to="carol@example.com") == []


def test_a_bad_row_fails_alone_and_leaves_nothing(tmp_path: Path) -> None:
    w = make_world(tmp_path, approve=["alice", "bob", "carol", "dave"])  # Erin has not passed the real-name check
    template_id = _template(w)
    before = _tables(w)
    rows = [_row(w, "bob"),
            {"signer": "p_" + "0" * 24, "name": "Nobody"},  # no such person
            {"signer": w.people["dave"].id},  # no value for {{name}}
            _row(w, "erin"),  # not approved
            {"signer": w.people["bob"].id, "name": "  "},  # an empty value
            {"signer": w.people["carol"].id, "name": "Carol"},  # Carol twice: the signer and the copy
            {"signer": "{{signer}}", "name": "Blank"},  # a value is a person id, never a blank again
            _row(w, "dave")]
    results = w.svc.bulk_send(w.me("alice"), template_id, rows, idempotency_key="k")
    got = [(r.row, type(r.error).__name__ if r.error else "sent", r.error.reason if r.error else "")
           for r in results]
    assert got == [(0, "sent", ""), (1, "NotFound", "PERSON_NOT_FOUND"), (2, "InvalidArgument", "PLACEHOLDER_UNKNOWN"),
                   (3, "FailedPrecondition", "NOT_APPROVED"), (4, "InvalidArgument", "PLACEHOLDER_VALUE_MISSING"),
                   (5, "InvalidArgument", "RECIPIENT_DUPLICATE"), (6, "NotFound", "PERSON_NOT_FOUND"),
                   (7, "sent", "")]
    assert "{{name}}" in _error(results[2]).message and w.people["dave"].id not in _error(results[2]).message
    sent = [_sent(r).id for r in results if r.error is None]
    # exactly two envelopes more, with their rows; nothing of the six refused ones
    after = _tables(w)
    assert after["envelopes"] == before["envelopes"] + 2
    assert after["envelope_documents"] == before["envelope_documents"] + 4
    assert after["envelope_recipients"] == before["envelope_recipients"] + 4
    assert after["envelope_events"] == before["envelope_events"] + 4  # created and sent, twice
    assert after["envelope_idempotency"] == before["envelope_idempotency"] + 2
    ids = {r["id"] for r in w.store.query("SELECT id FROM envelopes")}
    assert ids == {template_id, *sent}


def test_a_row_failing_at_send_undoes_its_draft(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The row's create and send are one transaction: a failure in the send step leaves no draft behind."""
    template_id = _template(w)
    post = w.svc._post
    real = post.send_draft
    calls = []

    def send_draft(p, env, now):
        calls.append(env.id)
        if len(calls) == 2:
            raise FailedPrecondition("the envelope changed meanwhile", reason="ENVELOPE_CHANGED")
        return real(p, env, now)

    monkeypatch.setattr(post, "send_draft", send_draft)
    before = _tables(w)
    results = w.svc.bulk_send(w.me("alice"), template_id, [_row(w, "bob"), _row(w, "erin"), _row(w, "dave")])
    assert [r.error.reason if r.error else "sent" for r in results] == ["sent", "ENVELOPE_CHANGED", "sent"]
    assert w.store.query("SELECT id FROM envelopes WHERE id = ?", (calls[1],)) == []  # its draft was rolled back
    assert _tables(w)["envelopes"] == before["envelopes"] + 2
    assert _tables(w)["envelope_events"] == before["envelope_events"] + 4


def test_a_retried_call_sends_nothing_twice(w: World) -> None:
    template_id = _template(w)
    rows = [_row(w, "bob"), {"signer": "p_" + "0" * 24, "name": "Nobody"}, _row(w, "erin")]
    first = w.svc.bulk_send(w.me("alice"), template_id, rows, idempotency_key="batch-1")
    w.deliver()
    tables, mail = _tables(w), len(w.outbox.list())
    again = w.svc.bulk_send(w.me("alice"), template_id, rows, idempotency_key="batch-1")
    assert [_outcome(r) for r in again] == [_outcome(r) for r in first]
    w.deliver()
    assert _tables(w) == tables and len(w.outbox.list()) == mail  # no envelope, event or notice more
    # the same key and row with other values is a client bug, refused for that row
    changed = w.svc.bulk_send(w.me("alice"), template_id, [rows[0], rows[1], _row(w, "dave")],
                              idempotency_key="batch-1")
    assert _sent(changed[0]).id == _sent(first[0]).id
    assert _error(changed[2]).reason == "IDEMPOTENCY_KEY_REUSED"
    assert _tables(w) == tables
    # the rows sent are answered even after the template is voided; a new key sends anew
    w.svc.void(w.me("alice"), template_id, "campaign over")
    assert [_sent(r).id for r in w.svc.bulk_send(w.me("alice"), template_id, [rows[0]],
                                                 idempotency_key="batch-1")] == [_sent(first[0]).id]
    with pytest.raises(FailedPrecondition) as voided:
        w.svc.bulk_send(w.me("alice"), template_id, [rows[0]], idempotency_key="batch-2")
    assert voided.value.reason == "ENVELOPE_VOIDED"


def test_the_whole_call_is_refused_before_any_row(w: World) -> None:
    template_id = _template(w)
    before = _tables(w)
    alice = w.me("alice")
    with pytest.raises(InvalidArgument) as e:
        w.svc.bulk_send(alice, template_id, [_row(w, "bob")] * (MAX_ROWS + 1))
    assert e.value.reason == "TOO_MANY_ROWS"
    with pytest.raises(InvalidArgument) as e:
        w.svc.bulk_send(alice, template_id, [])
    assert e.value.reason == "ROWS_REQUIRED"
    with pytest.raises(InvalidArgument) as e:
        w.svc.bulk_send(alice, template_id, [_row(w, "bob")], idempotency_key="x" * 201)
    assert e.value.reason == "IDEMPOTENCY_KEY_INVALID"
    # not the caller's: another person (even one the template names), another organisation's operator -> NOT_FOUND,
    # the sender's organisation's operator -> PERMISSION_DENIED, like SendEnvelope
    for caller in (w.me("bob"), w.me("carol"), w.other_op):
        with pytest.raises(NotFound):
            w.svc.bulk_send(caller, template_id, [_row(w, "bob")])
    with pytest.raises(PermissionDenied, match="only the sender"):
        w.svc.bulk_send(w.acme_op, template_id, [_row(w, "bob")])
    with pytest.raises(NotFound):
        w.svc.bulk_send(alice, "env_" + "0" * 24, [_row(w, "bob")])
    assert _tables(w) == before
    # a template that is not a draft
    sent = w.create("alice", [("bob", S, 1)])
    w.svc.send(alice, sent.id)
    before = _tables(w)
    with pytest.raises(FailedPrecondition) as not_draft:
        w.svc.bulk_send(alice, sent.id, [_row(w, "bob")])
    assert not_draft.value.reason == "ENVELOPE_SENT"
    assert _tables(w) == before


def test_a_template_with_a_blank_recipient_cannot_be_sent_itself(w: World) -> None:
    template_id = _template(w)
    before = w.snapshot(template_id)
    with pytest.raises(FailedPrecondition) as e:
        w.svc.send(w.me("alice"), template_id)
    assert e.value.reason == "RECIPIENT_PLACEHOLDER" and "{{signer}}" in e.value.message
    assert w.snapshot(template_id) == before


def test_a_template_without_placeholders_sends_the_same_envelope_per_row(w: World) -> None:
    env = w.create("alice", [("bob", S, 1)], title="Notice")
    results = w.svc.bulk_send(w.me("alice"), env.id, [{}, {"unused": "x"}])
    assert [w.svc.get(w.me("bob"), _sent(r).id).title for r in results] == ["Notice", "Notice"]


def test_fill_replaces_each_placeholder_once() -> None:
    assert fill("{{a}} and {{b}} and {{a}}", {"a": "{{b}}", "b": "B", "c": "unused"}) == "{{b}} and B and {{b}}"
    assert fill("no blanks {here}", {}) == "no blanks {here}"
    with pytest.raises(InvalidArgument) as e:
        fill("Dear {{first-name}}", {"first_name": "Ann"})
    assert e.value.reason == "PLACEHOLDER_UNKNOWN"
