"""A short crash soak in `make test` (3 rounds per side; `make soak` runs 50), and the soak's own checks shown
to notice a lost operation."""

from __future__ import annotations

import random

import pytest

from .framework import AckLog, RoundReport
from .soak import run_soak


@pytest.mark.e2e
@pytest.mark.slow
def test_three_rounds_of_kill_9_lose_nothing(make_token, tmp_path):
    lines: list[str] = []
    report = run_soak(tmp_path, rounds=3, seconds=2.5, seed=random.randrange(1 << 31), make_token=make_token,
                      out=lines.append)
    text = "\n".join(lines + report.summary())
    assert report.ok, text
    assert len(report.reports) == 6, text
    for side, kinds in (("agent", ("sign_digest", "sign_stream", "sign_pdf")),
                        ("server", ("person_registered", "phone_verified", "person_approved",
                                    "certificate_issued", "envelope_created", "envelope_sent", "envelope_signed"))):
        assert all(report.totals[side][k] > 0 for k in kinds), text  # every kind of load was acknowledged
        assert len(report.restarts(side)) == 3, text


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
