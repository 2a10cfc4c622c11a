"""The per-person evidence chain: append-only records linked by SHA-256 digests.

Every record is also a leaf of the audit log (:mod:`server.audit`), appended in the same transaction: kind
``identity.<kind>``, subject the person id, payload ``{"org_id", "seq", "actor", "chain_digest"}``.  The payload
carries no personal data (no name, phone, e-mail, document number, provider reference or detail): the record's
digest commits to all of them, so the log vouches for the record without holding what it says.  The audit tables
are created beside the identity tables (:class:`.service.IdentityService`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .. import audit
from ..clock import from_text, to_text
from ..errors import ServerError
from ..store import Sealed, Store
from .model import EvidenceRecord

GENESIS = "0" * 64


class EvidenceChainBroken(ServerError):
    """Stored evidence does not match its digests: it was edited or removed outside Signet."""

    reason = "EVIDENCE_CHAIN_BROKEN"


def _digest(prev: str, fields: tuple[str, str, int, str, str, str, str, str, str]) -> str:
    """Chain digest over (person_id, org_id, seq, kind, at, actor, provider, reference, detail)."""
    body = json.dumps(list(fields),
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{prev}\n{body}".encode()).hexdigest()


def append(store: Store, *, person_id: str, org_id: str, kind: str, at: datetime, actor: str,
           provider: str = "", reference: str = "", detail: Mapping[str, Any] | None = None) -> EvidenceRecord:
    """Add a record; call inside the transaction that makes the change it documents."""
    with store.transaction():
        last = store.query_one(
            "SELECT seq, digest FROM identity_evidence WHERE person_id = ? ORDER BY seq DESC", (person_id,))
        seq = int(last["seq"]) + 1 if last else 1
        prev = str(last["digest"]) if last else GENESIS
        detail_text = json.dumps(dict(detail or {}), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        at_text = to_text(at)
        digest = _digest(prev, (person_id, org_id, seq, kind, at_text, actor, provider, reference, detail_text))
        store.insert("identity_evidence", {
            "person_id": person_id, "seq": seq, "org_id": org_id, "kind": kind, "at": at_text, "actor": actor,
            "provider": provider, "reference": reference, "detail": Sealed(detail_text), "prev_digest": prev,
            "digest": digest,
        })
        store.execute("UPDATE identity_people SET evidence_head = ? WHERE id = ?", (digest, person_id))
        audit.append(store, f"identity.{kind}", person_id,
                     {"org_id": org_id, "seq": seq, "actor": actor, "chain_digest": digest}, at)
    return EvidenceRecord(person_id, seq, kind, at, actor, provider, reference, dict(detail or {}), digest)


def load(store: Store, person_id: str) -> list[EvidenceRecord]:
    """All records of a person in order, after checking every link; raises :class:`EvidenceChainBroken`."""
    with store.transaction():  # one snapshot of head and records
        head_row = store.query_one("SELECT evidence_head FROM identity_people WHERE id = ?", (person_id,))
        rows = store.query("SELECT * FROM identity_evidence WHERE person_id = ? ORDER BY seq", (person_id,))
    head = str(head_row["evidence_head"]) if head_row else ""
    prev = GENESIS
    out = []
    for expected_seq, r in enumerate(rows, start=1):
        digest = _digest(prev, (r["person_id"], r["org_id"], int(r["seq"]), r["kind"], r["at"], r["actor"],
                                r["provider"], r["reference"], r["detail"]))
        if int(r["seq"]) != expected_seq or r["prev_digest"] != prev or r["digest"] != digest:
            raise EvidenceChainBroken(
                f"evidence of person {person_id!r} fails its digest check at record {expected_seq}")
        out.append(EvidenceRecord(r["person_id"], int(r["seq"]), r["kind"], from_text(r["at"]), r["actor"],
                                  r["provider"], r["reference"], json.loads(r["detail"]), digest))
        prev = digest
    if (head or GENESIS) != prev:
        raise EvidenceChainBroken(f"evidence of person {person_id!r} is missing its latest record(s)")
    return out
