"""AuditService's proofs, checked as a relying party would: tree heads signed by the audit key on a real SoftHSM
token (``pki``) verified with the audit certificate the service returns, inclusion and consistency proofs verified
with :mod:`signet.merkle` against those heads; and the refusals (a person, another organisation's operator, a leaf
about no envelope, sizes out of range).  The domain calls go through :class:`server.audit.service.AuditQueries`,
the status codes through the servicer with an in-process context."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from server.api.audit import AuditServicer
from server.audit import AuditLog
from server.audit.service import AuditQueries
from server.ca import Role as KeyRole
from server.clock import ManualClock, to_text
from server.envelopes import schema
from server.errors import InvalidArgument, NotFound, PermissionDenied
from server.identity import Principal, Role
from server.store import Store, open_store
from signet import merkle
from signet.auditformat import head_message, parse_time
from signet.v1 import server_pb2 as pb
from tests.fuzz.fakes import Aborted, FakeContext

T0 = datetime(2030, 3, 4, 5, 6, 7, tzinfo=UTC)
OURS, THEIRS = "env_ours", "env_theirs"
OP_A = Principal("org-a", "alice-op", Role.OPERATOR)
OP_B = Principal("org-b", "bob-op", Role.OPERATOR)
AGENT_A = Principal("org-a", "p-dave", Role.AGENT)
MEMBER_A = Principal("org-a", "p-dave", Role.MEMBER)


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = open_store(str(tmp_path / "audit.sqlite"))
    AuditLog(s)  # the audit tables
    s.migrate("envelopes", schema.MIGRATIONS)
    for envelope_id, org in ((OURS, "org-a"), (THEIRS, "org-b")):
        s.insert("envelopes", {"id": envelope_id, "org_id": org, "sender_person_id": "p-sender",
                               "sender_name": "Sender", "title": "Lease", "message": "", "tags": "[]",
                               "state": "sent", "expires_in_days": 30, "created_at": to_text(T0), "version": 1})
    yield s
    s.close()


def _fill(log: AuditLog, n: int, start: int = 0) -> None:
    """Leaves about our envelope, theirs, and no envelope at all (an archive operation), interleaved."""
    subjects = (OURS, THEIRS, "archive")
    for i in range(start, start + n):
        log.append("envelope.created" if i < 2 else "envelope.viewed", subjects[i % 3], {"event_id": i},
                   T0 + timedelta(milliseconds=i))


def _verify_head(head: Any, certificate_der: bytes) -> None:
    """The head's signature, checked with the audit certificate alone (as a relying party with ``cryptography``)."""
    key = x509.load_der_x509_certificate(certificate_der).public_key()
    algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[head.hash_name]
    message = head_message(head.tree_size, int(parse_time(head.timestamp).timestamp() * 1000), head.root_hash)
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(head.signature, message, ec.ECDSA(algorithm))
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(head.signature, message, padding.PKCS1v15(), algorithm)


