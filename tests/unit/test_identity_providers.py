"""External identity provider over the signed-webhook contract, against a real local HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from server.clock import ManualClock
from server.errors import NotFound, Unavailable
from server.identity import IdentityService, Principal, Role, Status, WebhookIdentityProvider
from server.notify import OutboxChannel
from server.sealing import AesGcmBox
from server.store import open_store
from server.webhooks import RetryPolicy, WebhookTarget
from tests.server_helpers import Received, http_receiver

SECRET = b"kyc-provider-shared-secret-01234"
DOC = "11010519491231002X"
Answer = tuple[int, dict[str, str], bytes]


def provider_answer(clock: ManualClock, decide: Callable[[dict], dict], secret: bytes = SECRET,
                    ) -> Callable[[Received, int], Answer]:
    """A KYC provider: checks our signature, decides, signs its answer (written independently)."""

    def respond(req: Received, i: int) -> Answer:
        ts = req.headers["X-Signet-Timestamp"]
        mac = hmac.new(SECRET, ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest("sha256=" + mac, req.headers["X-Signet-Signature"]):
            return 401, {}, b""
        body = json.dumps(decide(json.loads(req.body))).encode()
        now = str(int(clock.now().timestamp()))
        sig = "sha256=" + hmac.new(secret, now.encode() + b"." + body, hashlib.sha256).hexdigest()
        return 200, {"X-Signet-Timestamp": now, "X-Signet-Signature": sig, "Content-Type": "application/json"}, body

    return respond


def setup(tmp_path: Path, url: str, clock: ManualClock) -> tuple[IdentityService, Principal, str]:
    store = open_store(str(tmp_path / "s.db"))
    box = AesGcmBox.generate()
    outbox = OutboxChannel(store, box, clock)
    provider = WebhookIdentityProvider("kyc", WebhookTarget(url, SECRET, allow_http=True,
                                                            retry=RetryPolicy(max_attempts=2, base_delay=0)),
                                       clock=clock)
    svc = IdentityService(store, box, b"h" * 32, outbox, clock, providers={"kyc": provider})
    op = Principal(svc.create_organisation("Acme").id, "alice-op", Role.OPERATOR)
    person = svc.register_person(op, legal_name="张三", document_type="prc_resident_id", document_number=DOC,
                                 phone="+8613800138000", email="z@example.com")
    svc.start_phone_verification(op, person.id)
    entry = outbox.list()[0]
    code = re.search(r"\b(\d{6})\b", outbox.read(entry.id).body).group(1)  # type: ignore[union-attr]
    svc.confirm_phone(op, person.id, code)
    return svc, op, person.id


def test_provider_approves(tmp_path: Path) -> None:
    clock = ManualClock()
    seen: list[dict] = []

    def decide(req: dict) -> dict:
        seen.append(req)
        return {"request_id": req["request_id"], "decision": "approve", "reference": "KYC-2030-0001"}

    with http_receiver(provider_answer(clock, decide)) as rec:
        svc, op, pid = setup(tmp_path, rec.url, clock)
        person = svc.review(op, pid, "kyc")
    assert person.status is Status.APPROVED
    assert seen[0]["document"] == {"type": "prc_resident_id", "country": "CN", "number": DOC}
    assert seen[0]["person_id"] == pid and seen[0]["legal_name"] == "张三"
    assert seen[0]["phone_verified_at"] == "2030-01-01T00:00:00.000000Z"
    chain = svc.evidence(op, pid)
    assert [r.kind for r in chain][-2:] == ["review_requested", "approved"]
    requested, approved = chain[-2], chain[-1]
    assert requested.reference == seen[0]["request_id"] == approved.detail["request_id"]
    assert approved.provider == "kyc" and approved.reference == "KYC-2030-0001"
    assert approved.actor == "provider:kyc (requested by operator:alice-op)"
    assert DOC not in json.dumps([r.detail for r in chain])


def test_provider_rejects(tmp_path: Path) -> None:
    clock = ManualClock()
    decide = lambda req: {"request_id": req["request_id"], "decision": "reject",  # noqa: E731
                          "reference": "KYC-9", "reason": "name does not match register"}
    with http_receiver(provider_answer(clock, decide)) as rec:
        svc, op, pid = setup(tmp_path, rec.url, clock)
        assert svc.review(op, pid, "kyc").status is Status.REJECTED
    last = svc.evidence(op, pid)[-1]
    assert (last.kind, last.reference, last.detail["reason"]) == ("rejected", "KYC-9", "name does not match register")


@pytest.mark.parametrize("case", ["badly-signed", "other-request", "unknown-decision", "no-reference", "http-500"])
def test_unusable_answers_decide_nothing(tmp_path: Path, case: str) -> None:
    clock = ManualClock()

    def decide(req: dict) -> dict:
        rid = "rv_other" if case == "other-request" else req["request_id"]
        decision = "maybe" if case == "unknown-decision" else "approve"
        return {"request_id": rid, "decision": decision, "reference": "" if case == "no-reference" else "R1"}

    good = provider_answer(clock, decide, secret=b"z" * 32 if case == "badly-signed" else SECRET)
    answer = (lambda req, i: (500, {}, b"")) if case == "http-500" else good
    with http_receiver(answer) as rec:
        svc, op, pid = setup(tmp_path, rec.url, clock)
        with pytest.raises(Unavailable):
            svc.review(op, pid, "kyc")
    assert svc.get_person(op, pid).status is Status.PENDING
    assert [r.kind for r in svc.evidence(op, pid)][-1] == "review_requested"


def test_unknown_provider(tmp_path: Path) -> None:
    clock = ManualClock()
    with http_receiver(lambda req, i: (500, {}, b"")) as rec:
        svc, op, pid = setup(tmp_path, rec.url, clock)
    with pytest.raises(NotFound):
        svc.review(op, pid, "nope")
    assert rec.requests == []
