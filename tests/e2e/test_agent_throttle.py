"""Wrong PINs are throttled per caller: past `unlock.pin_tries_per_minute` the agent refuses before the token
(PIN_THROTTLED, RESOURCE_EXHAUSTED) and says when to retry; the CLI shows it (text and --json)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.agent_harness import AgentProcess, cli

pytestmark = pytest.mark.e2e


def test_pin_throttle_says_when_to_retry(tmp_path, make_token):
    tok = make_token("throttle")
    agent = AgentProcess(tmp_path / "agent", "[unlock]\npin_tries_per_minute = 2\n").start()
    try:
        runs = [cli(agent, "--json", "unlock", "--token", tok.label, "--pin-env", "P", env={"P": "99999999"})
                for _ in range(3)]
        wrong = [json.loads(r.stdout) for r in runs[:2]]
        assert [r.returncode for r in runs[:2]] == [4, 4], [r.stderr for r in runs]
        assert [w["detail"]["reason"] for w in wrong] == ["PIN_INCORRECT", "PIN_INCORRECT"]
        assert all(w["retry_after"] is None for w in wrong)

        throttled = runs[2]
        out = json.loads(throttled.stdout)
        assert throttled.returncode == 6, throttled.stderr
        assert (out["status"], out["detail"]["reason"]) == ("RESOURCE_EXHAUSTED", "PIN_THROTTLED")
        assert 0 < out["retry_after"] <= 60
        assert "retry in" in throttled.stderr
        # the right PIN is refused too while throttled: the throttle is checked before the token
        right = cli(agent, "--json", "unlock", "--token", tok.label, "--pin-env", "P", env={"P": tok.pin})
        assert json.loads(right.stdout)["detail"]["reason"] == "PIN_THROTTLED"
    finally:
        assert agent.stop() == 0
    assert "99999999" not in agent.log() and tok.pin not in agent.log()