def test_heads_and_proofs_verify(pki: Any, store: Store) -> None:
    log = AuditLog(store, migrate=False)
    clock = ManualClock(T0 + timedelta(seconds=1))
    q = AuditQueries(store, pki.keys, clock)
    _fill(log, 7)

    first = q.tree_head(OP_B)  # any operator: hashes only; the log had no head: signed now
    assert first.head.tree_size == 7 and log.head() == first.head
    assert first.certificate_der == pki.keys.certificate_der(KeyRole.AUDIT)
    assert first.chain_der == pki.keys.chain_der(KeyRole.AUDIT)
    _verify_head(first.head, first.certificate_der)
    assert x509.load_der_x509_certificate(first.chain_der[0]).subject == \
        x509.load_der_x509_certificate(first.certificate_der).issuer
    assert q.tree_head(OP_A).head == first.head  # not grown: the same head, nothing signed
    assert q.tree_head(OP_A, 7).head == first.head

    clock.advance(1)
    _fill(log, 6, start=7)
    second = q.tree_head(OP_A)
    assert second.head.tree_size == 13 and second.head.timestamp > first.head.timestamp
    _verify_head(second.head, second.certificate_der)

    # inclusion: leaf 3 (ours) in the newest head's tree and in the first head's
    for size, head in ((0, second.head), (7, first.head)):
        inc = q.inclusion(OP_A, 3, size)
        assert inc.tree_size == head.tree_size and inc.head == head
        assert inc.leaf.seq == 3 and inc.leaf.subject == OURS and inc.leaf.kind == "envelope.viewed"
        assert merkle.leaf_hash(log_leaf_bytes(inc.leaf)) == inc.leaf.leaf_hash
        merkle.verify_inclusion(inc.leaf.leaf_hash, 3, inc.tree_size, inc.proof, head.root_hash)
    unsigned = q.inclusion(OP_A, 3, 10)  # a size no head was signed at: a proof, no head
    assert unsigned.head is None and unsigned.tree_size == 10
    merkle.verify_inclusion(unsigned.leaf.leaf_hash, 3, 10, unsigned.proof, log.root(10))

    # consistency: the first head's tree is a prefix of the newest's
    cons = q.consistency(OP_B, 7)
    assert (cons.old_size, cons.new_size, cons.old_head, cons.new_head) == (7, 13, first.head, second.head)
    merkle.verify_consistency(7, 13, first.head.root_hash, second.head.root_hash, cons.proof)
    with pytest.raises(merkle.ProofMismatch):
        merkle.verify_consistency(7, 13, first.head.root_hash, first.head.root_hash, cons.proof)
    empty = q.consistency(OP_A, 0, 13)
    assert empty.proof == [] and empty.old_head is None and empty.new_head == second.head

    # every leaf of our envelope, each with its proof to the newest head; then to the first head's size
    listed = q.envelope_leaves(OP_A, OURS)
    assert listed.tree_size == 13 and listed.head == second.head
    assert [x.seq for x, _ in listed.leaves] == [0, 3, 6, 9, 12]
    assert listed.leaves[0][0].kind == "envelope.created"
    for leaf, proof in listed.leaves:
        assert leaf.subject == OURS
        merkle.verify_inclusion(leaf.leaf_hash, leaf.seq, 13, proof, second.head.root_hash)
    older = q.envelope_leaves(OP_A, OURS, 7)
    assert [x.seq for x, _ in older.leaves] == [0, 3, 6] and older.head == first.head
    for leaf, proof in older.leaves:
        merkle.verify_inclusion(leaf.leaf_hash, leaf.seq, 7, proof, first.head.root_hash)
    assert [x.seq for x, _ in q.envelope_leaves(OP_B, THEIRS).leaves] == [1, 4, 7, 10]


def log_leaf_bytes(leaf: Any) -> bytes:
    """The bytes a leaf's hash is over, from the fields the service returned."""
    import json

    from signet.auditformat import leaf_bytes

    return leaf_bytes(leaf.seq, leaf.time, leaf.kind, leaf.subject, json.loads(leaf.payload_json))


def test_refusals(pki: Any, store: Store) -> None:
    log = AuditLog(store, migrate=False)
    q = AuditQueries(store, pki.keys, ManualClock(T0 + timedelta(seconds=1)))
    _fill(log, 6)
    asks: list[Callable[[Principal], object]] = [q.tree_head, lambda p: q.consistency(p, 0),
                                                 lambda p: q.inclusion(p, 0), lambda p: q.envelope_leaves(p, OURS)]
    for person in (AGENT_A, MEMBER_A):
        for ask in asks:
            with pytest.raises(PermissionDenied, match="only an operator"):
                ask(person)
    assert log.head() is None  # a refused caller signs nothing

    # another organisation's leaf or envelope, a leaf about no envelope, a seq or id that does not exist: alike
    for principal, seq in ((OP_B, 0), (OP_A, 1), (OP_A, 2), (OP_B, 2), (OP_A, 6), (OP_A, 2**64 - 1)):
        with pytest.raises(NotFound) as e:
            q.inclusion(principal, seq)
        assert e.value.message == f"no audit leaf {seq}"
    for principal, envelope_id in ((OP_B, OURS), (OP_A, THEIRS), (OP_A, "archive"), (OP_A, "env_none"),
                                   (OP_A, "")):
        with pytest.raises(NotFound) as e:
            q.envelope_leaves(principal, envelope_id, 2**64 - 1)  # checked before the size
        assert e.value.reason == "ENVELOPE_NOT_FOUND"
    with pytest.raises(NotFound):
        q.tree_head(OP_A, 3)  # no head signed at that size
    with pytest.raises(NotFound):
        q.tree_head(OP_A, 2**64 - 1)

    # sizes out of range
    out_of_range: list[Callable[[], object]] = [
        lambda: q.inclusion(OP_A, 3, 3), lambda: q.inclusion(OP_A, 3, 7), lambda: q.consistency(OP_A, 5, 4),
        lambda: q.consistency(OP_A, 0, 7), lambda: q.consistency(OP_A, 2**64 - 1, 6),
        lambda: q.envelope_leaves(OP_A, OURS, 7)]
    for call in out_of_range:
        with pytest.raises(InvalidArgument):
            call()


