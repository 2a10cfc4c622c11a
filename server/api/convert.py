"""Domain values -> generated protobuf messages (the generated types stop at this edge)."""

from __future__ import annotations

import json
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from signet.v1 import server_pb2 as pb

from ..ca import db
from ..identity import EvidenceRecord, Person, Status
from ..otp import Challenge

STATUS = {Status.PENDING: pb.PERSON_STATUS_PENDING, Status.APPROVED: pb.PERSON_STATUS_APPROVED,
          Status.REJECTED: pb.PERSON_STATUS_REJECTED}
STATUS_FROM_PB = {v: k for k, v in STATUS.items()}


def ts(when: datetime | None) -> Timestamp | None:
    if when is None:
        return None
    out = Timestamp()
    out.FromDatetime(when)
    return out


def person(p: Person) -> pb.Person:
    return pb.Person(id=p.id, organisation_id=p.org_id, legal_name=p.legal_name, document_type=p.document_type,
                     document_country=p.document_country, phone=p.phone, email=p.email, status=STATUS[p.status],
                     phone_verified_at=ts(p.phone_verified_at), decided_at=ts(p.decided_at),
                     created_at=ts(p.created_at))


def challenge(c: Challenge) -> pb.CodeChallenge:
    return pb.CodeChallenge(code_id=c.code_id, expires_at=ts(c.expires_at), channel=c.delivery.channel)


def evidence(r: EvidenceRecord) -> pb.EvidenceRecord:
    return pb.EvidenceRecord(seq=r.seq, kind=r.kind, at=ts(r.at), actor=r.actor, provider=r.provider,
                             reference=r.reference, detail_json=json.dumps(dict(r.detail), ensure_ascii=False,
                                                                          sort_keys=True), digest=r.digest)


def certificate(rec: db.CertRecord) -> pb.CertificateInfo:
    return pb.CertificateInfo(
        serial=db.serial_text(rec.serial), origin=rec.origin, subject=rec.subject, person_id=rec.person_id or "",
        state=pb.CERTIFICATE_STATE_REVOKED if rec.revoked else pb.CERTIFICATE_STATE_GOOD,
        revocation_reason=rec.revocation_reason or "", revoked_at=ts(rec.revoked_at),
        not_before=ts(rec.not_before), not_after=ts(rec.not_after), certificate_der=rec.der)
