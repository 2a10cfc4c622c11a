"""Remote signing against a real `signet-server` process: Carol has no token; an operator creates a key for her on
the server token (`signet-admin remote-key create`, which also hands her API files); Alice signs with her own
token, Carol through the `signet` CLI with no agent at all (`--remote --identity DIR`): the server signs exactly the
revision her code is bound to.  The final PDF is judged by pdfsig (NSS trusting only the signing root) and by
formats' verifier, which reports Carol's key as server-held.  The refusals leave the envelope as it was and are
journalled; the key on the server token is sensitive and never extractable (pkcs11-tool's view)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from asn1crypto import pem
from asn1crypto import x509 as ax509
from cryptography import x509

from formats import PdfSignOptions, TokenSigner, sign_pdf, verify_pdf
from formats.policy import DEFAULT_REMOTE_POLICY, DEFAULT_SIGNING_POLICY, REMOTE_KEY_MARKER, certificate_policies
from formats.samplepdf import make_contract_pdf
from server.tls import new_tls_key, tls_csr
from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pbg
from tests.hsm.probes import object_blocks, pkcs11_tool
from tests.pki import make_nssdb, pdfsig

from .authz_world import Enrolled, enroll_in_process
from .server_harness import (
    PY,
    ROOT,
    ClientFiles,
    Running,
    admin,
    channel,
    cli,
    latest_code,
    prc_id,
    reason,
    register_verified,
    start_running,
)

pytestmark = pytest.mark.e2e

PEOPLE = {"alice": ("19900307", "457", "+8613800138051"), "carol": ("19780101", "248", "+8613800138053"),
          "erin": ("19790315", "112", "+8613800138055")}
FIELD = pb.SignatureField(page=1, x1=56, y1=56, x2=276, y2=116)
FP, UN, NF = grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.NOT_FOUND


@dataclass
class World:
    r: Running
    base: Path
    ids: dict[str, str]
    alice: Enrolled
    alice_token: Any
    carol: ClientFiles
    carol_key: dict[str, Any]
    nssdb: Path
    server_label: str
    server_pin: str
    codes: list[str]

    def files(self, name: str) -> ClientFiles:
        return self.alice.agent if name == "alice" else self.carol

    def call(self, name: str, method: str, request: Any) -> Any:
        with channel(self.r.env, self.files(name)) as ch:
            return getattr(pbg.EnvelopeServiceStub(ch), method)(request, timeout=60)

    def code(self, name: str) -> str:
        code = latest_code(self.r.env, PEOPLE[name][2])
        self.codes.append(code)
        return code


@pytest.fixture(scope="module")
def world(make_token, tmp_path_factory) -> Iterator[World]:
    from hsm import Hsm

    base = tmp_path_factory.mktemp("remote")
    tok = make_token("rs-srv")
    r = start_running(base, tok.label, tok.pin)
    alice_token = None
    codes: list[str] = []
    try:
        with channel(r.env, r.op_a) as op:
            ids = {n: register_verified(r, op, f"{n.title()} Remote", prc_id(birth, seq), phone, f"{n}@example.com")
                   for n, (birth, seq, phone) in PEOPLE.items()}
        t = make_token("alice")
        enrolled = enroll_in_process(r, ids["alice"], PEOPLE["alice"][2], t, base / "alice-agent")
        alice_token = Hsm(pin_state=base / "alice-pins.json").token(serial=t.serial)
        alice_token.login(t.pin)
        made = admin(r.env, "remote-key", "create", ids["carol"], "--evidence", "no token; ID card seen at desk 2",
                     "--out", str(base / "carol"))
        carol = ClientFiles(base / "carol" / "client.crt", base / "carol" / "client.key", base / "carol" / "ca.pem")
        nssdb = make_nssdb(base / "nssdb", r.env.signing_root.read_bytes())
        yield World(r, base, ids, enrolled, alice_token, carol, made, nssdb, tok.label, tok.pin, codes)
    finally:
        if alice_token is not None:
            alice_token.logout()
        assert r.server.stop() == 0
    log = r.server.log
    assert codes and not [c for c in codes if re.search(rf"\b{c}\b", log)]  # codes never reach the log


def contract(w: World, title: str) -> bytes:
    path = w.base / f"{hashlib.sha256(title.encode()).hexdigest()[:8]}.pdf"
    make_contract_pdf(path, title, ["Alice Remote", "Carol Remote"], pages=2)
    return path.read_bytes()


def create_and_send(w: World, title: str, recipients: list[tuple[str, int, pb.SigningMethod.ValueType]],
                    docs: int = 1) -> pb.Envelope:
    specs = [pb.RecipientSpec(person_id=w.ids[n], role=pb.RECIPIENT_ROLE_SIGNER, routing_order=o, signing_method=m,
                              field=FIELD) for n, o, m in recipients]
    documents = [pb.DocumentSpec(name=f"lease-{i}.pdf", media_type="application/pdf",
                                 content=contract(w, f"{title} {i}")) for i in range(docs)]
    draft = w.call("alice", "CreateEnvelope", pb.CreateEnvelopeRequest(
        idempotency_key=f"create {title}", title=title, documents=documents, recipients=specs)).envelope
    return w.call("alice", "SendEnvelope", pb.SendEnvelopeRequest(envelope_id=draft.id)).envelope


def alice_signs(w: World, env: pb.Envelope) -> pb.Envelope:
    doc = env.documents[0]
    got = w.call("alice", "GetDocument", pb.GetDocumentRequest(envelope_id=env.id, document_id=doc.id))
    challenge = w.call("alice", "StartSigning", pb.StartSigningRequest(
        envelope_id=env.id, document_id=doc.id, revision_sha256=got.document.current_sha256)).challenge
    code = w.code("alice")
    me = next(r for r in env.recipients if r.person_id == w.ids["alice"])
    src, out = w.base / "alice-in.pdf", w.base / "alice-out.pdf"
    src.write_bytes(got.content)
    sign_pdf(src, out, TokenSigner(w.alice_token, w.alice.key_id),
             PdfSignOptions(field_name=f"signet-{me.id}", visible=True, page=0, box=(56, 56, 276, 116)))
    return w.call("alice", "SubmitSignature", pb.SubmitSignatureRequest(
        envelope_id=env.id, document_id=doc.id, one_time_code=code, code_id=challenge.code_id,
        content=out.read_bytes())).envelope


def signet(w: World, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The `signet` CLI with Carol's API files and no agent."""
    return subprocess.run([PY, "-m", "agent.cli", "--json", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "SIGNET_IDENTITY_DIR": str(w.base / "carol"), **(env or {})},
                          check=False)


