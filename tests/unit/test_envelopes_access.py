"""Who sees what: the sender, the recipients (once sent), operators of the sender's organisation (read-only, plus
void), and nobody else -- another person, another organisation's operator, a recipient of another envelope get
NotFound, exactly as for an id that does not exist.  The lists' views, order and pages."""

from __future__ import annotations

import pytest

from server.errors import InvalidArgument, NotFound, PermissionDenied

from .test_envelopes_world import C, S, World, world_fixture  # noqa: F401 - the w fixture


def _reads(w: World, p, env) -> list[str]:
    """Which read operations ``p`` gets through on ``env`` (NotFound otherwise, never anything else)."""
    ok = []
    for name, call in (("get", lambda: w.svc.get(p, env.id)),
                       ("document", lambda: w.svc.get_document(p, env.id, env.documents[0].id)),
                       ("events", lambda: w.svc.list_events(p, env.id))):
        try:
            call()
            ok.append(name)
        except NotFound:
            pass
    return ok


def test_visibility(w: World) -> None:
    draft = w.create("alice", [("bob", S, 1), ("dave", C, 2)])
    sent = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1), ("dave", C, 2)]).id)
    other = w.svc.send(w.me("alice"), w.create("alice", [("erin", S, 1)]).id)  # Carol and Bob are not on it
    everything = ["get", "document", "events"]
    assert _reads(w, w.me("alice"), draft) == everything  # the sender
    assert _reads(w, w.acme_op, draft) == everything  # an operator of the sender's organisation
    assert _reads(w, w.me("bob"), draft) == []  # a draft is not addressed to anyone yet
    assert _reads(w, w.me("bob"), sent) == everything and _reads(w, w.me("dave"), sent) == everything
    assert _reads(w, w.other_op, sent) == []  # Dave's organisation's operator: not sent from there
    assert _reads(w, w.me("carol"), sent) == []  # same organisation, not a party
    assert _reads(w, w.me("bob"), other) == []  # a recipient of another envelope
    for p in (w.me("bob"), w.other_op):
        with pytest.raises(NotFound) as e:
            w.svc.get(p, "env_" + "0" * 24)
        with pytest.raises(NotFound) as e2:
            w.svc.get(p, other.id)
        assert (e.value.reason, e.value.message.replace("0" * 24, "X")) == \
            (e2.value.reason, e2.value.message.replace(other.id[4:], "X"))  # indistinguishable


def test_operators_read_and_void_but_act_for_no_one(w: World) -> None:
    env = w.svc.send(w.me("alice"), w.create("alice", [("bob", S, 1)]).id)
    doc = env.documents[0]
    for call in (lambda: w.svc.send(w.acme_op, env.id),
                 lambda: w.svc.start_signing(w.acme_op, env.id, doc.id, doc.current_sha256),
                 lambda: w.svc.submit_signature(w.acme_op, env.id, doc.id, content=b"x", code="123456"),
                 lambda: w.svc.decline(w.acme_op, env.id, "no")):
        with pytest.raises(PermissionDenied):
            call()
    # the operator's fetch marks nobody viewed
    w.svc.get_document(w.acme_op, env.id, doc.id)
    assert w.svc.get(w.acme_op, env.id).recipients[0].viewed_at is None


def test_views_order_and_pages(w: World) -> None:
    made = []
    for i in range(5):
        w.clock.advance(1)
        made.append(w.create("alice", [("bob", S, 1)], title=f"Lease {i}"))
    for env in made[:3]:
        w.svc.send(w.me("alice"), env.id)
    w.clock.advance(1)
    signed = w.sign(w.svc.get(w.me("alice"), made[0].id), "bob")
    from_bob = w.svc.send(w.me("bob"), w.create("bob", [("alice", S, 1)], title="Bob's own").id)

    def ids(p, view, size=0):
        out, token = [], ""
        while True:
            page = w.svc.list_envelopes(p, view, size, token)
            out += [e.id for e in page.envelopes]
            if not page.next_page_token:
                return out
            token = page.next_page_token

    newest_first = [e.id for e in reversed(made)]
    assert ids(w.me("alice"), "sent", 2) == newest_first
    assert ids(w.me("alice"), "") == [from_bob.id, *newest_first]
    assert ids(w.me("alice"), "inbox") == [from_bob.id]
    assert ids(w.me("bob"), "") == [from_bob.id, made[2].id, made[1].id, signed.id]  # drafts stay Alice's
    assert ids(w.me("bob"), "inbox") == [made[2].id, made[1].id]  # signed: no longer waiting for him
    assert ids(w.me("bob"), "sent") == [from_bob.id]
    assert ids(w.acme_op, "", 1) == [from_bob.id, *newest_first]
    assert ids(w.acme_op, "inbox") == []
    assert ids(w.other_op, "") == [] and ids(w.me("dave"), "") == []
    page = w.svc.list_envelopes(w.me("alice"), "sent", 2)
    with pytest.raises(InvalidArgument) as e:
        w.svc.list_envelopes(w.me("alice"), "", 2, page.next_page_token)  # a token of another view
    assert e.value.reason == "PAGE_TOKEN_INVALID"
    with pytest.raises(InvalidArgument) as e:
        w.svc.list_envelopes(w.me("alice"), "", 2, "not-a-token")
    assert e.value.reason == "PAGE_TOKEN_INVALID"
    with pytest.raises(InvalidArgument) as e:
        w.svc.list_envelopes(w.me("alice"), "drafts")
    assert e.value.reason == "VIEW_INVALID"
