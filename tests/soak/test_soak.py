"""A short crash soak in `make test` (3 rounds per side; `make soak` runs 50), and the soak's own checks shown
to notice a lost operation."""

from __future__ import annotations

import random

import pytest

from .framework import AckLog, RoundReport
from .soak import run_soak

KINDS = (("agent", ("sign_digest", "sign_stream", "sign_pdf")),
         ("server", ("person_registered", "phone_verified", "person_approved", "certificate_issued", "envelope_created",
                     "envelope_sent", "envelope_signed", "envelope_bulk_sent", "envelope_signed_remotely")))


@pytest.mark.e2e
@pytest.mark.slow
def test_three_rounds_of_kill_9_lose_nothing(make_token, tmp_path):
    lines: list[str] = []
    report = run_soak(tmp_path / "soak", rounds=3, seconds=2.5, seed=random.randrange(1 << 31),
                      make_token=make_token, out=lines.append)
    text = "\n".join(lines + report.summary())
    assert report.ok, text
    assert len(report.reports) == 6, text
    for side, _ in KINDS:
        assert len(report.restarts(side)) == 3, text
    # every kind of load must have been acknowledged, and checked after a kill; the longest (a remote signature:
    # create, send, code, sign) may not fit 3 short rounds on a loaded machine: up to 3 more rounds then
    seen = {side: {k for k, n in report.totals[side].items() if n > 0} for side, _ in KINDS}
    missing = [k for side, kinds in KINDS for k in kinds if k not in seen[side]]
    if missing:
        sides = [side for side, kinds in KINDS if any(k not in seen[side] for k in kinds)]
        more = run_soak(tmp_path / "more", rounds=3, seconds=4.0, seed=random.randrange(1 << 31),
                        make_token=make_token, sides=sides, out=lines.append)
        text = "\n".join(lines + report.summary() + more.summary())
        assert more.ok, text
        for side, _ in KINDS:
            seen[side] |= {k for k, n in more.totals[side].items() if n > 0}
    assert all(k in seen[side] for side, kinds in KINDS for k in kinds), text


def test_a_lost_signature_is_reported():
    from .agent_load import AgentState, _journal_problems

    acked = AckLog()
    acked.ack("sign_digest", "aa" * 32)
    acked.ack("sign_digest", "bb" * 32)
    row = {"operation": "sign_digest", "outcome": "ok", "key_id": "01", "document_sha256": "", "signed_digest": "aa"}
    state = AgentState(acked, {"aa" * 32: row}, 1, 2, [])
    problems = _journal_problems(state, ("sign_digest",), "sign_digest")
    assert len(problems) == 1 and problems[0].startswith("LOST sign_digest") and "bb" * 32 in problems[0]


def test_a_failure_while_alive_fails_the_round():
    acked = AckLog()
    acked.start_round(1)
    acked.failed("sign_digest", RuntimeError("boom"))
    acked.mark_killed()
    acked.failed("sign_digest", RuntimeError("connection reset"))
    before = [f for f in acked.failures(1) if f.before_kill]
    assert [f.what for f in before] == ["RuntimeError: boom"]
    rep = RoundReport("agent", 1, unexpected=[f.what for f in before])
    assert not rep.ok


def _envelope_snapshot():
    """One envelope as the store holds it: sent, Alice (order 1) has signed, Bob (order 2) was notified."""
    from .envelope_load import Snapshot

    t = "2030-01-02T03:04:05.678000Z"
    rec = {"role": "signer", "viewed_at": None, "declined_at": None, "decline_reason": "", "notified_at": t}
    env = {"id": "env_1", "title": "Soak lease 1", "state": "sent", "sent_at": t, "completed_at": None,
           "ended_at": None}
    recipients = [{**rec, "id": "rcp_a", "envelope_id": "env_1", "person_id": "p_a", "routing_order": 1,
                   "state": "signed", "signed_at": t, "certificate_serial": "0a"},
                  {**rec, "id": "rcp_b", "envelope_id": "env_1", "person_id": "p_b", "routing_order": 2,
                   "state": "notified", "signed_at": None, "certificate_serial": ""}]
    revisions = [{"document_id": "doc_1", "seq": 0, "kind": "original", "sha256": "aa", "size": 10,
                  "recipient_id": None},
                 {"document_id": "doc_1", "seq": 1, "kind": "pdf", "sha256": "bb", "size": 20, "recipient_id": "rcp_a"}]
    events = [{"type": "created", "detail": {}}, {"type": "sent", "detail": {"sent_at": t}},
              {"type": "notified", "detail": {"recipient_id": "rcp_a", "notified_at": t}},
              {"type": "signed", "detail": {"recipient_id": "rcp_a", "document_id": "doc_1", "seq": 1, "sha256": "bb"}},
              {"type": "notified", "detail": {"recipient_id": "rcp_b", "notified_at": t}}]
    return Snapshot({"env_1": env}, {"env_1": [{"id": "doc_1", "envelope_id": "env_1", "locked_sha256": "aa"}]},
                    {"env_1": recipients}, {"doc_1": revisions}, {"env_1": events})