def state_of(w: World, envelope_id: str) -> tuple:
    env = w.call("alice", "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=envelope_id)).envelope
    return env.version, env.state, [(d.current_sha256, d.signatures) for d in env.documents], \
        [(r.state, r.certificate_serial) for r in env.recipients]


def notices_delivered(w: World, envelope_id: str, n: int) -> None:
    """Wait for the background dispatcher's ``n`` "your turn" deliveries (each bumps the envelope's version), so
    that what changes afterwards is only what the test's own calls changed."""
    deadline = time.monotonic() + 60
    while sum(e.type == "notified" for e in w.call("alice", "ListEnvelopeEvents", pb.ListEnvelopeEventsRequest(
            envelope_id=envelope_id)).events) < n:
        assert time.monotonic() < deadline, "the notices were not delivered"
        time.sleep(0.2)


def refused(w: World, name: str, request: pb.SignRemotelyRequest) -> tuple[grpc.StatusCode, str]:
    before = state_of(w, request.envelope_id)
    with pytest.raises(grpc.RpcError) as e:
        w.call(name, "SignRemotely", request)
    assert state_of(w, request.envelope_id) == before
    return e.value.code(), reason(e.value)


# -- the key ---------------------------------------------------------------------------------------------------------
def test_the_remote_key_is_sensitive_on_the_server_token_and_certified_like_a_token_key(world: World,
                                                                                     hsm_module) -> None:
    w = world
    listing = pkcs11_tool(hsm_module, "--token-label", w.server_label, "-O", pin=w.server_pin)
    [block] = [b for b in object_blocks(listing) if f"signet-remote-{w.ids['carol']}" in b and "Private Key" in b]
    assert "sensitive" in block and "never extractable" in block and "always sensitive" in block
    with channel(w.r.env, w.r.op_a) as ch:
        certs = pbg.CertificateServiceStub(ch).ListCertificates(
            pb.ListCertificatesRequest(person_id=w.ids["carol"]), timeout=30).certificates
        alice_certs = pbg.CertificateServiceStub(ch).ListCertificates(
            pb.ListCertificatesRequest(person_id=w.ids["alice"]), timeout=30).certificates
    [remote] = [c for c in certs if c.serial == w.carol_key["serial"]]
    cert = ax509.Certificate.load(remote.certificate_der)
    assert set(certificate_policies(cert)) == {DEFAULT_REMOTE_POLICY, REMOTE_KEY_MARKER}
    token_cert = ax509.Certificate.load(next(c for c in alice_certs if c.serial == w.alice.signing_serial)
                                        .certificate_der)
    assert certificate_policies(token_cert) == [DEFAULT_SIGNING_POLICY]
    # the same identity binding as a token certificate: CN, ETSI serialNumber, O, C
    assert cert.subject.native["common_name"] == "Carol Remote"
    assert cert.subject.native["serial_number"].startswith("IDCCN-")
    assert {k for k in cert.subject.native} == {k for k in token_cert.subject.native}
    # her API certificate names her as a person (role agent), from the TLS CA
    tls = x509.load_pem_x509_certificates(w.carol.cert.read_bytes())[0]
    uris = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.UniformResourceIdentifier)
    assert uris == [f"urn:signet:org:{w.r.org_a}:role:agent:subject:{w.ids['carol']}"]
    assert oct(w.carol.key.stat().st_mode & 0o777) == "0o600"
    shown = admin(w.r.env, "person", "show", w.ids["carol"])
    [made] = [e for e in shown["evidence"] if e["kind"] == "remote_key_created"]
    assert made["actor"] == "operator:op-admin" and made["detail"]["serial"] == w.carol_key["serial"]
    again = cli(w.r.env, "server.admin", "--config", str(w.r.env.config), "remote-key", "create", w.ids["carol"],
                "--evidence", "again", "--out", str(w.base / "carol-again"))
    assert again.returncode == 1 and "REMOTE_KEY_EXISTS" in again.stderr


