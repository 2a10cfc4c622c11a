"""The authorisation matrix, generated from the proto descriptors: every RPC of every service, called by every kind
of principal against real processes, must be refused with the documented status -- or be allowed where the proto
says so, explicitly (tests/e2e/authz_cases.py holds the table and the reason of every permission).

One parametrized test per (listener, principal), the RPC as the parameter id.  An RPC the proto gains without a
table entry fails every test it appears in and :func:`test_every_rpc_has_a_matrix_entry`.

World (module-scoped): one signet-server with organisations A and B (Dave, Erin, Frank, Grace, Henry approved; Pat
pending; Dave, Erin and Henry enrolled; Henry sent Dave two envelopes and Erin one, so Erin's agent is a recipient
of another envelope); agent 1 serving the Unix socket and mutual TLS with a test PKI; agent 2 serving mutual TLS
for clients of Signet's TLS CA with ``tcp.revocation = "require"``, which sees Grace's agent certificate (enrolled
with `signet enroll` through agent 1) accepted, then refused once signet-admin revoked it.
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor

from signet.pemfiles import to_pem
from signet.v1 import agent_pb2, common_pb2, server_pb2
from signet.wire import GRANT_METADATA
from tests.pki import make_ca

from .agent_harness import AgentProcess, TlsFiles, caller, free_port, make_tls, provision_key, signet, tls_settings
from .authz_cases import (
    AGENT_CASES,
    AGENT_RPCS,
    API,
    API_CASES,
    ENROLL,
    ENROLLMENT_CASES,
    LISTENER_OF,
    SERVER_RPCS,
    AgentTargets,
    Allowed,
    EnrollmentCaller,
    Outcome,
    Refused,
    ServerTargets,
    case_for,
    expect,
    invoke,
    listener_of,
    method_of,
    served_on,
    uncovered,
)
from .authz_world import Enrolled, card_proof, enroll_in_process, forged_client, serial_of
from .server_harness import (
    ClientFiles,
    Running,
    admin,
    channel,
    latest_code,
    operator_cert,
    prc_id,
    register_verified,
    start_running,
)

pytestmark = pytest.mark.e2e

C = grpc.StatusCode
KIOSK, INTRUDER = "kiosk-2", "intruder"
PHONES = {"dave": "+8613800138011", "erin": "+8613800138012", "frank": "+8613800138013",
          "grace": "+8613800138014", "pat": "+8613800138015", "henry": "+8613800138016"}
AGENT_POLICY = f"""
[unlock]
max_signatures = 10

[policy]
default_callers = ["local"]
admin_callers = ["local", "{caller(KIOSK)}"]

