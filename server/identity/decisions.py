"""Real-name decisions: an operator's approval or rejection (four eyes on approval) or an external provider's
review, each recorded once with what it was based on."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from ..clock import Clock, from_text, to_text
from ..errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from . import evidence as chain
from .documents import Document, normalise_number
from .model import Person, Status
from .people import People, actor, via
from .principal import Principal, require_operator
from .providers import Decision, IdentityProvider, ReviewRequest, Verdict

log = logging.getLogger(__name__)

_MAX_TEXT = 2000


class Decisions:
    def __init__(self, people: People, clock: Clock, *, document_number: Callable[[Mapping[str, Any]], str],
                 reveal: Callable[[Principal, str], Document], providers: Mapping[str, IdentityProvider],
                 four_eyes: bool) -> None:
        self._people = people
        self._clock = clock
        self._number = document_number
        self._reveal = reveal
        self._providers = dict(providers)
        self.four_eyes = four_eyes  # the operator who registered a person never approves them

    def _decidable(self, principal: Principal, person_id: str) -> dict[str, Any]:
        require_operator(principal, "decide on real-name verification")
        row = self._people.row(principal, person_id)
        if row["status"] == Status.APPROVED.value:
            raise FailedPrecondition("this person is approved already", reason="ALREADY_APPROVED")
        if not row["phone_verified_at"]:
            raise FailedPrecondition("the person's phone must be verified before the real-name decision",
                                     reason="PHONE_NOT_VERIFIED")
        return row

    def _check_text(self, row: dict[str, Any], *texts: str) -> None:
        for text in texts:
            if len(text) > _MAX_TEXT:
                raise InvalidArgument(f"evidence and reference texts are limited to {_MAX_TEXT} characters")
        number = self._number(row)
        if any(number in normalise_number(t) for t in texts):
            raise InvalidArgument("evidence texts must not contain the identity document number; "
                                  "refer to the document instead", reason="EVIDENCE_HAS_DOCUMENT_NUMBER")

    def approve(self, principal: Principal, person_id: str, *, evidence: str, reference: str = "") -> Person:
        """Operator approval (the built-in provider): records who, when, and on what evidence."""
        if not evidence.strip():
            raise InvalidArgument("say what the approval is based on (evidence text)", reason="EVIDENCE_REQUIRED")
        row = self._decidable(principal, person_id)
        if self.four_eyes and row["created_by"] == actor(principal):
            raise PermissionDenied("four eyes: the operator who registered this person may not also approve them; "
                                   "another operator of the organisation must", reason="FOUR_EYES")
        self._check_text(row, evidence, reference)
        return self._record(principal, row, Decision(Verdict.APPROVE, "operator", reference, evidence,
                                                     principal.subject))

    def reject(self, principal: Principal, person_id: str, *, reason: str, reference: str = "") -> Person:
        if not reason.strip():
            raise InvalidArgument("say why the person is rejected", reason="REASON_REQUIRED")
        row = self._decidable(principal, person_id)
        self._check_text(row, reason, reference)
        return self._record(principal, row, Decision(Verdict.REJECT, "operator", reference, reason,
                                                     principal.subject))

    def review(self, principal: Principal, person_id: str, provider: str) -> Person:
        """Ask an external identity provider and record its decision (operator only)."""
        impl = self._providers.get(provider)
        if impl is None:
            raise NotFound(f"no identity provider {provider!r} is configured")
        row = self._decidable(principal, person_id)
        request_id = "rv_" + secrets.token_hex(12)
        chain.append(self._people.store, person_id=person_id, org_id=row["org_id"], kind="review_requested",
                     at=self._clock.now(), actor=actor(principal), provider=provider, reference=request_id,
                     detail={"sent": ["legal_name", "document", "phone", "email"]})
        doc = self._reveal(principal, person_id)
        decision = impl.review(ReviewRequest(request_id, row["org_id"], person_id, row["legal_name"], doc,
                                             row["phone"], from_text(row["phone_verified_at"]), row["email"]))
        return self._record(principal, row, decision, request_id=request_id)

    def _record(self, principal: Principal, row: dict[str, Any], decision: Decision,
                request_id: str | None = None) -> Person:
        person_id = row["id"]
        now = self._clock.now()
        status = Status.APPROVED if decision.verdict is Verdict.APPROVE else Status.REJECTED
        store = self._people.store
        with store.transaction():
            current = self._people.row(principal, person_id)
            if current["status"] == Status.APPROVED.value:  # decided concurrently
                raise FailedPrecondition("this person is approved already", reason="ALREADY_APPROVED")
            store.execute("UPDATE identity_people SET status = ?, decided_at = ? WHERE id = ?",
                          (status.value, to_text(now), person_id))
            detail: dict[str, Any] = {"reason" if status is Status.REJECTED else "evidence": decision.reason,
                                      "phone_verified_at": current["phone_verified_at"],
                                      "phone_verified_code_id": current["phone_verified_code_id"]}
            if request_id:
                detail["request_id"] = request_id
            detail.update(via(principal))
            who = f"operator:{decision.reviewer}" if decision.provider == "operator" else \
                f"provider:{decision.provider} (requested by {actor(principal)})"
            chain.append(store, person_id=person_id, org_id=row["org_id"], kind=status.value, at=now,
                         actor=who, provider=decision.provider, reference=decision.reference, detail=detail)
        log.info("identity: person %s %s by %s (reference %s)", person_id, status.value, decision.provider,
                 decision.reference or "-")
        return self._people.load(principal, person_id)
