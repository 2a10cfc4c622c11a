"""Documents through the agent: a 20 MB PDF with the CLI's progress bar, PAdES B-T with a visible box from a TSA
on the agent's allow-list (another TSA is refused), and a deadline that passes while the request is queued (it is
not signed)."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import grpc
import pytest

from signet.v1 import agent_pb2
from signet.wire import reason_of
from tests.e2e.agent_harness import AgentProcess, big_pdf, cli, digest_policy, provision_key, sign_pdf_call, with_grant
from tests.pki import make_ca, make_nssdb, pdfsig, tsa_server

MiB = 1 << 20


@pytest.fixture(scope="module")
def ca():
    return make_ca()


@pytest.fixture(scope="module")
def tsa(ca):
    with tsa_server(ca) as url:
        yield url


@pytest.fixture(scope="module")
def env(tmp_path_factory, make_token, ca, tsa):
    base = tmp_path_factory.mktemp("agent-docs")
    tok = make_token("agdoc")
    agent = AgentProcess(base / "agent", agent_settings=f'pdf_workers = 2\ntimestamp_urls = ["{tsa}"]').start()
    key = provision_key(agent.stub(), tok.label, tok.pin, ca)
    (base / "signing-root.pem").write_bytes(ca.root_pem)
    yield agent, tok, key, base
    assert agent.stop() == 0


def test_20_mb_pdf_with_progress_bar_verifies_with_pdfsig(env, ca):
    agent, tok, key, base = env
    src = big_pdf(base / "big20.pdf", 20 * MiB)
    out = base / "big20-signed.pdf"
    r = cli(agent, "--json", "--progress", "sign", str(src), "-o", str(out), "--token", tok.label,
            "--key", key.key_id, env={"SIGNET_PIN": tok.pin})
    assert r.returncode == 0, r.stderr
    assert "upload [" in r.stderr and "100.0%" in r.stderr  # the bar reached the end
    res = json.loads(r.stdout)
    assert int(res["output_size"]) == out.stat().st_size > 20 * MiB
    assert out.read_bytes()[: src.stat().st_size] == src.read_bytes()  # incremental: original bytes untouched
    verdict = pdfsig(out, make_nssdb(base / "nss", ca.root_pem))
    assert verdict.ok, verdict.text


def test_pades_b_t_with_visible_signature(env, ca, tsa):
    agent, tok, key, base = env
    src = big_pdf(base / "small.pdf", 50_000)
    res, data = sign_pdf_call(agent.stub(), src, tok.label, key.key_id, tok.pin, level=agent_pb2.PADES_LEVEL_B_T,
                              timestamp_url=tsa, reason="Approved", location="Shanghai", field_name="Alice",
                              appearance=agent_pb2.Appearance(page=0, x1=50, y1=50, x2=250, y2=110))
    assert res.field_name == "Alice"
    signed = base / "bt.pdf"
    signed.write_bytes(data)
    r = cli(agent, "--json", "verify", "--offline", str(signed), "--trust", str(base / "signing-root.pem"))
    assert r.returncode == 0, r.stdout + r.stderr
    sig = json.loads(r.stdout)["signatures"][0]
    assert sig["field_name"] == "Alice" and sig.get("timestamp_time")
    verdict = pdfsig(signed, make_nssdb(base / "nss-bt", ca.root_pem))
    assert verdict.ok, verdict.text


def test_a_timestamp_authority_off_the_allow_list_is_refused_before_upload(env, tsa):
    """The agent would otherwise fetch any URL a local caller names (and echo what it answered)."""
    agent, tok, key, base = env
    src = big_pdf(base / "small2.pdf", 50_000)
    with pytest.raises(grpc.RpcError) as ei:
        sign_pdf_call(agent.stub(), src, tok.label, key.key_id, tok.pin, level=agent_pb2.PADES_LEVEL_B_T,
                      timestamp_url="http://127.0.0.1:9/elsewhere")
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(ei.value) == "TIMESTAMP_URL_REFUSED" and "127.0.0.1:9" not in (ei.value.details() or "")
    assert agent.stub().GetInfo(agent_pb2.GetInfoRequest()).timestamp_urls == [tsa]


def test_request_whose_deadline_passed_in_the_queue_is_not_signed(tmp_path, make_token, ca):
    tok = make_token("agdl")
    agent = AgentProcess(tmp_path / "agent", digest_policy() + "[unlock]\nmax_signatures = 10\n",
                         agent_settings="workers = 1").start()  # one RPC thread
    try:
        stub = agent.stub()
        key = provision_key(stub, tok.label, tok.pin, ca)
        grant = stub.Unlock(agent_pb2.UnlockRequest(token=agent_pb2.TokenSelector(label=tok.label),
                                                    pin=tok.pin)).grant
        release = threading.Event()
        first_done = threading.Event()

        def hold():  # a stream that keeps the only RPC thread busy until released
            yield agent_pb2.SignDigestStreamRequest(token=agent_pb2.TokenSelector(label=tok.label),
                                                    key_id=key.key_id, digests=[hashlib.sha256(b"a").digest()])
            first_done.wait()
            release.wait()

        responses = []
        holder = threading.Thread(target=lambda: responses.extend(stub.SignDigestStream(
            hold(), metadata=with_grant(grant))), daemon=True)
        holder.start()
        # wait (without timing assumptions) until the stream is inside the handler
        stream_started = time.monotonic()
        while not any(r["operation"] == "sign_digest" for r in agent.journal()):
            assert time.monotonic() - stream_started < 60
            time.sleep(0.02)
        first_done.set()
        late = hashlib.sha256(b"late request").digest()
        with pytest.raises(grpc.RpcError) as ei:
            stub.SignDigest(agent_pb2.SignDigestRequest(token=agent_pb2.TokenSelector(label=tok.label),
                                                        key_id=key.key_id, digest=late), timeout=0.5,
                            metadata=with_grant(grant))
        assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        release.set()
        holder.join(30)
        # a later request runs after the expired one would have: the expired one left no signature
        stub.SignDigest(agent_pb2.SignDigestRequest(token=agent_pb2.TokenSelector(label=tok.label),
                                                    key_id=key.key_id, digest=hashlib.sha256(b"next").digest()),
                        metadata=with_grant(grant))
        signed = [r["document_sha256"] for r in agent.journal() if r["operation"] == "sign_digest"
                  and r["outcome"] == "ok"]
        assert late.hex() not in signed
        assert hashlib.sha256(b"next").hexdigest() in signed
    finally:
        assert agent.stop() == 0