[[policy.key]]
label = "signing"
callers = ["local", "{caller(KIOSK)}"]
allow_digests = true
"""

HANDSHAKE_FAILS = Refused(C.UNAVAILABLE)  # a TLS listener that requires a client certificate from its CA
CERT_REVOKED = Refused(C.UNAUTHENTICATED, "CLIENT_CERT_REVOKED")  # server.proto
AGENT_CERT_REVOKED = Refused(C.UNAUTHENTICATED, "CLIENT_CERT_REVOKED", says="revoked")  # as the server says
UNIMPLEMENTED = Refused(C.UNIMPLEMENTED)  # a service the listener does not serve


# -- the server ---------------------------------------------------------------------------------------------------
@dataclass
class Server:
    r: Running
    t: ServerTargets
    base: Path
    people: dict[str, str]  # first name -> person id
    dave: Enrolled
    erin: Enrolled

    @property
    def env(self) -> Any:
        return self.r.env


@pytest.fixture(scope="module")
def server(make_token, tmp_path_factory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("authz-server")
    tok = make_token("mx-srv")
    r = start_running(base, tok.label, tok.pin)
    try:
        with channel(r.env, r.op_a) as op_a:
            people = {name: register_verified(r, op_a, f"{name.title()} Matrix", prc_id(birth, seq), PHONES[name],
                                              f"{name}@example.com", approve=name != "pat")
                      for name, birth, seq in (("dave", "19880808", "321"), ("erin", "19920229", "046"),
                                               ("frank", "19790315", "112"), ("grace", "19850612", "318"),
                                               ("pat", "19910101", "027"), ("henry", "19830704", "155"))}
        dave = enroll_in_process(r, people["dave"], PHONES["dave"], make_token("dave"), base / "dave-agent")
        erin = enroll_in_process(r, people["erin"], PHONES["erin"], make_token("erin"), base / "erin-agent")
        henry = enroll_in_process(r, people["henry"], PHONES["henry"], make_token("henry"), base / "henry-agent")
        t = ServerTargets(r.org_a, r.org_b, people["dave"], people["erin"], dave.signing_serial, dave.agent_serial)
        with channel(r.env, henry.agent) as ch:
            to_dave, to_dave_too, to_erin = (_send_envelope(ch, title, people[who]) for title, who in (
                ("Matrix lease", "dave"), ("Matrix lease to void", "dave"), ("Matrix lease for Erin", "erin")))
        t = replace(t, envelope=to_dave.id, envelope_document=to_dave.documents[0].id,
                    envelope_revision=to_dave.documents[0].current_sha256, void_envelope=to_dave_too.id,
                    erin_envelope=to_erin.id, envelope_first_leaf=_first_leaf(r, to_dave.id),
                    dave_signing_der=dave.certificate_der,
                    dave_card_proof=lambda: card_proof(dave, r.org_a, STATION_NAME))
        yield Server(r, t, base, people, dave, erin)
    finally:
        r.server.stop()


def _send_envelope(ch: grpc.Channel, title: str, to: str) -> Any:
    """A sent envelope (one PDF, ``to`` its signer), created and sent by the caller of ``ch``."""
    from formats.samplepdf import contract_pdf_bytes

    create, send = (method_of(server_pb2.DESCRIPTOR, f"EnvelopeService.{m}") for m in ("CreateEnvelope",
                                                                                         "SendEnvelope"))
    draft = invoke(ch, create, server_pb2.CreateEnvelopeRequest(
        title=title, documents=[server_pb2.DocumentSpec(name="lease.pdf", media_type="application/pdf",
                                                        content=contract_pdf_bytes(title, ["Henry", "Dave"]))],
        recipients=[server_pb2.RecipientSpec(person_id=to, role=server_pb2.RECIPIENT_ROLE_SIGNER, routing_order=1,
                                             signing_method=server_pb2.SIGNING_METHOD_TOKEN)])).envelope
    return invoke(ch, send, server_pb2.SendEnvelopeRequest(envelope_id=draft.id)).envelope


def _first_leaf(r: Running, envelope_id: str) -> int:
    """The seq of the envelope's first audit leaf (its creation), as org A's operator lists them."""
    with channel(r.env, r.op_a) as op_a:
        found = invoke(op_a, method_of(server_pb2.DESCRIPTOR, "AuditService.ListEnvelopeLeaves"),
                       server_pb2.ListEnvelopeLeavesRequest(envelope_id=envelope_id))
    first = found.leaves[0].leaf
    assert first.kind == "envelope.created" and first.subject == envelope_id
    return int(first.seq)


@pytest.fixture(scope="module")
def revoked_operator(server: Server) -> ClientFiles:
    """An operator certificate of org A that worked, then was revoked with signet-admin."""
    files = operator_cert(server.env, server.r.org_a, "temp-op", server.base / "temp-op")
    with channel(server.env, files) as ch:
        assert invoke(ch, method_of(server_pb2.DESCRIPTOR, "IdentityService.ListPeople"),
                      server_pb2.ListPeopleRequest()).people
    admin(server.env, "cert", "revoke", serial_of(files.cert), "--reason", "privilege_withdrawn")
    return files


def _api(server: Server, client: ClientFiles | None, rpc: str, outcome: Outcome, who: str,
         metadata: tuple[tuple[str, str], ...] | None = None) -> None:
    if listener_of(rpc) != API:
        raise AssertionError(f"{rpc}: its service has no listener in authz_cases.LISTENER_OF")
    case = case_for(API_CASES, rpc)
    with channel(server.env, client) as ch:
        expect(outcome, lambda: invoke(ch, method_of(server_pb2.DESCRIPTOR, rpc), case.build(server.t),
                                       open_ended=case.open_ended, metadata=metadata), server.t, f"{rpc} by {who}")


API_RPCS = served_on(API)


@pytest.mark.parametrize("rpc", API_RPCS)
def test_api_without_client_certificate(server, rpc):
    _api(server, None, rpc, HANDSHAKE_FAILS, "a client without a certificate")


@pytest.mark.parametrize("rpc", API_RPCS)
def test_api_certificate_from_another_ca(server, rpc):
    """Self-signed, naming org A's operator in the SAN URI: the right name from the wrong CA."""
    files = forged_client(server.base / "forged", f"urn:signet:org:{server.r.org_a}:role:operator:subject:alice-op",
                          server.env.ca_pem)
    _api(server, files, rpc, HANDSHAKE_FAILS, "a certificate from another CA")


@pytest.mark.parametrize("rpc", API_RPCS)
def test_api_server_certificate_as_client(server, rpc):
    """The listeners' own certificate (our TLS CA, serverAuth only, no caller URI) presented as a client's."""
    tls = server.env.state / "tls"
    files = ClientFiles(tls / "server.crt", tls / "server.key", server.env.ca_pem)
    _api(server, files, rpc, HANDSHAKE_FAILS, "the server's own certificate")


@pytest.mark.parametrize("rpc", API_RPCS)
def test_api_revoked_operator_certificate(server, revoked_operator, rpc):
    _api(server, revoked_operator, rpc, CERT_REVOKED, "a revoked operator certificate")


