"""Identity, enrollment and certificate events in the audit log (issue 11): a person's registration, phone
verification, approval, an enrollment locked by wrong codes and unlocked, the certificate issued at enrollment and
its revocation each append a leaf, in the transaction of the change, carrying no personal data; the whole log then
verifies with heads signed by the audit key on a real SoftHSM token (``pki``), and AuditService shows those leaves
to an operator of the person's organisation only."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from server import audit
from server.audit import AuditError, AuditLog
from server.audit.service import AuditQueries
from server.ca import AlreadyRevoked, CertificateAuthority
from server.ca import Role as KeyRole
from server.ca import db as ca_db
from server.clock import ManualClock, to_text
from server.enrollment import Enrollment
from server.errors import FailedPrecondition, NotFound, Unauthenticated
from server.identity import IdentityService, Principal, Role
from server.identity import evidence as chain
from server.notify import OutboxChannel
from server.otp import OtpPolicy
from server.sealing import AesGcmBox
from server.store import Store, open_store
from signet import merkle

NAME, DOC, PHONE, EMAIL = "Zhang San 张三", "11010519491231002X", "+8613800138000", "zhang.san@example.com"
# what must never reach the log: the name (and its parts), the document number, the phone (with and without the
# country code) and the e-mail address
PERSONAL = (NAME, "Zhang", "张三", DOC, PHONE, PHONE.removeprefix("+86"), EMAIL, "zhang.san")


@dataclass
class World:
    store: Store
    clock: ManualClock
    outbox: OutboxChannel
    identity: IdentityService
    ca: CertificateAuthority
    enrollment: Enrollment
    op: Principal
    reviewer: Principal
    other_op: Principal


@pytest.fixture
def w(pki: Any, tmp_path: Path) -> Iterator[World]:
    store = open_store(str(tmp_path / "s.sqlite"))
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    box = AesGcmBox.generate()
    outbox = OutboxChannel(store, box, clock)
    identity = IdentityService(store, box, b"h" * 32, outbox, clock,
                               otp_policy=OtpPolicy(min_interval=timedelta(0), hourly_limit=10**6))
    ca = CertificateAuthority(pki.keys, store, clock, pki.urls)
    enrollment = Enrollment(identity, ca, pki.keys, store, clock, outbox, hmac_key=b"h" * 32, max_failures_per_day=2)
    acme, other = identity.create_organisation("Acme Ltd"), identity.create_organisation("Other Co")
    yield World(store, clock, outbox, identity, ca, enrollment, Principal(acme.id, "alice-op", Role.OPERATOR),
                Principal(acme.id, "carol-op", Role.OPERATOR), Principal(other.id, "mallory-op", Role.OPERATOR))
    store.close()


def _code(w: World, digits: int) -> str:
    [entry] = w.outbox.list(to=PHONE, unread_only=True)  # the one message not read yet: the code just sent
    m = re.search(rf"\b(\d{{{digits}}})\b", w.outbox.read(entry.id).body)
    assert m is not None
    return m.group(1)


def _approved_person(w: World, *, approve: bool = True) -> str:
    person = w.identity.register_person(w.op, legal_name=NAME, document_type="prc_resident_id",
                                        document_number=DOC, phone=PHONE, email=EMAIL)
    challenge = w.identity.start_phone_verification(w.op, person.id)
    w.identity.confirm_phone(w.op, person.id, _code(w, 6), challenge.code_id)
    if approve:
        w.identity.approve(w.reviewer, person.id, evidence=f"ID card of {NAME} inspected at the desk")
    return person.id


def _leaves(store: Store) -> list[dict[str, Any]]:
    return [dict(r) for r in store.query("SELECT * FROM audit_leaves ORDER BY seq")]


def _no_personal_data(store: Store) -> None:
    for row in _leaves(store):
        text = json.dumps(row, ensure_ascii=False, default=str)
        for value in PERSONAL:
            assert value not in text, f"leaf {row['seq']} ({row['kind']}) holds {value!r}: {text}"


def test_identity_enrollment_and_certificate_events_are_leaves_without_personal_data(pki: Any, new_key: Any,
                                                                                      w: World) -> None:
    pid = _approved_person(w)
    # two wrong enrollment codes lock enrollment; an operator unlocks it; the right code enrolls
    challenge = w.enrollment.start(pid)
    wrong = "1" * 8 if _code(w, 8) != "1" * 8 else "2" * 8
    _, csr = new_key()
    with pytest.raises(Unauthenticated):
        w.enrollment.enroll(pid, wrong, csr, code_id=challenge.code_id)
    with pytest.raises(FailedPrecondition, match="locked"):
        w.enrollment.enroll(pid, wrong, csr, code_id=challenge.code_id)
    w.enrollment.unlock(w.op, pid, "the person called back from the phone on file")
    challenge = w.enrollment.start(pid)
    enrolled = w.enrollment.enroll(pid, _code(w, 8), csr, code_id=challenge.code_id)
    serial = ca_db.serial_text(enrolled.serial)
    w.clock.advance(5)
    revoked = w.ca.revoke(enrolled.serial, "key_compromise")
    with pytest.raises(AlreadyRevoked):  # refused before anything is logged
        w.ca.revoke(enrolled.serial, "superseded")

    leaves = _leaves(w.store)
    assert [(r["kind"], r["subject"]) for r in leaves] == [
        ("identity.registered", pid), ("identity.phone_code_sent", pid), ("identity.phone_verified", pid),
        ("identity.approved", pid), ("identity.enrollment_code_sent", pid), ("identity.enrollment_locked", pid),
        ("identity.enrollment_unlocked", pid), ("identity.enrollment_code_sent", pid),
        ("certificate.issued", serial), ("identity.certificate_issued", pid), ("certificate.revoked", serial)]

    # an identity leaf commits to its evidence record through the chain digest, and says nothing else
    records = {r.seq: r for r in w.identity.evidence(w.op, pid)}
    identity_leaves = [r for r in leaves if r["kind"].startswith("identity.")]
    assert len(identity_leaves) == len(records)
    for row in identity_leaves:
        payload = json.loads(row["payload"])
        assert set(payload) == {"org_id", "seq", "actor", "chain_digest"}
        rec = records[payload["seq"]]
        assert row["kind"] == f"identity.{rec.kind}" and payload["org_id"] == w.op.org_id
        assert payload["chain_digest"] == rec.digest and payload["actor"] == rec.actor
    assert json.loads(leaves[5]["payload"])["actor"] == "server"
    assert json.loads(leaves[6]["payload"])["actor"] == "operator:alice-op"

    issued = json.loads(leaves[8]["payload"])
    cert = w.ca.status(enrolled.serial)
    assert cert is not None
    assert issued == {"issuer_key_hash": w.ca.issuer_key_hash, "key_hash": cert.key_hash,
                      "cert_sha256": hashlib.sha256(enrolled.certificate_der).hexdigest(),
                      "not_before": to_text(cert.not_before), "not_after": to_text(cert.not_after),
                      "policy_oids": list(w.ca.profile.policy_oids),
                      "document_signing": w.ca.profile.document_signing}
    assert revoked.revoked_at is not None
    assert json.loads(leaves[10]["payload"]) == {"issuer_key_hash": w.ca.issuer_key_hash, "reason": "key_compromise",
                                                 "revoked_at": to_text(revoked.revoked_at)}

    _no_personal_data(w.store)
    # the whole log verifies: every leaf, and a head signed by the audit key over all of them
    log = AuditLog(w.store, migrate=False)
    head = log.sign_head(pki.keys.signer(KeyRole.AUDIT), w.clock.now())
    assert head.tree_size == len(leaves)
    report = log.verify(pki.keys.certificate_der(KeyRole.AUDIT))
    assert report.ok and report.leaves == len(leaves) and report.latest == head

    # AuditService: an operator of the person's organisation gets these leaves (and their proofs) ...
    q = AuditQueries(w.store, pki.keys, w.clock)
    for seq in (0, 6, 8, 10):
        inc = q.inclusion(w.op, seq)
        assert inc.leaf.seq == seq and inc.head == head
        merkle.verify_inclusion(inc.leaf.leaf_hash, seq, inc.tree_size, inc.proof, head.root_hash)
        # ... another organisation's operator does not, exactly as for a seq that does not exist
        with pytest.raises(NotFound) as e:
            q.inclusion(w.other_op, seq)
        assert e.value.message == f"no audit leaf {seq}"


def test_an_evidence_record_and_its_leaf_commit_together(pki: Any, w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    pid = _approved_person(w, approve=False)
    before_chain, before_leaves = w.identity.evidence(w.op, pid), _leaves(w.store)

    def refuse(*args: Any, **kwargs: Any) -> int:
        raise AuditError("the audit log refuses")

    monkeypatch.setattr(audit, "append", refuse)
    with pytest.raises(AuditError):
        chain.append(w.store, person_id=pid, org_id=w.op.org_id, kind="note", at=w.clock.now(), actor="server")
    with pytest.raises(AuditError):
        w.identity.approve(w.reviewer, pid, evidence="ID card inspected at the desk")
    assert w.identity.evidence(w.op, pid) == before_chain and _leaves(w.store) == before_leaves
    assert w.identity.get_person(w.op, pid).status.value == "pending"  # the decision went with its leaf
    monkeypatch.undo()
    assert w.identity.approve(w.reviewer, pid, evidence="ID card inspected at the desk").status.value == "approved"
    assert [r["kind"] for r in _leaves(w.store)][len(before_leaves):] == ["identity.approved"]


def test_issuing_and_revoking_commit_with_their_leaves(pki: Any, new_key: Any, w: World,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from server.ca import SubjectIdentity, semantics_identifier

    subject = SubjectIdentity(NAME, semantics_identifier("id_card", "CN", DOC), "Acme Ltd", "CN", (EMAIL,))
    issued = w.ca.issue(new_key()[1], subject, "person-x")
    w.clock.advance(1)

    def refuse(*args: Any, **kwargs: Any) -> int:
        raise AuditError("the audit log refuses")

    with monkeypatch.context() as m:
        m.setattr(audit, "append", refuse)
        with pytest.raises(AuditError):
            w.ca.revoke(issued.serial, "superseded")
        rec = w.ca.status(issued.serial)
        assert rec is not None and not rec.revoked  # the revocation was rolled back with its leaf
        _, csr = new_key()
        with pytest.raises(AuditError):
            w.ca.issue(csr, subject, "person-x")
        assert [r.serial for r in w.ca.certificates_of("person-x")] == [issued.serial]
    w.ca.revoke(issued.serial, "superseded")
    assert [(r["kind"], r["subject"]) for r in _leaves(w.store)] == [
        ("certificate.issued", issued.serial_hex), ("certificate.revoked", issued.serial_hex)]
    _no_personal_data(w.store)
    # a certificate of no person of the store's organisations: no operator sees its leaves
    q = AuditQueries(w.store, pki.keys, w.clock)
    for principal in (w.op, w.other_op):
        with pytest.raises(NotFound):
            q.inclusion(principal, 1)