def test_an_envelope_stuck_half_way_or_a_lost_signature_is_reported():
    from .envelope_load import Envelopes

    assert Envelopes._consistent(_envelope_snapshot(), "env_1") == []
    snap = _envelope_snapshot()
    snap.recipients["env_1"][1]["state"] = "pending"  # Alice signed, Bob was never told
    assert any("routing not advanced" in p for p in Envelopes._consistent(snap, "env_1"))
    snap = _envelope_snapshot()
    del snap.revisions["doc_1"][1]  # signed, without the revision
    assert any("stuck half-way" in p for p in Envelopes._consistent(snap, "env_1"))
    snap = _envelope_snapshot()
    snap.envelopes["env_1"].update(state="completed", completed_at="2030-01-02T03:04:06.000000Z")
    assert any("completed without every signature" in p for p in Envelopes._consistent(snap, "env_1"))
    acked = AckLog()
    acked.ack("envelope_signed", "env_1/rcp_a", envelope="env_1", document="doc_1", recipient="rcp_a", sha256="cc",
              previous="aa")
    [lost] = Envelopes._acknowledged(acked, _envelope_snapshot())
    assert lost.startswith("LOST envelope_signed") and "cc" in lost


def _bulk_snapshot():
    """The envelope above, plus Alice's template (a draft, signers {{first}} and {{second}}) and row 0 of a bulk
    send from it: sent to Alice and Bob, Alice notified."""
    from .envelope_load import TEMPLATE_TITLE

    snap = _envelope_snapshot()
    t = "2030-01-02T03:04:05.678000Z"
    blank = {"role": "signer", "viewed_at": None, "declined_at": None, "decline_reason": "", "notified_at": None,
             "state": "pending", "signed_at": None, "certificate_serial": ""}
    snap.envelopes["env_t"] = {"id": "env_t", "sender_person_id": "p_a", "title": TEMPLATE_TITLE, "state": "draft",
                               "sent_at": None, "completed_at": None, "ended_at": None}
    snap.documents["env_t"] = [{"id": "doc_t", "envelope_id": "env_t", "locked_sha256": ""}]
    snap.recipients["env_t"] = [{**blank, "id": "rcp_t1", "envelope_id": "env_t", "person_id": "{{first}}",
                                 "routing_order": 1},
                                {**blank, "id": "rcp_t2", "envelope_id": "env_t", "person_id": "{{second}}",
                                 "routing_order": 2}]
    snap.revisions["doc_t"] = [{"document_id": "doc_t", "seq": 0, "kind": "original", "sha256": "tt", "size": 10,
                                "recipient_id": None}]
    snap.events["env_t"] = [{"type": "created", "detail": {}}]
    snap.envelopes["env_r"] = {"id": "env_r", "sender_person_id": "p_a", "title": "Soak bulk 4.0", "state": "sent",
                               "sent_at": t, "completed_at": None, "ended_at": None}
    snap.documents["env_r"] = [{"id": "doc_r", "envelope_id": "env_r", "locked_sha256": "tt"}]
    snap.recipients["env_r"] = [{**blank, "id": "rcp_r1", "envelope_id": "env_r", "person_id": "p_a",
                                 "routing_order": 1, "state": "notified", "notified_at": t},
                                {**blank, "id": "rcp_r2", "envelope_id": "env_r", "person_id": "p_b",
                                 "routing_order": 2}]
    snap.revisions["doc_r"] = [{"document_id": "doc_r", "seq": 0, "kind": "original", "sha256": "tt", "size": 10,
                                "recipient_id": None}]
    snap.events["env_r"] = [{"type": "created", "detail": {"bulk": {"template_id": "env_t", "row": 0}}},
                            {"type": "sent", "detail": {"sent_at": t}},
                            {"type": "notified", "detail": {"recipient_id": "rcp_r1", "notified_at": t}}]
    return snap


