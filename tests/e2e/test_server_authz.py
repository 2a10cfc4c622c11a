"""Authorization at the gRPC edge of a real `signet-server`: every API call is refused for a caller of another
organisation (NOT_FOUND: another organisation's ids look like ids that do not exist), for a client without a
certificate or with one from another CA (the TLS handshake fails: UNAVAILABLE), and for a revoked or
non-client certificate of our own CA (UNAUTHENTICATED).  Roles: an agent acts only for its own person."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pbg

from .server_harness import ClientFiles, admin, channel, latest_code, prc_id, reason, register_verified, start_running

ALL_API_METHODS = {f"{s}.{m.name}" for s in ("IdentityService", "CertificateService")
                   for m in pb.DESCRIPTOR.services_by_name[s].methods}


@pytest.fixture(scope="module")
def world(make_token, tmp_path_factory, hsm_module):
    """Org A with an approved, enrolled person (certificate + agent TLS certificate); org B's operator."""
    from agent.enroll import enroll
    from agent.serverlink import ServerLink, ServerTarget
    from hsm import Hsm

    base = tmp_path_factory.mktemp("server-authz")
    tok = make_token("srv-authz")
    r = start_running(base, tok.label, tok.pin)
    op_a = channel(r.env, r.op_a)
    dave = register_verified(r, op_a, "Dave Chen", prc_id("19880808", "321"), "+8613800138011", "dave@example.com")
    erin = register_verified(r, op_a, "Erin Zhao", prc_id("19920229", "046"), "+8613800138012", "erin@example.com")
    user = make_token("dave")
    token = Hsm(pin_state=base / "pins.json").token(serial=user.serial)
    token.login(user.pin)
    tls = base / "dave-agent"
    with ServerLink(ServerTarget(enroll=r.env.enroll, ca_pem=r.env.ca_pem.read_bytes())) as link:
        challenge = link.start_enrollment(dave)
        done = enroll(token, link, dave, latest_code(r.env, "+8613800138011"), tls_dir=tls,
                      code_id=challenge.code_id)
    yield {"r": r, "dave": dave, "erin": erin, "serial": done.serial, "agent": ClientFiles(
        tls / "agent.crt", tls / "agent.key", tls / "ca.pem")}
    token.logout()
    r.server.stop()


def _calls(w):
    """One request per API method, aimed at org A's objects."""
    dave, serial = w["dave"], w["serial"]
    return {
        "IdentityService.RegisterPerson": pb.RegisterPersonRequest(
            legal_name="Mallory", document_type="prc_resident_id", document_number=prc_id("19700101", "011"),
            phone="+8613800138099", email="m@example.com"),
        "IdentityService.GetPerson": pb.GetPersonRequest(person_id=dave),
        "IdentityService.ListPeople": pb.ListPeopleRequest(),
        "IdentityService.StartPhoneVerification": pb.StartPhoneVerificationRequest(person_id=dave),
        "IdentityService.ConfirmPhone": pb.ConfirmPhoneRequest(person_id=dave, code="123456"),
        "IdentityService.ApprovePerson": pb.ApprovePersonRequest(person_id=dave, evidence="x"),
        "IdentityService.RejectPerson": pb.RejectPersonRequest(person_id=dave, reason="x"),
        "IdentityService.ListEvidence": pb.ListEvidenceRequest(person_id=dave),
        "IdentityService.UnlockEnrollment": pb.UnlockEnrollmentRequest(person_id=dave, evidence="x"),
        "CertificateService.RevokeCertificate": pb.RevokeCertificateRequest(serial=serial, reason="superseded"),
        "CertificateService.GetCertificateStatus": pb.GetCertificateStatusRequest(serial=serial),
        "CertificateService.ListCertificates": pb.ListCertificatesRequest(person_id=dave),
        "CertificateService.RegisterExternalCertificate": pb.RegisterExternalCertificateRequest(
            person_id=dave, certificate_der=b"\x30\x00"),
    }


def _invoke(ch, name, request):
    service, method = name.split(".")
    stub = getattr(pbg, f"{service}Stub")(ch)
    return getattr(stub, method)(request, timeout=15)


def _refusal(ch, name, request):
    with pytest.raises(grpc.RpcError) as e:
        _invoke(ch, name, request)
    return e.value


