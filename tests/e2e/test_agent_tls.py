"""Mutual TLS on 127.0.0.1 and per-key policy: callers named by their certificate's SAN URI or fingerprint (never
the CN), who may sign, and a key usage limit counted exactly under 32 concurrent requests and persisted across a
restart."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from signet.v1 import agent_pb2, common_pb2
from signet.wire import parse_detail
from tests.e2e.agent_harness import (
    AgentProcess,
    caller,
    make_tls,
    provision_key,
    tls_settings,
    tls_stub,
    with_grant,
)
from tests.pki import make_ca

LIMIT = 10
POLICY = f"""
[unlock]
max_signatures = 100

[policy]
default_callers = ["local"]
admin_callers = ["local"]

[[policy.key]]
label = "kiosk-key"
callers = ["{caller("kiosk-1")}"]
usage_limit = {LIMIT}
allow_digests = true
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory, make_token):
    base = tmp_path_factory.mktemp("agent-tls")
    tls = make_tls(base / "tls")
    tok = make_token("agtls")
    agent = AgentProcess(base / "agent", POLICY, tls=tls_settings(tls)).start()
    key = provision_key(agent.stub(), tok.label, tok.pin, make_ca(), key_label="kiosk-key")
    yield agent, tls, tok, key
    if agent.alive:
        assert agent.stop() == 0


def _sign(stub, tok, key, i=0, pin=None, grant=None):
    return stub.SignDigest(agent_pb2.SignDigestRequest(
        token=agent_pb2.TokenSelector(label=tok.label), key_id=key.key_id,
        digest=hashlib.sha256(b"%d" % i).digest(), credential=agent_pb2.PinCredential(pin=pin) if pin else None),
        metadata=with_grant(grant) if grant else None)


def _code(fn):
    with pytest.raises(grpc.RpcError) as ei:
        fn()
    return ei.value.code(), parse_detail(ei.value.trailing_metadata() or ())


def test_client_identity_is_its_san_uri_or_its_fingerprint_never_its_cn(env):
    import hashlib as h

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    agent, tls, _tok, _key = env
    info = tls_stub(agent, tls, "kiosk-1").GetInfo(agent_pb2.GetInfoRequest(), timeout=10)
    assert info.caller == "tls:urn:signet:test:client:kiosk-1" and info.state_dir == ""  # paths: local callers only
    der = x509.load_pem_x509_certificate(tls.clients["no-uri"][0].read_bytes()).public_bytes(Encoding.DER)
    info = tls_stub(agent, tls, "no-uri").GetInfo(agent_pb2.GetInfoRequest(), timeout=10)
    assert info.caller == "tls-sha256:" + h.sha256(der).hexdigest()


def test_client_without_certificate_is_refused_and_agent_keeps_serving(env, tmp_path):
    agent, tls, _tok, _key = env
    code, _ = _code(lambda: tls_stub(agent, tls, None).GetInfo(agent_pb2.GetInfoRequest(), timeout=10))
    assert code == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails: no stream is ever opened
    other = make_tls(tmp_path / "other", clients=("kiosk-1",))  # right name, wrong CA
    from agent.client import Target, channel
    from signet.v1 import agent_pb2_grpc

    stub = agent_pb2_grpc.AgentServiceStub(channel(Target(
        tcp=f"127.0.0.1:{agent.port}", cert=other.clients["kiosk-1"][0], key=other.clients["kiosk-1"][1],
        ca=tls.ca_cert)))
    assert _code(lambda: stub.GetInfo(agent_pb2.GetInfoRequest(), timeout=10))[0] == grpc.StatusCode.UNAVAILABLE
    assert tls_stub(agent, tls, "kiosk-1").GetInfo(agent_pb2.GetInfoRequest(), timeout=10).caller == caller("kiosk-1")


def test_unauthorised_callers_are_refused_before_any_pin_is_tried(env):
    agent, tls, tok, key = env
    intruder = tls_stub(agent, tls, "intruder")
    code, d = _code(lambda: _sign(intruder, tok, key, pin="0000"))
    assert code == grpc.StatusCode.PERMISSION_DENIED and d.reason == "PERMISSION_DENIED"
    # nor may it try PINs through Unlock: a caller that may use no key may not guess PINs
    code, _ = _code(lambda: intruder.Unlock(agent_pb2.UnlockRequest(token=agent_pb2.TokenSelector(label=tok.label),
                                                                    pin="0000")))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = _code(lambda: intruder.GenerateKey(agent_pb2.GenerateKeyRequest(
        token=agent_pb2.TokenSelector(label=tok.label), algorithm=common_pb2.KEY_ALGORITHM_EC_P256, label="x",
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
    kiosk = tls_stub(agent, tls, "kiosk-1")
    grant = kiosk.Unlock(agent_pb2.UnlockRequest(token=agent_pb2.TokenSelector(label=tok.label), pin=tok.pin)).grant

    def one(i):
        try:
            return _sign(kiosk, tok, key, i, grant=grant).signature
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
    assert len(ok_rows) == LIMIT and {r["caller"] for r in ok_rows} == {caller("kiosk-1")}

    assert agent.stop() == 0
    agent.start()
    kiosk = tls_stub(agent, tls, "kiosk-1")
    grant = kiosk.Unlock(agent_pb2.UnlockRequest(token=agent_pb2.TokenSelector(label=tok.label), pin=tok.pin)).grant
    code, d = _code(lambda: _sign(kiosk, tok, key, 99, grant=grant))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and d.reason == "KEY_USAGE_LIMIT"


def test_a_signing_ca_is_refused_as_client_ca(tmp_path, make_token):
    """tcp.client_ca must be a TLS CA: a CA carrying the Signet signing-root marker would let signing hierarchy
    certificates (and nothing else) in, so the agent refuses to start with it."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from formats.policy import DEFAULT_SIGNING_POLICY, SIGNING_ROOT_MARKER

    tls = make_tls(tmp_path / "tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Signet Signing Root CA")])
    now = dt.datetime.now(dt.UTC)
    root = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(o), None)
                                                     for o in (SIGNING_ROOT_MARKER, DEFAULT_SIGNING_POLICY)]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    bad = tmp_path / "signing-root.pem"
    bad.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    settings = {**tls_settings(tls), "client_ca": str(bad)}
    agent = AgentProcess(tmp_path / "agent", tls=settings)
    with pytest.raises(RuntimeError, match="Signet signing CA"):
        agent.start(timeout=60)
    assert agent.proc is not None and agent.proc.returncode == 2