def test_the_rpc_keeps_four_eyes_and_organisations_apart(world: World, hsm_module) -> None:
    w = world
    key = new_tls_key()
    request = pb.CreateRemoteKeyRequest(person_id=w.ids["erin"], evidence="video call", tls_csr_der=tls_csr(key))
    for files, code, why in ((w.r.op_a, grpc.StatusCode.PERMISSION_DENIED, "FOUR_EYES"),  # she registered Erin
                             (w.r.op_b, NF, None)):
        with channel(w.r.env, files) as ch, pytest.raises(grpc.RpcError) as e:
            pbg.CertificateServiceStub(ch).CreateRemoteKey(request, timeout=60)
        assert e.value.code() == code and (why is None or reason(e.value) == why)
    with channel(w.r.env, w.r.reviewer_a) as ch:
        made = pbg.CertificateServiceStub(ch).CreateRemoteKey(request, timeout=60)
    assert made.certificate.person_id == w.ids["erin"] and len(made.chain_der) == 2 and len(made.tls_chain_der) == 2
    assert made.certificate.certificate_der and made.tls_certificate_der and made.csc_client_secret
    with channel(w.r.env, w.r.reviewer_a) as ch:
        certs = pbg.CertificateServiceStub(ch)
        with pytest.raises(grpc.RpcError) as e:  # one usable remote key per person
            certs.CreateRemoteKey(pb.CreateRemoteKeyRequest(person_id=w.ids["erin"], evidence="again"), timeout=60)
        assert (e.value.code(), reason(e.value)) == (grpc.StatusCode.ALREADY_EXISTS, "REMOTE_KEY_EXISTS")
        # revoked, it is replaced: a new key and certificate, the old key gone from the server token
        certs.RevokeCertificate(pb.RevokeCertificateRequest(serial=made.certificate.serial,
                                                            reason="key_compromise"), timeout=60)
        again = certs.CreateRemoteKey(pb.CreateRemoteKeyRequest(person_id=w.ids["erin"], evidence="replaced"),
                                      timeout=60)
    assert again.certificate.serial != made.certificate.serial and not again.tls_certificate_der
    shown = admin(w.r.env, "person", "show", w.ids["erin"])
    keys = [e["detail"]["key_id"] for e in shown["evidence"] if e["kind"] == "remote_key_created"]
    assert len(keys) == 2
    listing = pkcs11_tool(hsm_module, "--token-label", w.server_label, "-O", pin=w.server_pin)
    erin_keys = [b for b in object_blocks(listing) if f"signet-remote-{w.ids['erin']}" in b and "Private Key" in b]
    assert len(erin_keys) == 1 and keys[1] in erin_keys[0].replace(":", "").lower()


