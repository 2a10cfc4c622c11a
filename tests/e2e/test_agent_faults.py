"""Faults around a running agent, and what clients see: PKCS#11 errors injected under it (tests/faultp11, a
PKCS#11 module that forwards to SoftHSM), a slow token, a token that disappears in the middle of a PDF, a journal
whose disk is full, and stalled uploads.  Each gives a clear status and reason, nothing acknowledged is lost, and
the agent serves again as soon as the fault ends (the first call after it succeeds)."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from formats.samplepdf import make_contract_pdf
from hsm.module import find_module_path
from signet.v1 import agent_pb2
from signet.wire import reason_of
from tests import faultp11
from tests.e2e.agent_harness import AgentProcess, big_pdf, digest_policy, provision_key, sign_pdf_call
from tests.pki import make_ca

pytestmark = pytest.mark.e2e

CKR_DEVICE_REMOVED = 0x32


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    return faultp11.build(tmp_path_factory.mktemp("faultp11"))


@pytest.fixture(scope="module")
def env(tmp_path_factory, make_token, shim):
    base = tmp_path_factory.mktemp("faults")
    rules = faultp11.Rules(base / "faultp11.rules")
    journal_fault = base / "journal-fault"
    tok = make_token("flt")
    agent = AgentProcess(base / "agent", digest_policy(), agent_settings="pdf_workers = 1\nsign_threads = 1",
                         env={**rules.env(os.path.realpath(find_module_path())),
                              "SIGNET_PKCS11_MODULE": str(shim), "SIGNET_TEST_JOURNAL_FAULT": str(journal_fault)})
    agent.start()
    key = provision_key(agent.stub(), tok.label, tok.pin, make_ca())
    pdf = base / "c.pdf"
    make_contract_pdf(pdf, "Fault contract", ["Alice Example"])
    yield {"agent": agent, "tok": tok, "key": key, "rules": rules, "journal_fault": journal_fault, "pdf": pdf,
           "base": base}
    rules.clear()
    journal_fault.unlink(missing_ok=True)
    assert agent.stop() == 0


def _digest(e, data: bytes):
    return e["agent"].stub().SignDigest(agent_pb2.SignDigestRequest(
        token=agent_pb2.TokenSelector(label=e["tok"].label), key_id=e["key"].key_id,
        digest=hashlib.sha256(data).digest(), credential=agent_pb2.PinCredential(pin=e["tok"].pin)), timeout=30)


def _refused(fn):
    with pytest.raises(grpc.RpcError) as ei:
        fn()
    return ei.value.code(), reason_of(ei.value)


def _ok_rows(e, digest: bytes) -> int:
    return sum(1 for r in e["agent"].journal() if r["signed_digest"] == digest.hex() and r["outcome"] == "ok")


@pytest.mark.parametrize("rv, code", [(faultp11.CKR_DEVICE_ERROR, grpc.StatusCode.UNAVAILABLE),
                                      (faultp11.CKR_SESSION_HANDLE_INVALID, grpc.StatusCode.UNAVAILABLE)])
def test_an_error_from_the_token_is_a_clear_status_and_the_next_call_after_it_works(env, rv, code):
    env["rules"].set(f"C_Sign {rv:#x} *")
    during, after = b"during fault %x" % rv, b"after fault %x" % rv
    got, reason = _refused(lambda: _digest(env, during))
    expected = "SIGNING_FAILED" if rv == faultp11.CKR_DEVICE_ERROR else "TOKEN_REMOVED"
    assert (got, reason) == (code, expected)
    assert _ok_rows(env, hashlib.sha256(during).digest()) == 0  # nothing released, nothing recorded
    env["rules"].clear()
    _digest(env, after)  # the very first call after the fault ends succeeds
    assert _ok_rows(env, hashlib.sha256(after).digest()) == 1


def test_a_slow_token_slows_signing_only(env):
    env["rules"].set("C_Sign delay_ms 3000 1")
    done = threading.Event()
    result: list[object] = []

    def sign_slowly() -> None:
        result.append(_digest(env, b"slow"))
        done.set()

    t = threading.Thread(target=sign_slowly, daemon=True)
    t.start()
    time.sleep(0.5)  # let the signature reach the slow token (asserted below: it was still running)
    ch = env["agent"].channel()
    info = env["agent"].stub().GetInfo(agent_pb2.GetInfoRequest(), timeout=2)  # not stuck behind the token
    assert info.caller == "local"
    assert health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2).status == \
        health_pb2.HealthCheckResponse.SERVING
    assert not done.is_set()  # (the slow signature was still running while those answered)
    t.join(30)
    assert result and _ok_rows(env, hashlib.sha256(b"slow").digest()) == 1
    env["rules"].clear()


def test_a_token_that_disappears_in_the_middle_of_a_pdf_fails_it_and_nothing_leaks(env):
    env["rules"].set(f"C_Sign {CKR_DEVICE_REMOVED:#x} 1")
    before = [r for r in env["agent"].journal() if r["operation"] == "sign_pdf"]
    code, reason = _refused(lambda: sign_pdf_call(env["agent"].stub(), env["pdf"], env["tok"].label,
                                                   env["key"].key_id, env["tok"].pin))
    assert code == grpc.StatusCode.UNAVAILABLE and reason == "TOKEN_REMOVED"
    rows = [r for r in env["agent"].journal() if r["operation"] == "sign_pdf"][len(before):]
    assert [r["outcome"] for r in rows] == ["TOKEN_REMOVED"] and rows[0]["signed_digest"] == ""
    assert list((env["agent"].state / "spool").iterdir()) == []
    env["rules"].clear()
    res, data = sign_pdf_call(env["agent"].stub(), env["pdf"], env["tok"].label, env["key"].key_id, env["tok"].pin)
    assert data.startswith(b"%PDF") and res.output_sha256 == hashlib.sha256(data).hexdigest()


def test_a_full_journal_disk_withholds_every_result_and_recovers_when_it_is_back(env):
    env["journal_fault"].write_text("full")
    try:
        code, reason = _refused(lambda: _digest(env, b"disk full"))
        assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "JOURNAL_FAILED")
        code, reason = _refused(lambda: sign_pdf_call(env["agent"].stub(), env["pdf"], env["tok"].label,
                                                       env["key"].key_id, env["tok"].pin))
        assert (code, reason) == (grpc.StatusCode.UNAVAILABLE, "JOURNAL_FAILED")
    finally:
        env["journal_fault"].unlink()
    _digest(env, b"disk back")
    assert _ok_rows(env, hashlib.sha256(b"disk back").digest()) == 1
    assert _ok_rows(env, hashlib.sha256(b"disk full").digest()) == 0


# -- stalled and hostile uploads ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stall_env(tmp_path_factory, make_token):
    base = tmp_path_factory.mktemp("stalls")
    tok = make_token("stall")
    agent = AgentProcess(base / "agent", digest_policy(),
                         agent_settings="workers = 16\ndocument_streams = 4\nupload_idle_seconds = 1.5").start()
    key = provision_key(agent.stub(), tok.label, tok.pin, make_ca())
    yield agent, tok, key, base
    assert agent.stop() == 0


def _stalled(tok, key, stop: threading.Event, token_label: str | None = None):
    yield agent_pb2.SignPdfRequest(header=agent_pb2.SignPdfHeader(
        token=agent_pb2.TokenSelector(label=token_label or tok.label), key_id=key.key_id,
        credential=agent_pb2.PinCredential(pin=tok.pin)))
    yield agent_pb2.SignPdfRequest(chunk=b"%PDF-1.7\n")
    while not stop.wait(2.0):  # one byte every 2 s, forever
        yield agent_pb2.SignPdfRequest(chunk=b" ")


def test_sixteen_stalled_uploads_do_not_freeze_the_agent(stall_env):
    agent, tok, key, _base = stall_env
    stop = threading.Event()
    outcomes: list[tuple[grpc.StatusCode, str]] = []
    lock = threading.Lock()

    def one():
        try:
            list(agent.stub().SignPdf(_stalled(tok, key, stop), timeout=60))
            result = (grpc.StatusCode.OK, "")
        except grpc.RpcError as e:
            result = (e.code(), reason_of(e))
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(16)]
    for t in threads:
        t.start()
    try:
        stub = agent.stub()
        # while they stall, everything else is served
        for i in range(5):
            assert stub.GetInfo(agent_pb2.GetInfoRequest(), timeout=5).caller == "local"
            stub.SignDigest(agent_pb2.SignDigestRequest(
                token=agent_pb2.TokenSelector(label=tok.label), key_id=key.key_id,
                digest=hashlib.sha256(b"beside %d" % i).digest(), credential=agent_pb2.PinCredential(pin=tok.pin)),
                timeout=5)
        h = health_pb2_grpc.HealthStub(agent.channel()).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert h.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for t in threads:
            t.join(60)
        stop.set()
    assert len(outcomes) == 16
    admitted = [o for o in outcomes if o[1] == "UPLOAD_STALLED"]
    refused = [o for o in outcomes if o[1] == "BUSY"]
    assert len(admitted) == 4 and len(refused) == 12, outcomes  # over capacity: refused at once, not queued
    assert {o[0] for o in admitted} == {grpc.StatusCode.DEADLINE_EXCEEDED}
    assert {o[0] for o in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert list((agent.state / "spool").iterdir()) == []
    reasons = [r["outcome"] for r in agent.journal() if r["operation"] == "sign_pdf"]
    assert reasons.count("UPLOAD_STALLED") == 4 and reasons.count("BUSY") == 12  # every refusal has its row


def test_a_header_naming_no_such_token_is_refused_before_the_body_is_read(stall_env):
    agent, tok, key, _base = stall_env
    stop = threading.Event()
    try:
        code, reason = _refused(lambda: list(agent.stub().SignPdf(_stalled(tok, key, stop, "no-such-token"),
                                                                   timeout=20)))
    finally:
        stop.set()
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "TOKEN_NOT_FOUND")


def test_a_verification_upload_that_stalls_is_cut_and_a_big_pdf_still_verifies_afterwards(stall_env):
    agent, tok, key, base = stall_env
    stop = threading.Event()

    def stalled_verify():
        yield agent_pb2.VerifyPdfRequest(header=agent_pb2.VerifyPdfHeader(offline=True))
        while not stop.wait(2.0):
            yield agent_pb2.VerifyPdfRequest(chunk=b" ")

    try:
        code, reason = _refused(lambda: agent.stub().VerifyPdf(stalled_verify(), timeout=30))
    finally:
        stop.set()
    assert (code, reason) == (grpc.StatusCode.DEADLINE_EXCEEDED, "UPLOAD_STALLED")
    src = big_pdf(base / "after-stall.pdf", 2 << 20)
    res, data = sign_pdf_call(agent.stub(), src, tok.label, key.key_id, tok.pin)
    assert res.output_size == len(data) > 2 << 20
