"""IdentityService on a real SQLite file: registration, duplicates, phone codes, approval, evidence, access."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from server.clock import ManualClock
from server.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
)
from server.identity import EvidenceChainBroken, IdentityService, Principal, Role, Status
from server.notify import OutboxChannel
from server.sealing import AesGcmBox, SealingError
from server.store import Store
from tests.conftest import reopen, store_for_test
from tests.server_helpers import db_bytes

DOC = "11010519491231002X"
DOC2 = "440524188001010014"


@dataclass
class World:
    svc: IdentityService
    store: Store
    outbox: OutboxChannel
    clock: ManualClock
    db: Path
    op: Principal
    other_op: Principal
    reviewer: Principal  # a second operator of the first organisation: four eyes, the one who approves


@pytest.fixture
def w(tmp_path: Path) -> World:
    db = tmp_path / "server.db"
    store = store_for_test(tmp_path, "server.db")
    clock = ManualClock()
    box = AesGcmBox.generate()
    outbox = OutboxChannel(store, box, clock)
    svc = IdentityService(store, box, b"h" * 32, outbox, clock)
    acme = svc.create_organisation("Acme Ltd")
    other = svc.create_organisation("Other Co")
    return World(svc, store, outbox, clock, db, Principal(acme.id, "alice-op", Role.OPERATOR),
                 Principal(other.id, "mallory-op", Role.OPERATOR), Principal(acme.id, "carol-op", Role.OPERATOR))


def register(w: World, doc: str = DOC, phone: str = "+8613800138000", principal: Principal | None = None,
             name: str = "张三"):
    return w.svc.register_person(principal or w.op, legal_name=name, document_type="prc_resident_id",
                                 document_number=doc, phone=phone, email="zhang@example.com")


def latest_code(w: World, phone: str) -> str:
    entry = w.outbox.list(to=phone)[0]
    m = re.search(r"\b(\d{6})\b", w.outbox.read(entry.id).body)
    assert m is not None
    return m.group(1)


def verify_phone(w: World, person_id: str, principal: Principal | None = None) -> str:
    p = principal or w.op
    challenge = w.svc.start_phone_verification(p, person_id)
    code = latest_code(w, w.svc.get_person(p, person_id).phone)
    w.svc.confirm_phone(p, person_id, code)
    return challenge.code_id


def test_register_normalises_and_reveals(w: World) -> None:
    person = w.svc.register_person(w.op, legal_name=" 张  三 ", document_type="prc_resident_id",
                                   document_number="110105 19491231 002x", phone="+86 138 0013 8000",
                                   email="Zhang@Example.com")
    assert (person.legal_name, person.phone, person.email, person.status) == \
        ("张 三", "+8613800138000", "Zhang@example.com", Status.PENDING)
    assert person.org_id == w.op.org_id and not person.phone_verified
    assert w.svc.reveal_document(w.op, person.id).number == DOC
    assert w.svc.find_by_document(w.op, "prc_resident_id", DOC.lower()).id == person.id
    with pytest.raises(NotFound):
        w.svc.find_by_document(w.other_op, "prc_resident_id", DOC)


def test_invalid_document_refused_without_echo(w: World) -> None:
    with pytest.raises(InvalidArgument) as info:
        register(w, doc="110105194912310021")
    assert info.value.reason == "DOCUMENT_INVALID" and "110105194912310021" not in str(info.value)
    with pytest.raises(InvalidArgument):
        register(w, phone="13800138000")
    assert w.svc.list_people(w.op) == []


def test_duplicate_document_in_same_org_refused(w: World) -> None:
    register(w)
    with pytest.raises(AlreadyExists) as info:
        register(w, doc=" 110105-19491231-002x".replace("-", " "), phone="+8613900139000", name="Someone Else")
    assert info.value.reason == "DUPLICATE_DOCUMENT" and DOC not in str(info.value)
    assert len(w.svc.list_people(w.op)) == 1
    register(w, principal=w.other_op)  # the same person may be registered by another organisation
    register(w, doc=DOC2)


def test_document_number_is_not_stored_or_logged_in_clear(w: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    person = register(w)
    verify_phone(w, person.id)
    w.svc.approve(w.reviewer, person.id, evidence="passport copy checked at front desk", reference="ticket-7")
    w.svc.reveal_document(w.op, person.id)
    data = db_bytes(w.store)
    assert b"zhang@example.com" in data  # control: the person's row is in these bytes
    for form in (DOC, DOC.lower(), DOC[:17], DOC.encode("utf-16-le").decode("latin-1")):
        assert form.encode("latin-1") not in data
    assert DOC not in caplog.text and DOC[:17] not in caplog.text
    for record in w.svc.evidence(w.op, person.id):
        assert DOC not in repr(record)


def test_sealed_document_is_bound_to_its_row(w: World) -> None:
    a, b = register(w), register(w, doc=DOC2, phone="+8613900139000")
    sealed_a = w.store.query_one("SELECT doc_sealed FROM identity_people WHERE id = ?", (a.id,))
    assert sealed_a is not None
    w.store.execute("UPDATE identity_people SET doc_sealed = ? WHERE id = ?", (sealed_a["doc_sealed"], b.id))
    with pytest.raises(SealingError):
        w.svc.reveal_document(w.op, b.id)


def test_full_flow_with_evidence_chain(w: World) -> None:
    person = register(w)
    t_registered = w.clock.now()
    w.clock.advance(10)
    challenge = w.svc.start_phone_verification(w.op, person.id)
    assert challenge.expires_at == w.clock.now() + timedelta(minutes=5)
    entry = w.outbox.list(to="+8613800138000")[0]
    assert entry.topic == "otp.phone-verification" and entry.read_at is None
    code = latest_code(w, "+8613800138000")
    w.clock.advance(30)
    with pytest.raises(FailedPrecondition, match="phone must be verified"):
        w.svc.approve(w.reviewer, person.id, evidence="documents seen")
    verified = w.svc.confirm_phone(w.op, person.id, code)
    assert verified.phone_verified_at == w.clock.now()
    t_verified = w.clock.now()
    w.clock.advance(60)
    approved = w.svc.approve(w.reviewer, person.id, evidence="ID card inspected in person", reference="desk-42")
    assert approved.status is Status.APPROVED and approved.decided_at == w.clock.now()
    with pytest.raises(FailedPrecondition):
        w.svc.approve(w.reviewer, person.id, evidence="again")
    with pytest.raises(FailedPrecondition):
        w.svc.reject(w.op, person.id, reason="changed my mind")

    chain = w.svc.evidence(w.op, person.id)
    assert [r.kind for r in chain] == ["registered", "phone_code_sent", "phone_verified", "approved"]
    assert [r.seq for r in chain] == [1, 2, 3, 4]
    assert chain[0].at == t_registered and chain[0].actor == "operator:alice-op"
    assert chain[1].reference == challenge.code_id and chain[1].provider == "outbox"
    assert chain[2].at == t_verified and chain[2].detail["code_id"] == challenge.code_id
    assert chain[2].detail["phone"] == "+8613800138000"
    assert chain[3].actor == "operator:carol-op" and chain[3].provider == "operator"
    assert chain[3].reference == "desk-42" and chain[3].detail["evidence"] == "ID card inspected in person"
    assert chain[3].detail["phone_verified_code_id"] == challenge.code_id
    assert len({r.digest for r in chain}) == 4
    assert code not in repr(chain)


def test_every_evidence_record_is_an_audit_leaf_without_personal_data(w: World) -> None:
    """Each record is a leaf ``identity.<kind>`` about the person, whose payload commits to the record by its chain
    digest and holds no name, phone, e-mail, document number or detail."""
    import json

    person = register(w)
    verify_phone(w, person.id)
    w.svc.approve(w.reviewer, person.id, evidence="ID card of 张三 inspected in person", reference="desk-42")
    theirs = register(w, DOC2, "+8613800138001", principal=w.other_op, name="李四")
    chain = w.svc.evidence(w.op, person.id)
    leaves = w.store.query("SELECT * FROM audit_leaves ORDER BY seq")
    ours = [r for r in leaves if r["subject"] == person.id]
    assert [r["kind"] for r in ours] == [f"identity.{r.kind}" for r in chain] == [
        "identity.registered", "identity.phone_code_sent", "identity.phone_verified", "identity.approved"]
    for row, rec in zip(ours, chain, strict=True):
        assert json.loads(row["payload"]) == {"org_id": w.op.org_id, "seq": rec.seq, "actor": rec.actor,
                                              "chain_digest": rec.digest}
    assert [(r["kind"], json.loads(r["payload"])["org_id"]) for r in leaves if r["subject"] == theirs.id] == [
        ("identity.registered", w.other_op.org_id)]
    assert [int(r["seq"]) for r in leaves] == list(range(len(leaves)))
    text = json.dumps([dict(r) for r in leaves], ensure_ascii=False)
    for personal in ("张三", "李四", DOC, DOC2, "13800138000", "13800138001", "zhang@example.com", "desk-42",
                     "inspected"):
        assert personal not in text


def test_wrong_and_replayed_phone_codes(w: World) -> None:
    person = register(w)
    w.svc.start_phone_verification(w.op, person.id)
    code = latest_code(w, person.phone)
    with pytest.raises(Unauthenticated) as info:
        w.svc.confirm_phone(w.op, person.id, f"{(int(code) + 1) % 10**6:06d}")
    assert info.value.reason == "OTP_INCORRECT"
    w.svc.confirm_phone(w.op, person.id, code)
    with pytest.raises(FailedPrecondition):
        w.svc.confirm_phone(w.op, person.id, code)
    with pytest.raises(Unauthenticated) as info:  # the code itself is spent too
        w.svc.codes.verify("phone-verification", f"{person.id}|{person.phone}", code)
    assert info.value.reason == "OTP_USED"


def test_expired_code_and_resend_rate_limit(w: World) -> None:
    person = register(w)
    w.svc.start_phone_verification(w.op, person.id)
    code = latest_code(w, person.phone)
    with pytest.raises(RateLimited):
        w.svc.start_phone_verification(w.op, person.id)
    w.clock.advance(5 * 60)
    with pytest.raises(Unauthenticated) as info:
        w.svc.confirm_phone(w.op, person.id, code)
    assert info.value.reason == "OTP_EXPIRED"
    w.svc.start_phone_verification(w.op, person.id)
    w.svc.confirm_phone(w.op, person.id, latest_code(w, person.phone))


def test_reject_then_approve_with_new_evidence(w: World) -> None:
    person = register(w)
    verify_phone(w, person.id)
    assert w.svc.reject(w.op, person.id, reason="photo unreadable").status is Status.REJECTED
    assert w.svc.list_people(w.op, Status.REJECTED)[0].id == person.id
    with pytest.raises(InvalidArgument):
        w.svc.approve(w.reviewer, person.id, evidence="  ")
    with pytest.raises(InvalidArgument) as info:
        w.svc.approve(w.reviewer, person.id, evidence=f"checked card {DOC.lower()} again")
    assert info.value.reason == "EVIDENCE_HAS_DOCUMENT_NUMBER" and DOC not in str(info.value)
    assert w.svc.approve(w.reviewer, person.id, evidence="new photo").status is Status.APPROVED
    kinds = [r.kind for r in w.svc.evidence(w.op, person.id)]
    assert kinds[-2:] == ["rejected", "approved"]


def test_evidence_tampering_is_detected(w: World) -> None:
    person = register(w)
    verify_phone(w, person.id)
    w.svc.approve(w.reviewer, person.id, evidence="seen", reference="r1")
    w.store.execute("UPDATE identity_evidence SET actor = 'operator:someone-else' WHERE person_id = ? AND seq = 4",
                    (person.id,))
    with pytest.raises(EvidenceChainBroken):
        w.svc.evidence(w.op, person.id)

    other = register(w, doc=DOC2, phone="+8613900139000")
    verify_phone(w, other.id)
    w.store.execute("DELETE FROM identity_evidence WHERE person_id = ? AND seq = 3", (other.id,))
    w.store.execute("UPDATE identity_evidence SET seq = 3 WHERE person_id = ? AND seq = 4", (other.id,))
    with pytest.raises(EvidenceChainBroken):
        w.svc.evidence(w.op, other.id)


def test_truncated_evidence_is_detected(w: World) -> None:
    person = register(w)
    verify_phone(w, person.id)
    assert len(w.svc.evidence(w.op, person.id)) == 3
    w.store.execute("DELETE FROM identity_evidence WHERE person_id = ? AND seq = 3", (person.id,))
    with pytest.raises(EvidenceChainBroken, match="missing"):
        w.svc.evidence(w.op, person.id)


def test_other_organisation_sees_nothing(w: World) -> None:
    person = register(w)
    verify_phone(w, person.id)
    mallory = w.other_op
    missing_id = "p_" + "0" * 24
    with pytest.raises(NotFound) as real:
        w.svc.get_person(mallory, person.id)
    with pytest.raises(NotFound) as fake:
        w.svc.get_person(mallory, missing_id)
    assert str(real.value).replace(person.id, "ID") == str(fake.value).replace(missing_id, "ID")
    calls = [
        lambda: w.svc.reveal_document(mallory, person.id),
        lambda: w.svc.start_phone_verification(mallory, person.id),
        lambda: w.svc.confirm_phone(mallory, person.id, "123456"),
        lambda: w.svc.approve(mallory, person.id, evidence="x"),
        lambda: w.svc.reject(mallory, person.id, reason="x"),
        lambda: w.svc.evidence(mallory, person.id),
        lambda: w.svc.find_by_document(mallory, "prc_resident_id", DOC),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    assert w.svc.list_people(mallory) == []
    # a member of the other organisation claiming the person's id as subject gets nowhere either
    impostor = Principal(mallory.org_id, person.id, Role.MEMBER)
    with pytest.raises(NotFound):
        w.svc.get_person(impostor, person.id)
    assert w.svc.get_person(w.op, person.id).status is Status.PENDING


def test_members_and_agents_act_only_for_themselves(w: World) -> None:
    zhang = register(w)
    li = register(w, doc=DOC2, phone="+8613900139000", name="李四")
    me = Principal(w.op.org_id, zhang.id, Role.MEMBER)
    agent = Principal(w.op.org_id, zhang.id, Role.AGENT)
    assert w.svc.get_person(me, zhang.id).id == zhang.id
    assert [p.id for p in w.svc.list_people(me)] == [zhang.id]
    assert w.svc.reveal_document(agent, zhang.id).number == DOC
    with pytest.raises(PermissionDenied):
        w.svc.get_person(me, li.id)
    with pytest.raises(PermissionDenied):
        w.svc.start_phone_verification(agent, li.id)
    with pytest.raises(PermissionDenied):
        register(w, doc="11010520000101" + "0017", principal=me)
    verify_phone(w, zhang.id, principal=agent)  # the agent may prove its own person's phone
    chain = w.svc.evidence(me, zhang.id)
    assert chain[-1].kind == "phone_verified" and chain[-1].actor == f"agent:{zhang.id}"
    for deny in (lambda: w.svc.approve(me, zhang.id, evidence="self"),
                 lambda: w.svc.reject(agent, zhang.id, reason="x"),
                 lambda: w.svc.find_by_document(me, "prc_resident_id", DOC)):
        with pytest.raises(PermissionDenied):
            deny()
    assert w.svc.get_person(w.op, zhang.id).status is Status.PENDING


def test_unknown_organisation_and_duplicate_names(w: World) -> None:
    ghost = Principal("org_missing", "op", Role.OPERATOR)
    with pytest.raises(NotFound):
        register(w, principal=ghost)
    with pytest.raises(AlreadyExists):
        w.svc.create_organisation("Acme  Ltd")
    with pytest.raises(ValueError):
        Principal(w.op.org_id, "x", "root")  # type: ignore[arg-type]


def test_state_survives_reopening(w: World) -> None:
    person = register(w)
    verify_phone(w, person.id)
    w.svc.approve(w.reviewer, person.id, evidence="seen")
    reopened = IdentityService(reopen(w.store), AesGcmBox.generate(), b"h" * 32, w.outbox, w.clock)
    assert reopened.get_person(w.op, person.id).status is Status.APPROVED
    assert reopened.find_by_document(w.op, "prc_resident_id", DOC).id == person.id  # same HMAC key
    assert len(reopened.evidence(w.op, person.id)) == 4
    with pytest.raises(SealingError):  # a different data key cannot open the stored number
        reopened.reveal_document(w.op, person.id)


def test_four_eyes_the_registering_operator_never_approves(w: World):
    from server.errors import PermissionDenied

    person = register(w)
    code = w.svc.start_phone_verification(w.op, person.id)
    w.svc.confirm_phone(w.op, person.id, latest_code(w, "+8613800138000"), code.code_id)
    with pytest.raises(PermissionDenied) as ei:
        w.svc.approve(w.op, person.id, evidence="I registered them myself")
    assert ei.value.reason == "FOUR_EYES"
    assert w.svc.get_person(w.op, person.id).status is Status.PENDING
    assert w.svc.approve(w.reviewer, person.id, evidence="ID card seen by a second operator").status is Status.APPROVED
    # the rule can be switched off for a one-person office, explicitly
    solo = IdentityService(w.store, AesGcmBox.generate(), b"h" * 32, w.outbox, w.clock, four_eyes=False)
    other = solo.register_person(w.op, legal_name="李四", document_type="prc_resident_id",
                                 document_number=DOC2, phone="+8613800138001", email="li@example.com")
    code = solo.start_phone_verification(w.op, other.id)
    solo.confirm_phone(w.op, other.id, latest_code(w, "+8613800138001"), code.code_id)
    assert solo.approve(w.op, other.id, evidence="one-person office").status is Status.APPROVED
