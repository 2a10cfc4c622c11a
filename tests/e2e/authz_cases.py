"""The authorisation matrix as data: every RPC of every Signet service (read from the proto descriptors), a request
builder for each, and what each kind of caller must get back -- a refusal with the documented status, or an
explicit permission with the reason the proto gives for it.

A table entry is a frozen dataclass whose fields are the principals whose outcome depends on the RPC: an entry
cannot leave one out, and an RPC without an entry fails the matrix (:func:`uncovered`).  Principals whose outcome
is the same for every RPC (no client certificate, a foreign CA, a revoked certificate, the wrong listener) are
rules in tests/e2e/test_authz_matrix.py, applied to every RPC the descriptors list.

Calls are made generically (:func:`invoke`): the path, the call kind (unary or streaming either way) and the
message classes all come from the method descriptor, so the matrix exercises exactly what the proto declares.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass

from signet.v1 import agent_pb2, common_pb2, server_pb2
from signet.wire import detail_of

from .server_harness import prc_id

C = grpc.StatusCode


# -- the RPCs the descriptors declare ---------------------------------------------------------------------------------
def rpc_names(fd: FileDescriptor) -> list[str]:
    """"Service.Method" for every method of every service of a proto file, in declaration order."""
    return [f"{s.name}.{m.name}" for s in fd.services_by_name.values() for m in s.methods]


def method_of(fd: FileDescriptor, name: str) -> MethodDescriptor:
    service, method = name.split(".")
    return fd.services_by_name[service].methods_by_name[method]


def uncovered(fd: FileDescriptor, table: Iterable[str]) -> tuple[list[str], list[str]]:
    """(RPCs without a table entry, table entries naming no RPC)."""
    declared, listed = rpc_names(fd), set(table)
    return [n for n in declared if n not in listed], sorted(listed - set(declared))


AGENT_RPCS = rpc_names(agent_pb2.DESCRIPTOR)
SERVER_RPCS = rpc_names(server_pb2.DESCRIPTOR)

# server.proto's header: which listener serves which service
API, ENROLL = "api", "enroll"
LISTENER_OF: dict[str, str] = {"IdentityService": API, "CertificateService": API, "EnvelopeService": API,
                               "ContractService": API, "AuditService": API, "KioskService": API,
                               "EnrollmentService": ENROLL}


def listener_of(rpc: str) -> str | None:
    return LISTENER_OF.get(rpc.partition(".")[0])


def served_on(listener: str) -> list[str]:
    return [n for n in SERVER_RPCS if listener_of(n) == listener]


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


# -- outcomes ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Refused:
    """The call fails with ``code`` (and, when given, this ErrorDetail reason and message fragment)."""

    code: grpc.StatusCode
    reason: str | None = None
    says: str | None = None

    def __str__(self) -> str:
        return self.code.name + (f" {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class Allowed:
    """The call succeeds for this principal, for the reason ``why`` (what the proto says); ``check`` looks at the
    response (a list of messages for a response stream) and the targets."""

    why: str
    check: Callable[[Any, Any], None] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return "OK"


Outcome = Refused | Allowed


def invoke(channel: grpc.Channel, method: MethodDescriptor, request: Message | list[Message], *,
           metadata: tuple[tuple[str, str], ...] | None = None, timeout: float = 30.0,
           open_ended: bool = False) -> Any:
    """Call ``method`` as its descriptor declares it.  A client stream takes a list of messages; a response stream
    is returned as a list (``open_ended``: only its first message, then the call is cancelled)."""
    messages = list(request) if isinstance(request, list) else [request]
    if method.client_streaming != isinstance(request, list) or not messages:
        raise TypeError(f"{method.full_name}: a client-streaming RPC takes a list of requests, a unary one a message")
    for m in messages:
        if m.DESCRIPTOR.full_name != method.input_type.full_name:
            raise TypeError(f"{method.full_name} takes {method.input_type.full_name}, the builder made "
                            f"{m.DESCRIPTOR.full_name}")
    response_cls: Any = GetMessageClass(method.output_type)
    kind: dict[tuple[bool, bool], Any] = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
            (True, False): channel.stream_unary, (True, True): channel.stream_stream}
    make = kind[(method.client_streaming, method.server_streaming)]
    call = make(f"/{method.containing_service.full_name}/{method.name}",
                request_serializer=_serialize, response_deserializer=response_cls.FromString)
    result = call(iter(messages) if method.client_streaming else messages[0], timeout=timeout, metadata=metadata)
    if not method.server_streaming:
        return result
    if open_ended:
        try:
            return [next(result)]
        finally:
            result.cancel()
    return list(result)


def expect(outcome: Outcome, call: Callable[[], Any], targets: Any, what: str) -> None:
    """Make the call and hold it to ``outcome``; ``what`` names the cell in failure messages."""
    try:
        response = call()
    except grpc.RpcError as e:
        detail = detail_of(e)
        got = f"{e.code().name} {detail.reason if detail else '(no ErrorDetail)'}: {e.details()}"
        if isinstance(outcome, Allowed):
            raise AssertionError(f"{what}: refused with {got}; expected it to be allowed ({outcome.why})") from None
        if e.code() != outcome.code:
            raise AssertionError(f"{what}: expected {outcome}, got {got}") from None
        if outcome.reason is not None and (detail is None or detail.reason != outcome.reason):
            raise AssertionError(f"{what}: expected reason {outcome.reason}, got {got}") from None
        if outcome.says is not None and outcome.says not in (e.details() or ""):
            raise AssertionError(f"{what}: expected the message to say {outcome.says!r}, got {got}") from None
        return
    if isinstance(outcome, Refused):
        raise AssertionError(f"{what}: expected {outcome}, but the call was allowed: {response!r:.300}")
    if outcome.check is not None:
        outcome.check(response, targets)


# -- signet-server: the API listener ----------------------------------------------------------------------------------
NO_ENVELOPE = "env_" + "0" * 24


@dataclass
class ServerTargets:
    """Org A's objects every API call aims at, and the ids the checks compare with.

    The envelopes exist in the matrix's world (tests/e2e/test_authz_matrix.py: sent by Henry, an enrolled person of
    org A); a world without envelopes (tests/e2e/test_server_authz.py) leaves the defaults, ids of nothing."""

    org_a: str
    org_b: str
    dave: str  # an approved, enrolled person of org A
    erin: str  # another approved person of org A
    dave_signing_serial: str  # hex
    dave_agent_serial: str  # hex: Dave's agent TLS client certificate (it has Dave as holder)
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    envelope: str = NO_ENVELOPE  # sent, addressed to Dave (signer); Erin is not on it
    envelope_document: str = "doc_" + "0" * 24  # its PDF
    envelope_revision: str = "0" * 64  # the PDF's current SHA-256
    void_envelope: str = NO_ENVELOPE  # another one sent to Dave: only VoidEnvelope aims at it
    erin_envelope: str = NO_ENVELOPE  # sent to Erin: she is a recipient, of another envelope
    # the seq of ``envelope``'s first audit leaf (its creation); without envelopes, leaf 0: a leaf of org A (the
    # audit log opens with the evidence of org A's people, see server.identity.evidence)
    envelope_first_leaf: int = 0
    dave_signing_der: bytes = b""  # Dave's signer certificate (what a station reads from his card), when known
    # a fresh proof of Dave's card for org A's station "lobby-1" (statement, signature), when his card is at hand
    dave_card_proof: Callable[[], tuple[bytes, bytes]] | None = None

    def fresh(self) -> int:
        return next(self.counter)


def _register(t: ServerTargets) -> Message:
    n = t.fresh()
    return server_pb2.RegisterPersonRequest(
        legal_name=f"Mallory Matrix {n}", document_type="prc_resident_id",
        document_number=prc_id("19700101", f"{(n * 7) % 1000:03d}"), phone=f"+86138001399{n % 100:02d}",
        email=f"mallory{n}@example.com")


def _people(response: Any) -> list[str]:
    return [p.id for p in response.people]


def _check(cond: Callable[[Any, ServerTargets], bool], say: str) -> Callable[[Any, Any], None]:
    def check(response: Any, t: Any) -> None:
        if not cond(response, t):
            raise AssertionError(f"{say}; got {response!r:.400}")
    return check


@dataclass(frozen=True)
class ApiCase:
    """One API-listener RPC: its request, and what four authenticated principals get.

    ``same_org_operator`` is the control row (an operator of org A who did not register Dave): it shows each
    request is well formed and reaches the service, so a refusal in another row is about the caller.
    ``own_agent`` is swept only by tests/e2e/test_server_authz.py, whose world holds no envelope: there the
    envelope RPCs aim at an id that does not exist (NOT_FOUND), and Dave may create a draft of his own."""

    build: Callable[[ServerTargets], Message]
    same_org_operator: Outcome
    other_org_operator: Outcome
    other_persons_agent: Outcome  # Erin's agent, calling about Dave (same organisation); for envelopes, a
    # recipient of another envelope
    own_agent: Outcome  # Dave's own agent (tests/e2e/test_server_authz.py: it may revoke its own certificate)
    open_ended: bool = False  # a response stream that never ends by itself: the first message, or the refusal


NF = Refused(C.NOT_FOUND)  # server.proto: another organisation's objects look like objects that do not exist
PD = Refused(C.PERMISSION_DENIED)  # server.proto: a role that may not do something
OPERATOR_ONLY = Refused(C.PERMISSION_DENIED, says="only an operator")
OWN_PERSON_ONLY = Refused(C.PERMISSION_DENIED, says="only for its own person")


def _fp(reason: str) -> Refused:
    return Refused(C.FAILED_PRECONDITION, reason)


# -- EnvelopeService (server.proto): a caller sees an envelope it sent, one addressed to it once sent, or (operators)
# one sent from its organisation, read-only plus void; anything else is NOT_FOUND, like an id that does not exist.
PERSONS_ONLY = Refused(C.PERMISSION_DENIED, says="only a person")  # operators send nothing
SENDER_ONLY = Refused(C.PERMISSION_DENIED, says="only the sender")
RECIPIENTS_ONLY = Refused(C.PERMISSION_DENIED, says="only a recipient")


def _envelopes(r: Any) -> list[Any]:
    return list(r.envelopes)


def _party(person: str) -> Callable[[Any], bool]:
    def on(e: Any) -> bool:
        return bool(e.sender_person_id == person or person in [x.person_id for x in e.recipients])
    return on


def _own_draft(who: str) -> Callable[[Any, Any], None]:
    return _check(lambda r, t: r.envelope.sender_person_id == getattr(t, who)
                  and r.envelope.state == server_pb2.ENVELOPE_STATE_DRAFT, f"a draft sent by {who} must come back")


def _create(t: ServerTargets) -> Message:
    return server_pb2.CreateEnvelopeRequest(
        title=f"Matrix envelope {t.fresh()}",
        documents=[server_pb2.DocumentSpec(name="terms.txt", media_type="text/plain", content=b"the terms\n")],
        recipients=[server_pb2.RecipientSpec(person_id=t.dave, role=server_pb2.RECIPIENT_ROLE_SIGNER,
                                             routing_order=1, signing_method=server_pb2.SIGNING_METHOD_TOKEN)])


ENVELOPE_CASES: dict[str, ApiCase] = {
    "EnvelopeService.CreateEnvelope": ApiCase(
        _create, same_org_operator=PERSONS_ONLY, other_org_operator=PERSONS_ONLY,
        other_persons_agent=Allowed("a person creates envelopes in their own name (Erin's draft, to Dave)",
                                    _own_draft("erin")),
        own_agent=Allowed("a person creates envelopes in their own name", _own_draft("dave"))),
    "EnvelopeService.SendEnvelope": ApiCase(
        lambda t: server_pb2.SendEnvelopeRequest(envelope_id=t.envelope),
        same_org_operator=SENDER_ONLY, other_org_operator=NF, other_persons_agent=NF, own_agent=NF),
    "EnvelopeService.GetEnvelope": ApiCase(
        lambda t: server_pb2.GetEnvelopeRequest(envelope_id=t.envelope),
        same_org_operator=Allowed("an operator reads the envelopes sent from its organisation", _check(
            lambda r, t: r.envelope.id == t.envelope and r.envelope.organisation_id == t.org_a,
            "the envelope must come back")),
        other_org_operator=NF, other_persons_agent=NF, own_agent=NF),
    "EnvelopeService.ListEnvelopes": ApiCase(
        lambda t: server_pb2.ListEnvelopesRequest(),
        same_org_operator=Allowed("an operator lists the envelopes sent from its organisation", _check(
            lambda r, t: t.envelope in [e.id for e in _envelopes(r)]
            and {e.organisation_id for e in _envelopes(r)} == {t.org_a}, "org A's envelopes, Dave's among them")),
        other_org_operator=Allowed("an operator lists its own organisation's envelopes: none of org A's", _check(
            lambda r, t: {e.organisation_id for e in _envelopes(r)} <= {t.org_b}, "only org B's envelopes")),
        other_persons_agent=Allowed("a person lists what they sent and what is addressed to them", _check(
            lambda r, t: t.envelope not in [e.id for e in _envelopes(r)] and all(map(_party(t.erin), _envelopes(r)))
            and (t.erin_envelope == NO_ENVELOPE or t.erin_envelope in [e.id for e in _envelopes(r)]),
            "Erin's list: her own envelope, not Dave's")),
        own_agent=Allowed("a person lists what they sent and what is addressed to them", _check(
            lambda r, t: all(map(_party(t.dave), _envelopes(r))), "Dave's list holds only envelopes of his"))),
    "EnvelopeService.GetDocument": ApiCase(
        lambda t: server_pb2.GetDocumentRequest(envelope_id=t.envelope, document_id=t.envelope_document),
        same_org_operator=Allowed("an operator reads the envelopes sent from its organisation", _check(
            lambda r, t: hashlib.sha256(r.content).hexdigest() == t.envelope_revision, "the current revision")),
        other_org_operator=NF, other_persons_agent=NF, own_agent=NF),
    "EnvelopeService.StartSigning": ApiCase(
        lambda t: server_pb2.StartSigningRequest(envelope_id=t.envelope, document_id=t.envelope_document,
                                                 revision_sha256=t.envelope_revision),
        same_org_operator=RECIPIENTS_ONLY, other_org_operator=NF, other_persons_agent=NF, own_agent=NF),
    "EnvelopeService.SubmitSignature": ApiCase(
        lambda t: server_pb2.SubmitSignatureRequest(envelope_id=t.envelope, document_id=t.envelope_document,
                                                    one_time_code="123456", content=b"%PDF-1.7"),
        same_org_operator=RECIPIENTS_ONLY, other_org_operator=NF, other_persons_agent=NF, own_agent=NF),
    "EnvelopeService.SignRemotely": ApiCase(
        lambda t: server_pb2.SignRemotelyRequest(envelope_id=t.envelope, document_id=t.envelope_document,
                                                 revision_sha256=t.envelope_revision, one_time_code="123456"),
        same_org_operator=RECIPIENTS_ONLY, other_org_operator=NF, other_persons_agent=NF, own_agent=NF),
    "EnvelopeService.DeclineEnvelope": ApiCase(
        lambda t: server_pb2.DeclineEnvelopeRequest(envelope_id=t.envelope, reason="the rent is wrong"),
        same_org_operator=RECIPIENTS_ONLY, other_org_operator=NF, other_persons_agent=NF, own_agent=NF),
    "EnvelopeService.VoidEnvelope": ApiCase(
        lambda t: server_pb2.VoidEnvelopeRequest(envelope_id=t.void_envelope, reason="sent in error"),
        same_org_operator=Allowed("an operator of the sender's organisation may void its envelopes", _check(
            lambda r, t: r.envelope.state == server_pb2.ENVELOPE_STATE_VOIDED, "the envelope must be voided")),
        other_org_operator=NF, other_persons_agent=NF, own_agent=NF),
    "EnvelopeService.ListEnvelopeEvents": ApiCase(
        lambda t: server_pb2.ListEnvelopeEventsRequest(envelope_id=t.envelope),
        same_org_operator=Allowed("an operator reads the envelopes sent from its organisation", _check(
            lambda r, t: [e.type for e in r.events][:2] == ["created", "sent"], "the events, oldest first")),
        other_org_operator=NF, other_persons_agent=NF, own_agent=NF),
    # authorised like SendEnvelope, on the template (Henry's, sent to Dave): refused for the whole call, before any
    # row -- a refused caller learns nothing of the rows
    "EnvelopeService.BulkSendEnvelopes": ApiCase(
        lambda t: server_pb2.BulkSendEnvelopesRequest(
            template_envelope_id=t.envelope, rows=[server_pb2.BulkRow(values={"signer": t.dave, "name": "Dave"})]),
        same_org_operator=SENDER_ONLY, other_org_operator=NF, other_persons_agent=NF, own_agent=NF),
    # a stream authorised like GetEnvelope: the refusal comes instead of the first message
    "EnvelopeService.WatchEnvelopeEvents": ApiCase(
        lambda t: server_pb2.WatchEnvelopeEventsRequest(envelope_id=t.envelope),
        same_org_operator=Allowed("an operator follows the envelopes sent from its organisation", _check(
            lambda r, t: len(r) == 1 and r[0].event.envelope_id == t.envelope and r[0].event.type == "created"
            and r[0].last_event_id == r[0].event.id, "the stream starts with the envelope's first event")),
        other_org_operator=NF, other_persons_agent=NF, own_agent=NF, open_ended=True),
}

# -- ContractService (server.proto): sealed contracts, seen as their envelopes are; a search is always restricted to
# what the caller may see (an operator: its organisation; a person: their own contracts).  The matrix's envelope is
# sent, not sealed: whoever may see it learns NOT_SEALED, anyone else NOT_FOUND.
NOT_SEALED = _fp("NOT_SEALED")


def _own_org(org: str) -> Callable[[Any, Any], None]:
    return _check(lambda r, t: {c.organisation_id for c in r.contracts} <= {getattr(t, org)},
                  f"only contracts of {org}")


def _own_contracts(who: str) -> Callable[[Any, Any], None]:
    """A person's results: their organisation's, and (Erin) never the matrix envelope she is no party to."""
    return _check(lambda r, t: {c.organisation_id for c in r.contracts} <= {t.org_a}
                  and (who == "dave" or t.envelope not in [c.envelope_id for c in r.contracts]),
                  f"only {who}'s own contracts")


CONTRACT_CASES: dict[str, ApiCase] = {
    "ContractService.SearchContracts": ApiCase(
        lambda t: server_pb2.SearchContractsRequest(query="matrix envelope"),
        same_org_operator=Allowed("an operator searches its organisation's sealed contracts", _own_org("org_a")),
        other_org_operator=Allowed("an operator searches its own organisation's contracts: none of org A's",
                                   _own_org("org_b")),
        other_persons_agent=Allowed("a person searches the contracts they are a party to", _own_contracts("erin")),
        own_agent=Allowed("a person searches the contracts they are a party to", _own_contracts("dave"))),
    "ContractService.GetContract": ApiCase(
        lambda t: server_pb2.GetContractRequest(envelope_id=t.envelope),
        same_org_operator=NOT_SEALED, other_org_operator=NF, other_persons_agent=NF, own_agent=NF),
    "ContractService.DownloadContract": ApiCase(
        lambda t: server_pb2.DownloadContractRequest(envelope_id=t.envelope, name="terms.txt"),
        same_org_operator=NOT_SEALED, other_org_operator=NF, other_persons_agent=NF, own_agent=NF),
    "ContractService.ExportEvidence": ApiCase(
        lambda t: server_pb2.ExportEvidenceRequest(envelope_id=t.envelope),
        same_org_operator=NOT_SEALED, other_org_operator=NF, other_persons_agent=NF, own_agent=NF),
}

# -- AuditService (server.proto): operators only; heads and consistency proofs are hashes, any operator gets them; a
# leaf only an operator of the organisation it is about: its envelope's, its person's (identity.*), its certificate
# holder's (certificate.*); another's: NOT_FOUND.  The log opens with the evidence of the people (registration, phone,
# decisions, enrollment: identity.* leaves), so the envelope's first leaf (its creation) is found by the world
# (ServerTargets.envelope_first_leaf); the world of tests/e2e/test_server_authz.py has no envelope: there the seq
# asked for is leaf 0, about a person of org A.
def _head_signed(head: Any, certificate_der: bytes) -> bool:
    """``head`` verifies with the audit certificate (as a relying party would check it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    from signet.auditformat import head_message, parse_time

    key = x509.load_der_x509_certificate(certificate_der).public_key()
    algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[head.hash_name]
    message = head_message(head.tree_size, int(parse_time(head.timestamp).timestamp() * 1000), head.root_hash)
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(head.signature, message, ec.ECDSA(algorithm))
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(head.signature, message, padding.PKCS1v15(), algorithm)
    return True


def _leaves_proven(r: Any, t: Any) -> bool:
    from signet.merkle import verify_inclusion

    for x in r.leaves:
        verify_inclusion(x.leaf.leaf_hash, x.leaf.seq, r.tree_size, list(x.proof), r.head.root_hash)
    return bool(r.leaves) and r.leaves[0].leaf.kind == "envelope.created" and r.head.tree_size == r.tree_size \
        and {x.leaf.subject for x in r.leaves} == {t.envelope}


HEAD = Allowed("tree heads reveal only hashes: any operator gets them", _check(
    lambda r, t: _head_signed(r.head, r.audit_certificate_der) and len(r.chain_der) == 2,
    "a head signed by the audit key, with its certificate and chain"))
CONSISTENCY = Allowed("consistency proofs reveal only hashes: any operator gets them", _check(
    lambda r, t: r.new_head.tree_size == r.new_size and r.old_size <= r.new_size, "a proof to the newest head"))

AUDIT_CASES: dict[str, ApiCase] = {
    "AuditService.GetTreeHead": ApiCase(
        lambda t: server_pb2.GetTreeHeadRequest(), same_org_operator=HEAD, other_org_operator=HEAD,
        other_persons_agent=OPERATOR_ONLY, own_agent=OPERATOR_ONLY),
    "AuditService.GetInclusionProof": ApiCase(
        lambda t: server_pb2.GetInclusionProofRequest(seq=t.envelope_first_leaf),
        same_org_operator=Allowed("an operator sees the leaves of its organisation's envelopes", _check(
            lambda r, t: r.leaf.seq == t.envelope_first_leaf and r.leaf.subject == t.envelope
            and r.leaf.kind == "envelope.created" and r.head.tree_size == r.tree_size,
            "the envelope's first leaf, with a proof to the newest head")),
        other_org_operator=NF, other_persons_agent=OPERATOR_ONLY, own_agent=OPERATOR_ONLY),
    "AuditService.GetConsistencyProof": ApiCase(
        lambda t: server_pb2.GetConsistencyProofRequest(old_size=0 if t.envelope == NO_ENVELOPE else 1),
        same_org_operator=CONSISTENCY, other_org_operator=CONSISTENCY, other_persons_agent=OPERATOR_ONLY,
        own_agent=OPERATOR_ONLY),
    "AuditService.ListEnvelopeLeaves": ApiCase(
        lambda t: server_pb2.ListEnvelopeLeavesRequest(envelope_id=t.envelope),
        same_org_operator=Allowed("an operator sees the leaves of its organisation's envelopes", _check(
            _leaves_proven, "the envelope's leaves, oldest first, each proven in the newest head")),
        other_org_operator=NF, other_persons_agent=OPERATOR_ONLY, own_agent=OPERATOR_ONLY),
}

# -- KioskService (server.proto): signing stations only; a station's own row is a rule of
# tests/e2e/test_authz_matrix.py (the station alone, and with a card session: default-deny beyond what it may call).
STATION_ONLY = Refused(C.PERMISSION_DENIED, "STATION_ONLY")
def _open_card_session(t: ServerTargets) -> Message:
    statement, signature = t.dave_card_proof() if t.dave_card_proof is not None else (b"", b"")
    return server_pb2.OpenCardSessionRequest(certificate_der=t.dave_signing_der or b"\x30\x00",
                                             proof_statement=statement, proof_signature=signature)


KIOSK_CASES: dict[str, ApiCase] = {
    "KioskService.OpenCardSession": ApiCase(
        _open_card_session,
        same_org_operator=STATION_ONLY, other_org_operator=STATION_ONLY, other_persons_agent=STATION_ONLY,
        own_agent=STATION_ONLY),
    "KioskService.CloseCardSession": ApiCase(
        lambda t: server_pb2.CloseCardSessionRequest(session_id="A" * 43),
        same_org_operator=STATION_ONLY, other_org_operator=STATION_ONLY, other_persons_agent=STATION_ONLY,
        own_agent=STATION_ONLY),
}

API_CASES: dict[str, ApiCase] = {
    "IdentityService.RegisterPerson": ApiCase(
        _register,
        same_org_operator=Allowed("an operator registers people of its own organisation", _check(
            lambda r, t: r.person.organisation_id == t.org_a, "the person must be registered in org A")),
        other_org_operator=Allowed("RegisterPerson creates the person in the caller's organisation (org B); "
                                   "nothing of org A is touched", _check(
            lambda r, t: r.person.organisation_id == t.org_b, "org B's operator must register into org B")),
        other_persons_agent=OPERATOR_ONLY, own_agent=OPERATOR_ONLY),
    "IdentityService.GetPerson": ApiCase(
        lambda t: server_pb2.GetPersonRequest(person_id=t.dave),
        same_org_operator=Allowed("operator of the person's organisation", _check(
            lambda r, t: r.person.id == t.dave, "GetPerson must return Dave")),
        other_org_operator=NF, other_persons_agent=OWN_PERSON_ONLY,
        own_agent=Allowed("the person's own agent", _check(lambda r, t: r.person.id == t.dave, "must return Dave"))),
    "IdentityService.ListPeople": ApiCase(
        lambda t: server_pb2.ListPeopleRequest(),
        same_org_operator=Allowed("an operator lists its organisation's people", _check(
            lambda r, t: t.dave in _people(r) and t.erin in _people(r), "org A's list must hold Dave and Erin")),
        other_org_operator=Allowed("an operator lists its own organisation: org A's people are not in it", _check(
            lambda r, t: not {t.dave, t.erin} & set(_people(r))
            and {p.organisation_id for p in r.people} <= {t.org_b}, "org B's list must hold only org B's people")),
        other_persons_agent=Allowed("an agent lists only its own person", _check(
            lambda r, t: _people(r) == [t.erin], "Erin's agent must see only Erin")),
        own_agent=Allowed("an agent lists only its own person", _check(
            lambda r, t: _people(r) == [t.dave], "Dave's agent must see only Dave"))),
    "IdentityService.StartPhoneVerification": ApiCase(
        lambda t: server_pb2.StartPhoneVerificationRequest(person_id=t.dave),
        same_org_operator=_fp("PHONE_ALREADY_VERIFIED"), other_org_operator=NF, other_persons_agent=OWN_PERSON_ONLY,
        own_agent=_fp("PHONE_ALREADY_VERIFIED")),
    "IdentityService.ConfirmPhone": ApiCase(
        lambda t: server_pb2.ConfirmPhoneRequest(person_id=t.dave, code="123456"),
        same_org_operator=_fp("PHONE_ALREADY_VERIFIED"), other_org_operator=NF, other_persons_agent=OWN_PERSON_ONLY,
        own_agent=_fp("PHONE_ALREADY_VERIFIED")),
    "IdentityService.ApprovePerson": ApiCase(
        lambda t: server_pb2.ApprovePersonRequest(person_id=t.dave, evidence="ID card inspected at the branch"),
        same_org_operator=_fp("ALREADY_APPROVED"), other_org_operator=NF, other_persons_agent=OPERATOR_ONLY,
        own_agent=OPERATOR_ONLY),
    "IdentityService.RejectPerson": ApiCase(
        lambda t: server_pb2.RejectPersonRequest(person_id=t.dave, reason="document looks altered"),
        same_org_operator=_fp("ALREADY_APPROVED"), other_org_operator=NF, other_persons_agent=OPERATOR_ONLY,
        own_agent=OPERATOR_ONLY),
    "IdentityService.ListEvidence": ApiCase(
        lambda t: server_pb2.ListEvidenceRequest(person_id=t.dave),
        same_org_operator=Allowed("operator of the person's organisation", _check(
            lambda r, t: "registered" in [x.kind for x in r.records], "Dave's evidence chain must be returned")),
        other_org_operator=NF, other_persons_agent=OWN_PERSON_ONLY,
        own_agent=Allowed("the person's own agent", _check(
            lambda r, t: "registered" in [x.kind for x in r.records], "Dave's evidence chain must be returned"))),
    "IdentityService.UnlockEnrollment": ApiCase(
        lambda t: server_pb2.UnlockEnrollmentRequest(person_id=t.dave, evidence="caller verified by video"),
        same_org_operator=_fp("NOT_LOCKED"), other_org_operator=NF, other_persons_agent=OPERATOR_ONLY,
        own_agent=OPERATOR_ONLY),
    "CertificateService.RevokeCertificate": ApiCase(
        lambda t: server_pb2.RevokeCertificateRequest(serial=t.dave_agent_serial, reason="superseded"),
        same_org_operator=Allowed("operator of the holder's organisation", _check(
            lambda r, t: r.certificate.state == server_pb2.CERTIFICATE_STATE_REVOKED,
            "the certificate must be revoked")),
        other_org_operator=NF, other_persons_agent=OWN_PERSON_ONLY,
        own_agent=Allowed("the holder's own agent (here: revoking its own TLS certificate)", _check(
            lambda r, t: r.certificate.state == server_pb2.CERTIFICATE_STATE_REVOKED,
            "the certificate must be revoked"))),
    # operators of the person's organisation only; the control row sends no evidence, so it reaches the service and
    # is refused there without a key being made (tests/e2e/test_envelopes_remote.py makes them)
    "CertificateService.CreateRemoteKey": ApiCase(
        lambda t: server_pb2.CreateRemoteKeyRequest(person_id=t.dave, evidence=""),
        same_org_operator=Refused(C.INVALID_ARGUMENT, "EVIDENCE_REQUIRED"), other_org_operator=NF,
        other_persons_agent=OPERATOR_ONLY, own_agent=OPERATOR_ONLY),
    "CertificateService.GetCertificateStatus": ApiCase(
        lambda t: server_pb2.GetCertificateStatusRequest(serial=t.dave_signing_serial),
        same_org_operator=Allowed("operator of the holder's organisation", _check(
            lambda r, t: r.certificate.person_id == t.dave and r.certificate.state == server_pb2.CERTIFICATE_STATE_GOOD,
            "Dave's signing certificate must be reported good")),
        other_org_operator=NF, other_persons_agent=OWN_PERSON_ONLY,
        own_agent=Allowed("the holder's own agent", _check(
            lambda r, t: r.certificate.state == server_pb2.CERTIFICATE_STATE_GOOD, "must be reported good"))),
    "CertificateService.ListCertificates": ApiCase(
        lambda t: server_pb2.ListCertificatesRequest(person_id=t.dave),
        same_org_operator=Allowed("operator of the holder's organisation", _check(
            lambda r, t: t.dave_signing_serial in [c.serial for c in r.certificates],
            "Dave's certificates must be listed")),
        other_org_operator=NF, other_persons_agent=OWN_PERSON_ONLY,
        own_agent=Allowed("the holder's own agent", _check(
            lambda r, t: t.dave_signing_serial in [c.serial for c in r.certificates],
            "Dave's certificates must be listed"))),
    "CertificateService.RegisterExternalCertificate": ApiCase(
        lambda t: server_pb2.RegisterExternalCertificateRequest(person_id=t.dave, certificate_der=b"\x30\x00"),
        # the operator gets past authorisation to the certificate check: an empty SEQUENCE is no certificate
        same_org_operator=Refused(C.INVALID_ARGUMENT), other_org_operator=NF, other_persons_agent=OPERATOR_ONLY,
        own_agent=OPERATOR_ONLY),
    **ENVELOPE_CASES,
    **CONTRACT_CASES,
    **AUDIT_CASES,
    **KIOSK_CASES,
}


# -- signet-server: the enrollment listener ----------------------------------------------------------------------------
@dataclass(frozen=True)
class EnrollmentCaller:
    """What an enrollment call authenticates itself with (there is no client certificate on this listener)."""

    person_id: str
    code: str
    code_id: str
    csr: Callable[[], bytes]  # a fresh PKCS#10 request for a key that has no certificate


@dataclass(frozen=True)
class EnrollmentCase:
    """One enrollment-listener RPC and what each way of (not) authenticating gets."""

    build: Callable[[EnrollmentCaller], Message]
    no_person_id: Outcome
    unknown_person: Outcome
    not_approved: Outcome  # registered, phone verified, real-name check pending
    no_code: Outcome
    no_code_id: Outcome
    wrong_code: Outcome
    another_persons_code: Outcome  # a fresh, unused code (and its code_id) sent to someone else


def _challenge_sent(response: Any, t: Any) -> None:
    if not response.challenge.code_id or response.challenge.channel != "outbox":
        raise AssertionError(f"StartEnrollment must return a challenge sent to the outbox; got {response!r:.300}")


SENDS_A_CODE = Allowed("StartEnrollment authenticates nobody: it sends a code to the approved person's own verified "
                       "phone (rate limited per address and per phone)", _challenge_sent)

ENROLLMENT_CASES: dict[str, EnrollmentCase] = {
    "EnrollmentService.StartEnrollment": EnrollmentCase(
        lambda c: server_pb2.StartEnrollmentRequest(person_id=c.person_id),
        no_person_id=Refused(C.INVALID_ARGUMENT, "PERSON_ID_REQUIRED"), unknown_person=NF,
        not_approved=_fp("NOT_APPROVED"), no_code=SENDS_A_CODE, no_code_id=SENDS_A_CODE, wrong_code=SENDS_A_CODE,
        another_persons_code=SENDS_A_CODE),
    "EnrollmentService.Enroll": EnrollmentCase(
        lambda c: server_pb2.EnrollRequest(person_id=c.person_id, one_time_code=c.code, code_id=c.code_id,
                                           csr_der=c.csr()),
        no_person_id=Refused(C.INVALID_ARGUMENT, "PERSON_ID_REQUIRED"), unknown_person=NF,
        not_approved=_fp("NOT_APPROVED"), no_code=Refused(C.INVALID_ARGUMENT, "OTP_REQUIRED"),
        no_code_id=Refused(C.INVALID_ARGUMENT, "CODE_ID_REQUIRED"),
        wrong_code=Refused(C.UNAUTHENTICATED, "OTP_INCORRECT"),
        another_persons_code=Refused(C.UNAUTHENTICATED, "OTP_NOT_FOUND")),  # the code_id is bound to its person
}


# -- signet-agent ---------------------------------------------------------------------------------------------------
@dataclass
class AgentTargets:
    """The token, keys and documents every agent call aims at; ``caller`` is how the agent should name the
    principal making the call (set per principal)."""

    token_label: str
    serial: str
    pin: str
    key_id: str  # the "signing" key: its rule names the local caller and kiosk-2, and allows digests
    certificate_der: bytes
    root_der: bytes  # the test CA that issued it
    victim_key_id: str  # a key only DeleteKey aims at
    pdf: bytes
    signed_pdf: bytes
    data: bytes
    p7s: bytes
    caller: str = ""
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def fresh(self) -> int:
        return next(self.counter)


def _sel(t: AgentTargets) -> agent_pb2.TokenSelector:
    return agent_pb2.TokenSelector(label=t.token_label)


def _cred(pin: str | None) -> agent_pb2.PinCredential | None:
    return agent_pb2.PinCredential(pin=pin) if pin else None


def _agent_check(cond: Callable[[Any, AgentTargets], bool], say: str) -> Callable[[Any, Any], None]:
    def check(response: Any, t: Any) -> None:
        if not cond(response, t):
            raise AssertionError(f"{say}; got {response!r:.400}")
    return check


def _digest() -> bytes:
    return hashlib.sha256(b"authorisation matrix").digest()


@dataclass(frozen=True)
class AgentCase:
    """One AgentService RPC: its request (with the PIN, when the principal offers one) and what four principals get.

    ``local_with_pin`` is the control row: the local caller, admin and named by the key's rule, with the PIN.
    ``caller_not_in_policy`` offers the right PIN too: it must be refused for who it is, not for what it knows.
    ``other_callers_grant`` is kiosk-2 (admin and named by the key's rule) presenting the local caller's live grant
    handle and no PIN."""

    build: Callable[[AgentTargets, str | None], Message | list[Message]]
    local_with_pin: Outcome
    local_without_login: Outcome
    caller_not_in_policy: Outcome
    other_callers_grant: Outcome
    open_ended: bool = False  # a response stream that never ends by itself: take its first message


LOGIN_REQUIRED = Refused(C.FAILED_PRECONDITION, "LOGIN_REQUIRED")  # agent.proto: no grant handle and no PIN
NOT_ALLOWED = Refused(C.PERMISSION_DENIED, "PERMISSION_DENIED")  # agent.proto: caller not allowed
EMPTY_PIN = Refused(C.UNAUTHENTICATED, "PIN_INCORRECT")  # Unlock with no PIN is a wrong PIN (no try is counted)
NO_PROOF = Refused(C.INVALID_ARGUMENT, "INVALID_ARGUMENT")  # PinReset needs the PIN or the SO PIN
OPEN = "open to every authenticated caller (it uses no key and no PIN)"


def _info_names_caller(r: Any, t: AgentTargets) -> bool:
    local = t.caller == "local"
    return bool(r.caller == t.caller and bool(r.state_dir) == local)


def _token_listed(r: Any, t: AgentTargets) -> bool:
    return t.serial in [x.serial for x in r.tokens]


def _watch_first(r: Any, t: AgentTargets) -> bool:
    return bool(r[0].kind == agent_pb2.WatchTokensResponse.KIND_INSERTED)


def _verified(r: Any, t: AgentTargets) -> bool:
    return len(r.signatures) == 1 and bool(r.signatures[0].intact)


def _signed(r: Any, t: AgentTargets) -> bool:
    return len(r) == 1 and r[0].result.key_id == t.key_id and len(r[0].result.content) > 0


GET_INFO = Allowed(OPEN, _agent_check(_info_names_caller, "GetInfo must name the caller (and its state dir only to "
                                                          "local callers)"))
LIST_TOKENS = Allowed(OPEN, _agent_check(_token_listed, "ListTokens must list the token"))
LIST_TOKENS_NO_GRANT = Allowed(OPEN, _agent_check(
    lambda r, t: _token_listed(r, t) and t.serial not in r.unlocked_serials,
    "ListTokens must not report another caller's grant as this caller's"))
WATCH = Allowed(OPEN, _agent_check(_watch_first, "WatchTokens must start with the tokens present"))
VERIFY = Allowed("verification uses no key: open to every authenticated caller",
                 _agent_check(_verified, "the signature must verify"))
LOCK_OWN = Allowed("Lock ends only the caller's own grants (none here): nothing changes", _agent_check(
    lambda r, t: not r.logged_out, "another caller's grant must keep the token logged in"))


def _stream_digest(t: AgentTargets, pin: str | None) -> list[Message]:
    return [agent_pb2.SignDigestStreamRequest(token=_sel(t), key_id=t.key_id, credential=_cred(pin),
                                              digests=[_digest()], request_id=7)]


def _sign_pdf(t: AgentTargets, pin: str | None) -> list[Message]:
    return [agent_pb2.SignPdfRequest(header=agent_pb2.SignPdfHeader(
        token=_sel(t), key_id=t.key_id, credential=_cred(pin), file_name="matrix.pdf", document=t.pdf,
        inline_result=True))]


def _sign_detached(t: AgentTargets, pin: str | None) -> list[Message]:
    return [agent_pb2.SignDetachedRequest(header=agent_pb2.SignDetachedHeader(
        token=_sel(t), key_id=t.key_id, credential=_cred(pin), file_name="matrix.txt", document=t.data,
        inline_result=True))]


def _verify_pdf(t: AgentTargets, pin: str | None) -> list[Message]:
    return [agent_pb2.VerifyPdfRequest(header=agent_pb2.VerifyPdfHeader(
        size=len(t.signed_pdf), trust_roots_der=[t.root_der], offline=True)),
            agent_pb2.VerifyPdfRequest(chunk=t.signed_pdf)]


def _verify_detached(t: AgentTargets, pin: str | None) -> list[Message]:
    return [agent_pb2.VerifyDetachedRequest(header=agent_pb2.VerifyDetachedHeader(
        size=len(t.data), signature_der=t.p7s, trust_roots_der=[t.root_der], offline=True)),
            agent_pb2.VerifyDetachedRequest(chunk=t.data)]


def _pin_reset(t: AgentTargets, pin: str | None) -> Message:
    return agent_pb2.PinResetRequest(token=_sel(t), pin=pin) if pin else agent_pb2.PinResetRequest(token=_sel(t))


AGENT_CASES: dict[str, AgentCase] = {
    "AgentService.GetInfo": AgentCase(
        lambda t, pin: agent_pb2.GetInfoRequest(),
        local_with_pin=GET_INFO, local_without_login=GET_INFO, caller_not_in_policy=GET_INFO,
        other_callers_grant=GET_INFO),
    "AgentService.ListTokens": AgentCase(
        lambda t, pin: agent_pb2.ListTokensRequest(),
        local_with_pin=LIST_TOKENS, local_without_login=LIST_TOKENS, caller_not_in_policy=LIST_TOKENS_NO_GRANT,
        other_callers_grant=LIST_TOKENS_NO_GRANT),
    "AgentService.WatchTokens": AgentCase(
        lambda t, pin: agent_pb2.WatchTokensRequest(),
        local_with_pin=WATCH, local_without_login=WATCH, caller_not_in_policy=WATCH, other_callers_grant=WATCH,
        open_ended=True),
    "AgentService.ListKeys": AgentCase(
        lambda t, pin: agent_pb2.ListKeysRequest(token=_sel(t), credential=_cred(pin)),
        local_with_pin=Allowed("private keys are listed to a caller that logs the token in", _agent_check(
            lambda r, t: t.key_id in [k.key_id for k in r.keys], "the signing key must be listed")),
        local_without_login=LOGIN_REQUIRED, caller_not_in_policy=NOT_ALLOWED, other_callers_grant=LOGIN_REQUIRED),
    "AgentService.GenerateKey": AgentCase(
        lambda t, pin: agent_pb2.GenerateKeyRequest(token=_sel(t), algorithm=common_pb2.KEY_ALGORITHM_EC_P256,
                                                    label=f"matrix-{t.fresh()}", credential=_cred(pin)),
        local_with_pin=Allowed("admin caller with the PIN"), local_without_login=LOGIN_REQUIRED,
        caller_not_in_policy=NOT_ALLOWED, other_callers_grant=LOGIN_REQUIRED),
    "AgentService.CreateCertificateRequest": AgentCase(
        lambda t, pin: agent_pb2.CreateCertificateRequestRequest(
            token=_sel(t), key_id=t.key_id, subject={"common_name": "Matrix"}, credential=_cred(pin)),
        local_with_pin=Allowed("admin caller with the PIN", _agent_check(
            lambda r, t: len(r.csr_der) > 0, "a PKCS#10 request must come back")),
        local_without_login=LOGIN_REQUIRED, caller_not_in_policy=NOT_ALLOWED, other_callers_grant=LOGIN_REQUIRED),
    "AgentService.ImportCertificate": AgentCase(
        lambda t, pin: agent_pb2.ImportCertificateRequest(
            token=_sel(t), key_id=t.key_id, certificate_der=t.certificate_der, chain_der=[t.root_der],
            credential=_cred(pin)),
        local_with_pin=Allowed("admin caller with the PIN (the key's own certificate again)"),
        local_without_login=LOGIN_REQUIRED, caller_not_in_policy=NOT_ALLOWED, other_callers_grant=LOGIN_REQUIRED),
    "AgentService.DeleteKey": AgentCase(
        lambda t, pin: agent_pb2.DeleteKeyRequest(token=_sel(t), key_id=t.victim_key_id, credential=_cred(pin)),
        local_with_pin=Allowed("admin caller with the PIN"), local_without_login=LOGIN_REQUIRED,
        caller_not_in_policy=NOT_ALLOWED, other_callers_grant=LOGIN_REQUIRED),
    "AgentService.Unlock": AgentCase(
        lambda t, pin: agent_pb2.UnlockRequest(token=_sel(t), pin=pin or "", max_signatures=1),
        local_with_pin=Allowed("a caller the policy names may unlock with the PIN", _agent_check(
            lambda r, t: bool(r.grant) and r.token_serial == t.serial, "a grant handle must come back")),
        local_without_login=EMPTY_PIN, caller_not_in_policy=NOT_ALLOWED, other_callers_grant=EMPTY_PIN),
    "AgentService.Lock": AgentCase(
        lambda t, pin: agent_pb2.LockRequest(token=_sel(t)),
        local_with_pin=Allowed("Lock ends the caller's own grants"),
        local_without_login=Allowed("Lock ends the caller's own grants (needs no login)"),
        caller_not_in_policy=Allowed("Lock ends only the caller's own grants: a caller without any changes nothing"),
        other_callers_grant=LOCK_OWN),
    "AgentService.PinReset": AgentCase(
        _pin_reset,
        local_with_pin=Allowed("admin caller proving the PIN", _agent_check(
            lambda r, t: r.token_serial == t.serial, "PinReset must name the token")),
        local_without_login=NO_PROOF, caller_not_in_policy=NOT_ALLOWED, other_callers_grant=NO_PROOF),
    "AgentService.SignDigest": AgentCase(
        lambda t, pin: agent_pb2.SignDigestRequest(token=_sel(t), key_id=t.key_id, digest=_digest(),
                                                   credential=_cred(pin)),
        local_with_pin=Allowed("named by the key's rule, digests allowed, PIN given", _agent_check(
            lambda r, t: len(r.signature) > 0, "a signature must come back")),
        local_without_login=LOGIN_REQUIRED, caller_not_in_policy=NOT_ALLOWED, other_callers_grant=LOGIN_REQUIRED),
    "AgentService.SignDigestStream": AgentCase(
        _stream_digest,
        local_with_pin=Allowed("named by the key's rule, digests allowed, PIN given", _agent_check(
            lambda r, t: len(r) == 1 and r[0].request_id == 7 and len(r[0].signatures) == 1,
            "one batch of one signature must come back")),
        local_without_login=LOGIN_REQUIRED, caller_not_in_policy=NOT_ALLOWED, other_callers_grant=LOGIN_REQUIRED),
    "AgentService.SignPdf": AgentCase(
        _sign_pdf,
        local_with_pin=Allowed("named by the key's rule, PIN given", _agent_check(_signed, "a signed PDF inline")),
        local_without_login=LOGIN_REQUIRED, caller_not_in_policy=NOT_ALLOWED, other_callers_grant=LOGIN_REQUIRED),
    "AgentService.SignDetached": AgentCase(
        _sign_detached,
        local_with_pin=Allowed("named by the key's rule, PIN given", _agent_check(_signed, "a .p7s inline")),
        local_without_login=LOGIN_REQUIRED, caller_not_in_policy=NOT_ALLOWED, other_callers_grant=LOGIN_REQUIRED),
    "AgentService.VerifyPdf": AgentCase(
        _verify_pdf, local_with_pin=VERIFY, local_without_login=VERIFY, caller_not_in_policy=VERIFY,
        other_callers_grant=VERIFY),
    "AgentService.VerifyDetached": AgentCase(
        _verify_detached, local_with_pin=VERIFY, local_without_login=VERIFY, caller_not_in_policy=VERIFY,
        other_callers_grant=VERIFY),
}


def case_for(table: Mapping[str, Any], rpc: str) -> Any:
    """The table entry of ``rpc``; a clear failure for an RPC the proto gained without a matrix entry."""
    try:
        return table[rpc]
    except KeyError:
        raise AssertionError(f"{rpc} has no authorisation matrix entry: add a request builder and the outcome of every "
                             "principal to tests/e2e/authz_cases.py") from None