@pytest.mark.parametrize("rpc", API_RPCS)
def test_api_revoked_agent_certificate(server, revoked_agent, rpc):
    _api(server, revoked_agent.files, rpc, CERT_REVOKED, "a revoked agent certificate")


@pytest.mark.parametrize("rpc", API_RPCS)
def test_api_operator_of_another_organisation(server, rpc):
    _api(server, server.r.op_b, rpc, case_for(API_CASES, rpc).other_org_operator, "org B's operator")


@pytest.mark.parametrize("rpc", API_RPCS)
def test_api_agent_of_another_person(server, rpc):
    _api(server, server.erin.agent, rpc, case_for(API_CASES, rpc).other_persons_agent, "Erin's agent (about Dave)")


@pytest.mark.parametrize("rpc", API_RPCS)
def test_api_operator_of_the_organisation(server, rpc):
    """Control row: org A's second operator (not the one who registered Dave) reaches every service."""
    _api(server, server.r.reviewer_a, rpc, case_for(API_CASES, rpc).same_org_operator, "org A's reviewer")


# -- a signing station (kiosk): default-deny beyond card sessions (server.proto, KioskService) ---------------------
STATION_NOT_ALLOWED = Refused(C.PERMISSION_DENIED, "STATION_NOT_ALLOWED")
CARD_REFUSED = Refused(C.UNAUTHENTICATED, "CARD_REFUSED")
CARD_SESSION = "signet-card-session"
STATION_NAME = "lobby-1"  # org A's station (the ``station`` fixture)


def _opened(r: Any, t: Any) -> None:
    if not (len(r.session_id) >= 40 and r.person_id == t.dave and r.display_name == "Dave Matrix"):
        raise AssertionError(f"a card session for Dave must come back; got {r!r:.300}")


def _not_closed(r: Any, t: Any) -> None:
    if r.closed:
        raise AssertionError("a session that does not exist cannot have been closed")


# the station alone: it opens and closes card sessions, nothing else
STATION_ALONE: dict[str, Outcome] = {
    "KioskService.OpenCardSession": Allowed("a station opens a card session for the holder of a signer certificate "
                                            "of its organisation (Dave's, read from his card)", _opened),
    "KioskService.CloseCardSession": Allowed("closing a session that does not exist is no error (closed: false)",
                                             _not_closed),
}
# the station with Dave's card session: exactly what the card holder does at a station, as Dave
WITH_CARD: dict[str, Outcome] = {
    **STATION_ALONE,
    # the matrix asks for every envelope (view ""): a card session lists the inbox only
    "EnvelopeService.ListEnvelopes": STATION_NOT_ALLOWED,
    "EnvelopeService.GetEnvelope": Allowed("the card holder reads an envelope addressed to him", lambda r, t: None),
    "EnvelopeService.GetDocument": Allowed("the card holder reads its document", lambda r, t: None),
    "EnvelopeService.StartSigning": Allowed("the card holder asks for the code bound to the revision (sent to his "
                                            "phone)", lambda r, t: None),
    # past authorisation to the code check: what Dave's own agent would get
    "EnvelopeService.SubmitSignature": Refused(C.UNAUTHENTICATED),
}


@pytest.fixture(scope="module")
def station(server: Server) -> ClientFiles:
    out = server.base / "station-lobby"
    issued = admin(server.env, "station-cert", "issue", server.r.org_a, STATION_NAME, "--out", str(out))
    assert issued["caller"] == f"urn:signet:org:{server.r.org_a}:role:station:subject:{STATION_NAME}"
    return ClientFiles(out / "station.crt", out / "station.key", out / "ca.pem")


def _open_request(card: Enrolled, proof: tuple[bytes, bytes]) -> Any:
    return server_pb2.OpenCardSessionRequest(certificate_der=card.certificate_der, proof_statement=proof[0],
                                             proof_signature=proof[1])


def _card_session(server: Server, station: ClientFiles, card: Enrolled) -> str:
    """A card session at org A's station for ``card``, with a fresh proof made on the card."""
    with channel(server.env, station) as ch:
        return str(invoke(ch, method_of(server_pb2.DESCRIPTOR, "KioskService.OpenCardSession"),
                          _open_request(card, card_proof(card, server.r.org_a, STATION_NAME))).session_id)


@pytest.mark.parametrize("rpc", API_RPCS)
def test_api_signing_station(server, station, rpc):
    _api(server, station, rpc, STATION_ALONE.get(rpc, STATION_NOT_ALLOWED), "a signing station")


@pytest.mark.parametrize("rpc", API_RPCS)
def test_api_signing_station_with_a_card_session(server, station, rpc):
    session = _card_session(server, station, server.dave)
    _api(server, station, rpc, WITH_CARD.get(rpc, STATION_NOT_ALLOWED), "a station with Dave's card",
         metadata=((CARD_SESSION, session),))


def test_card_session_inbox_and_its_end(server, station):
    """The inbox view is allowed; a closed session, another station's session, a revoked card: refused."""
    listing = method_of(server_pb2.DESCRIPTOR, "EnvelopeService.ListEnvelopes")
    close = method_of(server_pb2.DESCRIPTOR, "KioskService.CloseCardSession")
    session = _card_session(server, station, server.dave)
    inbox = server_pb2.ListEnvelopesRequest(view="inbox")
    with channel(server.env, station) as ch:
        found = invoke(ch, listing, inbox, metadata=((CARD_SESSION, session),))
        assert server.t.envelope in [e.id for e in found.envelopes]
        assert all(server.t.dave in [x.person_id for x in e.recipients] for e in found.envelopes)
        assert invoke(ch, close, server_pb2.CloseCardSessionRequest(session_id=session)).closed
        expect(Refused(C.UNAUTHENTICATED, "CARD_SESSION_ENDED"),
               lambda: invoke(ch, listing, inbox, metadata=((CARD_SESSION, session),)), None, "a closed session")
        expect(STATION_NOT_ALLOWED, lambda: invoke(ch, listing, inbox), None, "the inbox without a card session")
    other = server.base / "station-other"
    admin(server.env, "station-cert", "issue", server.r.org_a, "lobby-2", "--out", str(other))
    second = ClientFiles(other / "station.crt", other / "station.key", other / "ca.pem")
    session = _card_session(server, station, server.dave)
    with channel(server.env, second) as ch:
        expect(Refused(C.UNAUTHENTICATED, "CARD_SESSION_ENDED"),
               lambda: invoke(ch, listing, inbox, metadata=((CARD_SESSION, session),)), None,
               "another station's card session")
    # org B's station cannot open a session for a person of org A; a TLS certificate is no card
    b_dir = server.base / "station-b"
    admin(server.env, "station-cert", "issue", server.r.org_b, "lobby-b", "--out", str(b_dir))
    station_b = ClientFiles(b_dir / "station.crt", b_dir / "station.key", b_dir / "ca.pem")
    opening = method_of(server_pb2.DESCRIPTOR, "KioskService.OpenCardSession")
    agent_der = x509.load_pem_x509_certificate(server.dave.agent.cert.read_bytes()).public_bytes(
        serialization.Encoding.DER)
    # each with a proof made on Dave's card for the station that calls, about the certificate sent
    dave = server.dave
    for who, files, org, name, der in (
            ("org B's station", station_b, server.r.org_b, "lobby-b", dave.certificate_der),
            ("Dave's agent TLS certificate as a card", station, server.r.org_a, STATION_NAME, agent_der),
            ("no certificate", station, server.r.org_a, STATION_NAME, b"")):
        statement, signature = card_proof(dave, org, name, about=der)
        with channel(server.env, files) as ch:
            request = server_pb2.OpenCardSessionRequest(certificate_der=der, proof_statement=statement,
                                                        proof_signature=signature)
            expect(CARD_REFUSED, partial(invoke, ch, opening, request), None, who)


# a card's proof (server.proto, OpenCardSessionRequest) that fails one check, the rest right: what each case sends
PROOF_CASES = {
    "no proof": lambda s: _open_request(s.dave, (b"", b"")),
    "the certificate alone, as before proofs": lambda s: server_pb2.OpenCardSessionRequest(
        certificate_der=s.dave.certificate_der),
    "Dave's statement signed by Erin's card": lambda s: _open_request(s.dave, (
        card_proof(s.dave, s.r.org_a, STATION_NAME)[0], card_proof(s.erin, s.r.org_a, STATION_NAME)[1])),
    "Erin's card proving itself for Dave's certificate": lambda s: _open_request(s.dave, card_proof(
        s.erin, s.r.org_a, STATION_NAME, about=s.dave.certificate_der)),
    "a statement for another station": lambda s: _open_request(s.dave, card_proof(s.dave, s.r.org_a, "lobby-2")),
    "a statement for another organisation": lambda s: _open_request(s.dave, card_proof(
        s.dave, s.r.org_b, STATION_NAME)),
    "a statement three minutes old": lambda s: _open_request(s.dave, card_proof(
        s.dave, s.r.org_a, STATION_NAME, at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3))),
    "a statement about Erin's certificate": lambda s: _open_request(s.dave, card_proof(
        s.dave, s.r.org_a, STATION_NAME, about=s.erin.certificate_der)),
}


@pytest.mark.parametrize("case", list(PROOF_CASES))
def test_a_card_session_needs_the_cards_own_fresh_proof(server, station, case):
    """Real cards (SoftHSM tokens) sign the statements; the control is every other test's _card_session."""
    opening = method_of(server_pb2.DESCRIPTOR, "KioskService.OpenCardSession")
    with channel(server.env, station) as ch:
        expect(CARD_REFUSED, partial(invoke, ch, opening, PROOF_CASES[case](server)), None, case)


def test_a_card_proof_opens_one_session_only(server, station):
    opening = method_of(server_pb2.DESCRIPTOR, "KioskService.OpenCardSession")
    request = _open_request(server.dave, card_proof(server.dave, server.r.org_a, STATION_NAME))
    with channel(server.env, station) as ch:
        assert invoke(ch, opening, request).person_id == server.t.dave
        expect(CARD_REFUSED, partial(invoke, ch, opening, request), None, "the same proof again")


def test_a_revoked_card_is_refused_and_ends_its_session(server, station):
    erin = server.erin
    session = _card_session(server, station, erin)
    listing = method_of(server_pb2.DESCRIPTOR, "EnvelopeService.ListEnvelopes")
    inbox = server_pb2.ListEnvelopesRequest(view="inbox")
    with channel(server.env, station) as ch:
        assert server.t.erin_envelope in [e.id for e in invoke(
            ch, listing, inbox, metadata=((CARD_SESSION, session),)).envelopes]
        admin(server.env, "cert", "revoke", erin.signing_serial, "--reason", "key_compromise")
        expect(Refused(C.UNAUTHENTICATED, "CARD_SESSION_ENDED"),
               lambda: invoke(ch, listing, inbox, metadata=((CARD_SESSION, session),)), None,
               "a session whose card was revoked")
        expect(CARD_REFUSED, lambda: invoke(ch, method_of(server_pb2.DESCRIPTOR, "KioskService.OpenCardSession"),
                                            _open_request(erin, card_proof(erin, server.r.org_a, STATION_NAME))),
               None, "a revoked card (with a good proof)")


# -- the enrollment listener ------------------------------------------------------------------------------------------
def _csr() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "matrix")]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


NO_SUCH_CODE_ID = "c_" + "0" * 24


def _fresh_code(server: Server, name: str, *, read: bool = True) -> tuple[str, str]:
    """(code, code_id) of an enrollment code sent now to ``name``'s phone (the code read from the outbox only when
    ``read``: that takes two signet-admin runs)."""
    from agent.serverlink import ServerLink, ServerTarget

    with ServerLink(ServerTarget(enroll=server.env.enroll, ca_pem=server.env.ca_pem.read_bytes())) as link:
        code_id = link.start_enrollment(server.people[name]).code_id
    return latest_code(server.env, PHONES[name]) if read else "", code_id


def _enrollment_caller(server: Server, principal: str, needs_code: bool) -> EnrollmentCaller:
    frank = server.people["frank"]
    if principal == "no_person_id":
        return EnrollmentCaller("", "00000000", NO_SUCH_CODE_ID, _csr)
    if principal == "unknown_person":
        return EnrollmentCaller("p_" + "0" * 24, "00000000", NO_SUCH_CODE_ID, _csr)
    if principal == "not_approved":
        return EnrollmentCaller(server.people["pat"], "00000000", NO_SUCH_CODE_ID, _csr)
    if not needs_code:
        return EnrollmentCaller(frank, "", "", _csr)
    if principal == "no_code_id":
        return EnrollmentCaller(frank, "00000000", "", _csr)
    if principal == "no_code":
        return EnrollmentCaller(frank, "", _fresh_code(server, "frank", read=False)[1], _csr)
    if principal == "another_persons_code":
        code, code_id = _fresh_code(server, "erin")  # valid and unused, but bound to Erin
        return EnrollmentCaller(frank, code, code_id, _csr)
    assert principal == "wrong_code"
    code, code_id = _fresh_code(server, "frank")
    return EnrollmentCaller(frank, f"{(int(code) + 1) % 10**8:08d}", code_id, _csr)


def _enroll(server: Server, rpc: str, principal: str) -> None:
    if listener_of(rpc) != ENROLL:
        raise AssertionError(f"{rpc}: its service has no listener in authz_cases.LISTENER_OF")
    case = case_for(ENROLLMENT_CASES, rpc)
    method = method_of(server_pb2.DESCRIPTOR, rpc)
    who = _enrollment_caller(server, principal, "one_time_code" in method.input_type.fields_by_name)
    with channel(server.env, None, target=server.env.enroll) as ch:
        expect(getattr(case, principal), lambda: invoke(ch, method, case.build(who)), server.t,
               f"{rpc} with {principal.replace('_', ' ')}")


ENROLL_RPCS = served_on(ENROLL)


@pytest.mark.parametrize("rpc", ENROLL_RPCS)
def test_enroll_without_person_id(server, rpc):
    _enroll(server, rpc, "no_person_id")


@pytest.mark.parametrize("rpc", ENROLL_RPCS)
def test_enroll_unknown_person(server, rpc):
    _enroll(server, rpc, "unknown_person")


@pytest.mark.parametrize("rpc", ENROLL_RPCS)
def test_enroll_person_not_approved(server, rpc):
    _enroll(server, rpc, "not_approved")


@pytest.mark.parametrize("rpc", ENROLL_RPCS)
def test_enroll_without_code(server, rpc):
    _enroll(server, rpc, "no_code")


@pytest.mark.parametrize("rpc", ENROLL_RPCS)
def test_enroll_without_code_id(server, rpc):
    _enroll(server, rpc, "no_code_id")


@pytest.mark.parametrize("rpc", ENROLL_RPCS)
def test_enroll_wrong_code(server, rpc):
    _enroll(server, rpc, "wrong_code")


@pytest.mark.parametrize("rpc", ENROLL_RPCS)
def test_enroll_another_persons_code(server, rpc):
    _enroll(server, rpc, "another_persons_code")


@pytest.mark.parametrize("rpc", SERVER_RPCS)
def test_server_rpc_on_the_other_listener(server, rpc):
    """Each listener serves only its own services: the API's services are not reachable without a client
    certificate through the enrollment listener, and enrollment is not served on the API listener."""
    listener = listener_of(rpc)
    if listener == API:
        request = case_for(API_CASES, rpc).build(server.t)
        ch = channel(server.env, None, target=server.env.enroll)
    elif listener == ENROLL:
        request = case_for(ENROLLMENT_CASES, rpc).build(EnrollmentCaller(server.people["frank"], "00000000",
                                                                         NO_SUCH_CODE_ID, _csr))
        ch = channel(server.env, server.r.reviewer_a)
    else:
        raise AssertionError(f"{rpc}: its service has no listener in authz_cases.LISTENER_OF")
    with ch:
        expect(UNIMPLEMENTED, lambda: invoke(ch, method_of(server_pb2.DESCRIPTOR, rpc), request), server.t,
               f"{rpc} on the other listener")


# -- the agents -------------------------------------------------------------------------------------------------------
@dataclass
class Agent:
    agent: AgentProcess
    tls: TlsFiles
    foreign: TlsFiles  # another CA issuing a certificate with kiosk-2's SAN URI
    t: AgentTargets


def _tcp(agent: AgentProcess, ca: Path, cert: Path | None, key: Path | None) -> grpc.Channel:
    from agent.client import Target
    from agent.client import channel as agent_channel

    return agent_channel(Target(tcp=f"127.0.0.1:{agent.port}", cert=cert, key=key, ca=ca))


@pytest.fixture(scope="module")
def agent(make_token, tmp_path_factory) -> Iterator[Agent]:
    from formats.samplepdf import contract_pdf_bytes

    base = tmp_path_factory.mktemp("authz-agent")
    tls = make_tls(base / "tls", clients=(KIOSK, INTRUDER))
    foreign = make_tls(base / "foreign", clients=(KIOSK,))
    tok = make_token("mx")
    a = AgentProcess(base / "agent", AGENT_POLICY, tls=tls_settings(tls)).start()
    try:
        stub = a.stub()
        ca = make_ca()
        key = provision_key(stub, tok.label, tok.pin, ca, key_label="signing")
        victim = stub.GenerateKey(agent_pb2.GenerateKeyRequest(
            token=agent_pb2.TokenSelector(label=tok.label), algorithm=common_pb2.KEY_ALGORITHM_EC_P256,
            label="victim", credential=agent_pb2.PinCredential(pin=tok.pin)), timeout=60).key
        t = AgentTargets(tok.label, key.serial, tok.pin, key.key_id, key.certificate_der, ca.root_der,
                         victim.key_id, contract_pdf_bytes("Authorisation matrix", ["Alice Example", "Bob Example"]),
                         b"", b"a detached document\n" * 10, b"")
        with a.channel() as ch:
            for rpc, attr in (("AgentService.SignPdf", "signed_pdf"), ("AgentService.SignDetached", "p7s")):
                [r] = invoke(ch, method_of(agent_pb2.DESCRIPTOR, rpc), AGENT_CASES[rpc].build(t, tok.pin))
                setattr(t, attr, r.result.content)
        yield Agent(a, tls, foreign, t)
    finally:
        assert a.stop() == 0


def _agent_call(ch: grpc.Channel, world: Agent, rpc: str, outcome_of: str | Outcome, *, who: str, caller_id: str,
                pin: str | None, grant: str | None = None) -> None:
    case = case_for(AGENT_CASES, rpc)
    outcome = getattr(case, outcome_of) if isinstance(outcome_of, str) else outcome_of
    t = replace(world.t, caller=caller_id)
    metadata = ((GRANT_METADATA, grant),) if grant else None
    expect(outcome, lambda: invoke(ch, method_of(agent_pb2.DESCRIPTOR, rpc), case.build(t, pin), metadata=metadata,
                                   open_ended=case.open_ended), t, f"{rpc} by {who}")


@pytest.mark.parametrize("rpc", AGENT_RPCS)
def test_agent_tcp_without_client_certificate(agent, rpc):
    with _tcp(agent.agent, agent.tls.ca_cert, None, None) as ch:
        _agent_call(ch, agent, rpc, HANDSHAKE_FAILS, who="a TCP client without a certificate", caller_id="",
                    pin=agent.t.pin)


@pytest.mark.parametrize("rpc", AGENT_RPCS)
def test_agent_tcp_certificate_from_another_ca(agent, rpc):
    cert, key = agent.foreign.clients[KIOSK]  # kiosk-2's SAN URI, which the policy names, from the wrong CA
    with _tcp(agent.agent, agent.tls.ca_cert, cert, key) as ch:
        _agent_call(ch, agent, rpc, HANDSHAKE_FAILS, who="a certificate from another CA", caller_id="",
                    pin=agent.t.pin)


@pytest.mark.parametrize("rpc", AGENT_RPCS)
def test_agent_tcp_caller_not_in_policy(agent, rpc):
    """A client of the agent's own CA that no rule names, offering the right PIN."""
    cert, key = agent.tls.clients[INTRUDER]
    with _tcp(agent.agent, agent.tls.ca_cert, cert, key) as ch:
        _agent_call(ch, agent, rpc, "caller_not_in_policy", who="a TLS caller the policy does not name",
                    caller_id=caller(INTRUDER), pin=agent.t.pin)


@pytest.mark.parametrize("rpc", AGENT_RPCS)
def test_agent_tcp_presenting_another_callers_grant(agent, rpc):
    """kiosk-2 (admin, named by the key's rule) presents the local caller's live grant handle: the grant is bound
    to its caller, so it is worth nothing to kiosk-2 -- and the owner's grant is neither used nor ended."""
    unlock, sign = (method_of(agent_pb2.DESCRIPTOR, f"AgentService.{m}") for m in ("Unlock", "SignDigest"))
    t = agent.t
    with agent.agent.channel() as local:
        handle = invoke(local, unlock, agent_pb2.UnlockRequest(token=agent_pb2.TokenSelector(label=t.token_label),
                                                               pin=t.pin, max_signatures=1)).grant
        cert, key = agent.tls.clients[KIOSK]
        with _tcp(agent.agent, agent.tls.ca_cert, cert, key) as ch:
            _agent_call(ch, agent, rpc, "other_callers_grant", who="kiosk-2 with the local caller's grant",
                        caller_id=caller(KIOSK), pin=None, grant=handle)
        # the owner's one signature is still there
        r = invoke(local, sign, AGENT_CASES["AgentService.SignDigest"].build(t, None), metadata=((GRANT_METADATA,
                                                                                                   handle),))
        assert r.signature


@pytest.mark.parametrize("rpc", AGENT_RPCS)
def test_agent_local_without_grant_or_pin(agent, rpc):
    with agent.agent.channel() as ch:
        _agent_call(ch, agent, rpc, "local_without_login", who="the local caller without a grant or PIN",
                    caller_id="local", pin=None)


@pytest.mark.parametrize("rpc", AGENT_RPCS)
def test_agent_local_with_pin(agent, rpc):
    """Control row: the local caller (admin, named by the key's rule) with the PIN gets every call through."""
    with agent.agent.channel() as ch:
        _agent_call(ch, agent, rpc, "local_with_pin", who="the local caller with the PIN", caller_id="local",
                    pin=agent.t.pin)


# -- a revoked client certificate at the agent (issued and revoked by the real signet-server) ------------------------
@dataclass
class RevokedAgent:
    agent: AgentProcess  # agent 2: client_ca = Signet's TLS CA + TLS root, tcp.revocation = "require"
    files: ClientFiles  # Grace's agent certificate, from `signet enroll`; revoked
    caller: str
    seen_before: str  # GetInfo.caller at agent 2 before the revocation
    server_before: list[str]  # ListPeople at the server's API before the revocation


@pytest.fixture(scope="module")
def revoked_agent(server: Server, agent: Agent) -> Iterator[RevokedAgent]:
    from agent.serverlink import ServerLink, ServerTarget

    env, grace = server.env, server.people["grace"]
    with ServerLink(ServerTarget(enroll=env.enroll, ca_pem=env.ca_pem.read_bytes())) as link:
        code_id = link.start_enrollment(grace).code_id
    p = signet(agent.agent, "enroll", "--token", agent.t.token_label, "--pin-env", "SIGNET_TEST_PIN", "--server",
               env.enroll, "--server-ca", str(env.ca_pem), "--person", grace, "--code-env", "SIGNET_TEST_CODE",
               "--code-id", code_id, "--key-label", "grace-signing",
               env={"SIGNET_TEST_PIN": agent.t.pin, "SIGNET_TEST_CODE": latest_code(env, PHONES["grace"])})
    assert p.returncode == 0, p.stderr
    tls_dir = agent.agent.state / "server"  # where `signet enroll` keeps the agent's TLS files
    files = ClientFiles(tls_dir / "agent.crt", tls_dir / "agent.key", tls_dir / "ca.pem")

    with urllib.request.urlopen(f"{env.pki_url}/ca/tls-ca.crt", timeout=30) as resp:
        tls_ca = resp.read()
    bundle = server.base / "agent2-client-ca.pem"
    bundle.write_bytes(to_pem(tls_ca) + env.ca_pem.read_bytes())
    port = free_port()
    tcp = (f'[tcp]\nlisten = "127.0.0.1:{port}"\ncertificate = "{agent.tls.server_cert}"\n'
           f'private_key = "{agent.tls.server_key}"\nclient_ca = "{bundle}"\nrevocation = "require"\n'
           "crl_refresh_seconds = 1\n")
    a2 = AgentProcess(server.base / "agent2", tcp)
    a2.port = port
    a2.start()
    try:
        info = method_of(agent_pb2.DESCRIPTOR, "AgentService.GetInfo")
        with _tcp(a2, agent.tls.ca_cert, files.cert, files.key) as ch:
            seen = invoke(ch, info, agent_pb2.GetInfoRequest()).caller
        with channel(env, files) as ch:
            people = [p.id for p in invoke(ch, method_of(server_pb2.DESCRIPTOR, "IdentityService.ListPeople"),
                                           server_pb2.ListPeopleRequest()).people]
        admin(env, "cert", "revoke", serial_of(files.cert), "--reason", "key_compromise")
        time.sleep(1.2)  # agent 2 may use a CRL for crl_refresh_seconds = 1: after that it fetches the new one
        yield RevokedAgent(a2, files, f"tls:urn:signet:org:{server.r.org_a}:role:agent:subject:{grace}", seen, people)
    finally:
        assert a2.stop() == 0


def test_agent_accepts_an_enrolled_certificate_until_it_is_revoked(server, agent, revoked_agent):
    assert revoked_agent.seen_before == revoked_agent.caller  # accepted, and named by its SAN URI
    assert revoked_agent.server_before == [server.people["grace"]]
    with _tcp(revoked_agent.agent, agent.tls.ca_cert, revoked_agent.files.cert, revoked_agent.files.key) as ch:
        expect(AGENT_CERT_REVOKED, lambda: invoke(ch, method_of(agent_pb2.DESCRIPTOR, "AgentService.GetInfo"),
                                                  agent_pb2.GetInfoRequest()), None, "GetInfo after the revocation")


@pytest.mark.parametrize("rpc", AGENT_RPCS)
def test_agent_tcp_revoked_certificate(agent, revoked_agent, rpc):
    with _tcp(revoked_agent.agent, agent.tls.ca_cert, revoked_agent.files.cert, revoked_agent.files.key) as ch:
        _agent_call(ch, agent, rpc, AGENT_CERT_REVOKED, who="a revoked agent certificate",
                    caller_id=revoked_agent.caller, pin=agent.t.pin)


# -- no RPC is ever forgotten -----------------------------------------------------------------------------------------
def test_every_rpc_has_a_matrix_entry():
    assert uncovered(agent_pb2.DESCRIPTOR, AGENT_CASES) == ([], []), "AgentService RPCs without (or stale) entries"
    services = list(server_pb2.DESCRIPTOR.services_by_name)
    assert sorted(LISTENER_OF) == sorted(services), "every server service needs its listener in LISTENER_OF"
    assert uncovered(server_pb2.DESCRIPTOR, [*API_CASES, *ENROLLMENT_CASES]) == ([], [])
    assert sorted(API_CASES) == sorted(served_on(API)) and sorted(ENROLLMENT_CASES) == sorted(served_on(ENROLL))


def _with_extra_rpc(fd: FileDescriptor, service: str, name: str) -> FileDescriptor:
    """``fd`` with one more method in ``service`` (a copy in a private descriptor pool)."""
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(f: FileDescriptor) -> None:
        for dep in f.dependencies:
            add(dep)
        if f.name not in added:
            proto = descriptor_pb2.FileDescriptorProto()
            f.CopyToProto(proto)
            if f.name == fd.name:
                svc = next(s for s in proto.service if s.name == service)
                extra = svc.method.add()
                extra.CopyFrom(svc.method[0])
                extra.name = name
            pool.Add(proto)
            added.add(f.name)

    add(fd)
    return pool.FindFileByName(fd.name)


def test_a_new_rpc_without_an_entry_fails_the_matrix():
    for fd, service, table in ((agent_pb2.DESCRIPTOR, "AgentService", AGENT_CASES),
                               (server_pb2.DESCRIPTOR, "IdentityService", {**API_CASES, **ENROLLMENT_CASES})):
        grown = _with_extra_rpc(fd, service, "ForgetMeNot")
        assert uncovered(grown, table) == ([f"{service}.ForgetMeNot"], [])
    with pytest.raises(AssertionError, match=r"AgentService\.ForgetMeNot has no authorisation matrix entry"):
        case_for(AGENT_CASES, "AgentService.ForgetMeNot")
