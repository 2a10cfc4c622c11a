"""Write the seed corpus (tests/fuzz/corpus/<target>/) and its fixtures (tests/fuzz/fixtures/): commit the output.

    .venv/bin/python -m tests.fuzz.make_seeds [GROUP ...]     # e.g. worker_frame; default: everything

Valid inputs of every kind, built with the real code: PDFs signed by the agent (through its servicer) under a
throw-away CA whose root becomes ``fixtures/root.der`` (the trust root of pdf_verify); PKCS#10 requests;
OCSP and time-stamp requests (OCSP CertIDs carry the marker bytes of ``ServerWorld.ocsp_placeholders``);
worker frames; one request per gRPC method and variants (first byte: the method's index in
``targets.agent_rpcs()`` / ``server_rpcs()``, bit 7 the target's flag; file names start with the
method's name, which test_fuzz.py checks against the index).  Signatures and keys are fresh on every run, so the
output differs each time; regenerate after a proto change that reorders or adds methods.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from . import env

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
FIXTURES = HERE / "fixtures"


def _csr(key: Any, hash_alg: Any, *, pem: bool = False, extensions: bool = False) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "Zhang San"), x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")]))
    if extensions:
        b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name("zhang@example.com"),
                                                         x509.DNSName("example.com")]), critical=False)
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    req = b.sign(key, hash_alg)
    return req.public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER)


def csr_seeds() -> dict[str, bytes]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    p256, p384 = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1())
    rsa2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {"p256-sha256.der": _csr(p256, hashes.SHA256()),
            "p384-sha384-ext.der": _csr(p384, hashes.SHA384(), extensions=True),
            "rsa2048-sha256.der": _csr(rsa2048, hashes.SHA256()),
            "p256-sha512.pem": _csr(p256, hashes.SHA512(), pem=True),
            "p256-sha224.der": _csr(p256, hashes.SHA224())}  # refused: a seed for the refusal path


def ocsp_seeds() -> dict[str, bytes]:
    from asn1crypto import algos, core, ocsp

    def cert_id(hash_name: str, size: int, serial_marker: bytes | None, foreign: bool = False) -> dict[str, Any]:
        name_hash, key_hash = (os.urandom(size), os.urandom(size)) if foreign else (b"\xaa" * size, b"\xbb" * size)
        serial = int.from_bytes(serial_marker * 16, "big") if serial_marker else 0x4000_1234_5678
        return {"hash_algorithm": algos.DigestAlgorithm({"algorithm": hash_name}), "issuer_name_hash": name_hash,
                "issuer_key_hash": key_hash, "serial_number": serial}

    def request(ids: list[dict[str, Any]], nonce: bytes | None = None) -> bytes:
        tbs: dict[str, Any] = {"request_list": [{"req_cert": i} for i in ids]}
        if nonce is not None:
            tbs["request_extensions"] = [{"extn_id": "nonce", "critical": False,
                                          "extn_value": core.OctetString(nonce)}]
        return bytes(ocsp.OCSPRequest({"tbs_request": tbs}).dump())

    return {"good-sha1.der": request([cert_id("sha1", 20, b"\xcc")]),
            "revoked-sha256-nonce.der": request([cert_id("sha256", 32, b"\xdd")], nonce=os.urandom(16)),
            "unknown-serial.der": request([cert_id("sha1", 20, None)]),
            "foreign.der": request([cert_id("sha1", 20, b"\xcc", foreign=True)]),
            "mixed-three.der": request([cert_id("sha1", 20, b"\xcc"), cert_id("sha256", 32, b"\xdd"),
                                        cert_id("sha1", 20, None, foreign=True)], nonce=os.urandom(32))}


def tsa_seeds() -> dict[str, bytes]:
    from asn1crypto import tsp

    from formats.policy import DEFAULT_TSA_POLICY

    def request(alg: str, data: bytes, **extra: Any) -> bytes:
        digest = hashlib.new(alg, data).digest()
        return bytes(tsp.TimeStampReq({"version": "v1", "message_imprint": {
            "hash_algorithm": {"algorithm": alg}, "hashed_message": digest}, **extra}).dump())

    return {"sha256-nonce-certreq.der": request("sha256", b"contract", nonce=0x1234_5678_9ABC, cert_req=True),
            "sha512.der": request("sha512", b"contract"),
            "sha3-256-policy.der": request("sha3_256", b"contract", req_policy=DEFAULT_TSA_POLICY, cert_req=True),
            "sha384-extensions.der": request("sha384", b"contract", extensions=[
                {"extn_id": "2.5.29.19", "critical": False, "extn_value": b"\x30\x00"}])}


def frame_seeds(cert: bytes, root: bytes) -> dict[str, bytes]:
    """Each frame twice: raw (first byte 0) and as header text + newline + blobs (first byte 1)."""
    from agent.jobs import SignJob, VerifyJob, encode

    spki = b"\x30\x59" + os.urandom(89)
    frames = {
        "sign-pdf.bin": SignJob("sign_pdf", "ec" * 8, spki, cert, (root,), in_path="/spool/in.pdf",
                                out_path="/spool/out.pdf", pdf_options={"reason": "ok", "page": 0, "box": [1, 2, 3, 4],
                                                                       "level": "B-B"}).frame(),
        "sign-detached.bin": SignJob("sign_detached", "ae" * 8, spki, cert, (), document=b"hello",
                                     timestamp_url="http://tsa.example/", count_pages=True).frame(),
        "verify-pdf.bin": VerifyJob("verify_pdf", "/spool/x.pdf", (root, cert), revocation="offline").frame(),
        "verify-detached.bin": VerifyJob("verify_detached", "/spool/x.bin", (root,), signature=b"\x30\x80",
                                         fetch_timeout=2.5).frame(),
        "sign-request.bin": encode("sign", {"hash": "sha256", "pages": 3}, {"digest": os.urandom(32)}),
    }
    out = {}
    for name, frame in frames.items():
        n = int.from_bytes(frame[:4], "big")
        out[name] = b"\x00" + frame
        out[name.replace(".bin", "-text.bin")] = b"\x01" + frame[4:4 + n] + b"\n" + frame[4 + n:]
    return out


def _serve(servicer: Any, name: str, request: Any) -> list[Any]:
    from .fakes import FakeContext
    from .targets import _serve as serve
    from .targets import agent_rpcs

    rpc = next(r for r in agent_rpcs() if r.name == name)
    return serve(getattr(servicer, name), rpc, request if isinstance(request, list) else [request], FakeContext())


def _encode(table: Any, name: str, messages: list[Any], flags: int = 0) -> bytes:
    from .targets import SEP

    index = next(i for i, r in enumerate(table) if r.name == name)
    return bytes([index | flags]) + SEP.join(m.SerializeToString() for m in messages)


def agent_seeds(pdf: bytes, signed_pdf: bytes, p7s: bytes, ca_cert: bytes) -> dict[str, bytes]:
    from signet.v1 import agent_pb2 as pb
    from signet.v1 import common_pb2

    from . import worlds
    from .targets import agent_rpcs

    table = agent_rpcs()
    tok = pb.TokenSelector(label=worlds.AGENT_TOKEN)
    pin = pb.PinCredential(pin=env.USER_PIN)
    ec, rsa = worlds.EC_KEY_ID, worlds.RSA_KEY_ID
    text = b"A detached file: the terms of the contract.\n"
    pdf_h = pb.SignPdfHeader
    seeds: dict[str, tuple[str, list[Any], int]] = {
        "GetInfo": ("GetInfo", [pb.GetInfoRequest()], 0),
        "ListTokens": ("ListTokens", [pb.ListTokensRequest()], 0),
        "WatchTokens": ("WatchTokens", [pb.WatchTokensRequest()], 0),
        "ListKeys-pin": ("ListKeys", [pb.ListKeysRequest(token=tok, credential=pin)], 0),
        "ListKeys-grant": ("ListKeys", [pb.ListKeysRequest(token=tok)], 0x80),
        "GenerateKey": ("GenerateKey", [pb.GenerateKeyRequest(token=tok, algorithm=common_pb2.KEY_ALGORITHM_EC_P256,
                                                              label="fuzz-new", credential=pin)], 0),
        "CreateCertificateRequest": ("CreateCertificateRequest", [pb.CreateCertificateRequestRequest(
            token=tok, key_id=ec, subject={"common_name": "Alice", "country_name": "CN",
                                           "organization_name": "Signet Fuzz"},
            dns_names=["example.com"], emails=["alice@example.com"], credential=pin)], 0),
        "ImportCertificate": ("ImportCertificate", [pb.ImportCertificateRequest(
            token=tok, key_id=ec, certificate_der=ca_cert, chain_der=[ca_cert], credential=pin)], 0),
        "DeleteKey": ("DeleteKey", [pb.DeleteKeyRequest(token=tok, key_id="00" * 8, credential=pin)], 0),
        "Unlock": ("Unlock", [pb.UnlockRequest(token=tok, pin=env.USER_PIN, ttl_seconds=60, max_signatures=3)], 0),
        "Lock": ("Lock", [pb.LockRequest(token=tok)], 0x80),
        "PinReset-pin": ("PinReset", [pb.PinResetRequest(token=tok, pin=env.USER_PIN)], 0),
        "PinReset-so": ("PinReset", [pb.PinResetRequest(token=tok, so_pin=env.SO_PIN)], 0),
        "SignDigest-ec": ("SignDigest", [pb.SignDigestRequest(token=tok, key_id=ec, digest=os.urandom(32),
                                                              hash=pb.HASH_ALGORITHM_SHA256, credential=pin)], 0),
        "SignDigest-rsa-pss": ("SignDigest", [pb.SignDigestRequest(
            token=tok, key_id=rsa, digest=os.urandom(48), hash=pb.HASH_ALGORITHM_SHA384,
            scheme=pb.SIGNATURE_SCHEME_RSA_PSS, credential=pin)], 0),
        "SignDigest-grant": ("SignDigest", [pb.SignDigestRequest(token=tok, key_id=ec, digest=os.urandom(32))], 0x80),
        "SignDigestStream": ("SignDigestStream", [
            pb.SignDigestStreamRequest(token=tok, key_id=rsa, hash=pb.HASH_ALGORITHM_SHA256, credential=pin,
                                       scheme=pb.SIGNATURE_SCHEME_RSA_PKCS1V15, digests=[os.urandom(32)] * 2,
                                       request_id=1),
            pb.SignDigestStreamRequest(digests=[os.urandom(32)], request_id=2)], 0),
        "SignPdf-inline": ("SignPdf", [pb.SignPdfRequest(header=pdf_h(
            token=tok, key_id=ec, credential=pin, field_name="Fuzz1", reason="agreed", location="Beijing",
            file_name="contract.pdf", document=pdf, inline_result=True))], 0),
        "SignPdf-chunks": ("SignPdf", [pb.SignPdfRequest(header=pdf_h(
            token=tok, key_id=rsa, credential=pin, size=len(pdf), appearance=pb.Appearance(
                page=0, x1=50, y1=50, x2=250, y2=120))),
            pb.SignPdfRequest(chunk=pdf[:1000]), pb.SignPdfRequest(chunk=pdf[1000:])], 0),
        "SignPdf-bt": ("SignPdf", [pb.SignPdfRequest(header=pdf_h(
            token=tok, key_id=ec, level=pb.PADES_LEVEL_B_T, timestamp_url="http://127.0.0.1:9/tsa",
            document=pdf)), ], 0x80),
        "SignDetached-inline": ("SignDetached", [pb.SignDetachedRequest(header=pb.SignDetachedHeader(
            token=tok, key_id=ec, credential=pin, document=text, inline_result=True))], 0),
        "SignDetached-chunks": ("SignDetached", [pb.SignDetachedRequest(header=pb.SignDetachedHeader(
            token=tok, key_id=rsa, credential=pin, size=len(text), file_name="terms.txt")),
            pb.SignDetachedRequest(chunk=text)], 0),
        "VerifyPdf": ("VerifyPdf", [pb.VerifyPdfRequest(header=pb.VerifyPdfHeader(
            size=len(signed_pdf), trust_roots_der=[ca_cert], offline=True)),
            pb.VerifyPdfRequest(chunk=signed_pdf)], 0),
        "VerifyDetached": ("VerifyDetached", [pb.VerifyDetachedRequest(header=pb.VerifyDetachedHeader(
            signature_der=p7s, trust_roots_der=[ca_cert], offline=True)), pb.VerifyDetachedRequest(chunk=text)], 0),
    }
    missing = {r.name for r in table} - {v[0] for v in seeds.values()}
    assert not missing, f"no seed for {missing}"
    return {f"{key}.bin": _encode(table, name, msgs, flags) for key, (name, msgs, flags) in seeds.items()}


def envelope_seeds(signed_revision: bytes, detached: bytes) -> dict[str, tuple[str, Any, int]]:
    """EnvelopeService requests (flag 0x80: the operator calls); ``signed_revision`` is @d1 (worlds.envelope_pdf)
    with one more signature and ``detached`` a CMS signature over @d2 (worlds.ENVELOPE_TEXT), both made by the
    agent's fixture key (not a Signet signing certificate: refused, after the revision checks)."""
    from signet.v1 import server_pb2 as pb

    from . import worlds

    p1, p2, p3 = worlds.PERSON_APPROVED, worlds.PERSON_PENDING, worlds.SENDER
    v1, v2, d1, d2, d3 = (worlds.ENVELOPE_SENT, worlds.ENVELOPE_DRAFT, worlds.SENT_PDF, worlds.SENT_TEXT,
                          worlds.DRAFT_PDF)
    (c1, c2), (c3, c4) = worlds.SIGN_CODES[d1], worlds.SIGN_CODES[d2]
    pdf, text = worlds.envelope_pdf(), worlds.ENVELOPE_TEXT
    signer, approver, copy = pb.RECIPIENT_ROLE_SIGNER, pb.RECIPIENT_ROLE_APPROVER, pb.RECIPIENT_ROLE_COPY
    token, remote = pb.SIGNING_METHOD_TOKEN, pb.SIGNING_METHOD_REMOTE
    op = 0x80
    return {
        "CreateEnvelope": ("CreateEnvelope", pb.CreateEnvelopeRequest(
            title="Lease of the harbour crane", message="Please sign by Friday.", tags=["lease", "2024"],
            documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf", content=pdf),
                       pb.DocumentSpec(name="schedule.txt", media_type="text/plain", content=text)],
            recipients=[pb.RecipientSpec(person_id=p3, role=signer, routing_order=1, signing_method=token,
                                         field=pb.SignatureField(page=1, x1=56, y1=56, x2=276, y2=116)),
                        pb.RecipientSpec(person_id=p1, role=copy, routing_order=2)],
            expires_in_days=7, reminder_every_days=2, reminder_max=3), 0),
        "CreateEnvelope-detached": ("CreateEnvelope", pb.CreateEnvelopeRequest(
            idempotency_key="create-1", title="Schedule only",
            documents=[pb.DocumentSpec(name="schedule.txt", media_type="text/plain", content=text)],
            recipients=[pb.RecipientSpec(person_id=p3, role=approver, routing_order=1, signing_method=remote),
                        pb.RecipientSpec(person_id=p2, role=signer, routing_order=2)]), 0),
        "CreateEnvelope-operator": ("CreateEnvelope", pb.CreateEnvelopeRequest(
            title="An operator may not send", documents=[pb.DocumentSpec(name="a.pdf", media_type="application/pdf",
                                                                          content=pdf)],
            recipients=[pb.RecipientSpec(person_id=p1, role=signer, routing_order=1)]), op),
        "SendEnvelope": ("SendEnvelope", pb.SendEnvelopeRequest(envelope_id=v2, idempotency_key="send-1"), 0),
        "CreateEnvelope-template": ("CreateEnvelope", pb.CreateEnvelopeRequest(
            title="Lease for {{tenant}}", message="Dear {{tenant}}, please sign.",
            documents=[pb.DocumentSpec(name="lease.pdf", media_type="application/pdf", content=pdf)],
            recipients=[pb.RecipientSpec(person_id="{{signer}}", role=signer, routing_order=1)]), 0),
        "BulkSendEnvelopes": ("BulkSendEnvelopes", pb.BulkSendEnvelopesRequest(
            template_envelope_id=v2, idempotency_key="bulk-1",
            rows=[pb.BulkRow(values={"tenant": "Wang Wu", "signer": p3}), pb.BulkRow(values={"tenant": ""})]), 0),
        "GetEnvelope": ("GetEnvelope", pb.GetEnvelopeRequest(envelope_id=v1), 0),
        "GetEnvelope-operator": ("GetEnvelope", pb.GetEnvelopeRequest(envelope_id=v1), op),
        "ListEnvelopes": ("ListEnvelopes", pb.ListEnvelopesRequest(view="inbox"), 0),
        "ListEnvelopes-sent": ("ListEnvelopes", pb.ListEnvelopesRequest(view="sent", page_size=1), 0),
        "ListEnvelopes-operator": ("ListEnvelopes", pb.ListEnvelopesRequest(page_size=2), op),
        "GetDocument": ("GetDocument", pb.GetDocumentRequest(envelope_id=v1, document_id=d1), 0),
        "GetDocument-text": ("GetDocument", pb.GetDocumentRequest(envelope_id=v1, document_id=d2), 0),
        "GetDocument-draft": ("GetDocument", pb.GetDocumentRequest(envelope_id=v2, document_id=d3), 0),
        "StartSigning": ("StartSigning", pb.StartSigningRequest(envelope_id=v1, document_id=d1,
                                                                revision_sha256=worlds.SENT_PDF_SHA), 0),
        "StartSigning-text": ("StartSigning", pb.StartSigningRequest(envelope_id=v1, document_id=d2,
                                                                     revision_sha256=worlds.SENT_TEXT_SHA), 0),
        "SubmitSignature": ("SubmitSignature", pb.SubmitSignatureRequest(
            envelope_id=v1, document_id=d1, one_time_code=c2, code_id=c1, content=signed_revision), 0),
        "SubmitSignature-detached": ("SubmitSignature", pb.SubmitSignatureRequest(
            envelope_id=v1, document_id=d2, one_time_code=c4, code_id=c3, content=detached,
            idempotency_key="sign-1"), 0),
        "SubmitSignature-appended": ("SubmitSignature", pb.SubmitSignatureRequest(
            envelope_id=v1, document_id=d1, one_time_code=c2, code_id=c1,
            content=pdf + b"\n1000 0 obj\n<< /Junk (not a signature) >>\nendobj\n"), 0),
        "SignRemotely": ("SignRemotely", pb.SignRemotelyRequest(
            envelope_id=v1, document_id=d1, revision_sha256=worlds.SENT_PDF_SHA, code_id=c1, one_time_code=c2,
            idempotency_key="remote-1"), 0),
        "SubmitSignature-garbage": ("SubmitSignature", pb.SubmitSignatureRequest(
            envelope_id=v1, document_id=d2, one_time_code=c4, code_id=c3, content=b"\x30\x80" + os.urandom(64)), 0),
        "DeclineEnvelope": ("DeclineEnvelope", pb.DeclineEnvelopeRequest(envelope_id=v1,
                                                                         reason="the rent is too high"), 0),
        "VoidEnvelope": ("VoidEnvelope", pb.VoidEnvelopeRequest(envelope_id=v2, reason="drafted in error"), 0),
        "VoidEnvelope-operator": ("VoidEnvelope", pb.VoidEnvelopeRequest(envelope_id=v1, reason="sender left",
                                                                         idempotency_key="void-1"), op),
        "ListEnvelopeEvents": ("ListEnvelopeEvents", pb.ListEnvelopeEventsRequest(envelope_id=v1, page_size=50), 0),
        "ListEnvelopeEvents-operator": ("ListEnvelopeEvents", pb.ListEnvelopeEventsRequest(
            envelope_id=v1, after_event_id=2), op),
        "WatchEnvelopeEvents": ("WatchEnvelopeEvents", pb.WatchEnvelopeEventsRequest(envelope_id=v1), 0),
        "WatchEnvelopeEvents-all": ("WatchEnvelopeEvents", pb.WatchEnvelopeEventsRequest(after_event_id=1), 0),
        "WatchEnvelopeEvents-operator": ("WatchEnvelopeEvents", pb.WatchEnvelopeEventsRequest(), op),
    }


