"""The whole identity-to-certificate journey against a real `signet-server` process: an operator (mutual TLS)
registers Alice, her phone code comes from the outbox, she is approved, her agent enrols a key on her own
SoftHSM token; then openssl verifies the certificate, openssl ocsp asks the running server (good, then revoked),
and a PAdES B-T signature by the enrolled key validates in pyHanko with our root as the only trust anchor."""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from asn1crypto import pem, x509

from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pbg

from .server_harness import (
    approve_as_reviewer,
    channel,
    latest_code,
    openssl,
    prc_id,
    reason,
    register_verified,
    start_running,
)

ALICE_DOC = prc_id("19900307", "457")


@pytest.fixture(scope="module")
def running(make_token, tmp_path_factory):
    tok = make_token("srv-flow")
    r = start_running(tmp_path_factory.mktemp("server-flow"), tok.label, tok.pin)
    yield r
    r.server.stop()
    assert ALICE_DOC not in r.server.log  # the document number never reaches the log


@pytest.fixture
def user_token(make_token, hsm_root):
    t = make_token("user")
    tok = hsm_root.token(serial=t.serial)
    tok.login(t.pin)
    yield tok
    tok.logout()


def _link(running, tls_dir=None):
    from agent.serverlink import ServerLink, ServerTarget

    env = running.env
    if tls_dir is None:
        return ServerLink(ServerTarget(enroll=env.enroll, ca_pem=env.ca_pem.read_bytes()))
    return ServerLink(ServerTarget(enroll=env.enroll, api=env.api, ca_pem=(tls_dir / "ca.pem").read_bytes(),
                                   client_cert_pem=(tls_dir / "agent.crt").read_bytes(),
                                   client_key_pem=(tls_dir / "agent.key").read_bytes()))


def _enroll_code(running, link, person_id, phone):
    """(the code from the outbox, its code_id): Enroll needs both."""
    challenge = link.start_enrollment(person_id)
    return latest_code(running.env, phone), challenge.code_id


def _write_pem(path, der):
    path.write_bytes(pem.armor("CERTIFICATE", der))
    return path


def _ocsp(running, files, leaf):
    return openssl("ocsp", "-issuer", str(files / "signing-ca.pem"), "-cert", str(leaf), "-url",
                   f"{running.env.pki_url}/ocsp", "-CAfile", str(files / "signing-root.pem"), check=False)


