"""Bad inputs each get a clear status and reason, nothing is left in the spool, and the agent keeps serving."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import grpc
import pytest

from formats.samplepdf import make_contract_pdf
from signet.v1 import agent_pb2
from signet.wire import parse_detail
from tests.e2e.agent_harness import AgentProcess, big_pdf, provision_key, sign_pdf_call
from tests.pki import make_ca

MiB = 1 << 20


@pytest.fixture(scope="module")
def env(tmp_path_factory, make_token):
    base = tmp_path_factory.mktemp("agent-bad")
    tok = make_token("agbad")
    agent = AgentProcess(base / "agent", agent_settings=f"max_document_bytes = {3 * MiB}").start()
    key = provision_key(agent.stub(), tok.label, tok.pin, make_ca())
    good = base / "good.pdf"
    make_contract_pdf(good, "Good contract", ["Alice Example"])
    yield agent, tok, key, good, base
    assert agent.stop() == 0


def _still_serving(agent, tok, key, good):
    stub = agent.stub()
    assert stub.GetInfo(agent_pb2.GetInfoRequest()).caller == "local"
    res, data = sign_pdf_call(stub, good, tok.label, key.key_id, tok.pin)
    assert data.startswith(b"%PDF") and res.output_sha256 == hashlib.sha256(data).hexdigest()
    assert list((agent.state / "spool").iterdir()) == []  # uploads and outputs were cleaned up


def _refused(agent, tok, key, path, **kw):
    with pytest.raises(grpc.RpcError) as ei:
        sign_pdf_call(agent.stub(), path, tok.label, kw.pop("key_id", key.key_id), tok.pin, **kw)
    d = parse_detail(ei.value.trailing_metadata() or ())
    return ei.value.code(), d.reason if d else None, ei.value.details()


def _case(base, name, data: bytes):
    p = base / name
    p.write_bytes(data)
    return p


def test_not_a_pdf(env):
    agent, tok, key, good, base = env
    code, reason, msg = _refused(agent, tok, key, _case(base, "x.txt", b"hello, not a PDF\n" * 100))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_DOCUMENT")
    assert "PDF" in msg and "hello" not in msg  # says what is wrong, never echoes the content
    _still_serving(agent, tok, key, good)


def test_truncated_pdf(env):
    agent, tok, key, good, base = env
    data = good.read_bytes()
    code, reason, msg = _refused(agent, tok, key, _case(base, "cut.pdf", data[: len(data) // 2]))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_DOCUMENT"), msg
    _still_serving(agent, tok, key, good)


@pytest.mark.skipif(shutil.which("qpdf") is None, reason="qpdf not installed")
def test_encrypted_pdf(env):
    agent, tok, key, good, base = env
    enc = base / "enc.pdf"
    subprocess.run(["qpdf", "--encrypt", "user", "owner", "256", "--", str(good), str(enc)], check=True)
    code, reason, msg = _refused(agent, tok, key, enc)
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_DOCUMENT"), msg
    assert "encrypt" in msg.lower()
    _still_serving(agent, tok, key, good)


def test_empty_file(env):
    agent, tok, key, good, base = env
    code, reason, msg = _refused(agent, tok, key, _case(base, "empty.pdf", b""))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_DOCUMENT"), msg
    assert "empty" in msg.lower()
    _still_serving(agent, tok, key, good)


def test_document_over_the_size_limit(env):
    agent, tok, key, good, base = env
    big = big_pdf(base / "big.pdf", 4 * MiB)
    code, reason, _msg = _refused(agent, tok, key, big)
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "DOCUMENT_TOO_LARGE")
    # announced size refused up front, too
    code, reason, _ = _refused(agent, tok, key, big, size=big.stat().st_size)
    assert reason == "DOCUMENT_TOO_LARGE"
    _still_serving(agent, tok, key, good)


def test_message_over_the_size_limit(env):
    agent, tok, key, good, base = env
    big = big_pdf(base / "big2.pdf", int(2.5 * MiB))
    res, _ = sign_pdf_call(agent.stub(), big, tok.label, key.key_id, tok.pin, chunk=int(2.5 * MiB))
    assert res.document_sha256 == hashlib.sha256(big.read_bytes()).hexdigest()  # one 2.5 MiB message is fine
    big5 = big_pdf(base / "big5.pdf", 5 * MiB)
    with pytest.raises(grpc.RpcError) as ei:  # a 5 MiB message exceeds the agent's 4 MiB receive limit
        sign_pdf_call(agent.stub(), big5, tok.label, key.key_id, tok.pin, chunk=5 * MiB)
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    _still_serving(agent, tok, key, good)


def test_unknown_key(env):
    agent, tok, key, good, _base = env
    code, reason, _msg = _refused(agent, tok, key, good, key_id="00112233")
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "KEY_NOT_FOUND")
    code, reason, _msg = _refused(agent, tok, key, good, key_id="not-hex")
    assert code == grpc.StatusCode.NOT_FOUND
    _still_serving(agent, tok, key, good)


def test_failed_documents_are_journaled_and_did_not_use_the_token(env):
    agent, *_ = env
    rows = [r for r in agent.journal() if r["operation"] == "sign_pdf"]
    reasons = {r["outcome"] for r in rows}
    assert "INVALID_DOCUMENT" in reasons and "DOCUMENT_TOO_LARGE" in reasons and "ok" in reasons
    assert all(r["document_sha256"] for r in rows if r["outcome"] == "INVALID_DOCUMENT")
