"""Durability: what the agent acknowledged survives `kill -9` — journal rows and the key usage count."""

from __future__ import annotations

import hashlib
import signal

import grpc
import pytest
from signet.v1 import agent_pb2

from agent.status import parse_detail
from tests.e2e.agent_harness import AgentProcess, provision_key
from tests.pki import make_ca

LIMIT = 7
POLICY = f"""
[policy]
default_callers = ["local"]
admin_callers = ["local"]

[[policy.key]]
label = "crash-key"
callers = ["local"]
usage_limit = {LIMIT}
"""


def _sign(stub, tok, key, i):
    return stub.SignDigest(agent_pb2.SignDigestRequest(
        token=agent_pb2.TokenSelector(label=tok.label), key_id=key.key_id,
        digest=hashlib.sha256(b"crash-%d" % i).digest(), credential=agent_pb2.PinCredential(pin=tok.pin)))


def test_acknowledged_signatures_survive_kill_9(tmp_path, make_token):
    tok = make_token("crash")
    agent = AgentProcess(tmp_path / "agent", POLICY).start()
    key = provision_key(agent.stub(), tok.label, tok.pin, make_ca(), key_label="crash-key")
    stub = agent.stub()
    acknowledged = [_sign(stub, tok, key, i).signature for i in range(5)]
    assert len(acknowledged) == 5

    agent.proc.send_signal(signal.SIGKILL)  # no shutdown path runs: nothing is flushed on the way out
    agent.proc.wait()
    assert agent.proc.returncode == -signal.SIGKILL
    agent._log.close()

    rows = [r for r in agent.journal() if r["operation"] == "sign_digest" and r["key_id"] == key.key_id]
    assert [r["outcome"] for r in rows] == ["ok"] * 5

    agent.start()  # the stale socket and lock of the killed agent must not stop it
    stub = agent.stub()
    assert len([_sign(stub, tok, key, 10 + i).signature for i in range(LIMIT - 5)]) == LIMIT - 5
    with pytest.raises(grpc.RpcError) as ei:
        _sign(stub, tok, key, 99)
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert parse_detail(ei.value.trailing_metadata()).reason == "KEY_USAGE_LIMIT"
    assert agent.stop() == 0
