"""Durability: what the agent acknowledged survives `kill -9` — journal rows and the key usage count."""

from __future__ import annotations

import hashlib
import signal

import grpc
import pytest

from signet.v1 import agent_pb2
from signet.wire import parse_detail
from tests.e2e.agent_harness import AgentProcess, provision_key
from tests.pki import make_ca
from tests.sigcheck import ec_key, verify_signature

LIMIT = 7
POLICY = f"""
[policy]
default_callers = ["local"]
admin_callers = ["local"]

[[policy.key]]
label = "crash-key"
callers = ["local"]
usage_limit = {LIMIT}
allow_digests = true
"""


def _sign(stub, tok, key, i):
    return stub.SignDigest(agent_pb2.SignDigestRequest(
        token=agent_pb2.TokenSelector(label=tok.label), key_id=key.key_id,
        digest=hashlib.sha256(b"crash-%d" % i).digest(), credential=agent_pb2.PinCredential(pin=tok.pin)))


def _verify(key, signature, i):
    from cryptography import x509

    # ECDSA with SHA-256, by the key of the certificate stored with it
    verify_signature(ec_key(x509.load_der_x509_certificate(key.certificate_der)), signature, b"crash-%d" % i)


def test_acknowledged_signatures_survive_kill_9(tmp_path, make_token):
    tok = make_token("crash")
    agent = AgentProcess(tmp_path / "agent", POLICY).start()
    key = provision_key(agent.stub(), tok.label, tok.pin, make_ca(), key_label="crash-key")
    stub = agent.stub()
    for i in range(5):  # each acknowledged signature is a real one over its digest
        _verify(key, _sign(stub, tok, key, i).signature, i)

    agent.kill()  # SIGKILL: no shutdown path runs, nothing is flushed on the way out
    assert agent.proc is not None
    assert agent.proc.returncode == -signal.SIGKILL

    rows = [r for r in agent.journal() if r["operation"] == "sign_digest" and r["key_id"] == key.key_id]
    assert [r["outcome"] for r in rows] == ["ok"] * 5
    # each row holds the exact digest that was signed: the five acknowledged ones, in order
    assert [r["signed_digest"] for r in rows] == [hashlib.sha256(b"crash-%d" % i).hexdigest() for i in range(5)]

    agent.start()  # the stale socket and lock of the killed agent must not stop it
    stub = agent.stub()
    for i in range(LIMIT - 5):  # the persisted count allows exactly the rest of the limit
        _verify(key, _sign(stub, tok, key, 10 + i).signature, 10 + i)
    with pytest.raises(grpc.RpcError) as ei:
        _sign(stub, tok, key, 99)
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    detail = parse_detail(ei.value.trailing_metadata())
    assert detail is not None
    assert detail.reason == "KEY_USAGE_LIMIT"
    assert agent.stop() == 0
