"""An envelope event's audit leaf commits to its free text without carrying it (signet.auditformat)."""

from __future__ import annotations

import hashlib
import json

from agent.evidence import Event
from signet.auditformat import canonical_json, event_leaf_payload


def test_the_title_and_reasons_are_replaced_by_their_sha256() -> None:
    created = event_leaf_payload("created", 1, "person:p1", {"title": "Lease 王", "documents": {"d": "ab"}})
    assert created == {"event_id": 1, "actor": "person:p1", "detail": {
        "title_sha256": hashlib.sha256(json.dumps("Lease 王", ensure_ascii=False).encode()).hexdigest(),
        "documents": {"d": "ab"}}}
    declined = event_leaf_payload("declined", 2, "person:p2", {"recipient_id": "r", "reason": "wrong price"})
    assert "wrong price" not in canonical_json(declined) and declined["detail"]["recipient_id"] == "r"
    # a reason code of a refusal is not free text: kept
    refused = event_leaf_payload("refused", 3, "person:p2", {"reason": "CODE_EXPIRED"})
    assert refused["detail"] == {"reason": "CODE_EXPIRED"}


def test_the_bundle_reader_accepts_the_hashed_form_and_the_verbatim_form_of_earlier_servers() -> None:
    e = Event(1, "created", "person:p1", "2030-01-01T00:00:00.000Z", {"title": "Lease"})
    forms = [canonical_json(p) for p in e.leaf_payloads()]
    assert canonical_json(event_leaf_payload("created", 1, "person:p1", {"title": "Lease"})) in forms
    assert canonical_json({"event_id": 1, "actor": "person:p1", "detail": {"title": "Lease"}}) in forms
    other = Event(1, "created", "person:p1", "2030-01-01T00:00:00.000Z", {"title": "Leas3"})
    assert not set(forms) & {canonical_json(p) for p in other.leaf_payloads()}
