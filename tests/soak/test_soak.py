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
                                    "certificate_issued"))):
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