def test_every_call_of_another_organisation_is_not_found(world):
    r = world["r"]
    calls = _calls(world)
    assert set(calls) == ALL_API_METHODS  # a new RPC must be added here
    op_b = channel(r.env, r.op_b)
    for name, request in calls.items():
        if name == "IdentityService.RegisterPerson":
            continue  # registers in the caller's own organisation: checked below
        if name == "IdentityService.ListPeople":
            people = _invoke(op_b, name, request).people
            assert world["dave"] not in {p.id for p in people}
            continue
        e = _refusal(op_b, name, request)
        assert e.code() == grpc.StatusCode.NOT_FOUND, (name, e.code(), e.details())
        assert world["dave"] not in {p.id for p in _invoke(op_b, "IdentityService.ListPeople", request).people}
    # what B registers lands in B and stays invisible to A
    mallory = _invoke(op_b, "IdentityService.RegisterPerson", calls["IdentityService.RegisterPerson"]).person
    assert mallory.organisation_id == r.org_b
    e = _refusal(channel(r.env, r.op_a), "IdentityService.GetPerson", pb.GetPersonRequest(person_id=mallory.id))
    assert e.code() == grpc.StatusCode.NOT_FOUND
    # nothing of A changed: Dave is still approved, his certificate still good
    op_a = channel(r.env, r.op_a)
    assert _invoke(op_a, "IdentityService.GetPerson", calls["IdentityService.GetPerson"]).person.status == \
        pb.PERSON_STATUS_APPROVED
    cert = _invoke(op_a, "CertificateService.GetCertificateStatus", calls["CertificateService.GetCertificateStatus"])
    assert cert.certificate.state == pb.CERTIFICATE_STATE_GOOD


def test_no_client_certificate_or_a_foreign_one_fails_the_handshake(world, tmp_path):
    r = world["r"]
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged operator")])
    now = dt.datetime.now(dt.UTC)
    forged = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
              .not_valid_after(now + dt.timedelta(days=1))
              .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                  f"urn:signet:org:{r.org_a}:role:operator:subject:mallory")]), critical=False)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
              .sign(key, hashes.SHA256()))
    (tmp_path / "f.crt").write_bytes(forged.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "f.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    foreign = ClientFiles(tmp_path / "f.crt", tmp_path / "f.key", r.env.ca_pem)
    for client in (None, foreign):
        ch = channel(r.env, client)
        for name, request in _calls(world).items():
            e = _refusal(ch, name, request)
            assert e.code() == grpc.StatusCode.UNAVAILABLE, (name, e.code())
    # the server keeps serving proper clients
    assert _invoke(channel(r.env, r.op_a), "IdentityService.ListPeople", pb.ListPeopleRequest()).people


def test_revoked_operator_certificate_is_refused_at_once(world, tmp_path):
    r = world["r"]
    from .server_harness import operator_cert

    files = operator_cert(r.env, r.org_a, "temp-op", tmp_path / "op")
    ch = channel(r.env, files)
    assert _invoke(ch, "IdentityService.ListPeople", pb.ListPeopleRequest()).people
    serial = x509.load_pem_x509_certificates(files.cert.read_bytes())[0].serial_number
    admin(r.env, "cert", "revoke", format(serial, "x"), "--reason", "privilege_withdrawn")
    for name, request in _calls(world).items():
        e = _refusal(channel(r.env, files), name, request)
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED and reason(e) == "CLIENT_CERT_REVOKED", name


def test_agent_acts_only_for_its_own_person(world):
    r = world["r"]
    agent = channel(r.env, world["agent"])
    dave, erin = world["dave"], world["erin"]
    assert _invoke(agent, "IdentityService.GetPerson", pb.GetPersonRequest(person_id=dave)).person.id == dave
    assert [p.id for p in _invoke(agent, "IdentityService.ListPeople", pb.ListPeopleRequest()).people] == [dave]
    e = _refusal(agent, "IdentityService.GetPerson", pb.GetPersonRequest(person_id=erin))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED
    for name, request in (
            ("IdentityService.RegisterPerson", _calls(world)["IdentityService.RegisterPerson"]),
            ("IdentityService.ApprovePerson", pb.ApprovePersonRequest(person_id=erin, evidence="self-service")),
            ("IdentityService.UnlockEnrollment", pb.UnlockEnrollmentRequest(person_id=dave, evidence="myself")),
            ("CertificateService.RegisterExternalCertificate",
             pb.RegisterExternalCertificateRequest(person_id=dave, certificate_der=b"\x30\x00"))):
        e = _refusal(agent, name, request)
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, (name, e.code(), e.details())
    e = _refusal(agent, "CertificateService.ListCertificates", pb.ListCertificatesRequest(person_id=erin))
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED
