"""Authorization at the gRPC edge of a real `signet-server`, beyond single refusals: what another organisation's
operator attempts leaves organisation A exactly as it was, and a person's own agent acts for that person only --
up to revoking its own certificate, which shuts it out at once.

The calls come from the generated matrix (tests/e2e/authz_cases.py: every API RPC of the proto descriptors, with
its request and documented outcome per principal); test_authz_matrix.py holds the per-principal refusals (no or
foreign certificate, revoked certificates, another organisation, another person's agent, the enrollment listener).
"""

from __future__ import annotations

import grpc
import pytest

from signet.v1 import server_pb2 as pb

from .authz_cases import API, API_CASES, ServerTargets, case_for, expect, invoke, method_of, served_on
from .authz_world import enroll_in_process
from .server_harness import channel, prc_id, reason, register_verified, start_running

pytestmark = pytest.mark.e2e

DAVE_PHONE = "+8613800138011"


@pytest.fixture(scope="module")
def world(make_token, tmp_path_factory):
    """Org A with an approved, enrolled person (Dave: signing certificate + agent TLS certificate) and another
    approved person (Erin); org B's operator."""
    base = tmp_path_factory.mktemp("server-authz")
    tok = make_token("srv-authz")
    r = start_running(base, tok.label, tok.pin)
    try:
        with channel(r.env, r.op_a) as op_a:
            dave = register_verified(r, op_a, "Dave Chen", prc_id("19880808", "321"), DAVE_PHONE, "dave@example.com")
            erin = register_verified(r, op_a, "Erin Zhao", prc_id("19920229", "046"), "+8613800138012",
                                     "erin@example.com")
        enrolled = enroll_in_process(r, dave, DAVE_PHONE, make_token("dave"), base / "dave-agent")
        t = ServerTargets(r.org_a, r.org_b, dave, erin, enrolled.signing_serial, enrolled.agent_serial)
        yield {"r": r, "t": t, "agent": enrolled.agent}
    finally:
        r.server.stop()


def _call(ch: grpc.Channel, rpc: str, request):
    return invoke(ch, method_of(pb.DESCRIPTOR, rpc), request, timeout=15)


def _sweep(ch: grpc.Channel, t: ServerTargets, rpcs: list[str], row: str, who: str) -> list[str]:
    """Every RPC of ``rpcs`` held to its ``row`` outcome; the failures, all of them."""
    failures = []
    for rpc in rpcs:
        case = case_for(API_CASES, rpc)
        try:
            expect(getattr(case, row), lambda: _call(ch, rpc, case.build(t)), t, f"{rpc} by {who}")  # noqa: B023
        except AssertionError as e:
            failures.append(str(e))
    return failures


def _state_of_a(ch: grpc.Channel, t: ServerTargets) -> dict:
    person = _call(ch, "IdentityService.GetPerson", pb.GetPersonRequest(person_id=t.dave)).person
    certs = _call(ch, "CertificateService.ListCertificates", pb.ListCertificatesRequest(person_id=t.dave))
    return {"people": sorted(p.id for p in _call(ch, "IdentityService.ListPeople", pb.ListPeopleRequest()).people),
            "dave": person.SerializeToString(deterministic=True),
            "evidence": [e.digest for e in _call(ch, "IdentityService.ListEvidence",
                                                 pb.ListEvidenceRequest(person_id=t.dave)).records],
            "certificates": sorted((c.serial, c.state) for c in certs.certificates)}


def test_another_organisation_sees_and_changes_nothing_of_a(world):
    """Org B's operator makes every API call against Dave (each answered as the matrix documents: NOT_FOUND, or
    allowed where it acts in org B); afterwards org A's people, Dave, his evidence chain and his certificates are
    exactly as before, and what B registered is invisible to A."""
    r, t = world["r"], world["t"]
    with channel(r.env, r.op_a) as op_a, channel(r.env, r.op_b) as op_b:
        before = _state_of_a(op_a, t)
        assert before["certificates"] == sorted([(t.dave_signing_serial, pb.CERTIFICATE_STATE_GOOD),
                                                 (t.dave_agent_serial, pb.CERTIFICATE_STATE_GOOD)])
        assert _sweep(op_b, t, served_on(API), "other_org_operator", "org B's operator") == []
        assert _state_of_a(op_a, t) == before
        registered_by_b = [p.id for p in _call(op_b, "IdentityService.ListPeople", pb.ListPeopleRequest()).people]
        assert registered_by_b  # RegisterPerson by B landed in B ...
        for person_id in registered_by_b:  # ... where A cannot see it
            with pytest.raises(grpc.RpcError) as e:
                _call(op_a, "IdentityService.GetPerson", pb.GetPersonRequest(person_id=person_id))
            assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_own_agent_acts_for_its_person_only_and_may_revoke_its_own_certificate(world):
    """Dave's agent makes every API call about Dave, each answered as the matrix documents (reads of its own person
    allowed, operator-only calls PERMISSION_DENIED); revoking its own TLS certificate goes last and is allowed, and
    the next call with that certificate is refused as revoked."""
    r, t = world["r"], world["t"]
    revoke = "CertificateService.RevokeCertificate"
    rpcs = sorted(served_on(API), key=lambda n: n == revoke)  # the self-revocation last
    with channel(r.env, world["agent"]) as agent:
        assert _sweep(agent, t, rpcs, "own_agent", "Dave's own agent") == []
        with pytest.raises(grpc.RpcError) as e:
            _call(agent, "IdentityService.GetPerson", pb.GetPersonRequest(person_id=t.dave))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and reason(e.value) == "CLIENT_CERT_REVOKED"
