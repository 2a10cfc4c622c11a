"""A token pulled out during a stream of signatures: the call fails cleanly (UNAVAILABLE), the agent keeps
serving, every grant on the token ends, and signing works again without a restart once the token is back and
unlocked again.

Two ways back: the same token re-inserted (its SoftHSM directory moved away and back: same serial, same keys,
but the old grant is gone: the signer unlocks again), and a token deleted and re-created with the same label
(SoftHSM gives it a new serial: a different token, with no keys).
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time

import grpc
import pytest
from cryptography import x509

from signet.v1 import agent_pb2
from signet.wire import parse_detail
from tests.conftest import create_token, delete_token
from tests.e2e.agent_harness import AgentProcess, digest_policy, provision_key, with_grant
from tests.pki import make_ca
from tests.sigcheck import ec_key, verify_signature


class StreamDriver:
    """Sends batches of 16 digests until stopped; records signatures and the final status."""

    def __init__(self, stub, label, key_id, grant):
        self.stub, self.label, self.key_id, self.grant = stub, label, key_id, grant
        self.stop = threading.Event()
        self.sigs: list[tuple[bytes, bytes]] = []
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _requests(self):
        i = 0
        while not self.stop.is_set() and i < 20000:
            msgs = [b"m%d" % (i + j) for j in range(16)]
            self.pending = msgs
            yield agent_pb2.SignDigestStreamRequest(
                token=agent_pb2.TokenSelector(label=self.label) if i == 0 else None,
                key_id=self.key_id if i == 0 else "", digests=[hashlib.sha256(m).digest() for m in msgs],
                request_id=i)
            i += 16
            time.sleep(0.005)

    def _run(self):
        try:
            for r in self.stub.SignDigestStream(self._requests(), metadata=with_grant(self.grant)):
                msgs = [b"m%d" % (r.request_id + j) for j in range(16)]
                self.sigs.extend(zip(msgs, r.signatures, strict=True))
        except grpc.RpcError as e:
            self.error = e

    def wait_for(self, n, timeout=60):
        end = time.monotonic() + timeout
        while len(self.sigs) < n and self.thread.is_alive() and time.monotonic() < end:
            time.sleep(0.01)
        assert len(self.sigs) >= n, f"stream stalled: {self.error!r}"


def _verify_all(cert_der, sigs):
    pub = ec_key(x509.load_der_x509_certificate(cert_der))
    for m, s in sigs:
        verify_signature(pub, s, m)  # ECDSA with SHA-256


def _token_dir(softhsm_dir, label):
    for d in (softhsm_dir / "tokens").iterdir():
        obj = d / "token.object"
        if obj.exists() and label.encode() in obj.read_bytes():
            return d
    raise AssertionError(f"no token directory for {label}")


def _sign(stub, label, key_id, pin=None, grant=None):
    return stub.SignDigest(agent_pb2.SignDigestRequest(
        token=agent_pb2.TokenSelector(label=label), key_id=key_id, digest=hashlib.sha256(b"after").digest(),
        credential=agent_pb2.PinCredential(pin=pin) if pin else None), timeout=60,
        metadata=with_grant(grant) if grant else None)


def _unlock(stub, tok):
    return stub.Unlock(agent_pb2.UnlockRequest(token=agent_pb2.TokenSelector(label=tok.label), pin=tok.pin)).grant


def _status(fn):
    with pytest.raises(grpc.RpcError) as ei:
        fn()
    d = parse_detail(ei.value.trailing_metadata() or ())
    return ei.value.code(), d.reason if d else None


@pytest.fixture
def agent(tmp_path):
    a = AgentProcess(tmp_path / "agent", digest_policy() + "[unlock]\nmax_signatures = 1000000\n").start()
    yield a
    assert a.stop() == 0


def test_same_token_reinserted_signs_again_after_a_new_unlock(agent, make_token, softhsm_dir, tmp_path):
    tok = make_token("agrm")
    stub = agent.stub()
    key = provision_key(stub, tok.label, tok.pin, make_ca())
    grant = _unlock(stub, tok)
    drv = StreamDriver(stub, tok.label, key.key_id, grant)
    drv.wait_for(64)
    tokdir = _token_dir(softhsm_dir, tok.label)
    shutil.move(str(tokdir), str(tmp_path / "pulled"))  # the token leaves the reader
    drv.thread.join(60)
    assert drv.error is not None, "the stream must fail once the token is gone"
    assert drv.error.code() == grpc.StatusCode.UNAVAILABLE
    detail = parse_detail(drv.error.trailing_metadata())
    assert detail is not None
    assert detail.reason == "TOKEN_REMOVED"
    _verify_all(key.certificate_der, drv.sigs)  # everything released before the failure is a good signature
    assert stub.GetInfo(agent_pb2.GetInfoRequest()).caller == "local"  # still serving
    # with the token out of its slot, even the right PIN cannot sign: the token is reported removed
    assert _status(lambda: _sign(stub, tok.label, key.key_id, tok.pin)) == (grpc.StatusCode.UNAVAILABLE,
                                                                            "TOKEN_REMOVED")
    end = time.monotonic() + 30  # the watcher has seen the removal: the grant ended with it
    while stub.ListTokens(agent_pb2.ListTokensRequest()).unlocked_serials and time.monotonic() < end:
        time.sleep(0.05)
    assert stub.ListTokens(agent_pb2.ListTokensRequest()).unlocked_serials == []

    shutil.move(str(tmp_path / "pulled"), str(tokdir))  # ... and comes back
    assert _status(lambda: _sign(stub, tok.label, key.key_id, grant=grant)) == (
        grpc.StatusCode.FAILED_PRECONDITION, "LOGIN_REQUIRED")  # the old grant does not come back with it
    r = _sign(stub, tok.label, key.key_id, grant=_unlock(stub, tok))
    assert r.token_serial == tok.serial
    _verify_all(key.certificate_der, [(b"after", r.signature)])
    assert stub.ListTokens(agent_pb2.ListTokensRequest()).unlocked_serials == [tok.serial]


def test_deleted_and_recreated_token_is_a_new_token(agent, make_token):
    tok = make_token("agrc")
    stub = agent.stub()
    key = provision_key(stub, tok.label, tok.pin, make_ca())
    grant = _unlock(stub, tok)
    drv = StreamDriver(stub, tok.label, key.key_id, grant)
    drv.wait_for(64)
    delete_token(tok.label)
    drv.thread.join(60)
    assert drv.error is not None and drv.error.code() == grpc.StatusCode.UNAVAILABLE
    _verify_all(key.certificate_der, drv.sigs)
    assert stub.GetInfo(agent_pb2.GetInfoRequest()).caller == "local"

    create_token(tok.label, tok.pin)  # same label, new serial, no keys
    # the old grant belonged to the old token: the new one must be unlocked (checked before the key)
    assert _status(lambda: _sign(stub, tok.label, key.key_id, grant=grant)) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                                "LOGIN_REQUIRED")
    assert _status(lambda: _sign(stub, tok.label, key.key_id, tok.pin)) == (grpc.StatusCode.NOT_FOUND,
                                                                            "KEY_NOT_FOUND")
    tokens = {t.label: t.serial for t in stub.ListTokens(agent_pb2.ListTokensRequest()).tokens}
    assert tokens[tok.label] != tok.serial
    key2 = provision_key(stub, tok.label, tok.pin, make_ca())
    r = _sign(stub, tok.label, key2.key_id, tok.pin)
    assert r.token_serial == tokens[tok.label]
    _verify_all(key2.certificate_der, [(b"after", r.signature)])
    outcomes = [row["outcome"] for row in agent.journal() if row["operation"] == "sign_digest"]
    assert "TOKEN_REMOVED" in outcomes and outcomes[-1] == "ok"