def test_register_verify_approve_enrol_verify_revoke(running, user_token, tmp_path):
    from agent.enroll import enroll

    op = channel(running.env, running.op_a)
    alice = register_verified(running, op, "Alice Zhang 张爱丽", ALICE_DOC, "+8613800138001", "alice@example.com")
    ids = pbg.IdentityServiceStub(op)
    person = ids.GetPerson(pb.GetPersonRequest(person_id=alice), timeout=30).person
    assert person.status == pb.PERSON_STATUS_APPROVED and person.HasField("phone_verified_at")
    records = ids.ListEvidence(pb.ListEvidenceRequest(person_id=alice), timeout=30).records
    kinds = [r.kind for r in records]
    assert kinds == ["registered", "phone_code_sent", "phone_verified", "approved"]
    approved = records[-1]
    assert approved.actor == "operator:alice-reviewer"  # who (from the operator's certificate), when, on what evidence
    assert json.loads(approved.detail_json)["evidence"] == "ID card inspected at the branch"
    assert ALICE_DOC not in "".join(r.detail_json for r in records)

    tls_dir = tmp_path / "alice-agent"
    with _link(running) as link:
        code, cid = _enroll_code(running, link, alice, "+8613800138001")
        result = enroll(user_token, link, alice, code, tls_dir=tls_dir, code_id=cid)

    # certificate and chain are on Alice's token next to the key
    assert user_token.certificate(result.key_id) == result.certificate_der
    chain = user_token.chain(result.key_id)
    assert chain == list(result.chain_der) and len(chain) == 2
    cert = x509.Certificate.load(result.certificate_der)
    subject = cert.subject.native
    assert subject["common_name"] == "Alice Zhang 张爱丽"
    assert subject["serial_number"] == f"IDCCN-{ALICE_DOC}"
    assert subject["organization_name"] == running.org_a_name
    assert cert.public_key.dump() == user_token.key(result.key_id).public_key_der
    assert oct((tls_dir / "agent.key").stat().st_mode & 0o777) == "0o600"

    files = tmp_path / "pki"
    files.mkdir()
    _write_pem(files / "signing-ca.pem", result.chain_der[0])
    _write_pem(files / "signing-root.pem", result.chain_der[1])
    leaf = _write_pem(files / "leaf.pem", result.certificate_der)
    # the signing chain ends at the signing root, which is not the TLS root the listeners use
    assert (files / "signing-root.pem").read_bytes() == running.env.signing_root.read_bytes()
    assert (files / "signing-root.pem").read_bytes() != running.env.ca_pem.read_bytes()
    assert (tls_dir / "signing-root.pem").read_bytes() == running.env.signing_root.read_bytes()
    out = openssl("verify", "-CAfile", str(files / "signing-root.pem"), "-untrusted", str(files / "signing-ca.pem"),
                  "-purpose", "smimesign", str(leaf))
    assert f"{leaf}: OK" in out.stdout
    p = _ocsp(running, files, leaf)
    assert p.returncode == 0 and f"{leaf}: good" in p.stdout and "Response verify OK" in p.stderr + p.stdout

    # the agent now talks to the API over mutual TLS with the certificate it received
    with _link(running, tls_dir) as agent:
        assert agent.get_person(alice).legal_name == "Alice Zhang 张爱丽"
        serials = {c.serial for c in agent.list_certificates(alice)}
        assert result.serial in serials
        # the holder revokes their own certificate; OCSP says so at once
        revoked = agent.revoke_certificate(result.serial, "key_compromise")
        assert revoked.state == pb.CERTIFICATE_STATE_REVOKED
    p = _ocsp(running, files, leaf)
    assert p.returncode == 0 and f"{leaf}: revoked" in p.stdout and "Reason: keyCompromise" in p.stdout
    status = pbg.CertificateServiceStub(op).GetCertificateStatus(
        pb.GetCertificateStatusRequest(serial=result.serial), timeout=30).certificate
    assert status.state == pb.CERTIFICATE_STATE_REVOKED and status.revocation_reason == "key_compromise"