# -- the journey -----------------------------------------------------------------------------------------------------
def test_alice_signs_with_her_token_carol_remotely_with_the_cli_and_no_agent(world: World) -> None:
    w = world
    env = create_and_send(w, "Remote Lease One", [("alice", 1, pb.SIGNING_METHOD_TOKEN),
                                                 ("carol", 2, pb.SIGNING_METHOD_REMOTE)])
    env = alice_signs(w, env)
    wrong = signet(w, "envelope", "sign", env.id, "--send-code")  # without --remote: she has no token
    assert wrong.returncode == 2 and "--remote" in wrong.stderr
    inbox = signet(w, "inbox")
    assert inbox.returncode == 0 and env.id in inbox.stdout
    sent = signet(w, "envelope", "sign", env.id, "--remote", "--send-code")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["documents"][0]["code_sent"]["channel"] == "outbox"
    done = signet(w, "envelope", "sign", env.id, "--remote", "--code-env", "CAROL_CODE",
                  env={"CAROL_CODE": w.code("carol")})
    assert done.returncode == 0, done.stderr
    final = w.call("alice", "GetEnvelope", pb.GetEnvelopeRequest(envelope_id=env.id)).envelope
    assert final.state == pb.ENVELOPE_STATE_COMPLETED and final.documents[0].signatures == 2
    carol = next(r for r in final.recipients if r.person_id == w.ids["carol"])
    assert carol.certificate_serial == w.carol_key["serial"]
    events = w.call("alice", "ListEnvelopeEvents", pb.ListEnvelopeEventsRequest(envelope_id=env.id)).events
    types = [e.type for e in events]
    types = [t for t in types if t != "sealed"]  # the platform seal may already have followed
    assert types.count("activated") == 1 and types[-2:] == ["signed", "completed"]
    got = w.call("alice", "GetDocument", pb.GetDocumentRequest(envelope_id=env.id, document_id=final.documents[0].id))
    path = w.base / "remote-one.pdf"
    path.write_bytes(got.content)
    blocks = re.split(r"\nSignature #\d+:", pdfsig(path, w.nssdb).text)[1:]
    assert len(blocks) == 2 and all("Signature is Valid." in b and "Certificate is Trusted." in b for b in blocks)
    assert "Alice Remote" in blocks[0] and "Carol Remote" in blocks[1] and "Total document signed" in blocks[1]
    root = pem.unarmor(w.r.env.signing_root.read_bytes())[2]
    report = verify_pdf(path, [root], revocation="offline")
    assert report.valid, report.reasons()
    assert [s.remote_key for s in report.signatures] == [False, True]
    assert report.signatures[1].field_name == f"signet-{carol.id}"


def test_refusals_change_nothing(world: World) -> None:
    w = world
    env = create_and_send(w, "Remote Lease Two", [("alice", 1, pb.SIGNING_METHOD_TOKEN),
                                                 ("carol", 1, pb.SIGNING_METHOD_REMOTE)], docs=2)
    a, b = env.documents
    notices_delivered(w, env.id, 2)
    challenge = w.call("carol", "StartSigning", pb.StartSigningRequest(
        envelope_id=env.id, document_id=a.id, revision_sha256=a.current_sha256)).challenge
    code = w.code("carol")

    def req(doc: pb.EnvelopeDocument = a, sha: str | None = None, code_: str | None = None,
            envelope_id: str | None = None) -> pb.SignRemotelyRequest:
        return pb.SignRemotelyRequest(envelope_id=envelope_id or env.id, document_id=doc.id,
                                      revision_sha256=sha or doc.current_sha256, code_id=challenge.code_id,
                                      one_time_code=code_ if code_ is not None else code)

    assert refused(w, "carol", req(code_="000000" if code != "000000" else "111111")) == (UN, "OTP_INCORRECT")
    assert refused(w, "carol", req(sha=hashlib.sha256(b"another").hexdigest())) == (FP, "REVISION_CHANGED")
    assert refused(w, "carol", req(b)) == (UN, "OTP_NOT_FOUND")  # bound to document a's hash
    assert refused(w, "alice", req()) == (FP, "TOKEN_RECIPIENT")  # a token recipient cannot sign remotely
    other = create_and_send(w, "Remote Lease Three", [("alice", 1, pb.SIGNING_METHOD_TOKEN)])
    notices_delivered(w, other.id, 1)
    assert refused(w, "carol", req(other.documents[0], envelope_id=other.id))[0] == NF  # not her envelope
    refusals = [e for e in w.call("alice", "ListEnvelopeEvents", pb.ListEnvelopeEventsRequest(
        envelope_id=env.id)).events if e.type == "refused"]
    assert len(refusals) == 4 and all("sign_remotely" in e.detail_json for e in refusals)
    # none of them spent the code: it signs document a once; replayed, it is refused
    signed = w.call("carol", "SignRemotely", req())
    assert [d.signatures for d in signed.envelope.documents] == [1, 0]
    assert refused(w, "carol", req(signed.envelope.documents[0])) == (FP, "DOCUMENT_ALREADY_SIGNED")
    assert refused(w, "carol", req(b)) == (UN, "OTP_NOT_FOUND")