class _Auth:
    def __init__(self, principal: Principal) -> None:
        self.who = principal

    def principal(self, context: Any, rpc: str = "", request: object = None) -> Principal:
        return self.who


def _call(servicer: AuditServicer, method: str, request: Any) -> Any:
    ctx = FakeContext()
    try:
        return getattr(servicer, method)(request, ctx)
    except Aborted as e:
        return e.code


def test_servicer_statuses(pki: Any, store: Store) -> None:
    log = AuditLog(store, migrate=False)
    q = AuditQueries(store, pki.keys, ManualClock(T0 + timedelta(seconds=1)))
    _fill(log, 5)
    op_a, op_b = AuditServicer(q, _Auth(OP_A)), AuditServicer(q, _Auth(OP_B))  # type: ignore[arg-type]
    agent = AuditServicer(q, _Auth(AGENT_A))  # type: ignore[arg-type]

    got = _call(op_b, "GetTreeHead", pb.GetTreeHeadRequest())
    assert got.head.tree_size == 5 and list(got.chain_der) == list(pki.keys.chain_der(KeyRole.AUDIT))
    _verify_head(got.head, got.audit_certificate_der)
    leaves = _call(op_a, "ListEnvelopeLeaves", pb.ListEnvelopeLeavesRequest(envelope_id=OURS))
    assert [x.leaf.seq for x in leaves.leaves] == [0, 3] and leaves.head == got.head
    for x in leaves.leaves:
        merkle.verify_inclusion(x.leaf.leaf_hash, x.leaf.seq, 5, list(x.proof), got.head.root_hash)
    inc = _call(op_a, "GetInclusionProof", pb.GetInclusionProofRequest(seq=3))
    assert inc.leaf == leaves.leaves[1].leaf and list(inc.proof) == list(leaves.leaves[1].proof)
    assert _call(op_b, "GetConsistencyProof", pb.GetConsistencyProofRequest(old_size=2)).new_size == 5

    C = grpc.StatusCode
    assert _call(agent, "GetTreeHead", pb.GetTreeHeadRequest()) == C.PERMISSION_DENIED
    assert _call(agent, "ListEnvelopeLeaves", pb.ListEnvelopeLeavesRequest(envelope_id=OURS)) == C.PERMISSION_DENIED
    assert _call(op_b, "ListEnvelopeLeaves", pb.ListEnvelopeLeavesRequest(envelope_id=OURS)) == C.NOT_FOUND
    assert _call(op_b, "GetInclusionProof", pb.GetInclusionProofRequest(seq=3)) == C.NOT_FOUND
    assert _call(op_a, "GetInclusionProof", pb.GetInclusionProofRequest(seq=3, tree_size=9)) == C.INVALID_ARGUMENT
    assert _call(op_a, "GetConsistencyProof",
                 pb.GetConsistencyProofRequest(old_size=4, new_size=3)) == C.INVALID_ARGUMENT
    assert _call(op_a, "GetTreeHead", pb.GetTreeHeadRequest(tree_size=4)) == C.NOT_FOUND