def _bulk_acked():
    acked = AckLog()
    acked.ack("envelope_template", "env_t", sha256="tt", first="p_a", second="p_b")
    acked.ack("envelope_bulk_sent", "env_r", title="Soak bulk 4.0", template="env_t", row=0, sha256="tt",
              recipients=["p_a", "p_b"])
    return acked


def test_a_lost_or_duplicated_bulk_row_is_reported():
    import copy

    from .envelope_load import Envelopes

    snap = _bulk_snapshot()
    assert [p for e in snap.envelopes for p in Envelopes._consistent(snap, e)] == []
    assert Envelopes._acknowledged(_bulk_acked(), snap) == [] and Envelopes._duplicates(snap) == []
    snap = _bulk_snapshot()  # the row's envelope is gone
    for table in (snap.envelopes, snap.documents, snap.recipients, snap.events):
        del table["env_r"]
    [lost] = Envelopes._acknowledged(_bulk_acked(), snap)
    assert lost.startswith("LOST envelope_bulk_sent") and "env_r" in lost and "not in the store" in lost
    snap = _bulk_snapshot()  # there, but still a draft (created, the send lost)
    snap.envelopes["env_r"].update(state="draft", sent_at=None)
    [lost] = Envelopes._acknowledged(_bulk_acked(), snap)
    assert lost.startswith("LOST envelope_bulk_sent") and "draft" in lost
    snap = _bulk_snapshot()  # the placeholder not substituted
    snap.recipients["env_r"][1]["person_id"] = "{{second}}"
    [lost] = Envelopes._acknowledged(_bulk_acked(), snap)
    assert lost.startswith("LOST envelope_bulk_sent") and "{{second}}" in lost
    snap = _bulk_snapshot()  # the template was sent (or voided) by the bulk send
    snap.envelopes["env_t"].update(state="sent", sent_at="2030-01-02T03:04:05.678000Z")
    assert any(p.startswith("LOST envelope_template") for p in Envelopes._acknowledged(_bulk_acked(), snap))
    snap = _bulk_snapshot()  # the row sent twice (a retry that acted again)
    snap.envelopes["env_r2"] = {**snap.envelopes["env_r"], "id": "env_r2"}
    for table in (snap.documents, snap.recipients, snap.events):
        table["env_r2"] = copy.deepcopy(table["env_r"])
    dups = Envelopes._duplicates(snap)
    assert any("bulk row sent more than once" in p and "env_t" in p for p in dups), dups
    assert Envelopes._acknowledged(_bulk_acked(), snap) == []  # the acknowledged one is there: only a duplicate
    snap = _bulk_snapshot()  # a second template of the pair (a retried create that acted again)
    snap.envelopes["env_t2"] = {**snap.envelopes["env_t"], "id": "env_t2"}
    assert any("2 templates of sender p_a" in p for p in Envelopes._duplicates(snap))


def _remote_snapshot():
    """The envelope above, completed: Bob (order 2) signed remotely, his code c2 activated once for revision bb."""
    snap = _envelope_snapshot()
    t = "2030-01-02T03:04:06.000000Z"
    snap.envelopes["env_1"].update(state="completed", completed_at=t, ended_at=t)
    snap.recipients["env_1"][1].update(state="signed", signed_at=t, certificate_serial="0b")
    snap.revisions["doc_1"].append({"document_id": "doc_1", "seq": 2, "kind": "pdf", "sha256": "cc", "size": 30,
                                    "recipient_id": "rcp_b"})
    snap.events["env_1"] += [
        {"type": "code_sent", "detail": {"recipient_id": "rcp_b", "document_id": "doc_1", "code_id": "c2"}},
        {"type": "activated", "detail": {"recipient_id": "rcp_b", "document_id": "doc_1", "revision_sha256": "bb",
                                         "code_id": "c2", "certificate_serial": "0b"}},
        {"type": "signed", "detail": {"recipient_id": "rcp_b", "document_id": "doc_1", "seq": 2, "sha256": "cc",
                                      "previous_sha256": "bb", "certificate_serial": "0b", "code_id": "c2",
                                      "method": "remote"}},
        {"type": "completed", "detail": {}}]
    return snap


