"""Small documents inline: the PDF in the SignPdf header and the signed PDF in the result, one message each way.

Covers the client that uses it (agent.client.AgentClient, as the `signet` CLI does), the limit at its
exact boundary (inline accepted at max_inline_bytes, the output then coming back in chunks), inline headers
that are too large for the inline limit (INVALID_ARGUMENT) or for a gRPC message (RESOURCE_EXHAUSTED),
chunks after an inline document, an agent with inline transfers switched off, and detached signatures.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import grpc
import pytest

from agent.client import AgentClient, Target, document_requests, receive
from formats.samplepdf import make_contract_pdf
from signet.v1 import agent_pb2
from signet.wire import parse_detail
from tests.e2e.agent_harness import AgentProcess, big_pdf, cli, provision_key, sign_pdf_call
from tests.pki import make_ca, make_nssdb, pdfsig

MiB = 1 << 20
LIMIT = 96 * 1024  # the test agent's max_inline_bytes


@pytest.fixture(scope="module")
def ca():
    return make_ca()


@pytest.fixture(scope="module")
def env(tmp_path_factory, make_token, ca):
    base = tmp_path_factory.mktemp("agent-inline")
    tok = make_token("aginl")
    agent = AgentProcess(base / "agent", "[unlock]\nmax_signatures = 10\n",
                         agent_settings=f"pdf_workers = 1\nmax_inline_bytes = {LIMIT}").start()
    stub = agent.stub()
    key = provision_key(stub, tok.label, tok.pin, ca)
    (base / "signing-root.pem").write_bytes(ca.root_pem)
    yield agent, tok, key, base
    assert agent.stop() == 0


def _header(tok, key, **kw):
    kw.setdefault("credential", agent_pb2.PinCredential(pin=tok.pin))
    return agent_pb2.SignPdfHeader(token=agent_pb2.TokenSelector(label=tok.label), key_id=key.key_id, **kw)


def _client(agent) -> AgentClient:
    return AgentClient(Target(socket=agent.socket))


def _to_bytes(client: AgentClient, kind: str, header, path: Path):
    import io

    buf = io.BytesIO()
    res = receive(client.sign_responses(kind, header, path), buf)
    return res, buf.getvalue()


def _pdf_of_size(path: Path, size: int) -> Path:
    """A valid PDF of exactly ``size`` bytes (big_pdf's size is approximate but shifts one for one)."""
    want = size
    for _ in range(4):
        big_pdf(path, want)
        got = path.stat().st_size
        if got == size:
            return path
        want += size - got
    raise AssertionError(f"could not make a PDF of exactly {size} bytes")


def _refusal(e: grpc.RpcError) -> tuple[grpc.StatusCode, str | None, str]:
    d = parse_detail(e.trailing_metadata() or ())
    return e.code(), d.reason if d else None, e.details() or ""


def _spool_empty(agent) -> bool:
    return list((agent.state / "spool").iterdir()) == []


def test_get_info_reports_the_inline_limit(env):
    agent, *_ = env
    assert agent.stub().GetInfo(agent_pb2.GetInfoRequest()).max_inline_bytes == LIMIT


def test_small_pdf_signed_inline_verifies_with_pdfsig(env, ca):
    agent, tok, key, base = env
    src = base / "contract.pdf"
    make_contract_pdf(src, "Inline contract", ["Alice Example", "Bob Example"], pages=2)
    client = _client(agent)  # kept alive while its response stream is read
    responses = list(client.sign_responses("pdf", _header(tok, key, reason="Inline"), src))
    assert [r.WhichOneof("part") for r in responses] == ["result"]  # one message back: the result with the PDF
    res = responses[0].result
    data = res.content
    assert res.output_size == len(data) and res.output_sha256 == hashlib.sha256(data).hexdigest()
    assert res.document_sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert data.startswith(src.read_bytes())  # an incremental update of the original bytes
    out = base / "contract-signed.pdf"
    out.write_bytes(data)
    verdict = pdfsig(out, make_nssdb(base / "nss", ca.root_pem))
    assert verdict.ok, verdict.text
    rows = [r for r in agent.journal() if r["operation"] == "sign_pdf" and r["document_sha256"] == res.document_sha256]
    assert [r["outcome"] for r in rows] == ["ok"]
    assert _spool_empty(agent)


def test_document_at_the_inline_limit_goes_inline_and_one_byte_more_goes_in_chunks(env, ca):
    agent, tok, key, base = env
    signing = _client(agent)
    at = _pdf_of_size(base / "at-limit.pdf", LIMIT)
    requests = list(document_requests(_header(tok, key), agent_pb2.SignPdfRequest, at, LIMIT))
    assert len(requests) == 1 and len(requests[0].header.document) == LIMIT
    responses = list(signing.sign_responses("pdf", _header(tok, key), at))
    # accepted inline; the signed output is larger than the limit, so it comes back in chunks, then the result
    assert [r.WhichOneof("part") for r in responses][-1] == "result"
    assert responses[-1].result.content == b"" and responses[0].WhichOneof("part") == "chunk"
    data = b"".join(r.chunk for r in responses[:-1])
    assert responses[-1].result.output_sha256 == hashlib.sha256(data).hexdigest()
    out = base / "at-limit-signed.pdf"
    out.write_bytes(data)
    assert pdfsig(out, make_nssdb(base / "nss-at", ca.root_pem)).ok

    over = _pdf_of_size(base / "over-limit.pdf", LIMIT + 1)
    res, data = _to_bytes(signing, "pdf", _header(tok, key), over)  # the client sends it in chunks
    assert res.document_sha256 == hashlib.sha256(over.read_bytes()).hexdigest()
    assert res.output_sha256 == hashlib.sha256(data).hexdigest()
    # the same document forced inline is refused, and says how to send it
    with pytest.raises(grpc.RpcError) as ei:
        list(agent.stub().SignPdf(iter([agent_pb2.SignPdfRequest(header=_header(tok, key,
                                                                                document=over.read_bytes()))])))
    code, reason, msg = _refusal(ei.value)
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert "inline" in msg and "chunks" in msg
    assert _spool_empty(agent)


def test_inline_header_over_the_message_limit_is_resource_exhausted(env):
    agent, tok, key, base = env
    blob = b"%PDF-1.7\n" + b"0" * (5 * MiB)  # over the agent's 4 MiB receive limit (the client allows 8 MiB)
    with pytest.raises(grpc.RpcError) as ei:
        list(agent.stub().SignPdf(iter([agent_pb2.SignPdfRequest(header=_header(tok, key, document=blob))])))
    assert ei.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # the agent keeps serving
    small = base / "after.pdf"
    make_contract_pdf(small, "After", ["Alice Example"])
    res, data = _to_bytes(_client(agent), "pdf", _header(tok, key), small)
    assert res.output_sha256 == hashlib.sha256(data).hexdigest()


def test_inline_header_mismatches_are_refused(env):
    agent, tok, key, base = env
    src = base / "m.pdf"
    make_contract_pdf(src, "Mismatch", ["Alice Example"])
    doc = src.read_bytes()
    cases = {
        "chunk after": [agent_pb2.SignPdfRequest(header=_header(tok, key, document=doc)),
                        agent_pb2.SignPdfRequest(chunk=b"more")],
        "size": [agent_pb2.SignPdfRequest(header=_header(tok, key, document=doc, size=len(doc) + 1))],
    }
    for name, reqs in cases.items():
        with pytest.raises(grpc.RpcError) as ei:
            list(agent.stub().SignPdf(iter(reqs)))
        code, _reason, msg = _refusal(ei.value)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (name, msg)
    # an empty inline document is an empty document, as over chunks
    with pytest.raises(grpc.RpcError) as ei:
        list(agent.stub().SignPdf(iter([agent_pb2.SignPdfRequest(header=_header(tok, key, document=b""))])))
    assert _refusal(ei.value)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_DOCUMENT")
    assert _spool_empty(agent)


def test_old_framing_still_works(env):
    agent, tok, key, base = env
    src = base / "old.pdf"
    make_contract_pdf(src, "Chunked", ["Alice Example"])
    res, data = sign_pdf_call(agent.stub(), src, tok.label, key.key_id, tok.pin)  # header, chunk; chunk(s), result
    assert res.content == b"" and res.output_sha256 == hashlib.sha256(data).hexdigest()


def test_cli_signs_small_files_inline_pdf_and_detached(env, ca):
    """`signet unlock` keeps the grant handle in a private grant directory; `signet sign` presents it."""
    agent, tok, key, base = env
    grants = base / "grants"
    genv = {"SIGNET_GRANT_DIR": str(grants)}
    r = cli(agent, "--json", "unlock", "--token", tok.label, "--pin-env", "P", "--max-signatures", "2",
            env={**genv, "P": tok.pin})
    assert r.returncode == 0, r.stderr
    assert "grant" not in json.loads(r.stdout)  # the handle is never printed
    (handle_file,) = [p for p in grants.iterdir() if p.name.startswith("serial-")]
    assert oct(handle_file.stat().st_mode & 0o777) == "0o600" and oct(grants.stat().st_mode & 0o777) == "0o700"
    src = base / "cli.pdf"
    make_contract_pdf(src, "CLI contract", ["Alice Example"])
    out = base / "cli-signed.pdf"
    r = cli(agent, "--json", "sign", str(src), "-o", str(out), "--token", tok.label, "--key", key.key_id, env=genv)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert "content" not in res and int(res["output_size"]) == out.stat().st_size
    assert pdfsig(out, make_nssdb(base / "nss-cli", ca.root_pem)).ok
    txt = base / "note.txt"
    txt.write_text("a small note to sign\n")
    r = cli(agent, "--json", "sign", str(txt), "--token", tok.label, "--key", key.key_id, env=genv)
    assert r.returncode == 0, r.stderr
    p7s = Path(str(txt) + ".p7s")
    assert int(json.loads(r.stdout)["output_size"]) == p7s.stat().st_size > 0
    r = cli(agent, "--json", "verify", "--offline", str(txt), "--sig", str(p7s), "--trust",
            str(base / "signing-root.pem"))
    assert r.returncode == 0, r.stdout + r.stderr
    # the grant covered two documents: a third needs a new unlock
    r = cli(agent, "sign", str(txt), "-o", str(base / "third.p7s"), "--token", tok.label, "--key", key.key_id,
            env=genv)
    assert r.returncode == 5 and "LOGIN_REQUIRED" in r.stderr


def test_agent_without_inline_transfers_gets_chunks(tmp_path, make_token, ca):
    tok = make_token("agnoinl")
    agent = AgentProcess(tmp_path / "agent", agent_settings="pdf_workers = 0\nmax_inline_bytes = 0").start()
    try:
        stub = agent.stub()
        key = provision_key(stub, tok.label, tok.pin, ca)
        src = tmp_path / "c.pdf"
        make_contract_pdf(src, "No inline", ["Alice Example"])
        signing = _client(agent)
        assert signing.inline_limit == 0
        responses = list(signing.sign_responses("pdf", _header(tok, key), src))
        assert [r.WhichOneof("part") for r in responses] == ["chunk", "result"]
        with pytest.raises(grpc.RpcError) as ei:
            list(stub.SignPdf(iter([agent_pb2.SignPdfRequest(header=_header(
                tok, key, document=src.read_bytes(), credential=agent_pb2.PinCredential(pin=tok.pin)))])))
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        assert agent.stop() == 0


def test_detached_large_file_in_chunks_small_p7s_inline(env):
    agent, tok, key, base = env
    src = base / "data.bin"
    src.write_bytes(b"0123456789abcdef" * (LIMIT // 8))  # twice the inline limit: uploaded in chunks
    header = agent_pb2.SignDetachedHeader(token=agent_pb2.TokenSelector(label=tok.label), key_id=key.key_id,
                                          credential=agent_pb2.PinCredential(pin=tok.pin))
    client = _client(agent)
    responses = list(client.sign_responses("detached", header, src))
    assert [r.WhichOneof("part") for r in responses] == ["result"]  # the .p7s came back in the result
    res = responses[0].result
    assert res.document_sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    p7s = base / "data.bin.p7s"
    p7s.write_bytes(res.content)
    r = cli(agent, "--json", "verify", "--offline", str(src), "--sig", str(p7s), "--trust",
            str(base / "signing-root.pem"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert _spool_empty(agent)
