"""Values the identity service hands out: organisations, people, evidence records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PENDING = "pending"  # registered; real-name check not decided
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Organisation:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class Person:
    """A registered person.  The document number is not here: see ``IdentityService.reveal_document``."""

    id: str
    org_id: str
    legal_name: str
    document_type: str
    document_country: str
    phone: str
    email: str
    status: Status
    phone_verified_at: datetime | None
    decided_at: datetime | None
    created_at: datetime

    @property
    def phone_verified(self) -> bool:
        return self.phone_verified_at is not None


@dataclass(frozen=True)
class EvidenceRecord:
    """One link of a person's evidence chain.

    ``kind``: registered, phone_code_sent, phone_verified, review_requested, approved, rejected.
    ``actor``: who acted (``operator:<login>``, ``member:<person id>``, ``provider:<name>``).
    ``digest`` = SHA-256 over the previous digest and this record, so an edit or deletion in the
    middle of the chain is detected when the chain is read.
    """

    person_id: str
    seq: int
    kind: str
    at: datetime
    actor: str
    provider: str
    reference: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    digest: str = ""