def _remote_acked():
    acked = AckLog()
    acked.ack("envelope_signed_remotely", "env_1/rcp_b", envelope="env_1", document="doc_1", recipient="rcp_b",
              sha256="cc", previous="bb", code_id="c2")
    return acked


def test_a_lost_remote_signature_or_a_double_activation_is_reported():
    from .envelope_load import Envelopes, _activations

    codes = {"c2": "123456", "c3": "654321"}
    snap = _remote_snapshot()
    assert Envelopes._consistent(snap, "env_1") == [] and Envelopes._duplicates(snap) == []
    assert Envelopes._acknowledged(_remote_acked(), snap) == [] and _activations(snap, set(), codes) == []
    snap = _remote_snapshot()  # the revision lost (and so the recipient's signature with it)
    del snap.revisions["doc_1"][2]
    snap.recipients["env_1"][1].update(state="notified", signed_at=None)
    [lost] = Envelopes._acknowledged(_remote_acked(), snap)
    assert lost.startswith("LOST envelope_signed_remotely") and "cc" in lost
    snap = _remote_snapshot()  # there, but its activation is not
    del snap.events["env_1"][6]
    [lost] = Envelopes._acknowledged(_remote_acked(), snap)
    assert lost.startswith("LOST envelope_signed_remotely") and "0 activation(s)" in lost
    assert any("has 0 activation(s)" in p for p in _activations(snap, set(), codes))
    # a retry that activated again (a fresh code c3) and signed a second time: two revisions by Bob
    snap = _remote_snapshot()
    snap.revisions["doc_1"].append({"document_id": "doc_1", "seq": 3, "kind": "pdf", "sha256": "dd", "size": 40,
                                    "recipient_id": "rcp_b"})
    snap.events["env_1"][-1:-1] = [
        {"type": "activated", "detail": {"recipient_id": "rcp_b", "document_id": "doc_1", "revision_sha256": "cc",
                                         "code_id": "c3", "certificate_serial": "0b"}},
        {"type": "signed", "detail": {"recipient_id": "rcp_b", "document_id": "doc_1", "seq": 3, "sha256": "dd",
                                      "previous_sha256": "cc", "certificate_serial": "0b", "code_id": "c3",
                                      "method": "remote"}}]
    assert any("2 revisions by recipient rcp_b" in p for p in Envelopes._duplicates(snap))
    assert any("rcp_b is signed with 2 of 1 document(s)" in p for p in Envelopes._consistent(snap, "env_1"))
    assert _activations(snap, set(), codes) == []  # each revision has its own activation: the duplicates show it
    # the same code activated twice (and two revisions made from it)
    snap.events["env_1"][8]["detail"]["code_id"] = snap.events["env_1"][9]["detail"]["code_id"] = "c2"
    assert any("code c2 activated 2 times" in p for p in _activations(snap, set(), codes))
    # an activation without its signature: allowed only where the kill cut its SignRemotely call
    snap = _remote_snapshot()
    snap.events["env_1"].insert(5, {"type": "activated", "detail": {
        "recipient_id": "rcp_b", "document_id": "doc_1", "revision_sha256": "bb", "code_id": "c1",
        "certificate_serial": "0b"}})
    [orphan] = _activations(snap, set(), codes)
    assert "without a signature" in orphan and "c1" in orphan
    assert _activations(snap, {"c1"}, codes) == [] and Envelopes._acknowledged(_remote_acked(), snap) == []
    # an activation that records the code itself
    snap = _remote_snapshot()
    snap.events["env_1"][6]["detail"]["note"] = "123456"
    assert any("holds a code" in p for p in _activations(snap, set(), codes))
    snap = _remote_snapshot()
    snap.events["env_1"][6]["detail"]["one_time_code"] = "x"
    assert any("holds a code" in p for p in _activations(snap, set(), codes))