def test_enrol_refuses_wrong_replayed_and_premature_codes(running, user_token, tmp_path):
    from agent.enroll import enroll
    from agent.serverlink import ServerRefused

    op = channel(running.env, running.op_a)
    phone = "+8613800138002"
    bob = register_verified(running, op, "Bob Li", prc_id("19850511", "133"), phone, "bob@example.com",
                            approve=False)
    with _link(running) as link:
        with pytest.raises(ServerRefused) as e:  # not approved yet: no code is even sent
            link.start_enrollment(bob)
        assert e.value.code == "FAILED_PRECONDITION" and e.value.reason == "NOT_APPROVED"
        with pytest.raises(grpc.RpcError) as four_eyes:  # the operator who registered Bob may not approve him
            pbg.IdentityServiceStub(op).ApprovePerson(pb.ApprovePersonRequest(person_id=bob, evidence="passport seen"),
                                                      timeout=30)
        assert four_eyes.value.code() == grpc.StatusCode.PERMISSION_DENIED and reason(four_eyes.value) == "FOUR_EYES"
        approve_as_reviewer(running, bob)
        code, cid = _enroll_code(running, link, bob, phone)
        with pytest.raises(ServerRefused) as e:  # the code alone is not enough: which code it is, too
            enroll(user_token, link, bob, code, key_label="bob-0")
        assert e.value.code == "INVALID_ARGUMENT" and e.value.reason == "CODE_ID_REQUIRED"
        assert len(code) == 8  # enrollment codes have 8 digits
        wrong = f"{(int(code) + 1) % 10**8:08d}"
        keys_before = {k.label for k in user_token.keys()}
        with pytest.raises(ServerRefused) as e:
            enroll(user_token, link, bob, wrong, key_label="bob-1", code_id=cid)
        assert e.value.code == "UNAUTHENTICATED" and e.value.reason == "OTP_INCORRECT"
        assert wrong not in str(e.value) and code not in str(e.value)
        assert {k.label for k in user_token.keys()} == keys_before  # the refused key was removed again

        first = enroll(user_token, link, bob, code, key_label="bob-1", code_id=cid)
        assert x509.Certificate.load(first.certificate_der).subject.native["common_name"] == "Bob Li"
        with pytest.raises(ServerRefused) as e:  # the same code again, for another new key
            enroll(user_token, link, bob, code, key_label="bob-2", code_id=cid)
        assert e.value.code == "UNAUTHENTICATED" and e.value.reason == "OTP_USED"

        # a key certified once is refused before the (fresh) code is spent; the code still works afterwards
        fresh, fcid = _enroll_code(running, link, bob, phone)
        csr = user_token.create_csr(first.key_id, {"common_name": "again"})
        with pytest.raises(ServerRefused) as e:
            link.enroll(bob, fresh, csr, code_id=fcid)
        assert e.value.code == "ALREADY_EXISTS" and e.value.reason == "CA_KEY_NOT_NEW"
        # a CSR whose signature does not verify is refused, also without spending the code
        tampered = bytearray(user_token.create_csr(user_token.generate_key("p256", "bob-3").key_id,
                                                   {"common_name": "x"}))
        tampered[-5] ^= 0x01
        with pytest.raises(ServerRefused) as e:
            link.enroll(bob, fresh, bytes(tampered), code_id=fcid)
        assert e.value.code == "INVALID_ARGUMENT"
        second = enroll(user_token, link, bob, fresh, key_label="bob-4", code_id=fcid)
        assert second.serial != first.serial
        with pytest.raises(ServerRefused) as e:  # unknown person
            link.start_enrollment("p_000000000000000000000000")
        assert e.value.code == "NOT_FOUND"


def _validate(root_der, pdf_path):
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend

    async def run():
        async with AIOHttpFetcherBackend() as fetchers:
            vc = ValidationContext(trust_roots=[x509.Certificate.load(root_der)], allow_fetching=True,
                                   revocation_mode="require", fetchers=fetchers)
            with open(pdf_path, "rb") as f:
                sig = PdfFileReader(f).embedded_signatures[0]
                status = await async_validate_pdf_signature(sig, signer_validation_context=vc,
                                                            ts_validation_context=vc)
            return status, len(vc.ocsps)

    return asyncio.run(run())


def test_pades_bt_by_enrolled_key_validates_with_our_ocsp(running, user_token, tmp_path):
    from agent.enroll import enroll
    from formats.pades import PdfSignOptions, sign_pdf
    from formats.samplepdf import make_contract_pdf
    from formats.signer import TokenSigner

    op = channel(running.env, running.op_a)
    phone = "+8613800138003"
    carol = register_verified(running, op, "Carol Wang", prc_id("19791120", "208"), phone, "carol@example.com")
    with _link(running) as link:
        code, cid = _enroll_code(running, link, carol, phone)
        result = enroll(user_token, link, carol, code, key_label="carol", code_id=cid)
    src, out = tmp_path / "lease.pdf", tmp_path / "lease-signed.pdf"
    make_contract_pdf(src, "Lease", ["Carol Wang", "Acme Leasing Ltd"])
    signer = TokenSigner(user_token, result.key_id)  # certificate and chain as stored on the token by enrolment
    sign_pdf(src, out, signer, PdfSignOptions(level="B-T", timestamp_url=f"{running.env.pki_url}/tsa"))
    status, ocsp_count = _validate(result.chain_der[-1], out)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted
    assert ocsp_count >= 1  # revocation info came from our responder (revocation_mode="require")
    assert "Carol Wang" in status.signing_cert.subject.human_friendly


