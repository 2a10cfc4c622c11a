"""Mutual TLS on 127.0.0.1 and per-key policy: who may sign, and a key usage limit counted exactly
under 32 concurrent requests and persisted across a restart."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from signet.v1 import agent_pb2

from agent.status import parse_detail
from tests.e2e.agent_harness import AgentProcess, make_tls, provision_key
from tests.pki import make_ca

LIMIT = 10
POLICY = f"""
[policy]
default_callers = ["local"]
admin_callers = ["local"]

[[policy.key]]
label = "kiosk-key"
callers = ["tls:kiosk-1"]
usage_limit = {LIMIT}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory, make_token):
    base = tmp_path_factory.mktemp("agent-tls")
    tls = make_tls(base / "tls")
    tok = make_token("agtls")
    agent = AgentProcess(base / "agent", POLICY, tls=tls).start()
    key = provision_key(agent.stub(), tok.label, tok.pin, make_ca(), key_label="kiosk-key")
    yield agent, tls, tok, key
    if agent.alive:
        assert agent.stop() == 0


def _sign(stub, tok, key, i=0, pin=None):
    return stub.SignDigest(agent_pb2.SignDigestRequest(
        token=agent_pb2.TokenSelector(label=tok.label), key_id=key.key_id,
        digest=hashlib.sha256(b"%d" % i).digest(), credential=agent_pb2.PinCredential(pin=pin) if pin else None))


def _code(fn):
    with pytest.raises(grpc.RpcError) as ei:
        fn()
    return ei.value.code(), parse_detail(ei.value.trailing_metadata() or ())


def test_client_identity_is_its_certificate_cn(env):
    agent, tls, tok, key = env
    assert agent.tls_stub(tls, "kiosk-1").GetInfo(agent_pb2.GetInfoRequest(), timeout=10).caller == "tls:kiosk-1"


def test_client_without_certificate_is_refused_and_agent_keeps_serving(env, tmp_path):
    agent, tls, tok, key = env
    code, _ = _code(lambda: agent.tls_stub(tls, None).GetInfo(agent_pb2.GetInfoRequest(), timeout=10))
    assert code == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails: no stream is ever opened
    other = make_tls(tmp_path / "other", clients=("kiosk-1",))  # right CN, wrong CA
    from signet.v1 import agent_pb2_grpc

    from agent.client import Target, channel

    stub = agent_pb2_grpc.AgentServiceStub(channel(Target(
        tcp=f"127.0.0.1:{agent.port}", cert=other.clients["kiosk-1"][0], key=other.clients["kiosk-1"][1],
        ca=tls.ca_cert)))
    assert _code(lambda: stub.GetInfo(agent_pb2.GetInfoRequest(), timeout=10))[0] == grpc.StatusCode.UNAVAILABLE
    assert agent.tls_stub(tls, "kiosk-1").GetInfo(agent_pb2.GetInfoRequest(), timeout=10).caller == "tls:kiosk-1"


def test_unauthorised_callers_are_refused_before_any_pin_is_tried(env):
    agent, tls, tok, key = env
    intruder = agent.tls_stub(tls, "intruder")
    code, d = _code(lambda: _sign(intruder, tok, key, pin="0000"))
    assert code == grpc.StatusCode.PERMISSION_DENIED and d.reason == "PERMISSION_DENIED"
    code, _ = _code(lambda: intruder.GenerateKey(agent_pb2.GenerateKeyRequest(
        token=agent_pb2.TokenSelector(label=tok.label), algorithm=4, label="x",
        credential=agent_pb2.PinCredential(pin=tok.pin))))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # the local caller is an admin but not among this key's callers
    code, _ = _code(lambda: _sign(agent.stub(), tok, key, pin=tok.pin))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # the intruder's PIN was never tried: no failure was counted
    r = agent.stub().Unlock(agent_pb2.UnlockRequest(token=agent_pb2.TokenSelector(label=tok.label), pin=tok.pin))
    assert r.signatures_left > 0
    assert all(r["outcome"] != "PIN_INCORRECT" for r in agent.journal())


def test_usage_limit_exact_under_32_concurrent_requests_and_persisted(env):
    agent, tls, tok, key = env
    kiosk = agent.tls_stub(tls, "kiosk-1")
    kiosk.Unlock(agent_pb2.UnlockRequest(token=agent_pb2.TokenSelector(label=tok.label), pin=tok.pin))

    def one(i):
        try:
            return _sign(kiosk, tok, key, i).signature
        except grpc.RpcError as e:
            return e.code()

    with ThreadPoolExecutor(32) as ex:
        results = list(ex.map(one, range(32)))
    sigs = [r for r in results if isinstance(r, bytes)]
    refused = [r for r in results if not isinstance(r, bytes)]
    assert len(sigs) == LIMIT
    assert refused == [grpc.StatusCode.RESOURCE_EXHAUSTED] * (32 - LIMIT)
    ok_rows = [r for r in agent.journal() if r["operation"] == "sign_digest" and r["outcome"] == "ok"
               and r["key_id"] == key.key_id]
    assert len(ok_rows) == LIMIT and {r["caller"] for r in ok_rows} == {"tls:kiosk-1"}

    assert agent.stop() == 0
    agent.start()
    kiosk = agent.tls_stub(tls, "kiosk-1")
    kiosk.Unlock(agent_pb2.UnlockRequest(token=agent_pb2.TokenSelector(label=tok.label), pin=tok.pin))
    code, d = _code(lambda: _sign(kiosk, tok, key, 99))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and d.reason == "KEY_USAGE_LIMIT"
