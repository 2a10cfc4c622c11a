"""The agent over its Unix socket: real `signet-agent` process, real SoftHSM token, outputs checked by
cryptography, pdfsig and openssl."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from cryptography import x509

from formats.samplepdf import make_contract_pdf
from signet.v1 import agent_pb2
from signet.wire import parse_detail
from tests.e2e.agent_harness import AgentProcess, cli, digest_policy, provision_key, with_grant
from tests.pki import make_ca, make_nssdb, pdfsig
from tests.sigcheck import ec_key, verify_signature


@pytest.fixture(scope="module")
def ca():
    return make_ca()


@pytest.fixture(scope="module")
def env(tmp_path_factory, make_token, ca):
    tok = make_token("agu", pin="Unix-PIN-7q")  # distinctive: searched for in the log below
    agent = AgentProcess(tmp_path_factory.mktemp("agent-unix"), digest_policy()).start()
    stub = agent.stub()
    key = provision_key(stub, tok.label, tok.pin, ca)
    yield agent, stub, tok, key
    assert agent.stop() == 0
    assert tok.pin not in agent.log(), "the PIN must never reach the log"


def sel(tok):
    return agent_pb2.TokenSelector(label=tok.label)


def verify_ec(cert_der: bytes, sig: bytes, data: bytes) -> None:
    """ECDSA with SHA-256 over ``data``, by the EC key of the certificate ``cert_der``."""
    verify_signature(ec_key(x509.load_der_x509_certificate(cert_der)), sig, data)


def test_socket_and_directory_are_private(env):
    agent, *_ = env
    assert stat.S_IMODE(agent.socket.stat().st_mode) == 0o600
    assert stat.S_IMODE(agent.socket.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((agent.state / "spool").stat().st_mode) == 0o700


def test_health_and_reflection_v1_and_v1alpha(env):
    """grpcurl asks reflection v1 first: both versions answer, and list the agent's service."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2

    agent, *_ = env
    ch = agent.channel()
    h = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="signet.v1.AgentService"))
    assert h.status == health_pb2.HealthCheckResponse.SERVING
    for package in ("grpc.reflection.v1", "grpc.reflection.v1alpha"):
        info = ch.stream_stream(f"/{package}.ServerReflection/ServerReflectionInfo",
                                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        resp = next(info(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in resp.list_services_response.service}
        assert {"signet.v1.AgentService", "grpc.reflection.v1.ServerReflection"} <= names, package


def test_sign_digest_needs_unlock_or_pin_then_verifies(env):
    agent, stub, tok, key = env
    digest = hashlib.sha256(b"contract v1").digest()
    with pytest.raises(grpc.RpcError) as ei:
        stub.SignDigest(agent_pb2.SignDigestRequest(token=sel(tok), key_id=key.key_id, digest=digest))
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    detail = parse_detail(ei.value.trailing_metadata())
    assert detail is not None
    assert detail.reason == "LOGIN_REQUIRED"

    grant = stub.Unlock(agent_pb2.UnlockRequest(token=sel(tok), pin=tok.pin, ttl_seconds=60, max_signatures=3))
    assert grant.signatures_left == 1 and grant.token_serial == tok.serial  # capped: the policy's default is 1
    assert len(grant.grant) >= 32
    with pytest.raises(grpc.RpcError) as ei:  # the same caller without the handle gets nothing
        stub.SignDigest(agent_pb2.SignDigestRequest(token=sel(tok), key_id=key.key_id, digest=digest))
    detail = parse_detail(ei.value.trailing_metadata())
    assert detail is not None
    assert detail.reason == "LOGIN_REQUIRED"
    r = stub.SignDigest(agent_pb2.SignDigestRequest(token=sel(tok), key_id=key.key_id, digest=digest),
                        metadata=with_grant(grant.grant))
    verify_ec(key.certificate_der, r.signature, b"contract v1")
    with pytest.raises(grpc.RpcError) as ei:  # the grant allowed exactly one signature
        stub.SignDigest(agent_pb2.SignDigestRequest(token=sel(tok), key_id=key.key_id, digest=digest),
                        metadata=with_grant(grant.grant))
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert stub.Lock(agent_pb2.LockRequest(token=sel(tok))).logged_out is False  # the grant was already used up
    rows = [r for r in agent.journal() if r["operation"] == "sign_digest" and r["outcome"] == "ok"]
    assert rows[-1]["signed_digest"] == digest.hex() and rows[-1]["token_serial"] == tok.serial
    refused = [r for r in agent.journal() if r["operation"] == "sign_digest" and r["outcome"] == "LOGIN_REQUIRED"]
    assert len(refused) >= 3  # every refused request left a row too


def test_stream_signs_batches_in_order(env):
    _agent, stub, tok, key = env
    msgs = [f"doc {i}".encode() for i in range(300)]
    digests = [hashlib.sha256(m).digest() for m in msgs]

    def reqs():
        for i in range(0, 300, 100):
            yield agent_pb2.SignDigestStreamRequest(
                token=sel(tok) if i == 0 else None, key_id=key.key_id if i == 0 else "",
                credential=agent_pb2.PinCredential(pin=tok.pin) if i == 0 else None,
                digests=digests[i:i + 100], request_id=i)

    out = list(stub.SignDigestStream(reqs()))
    assert [r.request_id for r in out] == [0, 100, 200]
    sigs = [s for r in out for s in r.signatures]
    assert len(sigs) == 300
    for m, s in zip(msgs[::37], sigs[::37], strict=True):
        verify_ec(key.certificate_der, s, m)


def _stream_requests(tok, key, batches: list[list[bytes]]):
    for i, b in enumerate(batches):
        yield agent_pb2.SignDigestStreamRequest(
            token=sel(tok) if i == 0 else None, key_id=key.key_id if i == 0 else "",
            credential=agent_pb2.PinCredential(pin=tok.pin) if i == 0 else None, digests=b, request_id=i)


def test_pipelined_stream_every_signature_matches_its_digest_and_is_journaled(env):
    """Many batches in flight on both signing lanes: answers in request order, each signature for its digest."""
    agent, stub, tok, key = env
    msgs = [[f"pipelined {i}.{j}".encode() for j in range(40)] for i in range(24)]
    batches = [[hashlib.sha256(m).digest() for m in b] for b in msgs]
    out = list(stub.SignDigestStream(_stream_requests(tok, key, batches)))  # all sent at once, none awaited
    assert [r.request_id for r in out] == list(range(24))
    for b, r in zip(msgs, out, strict=True):
        assert len(r.signatures) == 40
        for m, sig in zip(b, r.signatures, strict=True):
            verify_ec(key.certificate_der, sig, m)
    wanted = {d.hex() for b in batches for d in b}
    rows = [r for r in agent.journal() if r["document_sha256"] in wanted]
    assert len(rows) == 24 * 40 and {r["document_sha256"] for r in rows} == wanted
    assert {(r["operation"], r["outcome"], r["token_serial"]) for r in rows} == {("sign_digest", "ok", tok.serial)}


def test_stream_stops_signing_after_a_failed_batch(env):
    """Batch 5 is malformed: 0-4 are answered, the call fails, and batches queued behind it are never signed."""
    agent, stub, tok, key = env
    batches = [[hashlib.sha256(f"after-failure {i}.{j}".encode()).digest() for j in range(30)] for i in range(12)]
    batches[5][3] = batches[5][3][:20]
    answered = []
    with pytest.raises(grpc.RpcError) as ei:
        for r in stub.SignDigestStream(_stream_requests(tok, key, batches)):
            answered.append(r.request_id)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert answered == [0, 1, 2, 3, 4]
    signed = {r["document_sha256"] for r in agent.journal() if r["outcome"] == "ok"}
    assert all(d.hex() in signed for b in batches[:5] for d in b)
    # with two lanes, at most batch 6 can have been running beside batch 5; nothing later starts
    assert not any(d.hex() in signed for b in batches[7:] for d in b)


def test_wrong_digest_length_is_invalid_argument(env):
    _, stub, tok, key = env
    with pytest.raises(grpc.RpcError) as ei:
        stub.SignDigest(agent_pb2.SignDigestRequest(token=sel(tok), key_id=key.key_id, digest=b"short",
                                                    credential=agent_pb2.PinCredential(pin=tok.pin)))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_cli_signs_pdf_verified_by_pdfsig_and_agent(env, ca, tmp_path):
    agent, _stub, tok, key = env
    src = tmp_path / "contract.pdf"
    make_contract_pdf(src, "Supply agreement", ["Alice Example", "Bob Example"], pages=3)
    out = tmp_path / "signed.pdf"
    r = cli(agent, "--json", "sign", str(src), "-o", str(out), "--token", tok.label, "--key", key.key_id,
            "--reason", "I agree", "--pin-env", "MY_PIN", env={"MY_PIN": tok.pin})
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["output_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert res["document_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    verdict = pdfsig(out, make_nssdb(tmp_path / "nss", ca.root_pem))
    assert verdict.ok, verdict.text
    (tmp_path / "signing-root.pem").write_bytes(ca.root_pem)
    # the test CA publishes no revocation data: online, that is a problem; --offline says it was not checked
    v = cli(agent, "--json", "verify", str(out), "--trust", str(tmp_path / "signing-root.pem"))
    assert v.returncode == 3, v.stdout + v.stderr
    assert any("revocation" in p for p in json.loads(v.stdout)["signatures"][0]["problems"])
    v = cli(agent, "--json", "verify", "--offline", str(out), "--trust", str(tmp_path / "signing-root.pem"))
    assert v.returncode == 0, v.stdout + v.stderr
    rep = json.loads(v.stdout)
    assert rep["valid"] is True and "Alice Example" in rep["signatures"][0]["signer_subject"]
    assert any("not checked" in w for w in rep["signatures"][0]["warnings"] + rep["warnings"])
    # a modified copy is reported NOT valid, with exit code 3
    tampered = tmp_path / "tampered.pdf"
    data = bytearray(out.read_bytes())
    i = data.index(b"Clause 2")
    data[i:i + 8] = b"Clause 9"
    tampered.write_bytes(bytes(data))
    v = cli(agent, "verify", "--offline", str(tampered), "--trust", str(tmp_path / "signing-root.pem"))
    assert v.returncode == 3, v.stdout + v.stderr
    assert "NOT VALID" in v.stdout and "problem:" in v.stdout  # the reason is always printed


def test_cli_detached_p7s_verified_by_openssl(env, ca, tmp_path):
    agent, _stub, tok, key = env
    src = tmp_path / "terms.txt"
    src.write_bytes(b"any file at all\n" * 1000)
    pin_file = tmp_path / "pin"
    pin_file.write_text(tok.pin + "\n")
    pin_file.chmod(0o644)  # a PIN file others can read is refused before anything is sent
    r = cli(agent, "sign", str(src), "--token", tok.label, "--key", key.key_id, "--pin-file", str(pin_file))
    assert r.returncode == 2 and "readable by others" in r.stderr and tok.pin not in r.stderr
    pin_file.chmod(0o600)
    r = cli(agent, "sign", str(src), "--token", tok.label, "--key", key.key_id, "--pin-file", str(pin_file))
    assert r.returncode == 0, r.stderr
    p7s = tmp_path / "terms.txt.p7s"
    (tmp_path / "signing-root.pem").write_bytes(ca.root_pem)
    o = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(p7s), "-content",
                        str(src), "-CAfile", str(tmp_path / "signing-root.pem"), "-purpose", "any", "-out", os.devnull],
                       capture_output=True, text=True)
    assert o.returncode == 0, o.stderr
    v = cli(agent, "verify", "--offline", str(src), "--sig", str(p7s), "--trust", str(tmp_path / "signing-root.pem"))
    assert v.returncode == 0, v.stdout + v.stderr
    # without --sig, FILE.p7s beside a non-PDF file is what is verified
    v = cli(agent, "verify", "--offline", str(src), "--trust", str(tmp_path / "signing-root.pem"))
    assert v.returncode == 0, v.stdout + v.stderr
    src.write_bytes(b"changed")
    v = cli(agent, "verify", "--offline", str(src), "--trust", str(tmp_path / "signing-root.pem"))
    assert v.returncode == 3 and "problem:" in v.stdout


def test_cli_lists_tokens_and_keys_and_never_takes_pin_as_argument(env):
    agent, _stub, tok, key = env
    r = cli(agent, "--json", "tokens")
    assert r.returncode == 0 and tok.serial in {t["serial"] for t in json.loads(r.stdout)["tokens"]}
    r = cli(agent, "--json", "keys", "--token", tok.label, env={"SIGNET_PIN": tok.pin})
    assert r.returncode == 0, r.stderr
    assert key.key_id in {k["key_id"] for k in json.loads(r.stdout)["keys"]}
    r = cli(agent, "keys", "--token", tok.label, "--pin", tok.pin)
    assert r.returncode == 2  # argparse refuses: there is no --pin option


def test_concurrent_unary_signatures_all_verify(env):
    _, stub, tok, key = env
    cred = agent_pb2.PinCredential(pin=tok.pin)

    def one(i: int) -> tuple[bytes, bytes]:
        m = f"parallel {i}".encode()
        r = stub.SignDigest(agent_pb2.SignDigestRequest(token=sel(tok), key_id=key.key_id,
                                                        digest=hashlib.sha256(m).digest(), credential=cred))
        return m, r.signature

    with ThreadPoolExecutor(16) as ex:
        for m, s in ex.map(one, range(64)):
            verify_ec(key.certificate_der, s, m)