def test_health_and_reflection_on_both_listeners(running):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    for target, client, services in (
            (running.env.api, running.op_a, {"signet.v1.IdentityService", "signet.v1.CertificateService"}),
            (running.env.enroll, None, {"signet.v1.EnrollmentService"})):
        ch = channel(running.env, client, target=target)
        for name in ["", *services]:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        stream = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        listed = {s.name for s in next(stream).list_services_response.service}
        assert services <= listed and "grpc.health.v1.Health" in listed
    # the enrollment listener serves nothing else
    with pytest.raises(grpc.RpcError) as e:
        pbg.IdentityServiceStub(channel(running.env, None, target=running.env.enroll)).ListPeople(
            pb.ListPeopleRequest(), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert reason(e.value) == ""


def test_too_many_wrong_enrollment_codes_lock_enrollment_until_an_operator_unlocks_it(running, user_token):
    """The cap (5 wrong codes in 24 h) locks enrollment for the person, with an evidence record; only an operator
    of the person's organisation lifts it, with evidence of their own."""
    from agent.serverlink import ServerRefused

    op = channel(running.env, running.op_a)
    phone = "+8613800138009"
    dan = register_verified(running, op, "Dan Zhou", prc_id("19770302", "115"), phone, "dan@example.com")
    csr = user_token.create_csr(user_token.generate_key("p256", "dan-1").key_id, {"common_name": "dan"})
    with _link(running) as link:
        for attempt in range(5):
            code, cid = _enroll_code(running, link, dan, phone)
            wrong = f"{(int(code) + 1) % 10**8:08d}"
            with pytest.raises(ServerRefused) as e:
                link.enroll(dan, wrong, csr, code_id=cid)
            expected = "ENROLLMENT_LOCKED" if attempt == 4 else "OTP_INCORRECT"
            assert e.value.reason == expected, (attempt, e.value)
        with pytest.raises(ServerRefused) as e:  # locked: not even a code is sent
            link.start_enrollment(dan)
        assert e.value.code == "FAILED_PRECONDITION" and e.value.reason == "ENROLLMENT_LOCKED"
    ids = pbg.IdentityServiceStub(op)
    with pytest.raises(grpc.RpcError) as other:  # another organisation's operator cannot see Dan at all
        pbg.IdentityServiceStub(channel(running.env, running.op_b)).UnlockEnrollment(
            pb.UnlockEnrollmentRequest(person_id=dan, evidence="x"), timeout=30)
    assert other.value.code() == grpc.StatusCode.NOT_FOUND
    ids.UnlockEnrollment(pb.UnlockEnrollmentRequest(person_id=dan, evidence="caller verified by video"), timeout=30)
    kinds = [r.kind for r in ids.ListEvidence(pb.ListEvidenceRequest(person_id=dan), timeout=30).records]
    assert kinds[-2:] == ["enrollment_locked", "enrollment_unlocked"]
    with _link(running) as link:
        code, cid = _enroll_code(running, link, dan, phone)
        assert link.enroll(dan, code, csr, code_id=cid).serial


def test_enrollment_calls_are_throttled_per_client_address(make_token, tmp_path):
    """An unauthenticated listener: a client address that calls too often is refused at once, with retry-after."""
    from agent.serverlink import ServerLink, ServerRefused, ServerTarget

    tok = make_token("srv-thr")
    r = start_running(tmp_path / "thr", tok.label, tok.pin, extra="[enrollment]\nrequests_per_minute = 3\n")
    try:
        with ServerLink(ServerTarget(enroll=r.env.enroll, ca_pem=r.env.ca_pem.read_bytes())) as link:
            outcomes = []
            for _ in range(5):
                try:
                    link.start_enrollment("p_000000000000000000000000")
                except ServerRefused as e:
                    outcomes.append(e.reason)
            assert outcomes == ["NOT_FOUND"] * 3 + ["ENROLLMENT_THROTTLED"] * 2
    finally:
        r.server.stop()