def server_seeds(external_leaf: bytes, signed_revision: bytes, detached: bytes) -> dict[str, bytes]:
    from signet.v1 import server_pb2 as pb

    from . import worlds
    from .targets import server_rpcs

    table = server_rpcs()
    p1, p2, s1, s2 = worlds.PERSON_APPROVED, worlds.PERSON_PENDING, worlds.CERT_SERIAL, worlds.REVOKED_SERIAL
    seeds: dict[str, tuple[str, Any, int]] = {k: (name, msg, 0) for k, (name, msg) in {
        "RegisterPerson": ("RegisterPerson", pb.RegisterPersonRequest(
            legal_name="李四", document_type="prc_resident_id", document_number=worlds.resident_id(9_000_000 // 7),
            phone="+8613900001111", email="li.si@example.com")),
        "RegisterPerson-passport": ("RegisterPerson", pb.RegisterPersonRequest(
            legal_name="Alice Example", document_type="passport", document_number="X12345678",
            document_country="GB", phone="+447700900123", email="alice@example.com")),
        "GetPerson": ("GetPerson", pb.GetPersonRequest(person_id=p1)),
        "ListPeople": ("ListPeople", pb.ListPeopleRequest(status=pb.PERSON_STATUS_PENDING)),
        "StartPhoneVerification": ("StartPhoneVerification", pb.StartPhoneVerificationRequest(person_id=p2)),
        "ConfirmPhone": ("ConfirmPhone", pb.ConfirmPhoneRequest(person_id=p2, code="123456", code_id="c_0")),
        "ApprovePerson": ("ApprovePerson", pb.ApprovePersonRequest(person_id=p2, evidence="passport seen",
                                                                   reference="ticket-1")),
        "RejectPerson": ("RejectPerson", pb.RejectPersonRequest(person_id=p2, reason="document forged")),
        "ListEvidence": ("ListEvidence", pb.ListEvidenceRequest(person_id=p1)),
        "UnlockEnrollment": ("UnlockEnrollment", pb.UnlockEnrollmentRequest(person_id=p1, evidence="phoned them")),
        "StartEnrollment": ("StartEnrollment", pb.StartEnrollmentRequest(person_id=p1)),
        "Enroll": ("Enroll", pb.EnrollRequest(person_id=p1, one_time_code=worlds.ENROLL_CODE,
                                              code_id=worlds.ENROLL_CODE_ID, csr_der=worlds.new_csr(),
                                              agent_tls_csr_der=worlds.new_csr())),
        "RevokeCertificate": ("RevokeCertificate", pb.RevokeCertificateRequest(serial=s1, reason="superseded")),
        "GetCertificateStatus": ("GetCertificateStatus", pb.GetCertificateStatusRequest(serial=s2)),
        "ListCertificates": ("ListCertificates", pb.ListCertificatesRequest(person_id=p1)),
        "RegisterExternalCertificate": ("RegisterExternalCertificate", pb.RegisterExternalCertificateRequest(
            person_id=p1, certificate_der=external_leaf)),
        "CreateRemoteKey": ("CreateRemoteKey", pb.CreateRemoteKeyRequest(
            person_id=p1, evidence="asked for a key held on the server", tls_csr_der=worlds.new_csr())),
        "CreateRemoteKey-pending": ("CreateRemoteKey", pb.CreateRemoteKeyRequest(person_id=p2, evidence="too soon")),
    }.items()}
    seeds.update(envelope_seeds(signed_revision, detached))
    seeds.update(contract_seeds())
    seeds.update(audit_seeds())
    seeds.update(kiosk_seeds())
    missing = {r.name for r in table} - {v[0] for v in seeds.values()}
    assert not missing, f"no seed for {missing}"
    return {f"{key}.bin": _encode(table, name, [msg], flags) for key, (name, msg, flags) in seeds.items()}


def kiosk_seeds() -> dict[str, tuple[str, Any, int]]:
    """KioskService requests (the caller: a signing station; flag 0x80: the operator, refused): a card session for
    @p1's certificate with a fresh proof of @p1's card (placeholders, worlds.ServerWorld.card_proof), the
    certificate without a proof, a fresh statement with a signature that is none, a certificate that is none, and
    closing a session that does not exist."""
    from signet.v1 import server_pb2 as pb

    from . import worlds

    card, proof = worlds.CARD, worlds.CARD_PROOF
    return {
        "OpenCardSession": ("OpenCardSession", pb.OpenCardSessionRequest(
            certificate_der=card, proof_statement=proof, proof_signature=proof), 0),
        "OpenCardSession-operator": ("OpenCardSession", pb.OpenCardSessionRequest(
            certificate_der=card, proof_statement=proof, proof_signature=proof), 0x80),
        "OpenCardSession-no-proof": ("OpenCardSession", pb.OpenCardSessionRequest(certificate_der=card), 0),
        "OpenCardSession-bad-signature": ("OpenCardSession", pb.OpenCardSessionRequest(
            certificate_der=card, proof_statement=proof, proof_signature=b"\x30\x03\x02\x01\x01"), 0),
        "OpenCardSession-garbage": ("OpenCardSession", pb.OpenCardSessionRequest(
            certificate_der=b"\x30\x03\x02\x01\x01"), 0),
        "CloseCardSession": ("CloseCardSession", pb.CloseCardSessionRequest(session_id="A" * 43), 0),
    }


def contract_seeds() -> dict[str, tuple[str, Any, int]]:
    """ContractService requests (flag 0x80: the operator calls): searches in Latin and Chinese, with filters and
    a page token, and the contract calls on the sent (unsealed) envelope @v1."""
    from google.protobuf.timestamp_pb2 import Timestamp

    from signet.v1 import server_pb2 as pb

    from . import worlds

    v1, op = worlds.ENVELOPE_SENT, 0x80
    start = Timestamp(seconds=1_700_000_000)
    return {
        "SearchContracts": ("SearchContracts", pb.SearchContractsRequest(query="harbour crane lease"), 0),
        "SearchContracts-operator": ("SearchContracts", pb.SearchContractsRequest(
            query="租赁合同 crane", party_person_id=worlds.SENDER, completed_from=start, order="date", page_size=5,
            page_token="eyJvIjogNX0"), op),
        "GetContract": ("GetContract", pb.GetContractRequest(envelope_id=v1), 0),
        "GetContract-operator": ("GetContract", pb.GetContractRequest(envelope_id=v1), op),
        "DownloadContract": ("DownloadContract", pb.DownloadContractRequest(envelope_id=v1, name="lease.pdf"), op),
        "ExportEvidence": ("ExportEvidence", pb.ExportEvidenceRequest(envelope_id=v1), 0),
    }


def audit_seeds() -> dict[str, tuple[str, Any, int]]:
    """AuditService requests (flag 0x80: the operator calls; @p1's agent is refused): the newest head and one of
    a given size, proofs to the newest head and to given sizes (some beyond the log), and the leaves of the sent
    envelope @v1."""
    from signet.v1 import server_pb2 as pb

    from . import worlds

    v1, op = worlds.ENVELOPE_SENT, 0x80
    return {
        "GetTreeHead": ("GetTreeHead", pb.GetTreeHeadRequest(), 0),
        "GetTreeHead-operator": ("GetTreeHead", pb.GetTreeHeadRequest(), op),
        "GetTreeHead-size": ("GetTreeHead", pb.GetTreeHeadRequest(tree_size=3), op),
        "GetInclusionProof-operator": ("GetInclusionProof", pb.GetInclusionProofRequest(seq=1), op),
        "GetInclusionProof-size": ("GetInclusionProof", pb.GetInclusionProofRequest(seq=2, tree_size=4), op),
        "GetConsistencyProof-operator": ("GetConsistencyProof", pb.GetConsistencyProofRequest(old_size=3), op),
        "GetConsistencyProof-sizes": ("GetConsistencyProof", pb.GetConsistencyProofRequest(
            old_size=5, new_size=2**40), op),
        "ListEnvelopeLeaves": ("ListEnvelopeLeaves", pb.ListEnvelopeLeavesRequest(envelope_id=v1), 0),
        "ListEnvelopeLeaves-operator": ("ListEnvelopeLeaves", pb.ListEnvelopeLeavesRequest(envelope_id=v1), op),
        "ListEnvelopeLeaves-size": ("ListEnvelopeLeaves", pb.ListEnvelopeLeavesRequest(envelope_id=v1, tree_size=6),
                                    op),
    }


def revision_seeds(pdf: bytes, signed: bytes, other: bytes) -> dict[str, bytes]:
    """targets.revision: the first byte picks the base (even: ``pdf``, odd: ``signed``), the rest is appended."""
    tail = signed[len(pdf):]
    junk = b"\n1000 0 obj\n<< /Junk (unsigned bytes) >>\nendobj\n"
    return {
        "the-signature.bin": b"\x00" + tail,  # the one revision that is accepted
        "the-signature-then-junk.bin": b"\x00" + tail + junk,
        "junk-after-the-signature.bin": b"\x01" + junk,
        "the-signature-again.bin": b"\x01" + tail,
        "another-document's-revision.bin": b"\x00" + other[other.rfind(b"%%EOF", 0, len(other) - 8) + 5:],
    }


def build() -> dict[str, dict[str, bytes]]:
    from formats.samplepdf import contract_pdf_bytes
    from signet.v1 import agent_pb2 as pb
    from tests.pki import make_ca

    from . import worlds

    world = worlds.agent_world()
    try:
        pdf = contract_pdf_bytes("Fuzz contract", ["Alice Example", "Bob Example"])
        tok = pb.TokenSelector(label=worlds.AGENT_TOKEN)
        pin = pb.PinCredential(pin=env.USER_PIN)
        out = _serve(world.servicer, "SignPdf", pb.SignPdfRequest(header=pb.SignPdfHeader(
            token=tok, key_id=worlds.EC_KEY_ID, credential=pin, document=pdf, inline_result=True,
            reason="fuzz seed")))
        signed = out[-1].result.content
        out = _serve(world.servicer, "SignDetached", pb.SignDetachedRequest(header=pb.SignDetachedHeader(
            token=tok, key_id=worlds.EC_KEY_ID, credential=pin, inline_result=True,
            document=b"A detached file: the terms of the contract.\n")))
        p7s = out[-1].result.content
        # EnvelopeService seeds: @d1 with one more signature, a detached signature over @d2 (worlds.py)
        out = _serve(world.servicer, "SignPdf", pb.SignPdfRequest(header=pb.SignPdfHeader(
            token=tok, key_id=worlds.EC_KEY_ID, credential=pin, document=worlds.envelope_pdf(), inline_result=True,
            reason="fuzz envelope seed")))
        envelope_revision = out[-1].result.content
        out = _serve(world.servicer, "SignDetached", pb.SignDetachedRequest(header=pb.SignDetachedHeader(
            token=tok, key_id=worlds.EC_KEY_ID, credential=pin, inline_result=True, document=worlds.ENVELOPE_TEXT)))
        envelope_p7s = out[-1].result.content
        root = world.ca_root
        external = make_ca("Signet Fuzz External Root")
        leaf = external.issue_from_csr(worlds.new_csr("External Signer"), days=36500)
    finally:
        world.agent.close()
    appended = signed + b"\n1000 0 obj\n<< /Junk (unsigned bytes) >>\nendobj\n"
    return {
        "fixtures": {"root.der": root, "external-root.der": external.root_der},
        "prescan": {"contract-default.pdf": b"\x00" + pdf, "contract-small.pdf": b"\x01" + pdf,
                    "signed-default.pdf": b"\x10" + signed, "signed-small.pdf": b"\xff" + signed},
        "pdf_verify": {"contract.pdf": pdf, "signed.pdf": signed, "signed-appended.pdf": appended},
        "revision": revision_seeds(pdf, signed, envelope_revision),
        "csr": csr_seeds(),
        "ocsp_request": ocsp_seeds(),
        "tsa_request": tsa_seeds(),
        "worker_frame": frame_seeds(leaf, external.root_der),
        "agent_handler": agent_seeds(pdf, signed, p7s, root),
        "server_handler": server_seeds(leaf, envelope_revision, envelope_p7s),
    }


def main(argv: list[str]) -> None:
    """``make_seeds [GROUP ...]``: rewrite only those corpus groups (default: all, and the fixtures)."""
    only = set(argv)
    os.environ.setdefault(env.WORKDIR_ENV, str(Path(os.environ.get("TMPDIR", "/tmp")) / f"signet-seeds-{os.getpid()}"))
    try:
        env.softhsm()
        groups = build()
        for group, files in groups.items():
            if only and group not in only:
                continue
            d = FIXTURES if group == "fixtures" else CORPUS / group
            if d.exists() and group != "fixtures":
                shutil.rmtree(d)
            d.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                (d / name).write_bytes(data)
            print(f"{d.relative_to(HERE.parent.parent)}: {len(files)} files, {sum(map(len, files.values()))} bytes")
        if not only or only & {"evidence_bundle", "audit_proof"}:  # no token needed: a tree and a bundle by hand
            from .evidence_targets import write_seeds

            write_seeds(CORPUS)
            print("tests/fuzz/corpus/evidence_bundle, tests/fuzz/corpus/audit_proof: written")
    finally:
        shutil.rmtree(env.workdir(), ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
