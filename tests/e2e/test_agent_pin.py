"""Wrong PINs count down to a lock, over the API and the CLI; the lock survives an agent restart, and only an
admin who proves the PIN or the SO PIN clears it (`signet pin-reset`)."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from signet.v1 import agent_pb2
from signet.wire import parse_detail
from tests.conftest import SO_PIN
from tests.e2e.agent_harness import AgentProcess, cli, digest_policy


def _fail(call):
    with pytest.raises(grpc.RpcError) as ei:
        call()
    d = parse_detail(ei.value.trailing_metadata())
    assert d is not None, "the refusal carries no ErrorDetail"
    return ei.value.code(), d.reason, d.pin_tries_left, ei.value.details()


def test_wrong_pin_counts_down_then_locks_and_stays_locked(tmp_path, make_token):
    tok = make_token("agpin", pin="Right-PIN-4k")  # distinctive: searched for in the log below
    agent = AgentProcess(tmp_path / "a", agent_settings="max_pin_failures = 3").start()
    try:
        stub = agent.stub()
        sel = agent_pb2.TokenSelector(label=tok.label)
        wrong = "Wrong-PIN-9z"
        assert _fail(lambda: stub.Unlock(agent_pb2.UnlockRequest(token=sel, pin=wrong)))[:3] == (
            grpc.StatusCode.UNAUTHENTICATED, "PIN_INCORRECT", 2)
        r = cli(agent, "unlock", "--token", tok.label, "--pin-env", "P", env={"P": wrong})
        assert r.returncode == 4 and "1 PIN tries left" in r.stderr, r.stderr
        code, reason, left, msg = _fail(lambda: stub.Unlock(agent_pb2.UnlockRequest(token=sel, pin=wrong)))
        assert (code, reason, left) == (grpc.StatusCode.FAILED_PRECONDITION, "PIN_LOCKED", 0)
        # now even the right PIN is refused: the agent does not spend the token's own tries
        code, reason, _, msg = _fail(lambda: stub.Unlock(agent_pb2.UnlockRequest(token=sel, pin=tok.pin)))
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PIN_LOCKED")
        assert "locked" in msg
        outcomes = [r["outcome"] for r in agent.journal() if r["operation"] == "unlock"]
        assert outcomes == ["PIN_INCORRECT", "PIN_INCORRECT", "PIN_LOCKED", "PIN_LOCKED"]
    finally:
        assert agent.stop() == 0
    log = agent.log()
    assert wrong not in log and tok.pin not in log
    agent.start()  # the failure count is persisted
    try:
        sel = agent_pb2.TokenSelector(label=tok.label)
        code, reason, _, _ = _fail(lambda: agent.stub().Unlock(agent_pb2.UnlockRequest(token=sel, pin=tok.pin)))
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PIN_LOCKED")
        # a wrong SO PIN clears nothing
        r = cli(agent, "pin-reset", "--token", tok.label, "--so-pin-env", "SO", env={"SO": "99999999"})
        assert r.returncode == 4, r.stdout + r.stderr
        r = cli(agent, "--json", "pin-reset", "--token", tok.label, "--so-pin-env", "SO", env={"SO": SO_PIN})
        assert r.returncode == 0, r.stdout + r.stderr
        assert agent.stub().Unlock(agent_pb2.UnlockRequest(token=sel, pin=tok.pin)).signatures_left == 1
        assert [r["operation"] for r in agent.journal()][-3:] == ["pin_reset", "pin_reset", "unlock"]
        assert [r["outcome"] for r in agent.journal()][-2:] == ["ok", "ok"]
    finally:
        assert agent.stop() == 0
    assert SO_PIN not in agent.log()


def test_pin_reset_with_the_user_pin_and_only_for_admins(tmp_path, make_token):
    tok = make_token("agpin3")
    agent = AgentProcess(tmp_path / "a", '[policy]\nadmin_callers = []\n',
                         agent_settings="max_pin_failures = 2").start()
    try:
        stub = agent.stub()
        sel = agent_pb2.TokenSelector(label=tok.label)
        for _ in range(2):
            _fail(lambda: stub.Unlock(agent_pb2.UnlockRequest(token=sel, pin="0000")))
        code, reason, *_ = _fail(lambda: stub.PinReset(agent_pb2.PinResetRequest(token=sel, pin=tok.pin)))
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")  # no admin callers
    finally:
        assert agent.stop() == 0
    agent = AgentProcess(tmp_path / "a", agent_settings="max_pin_failures = 2").start()  # local is admin again
    try:
        stub = agent.stub()
        r = stub.PinReset(agent_pb2.PinResetRequest(token=sel, pin=tok.pin))
        assert r.token_serial == tok.serial and r.pin_tries_left == 2
    finally:
        assert agent.stop() == 0


def test_second_callers_wrong_pin_is_counted_while_token_is_logged_in(tmp_path, make_token):
    """C_Login does not check a PIN on a logged-in token; the agent must, and count the failure."""
    tok = make_token("agpin2")
    agent = AgentProcess(tmp_path / "a", digest_policy(), agent_settings="max_pin_failures = 5").start()
    try:
        stub = agent.stub()
        sel = agent_pb2.TokenSelector(label=tok.label)
        stub.Unlock(agent_pb2.UnlockRequest(token=sel, pin=tok.pin))
        req = agent_pb2.SignDigestRequest(token=sel, key_id="00", digest=hashlib.sha256(b"x").digest(),
                                          credential=agent_pb2.PinCredential(pin="0000"))
        assert _fail(lambda: stub.SignDigest(req))[:3] == (grpc.StatusCode.UNAUTHENTICATED, "PIN_INCORRECT", 4)
        assert _fail(lambda: stub.SignDigest(req))[:3] == (grpc.StatusCode.UNAUTHENTICATED, "PIN_INCORRECT", 3)
        # the right PIN resets the count; the unknown key is then the problem
        req.credential.pin = tok.pin
        assert _fail(lambda: stub.SignDigest(req))[:2] == (grpc.StatusCode.NOT_FOUND, "KEY_NOT_FOUND")
        req.credential.pin = "0000"
        assert _fail(lambda: stub.SignDigest(req))[2] == 4
    finally:
        assert agent.stop() == 0
