"""Real-name review: the :class:`IdentityProvider` interface and the external HTTPS webhook provider.

The built-in provider is operator approval (``IdentityService.approve`` / ``reject``; from the
command line ``signet-admin identity approve``): the operator's login, the time, the evidence text
and a reference (e.g. a ticket or a scanned-document id) are recorded.

External provider contract (:class:`WebhookIdentityProvider`), signed as in :mod:`server.webhooks`::

    POST <url>
    {"request_id": "rv_…", "organisation_id": "org_…", "person_id": "p_…", "legal_name": "…",
     "document": {"type": "prc_resident_id", "country": "CN", "number": "…"},
     "phone": "+86…", "phone_verified_at": "2030-01-01T00:00:00.000000Z", "email": "…"}

    200, signed with the same secret (X-Signet-Timestamp / X-Signet-Signature over the body):
    {"request_id": "rv_…", "decision": "approve" | "reject", "reference": "<provider's case id>",
     "reason": "<optional text>"}

An unsigned or badly signed answer, an answer for another request, or an unknown decision is
refused (:class:`~server.errors.Unavailable`) and nothing is recorded as decided.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from ..clock import Clock, SystemClock, to_text
from ..errors import Unauthenticated, Unavailable
from ..webhooks import WebhookTarget, post_signed_json, verify_signature
from .documents import Document

log = logging.getLogger(__name__)


class Verdict(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


@dataclass(frozen=True)
class ReviewRequest:
    request_id: str
    org_id: str
    person_id: str
    legal_name: str
    document: Document  # its number is kept out of repr by Document itself
    phone: str
    phone_verified_at: datetime
    email: str


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    provider: str
    reference: str
    reason: str = ""
    reviewer: str = ""  # a person's login for operator decisions; empty for automated providers


class IdentityProvider(Protocol):
    name: str

    def review(self, request: ReviewRequest) -> Decision:
        """Decide, or raise :class:`~server.errors.Unavailable` when no decision could be had."""


@dataclass
class WebhookIdentityProvider:
    name: str
    target: WebhookTarget
    clock: Clock = field(default_factory=SystemClock)
    sleep: Callable[[float], None] = time.sleep
    response_tolerance: float = 300.0

    def review(self, request: ReviewRequest) -> Decision:
        payload = {
            "request_id": request.request_id,
            "organisation_id": request.org_id,
            "person_id": request.person_id,
            "legal_name": request.legal_name,
            "document": {"type": request.document.type, "country": request.document.country,
                         "number": request.document.number},
            "phone": request.phone,
            "phone_verified_at": to_text(request.phone_verified_at),
            "email": request.email,
        }
        resp = post_signed_json(self.target, payload, clock=self.clock, sleep=self.sleep,
                                delivery_id=request.request_id)
        try:
            verify_signature(self.target.secret, resp.headers, resp.body, self.clock.now().timestamp(),
                             self.response_tolerance)
        except Unauthenticated as e:
            log.warning("identity provider %s: answer to %s not properly signed (%s)",
                        self.name, request.request_id, e.reason)
            raise Unavailable(f"identity provider {self.name!r} sent an answer without a valid signature",
                              reason="PROVIDER_ANSWER_UNSIGNED") from e
        answer = resp.json()
        if not isinstance(answer, dict) or answer.get("request_id") != request.request_id:
            raise Unavailable(f"identity provider {self.name!r} answered for another request",
                              reason="PROVIDER_ANSWER_INVALID")
        decision = answer.get("decision")
        reference = answer.get("reference")
        reason = answer.get("reason", "")
        if decision not in ("approve", "reject") or not isinstance(reference, str) or not reference \
                or len(reference) > 200 or not isinstance(reason, str):
            raise Unavailable(f"identity provider {self.name!r} gave no usable decision",
                              reason="PROVIDER_ANSWER_INVALID")
        log.info("identity provider %s: %s for request %s (reference %s)", self.name, decision,
                 request.request_id, reference)
        return Decision(Verdict(decision), self.name, reference, reason[:2000])
