"""Persistence of organisations and people, with the organisation boundary applied on every read: another
organisation's people are never loaded at all."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from ..clock import Clock, from_text, to_text
from ..errors import AlreadyExists, InvalidArgument, NotFound
from ..store import IntegrityError, Store
from .model import Organisation, Person, Status
from .principal import Principal, require_person_access


def actor(p: Principal) -> str:
    return f"{p.role.value}:{p.subject}"


def via(principal: Principal) -> dict[str, str]:
    """How an operator acting without a certificate came in (signet-admin on the server host, and as which OS
    user), recorded beside the login it asserted."""
    return {"via": principal.via} if principal.via else {}


class People:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self._clock = clock

    # --- organisations ---
    def create_organisation(self, name: str) -> Organisation:
        name = " ".join(name.split())
        if not name or len(name) > 200:
            raise InvalidArgument("an organisation name is 1 to 200 characters")
        org = Organisation("org_" + secrets.token_hex(8), name, self._clock.now())
        try:
            self.store.insert("identity_organisations",
                              {"id": org.id, "name": org.name, "created_at": to_text(org.created_at)})
        except IntegrityError:
            raise AlreadyExists(f"an organisation named {name!r} exists already") from None
        return org

    def organisation(self, org_id: str) -> Organisation:
        row = self.store.query_one("SELECT * FROM identity_organisations WHERE id = ?", (org_id,))
        if row is None:
            raise NotFound(f"no organisation {org_id!r}")
        return Organisation(row["id"], row["name"], from_text(row["created_at"]))

    # --- people ---
    def row(self, principal: Principal, person_id: str) -> dict[str, Any]:
        row = self.store.query_one("SELECT * FROM identity_people WHERE id = ? AND org_id = ?",
                                   (person_id, principal.org_id))
        if row is None:
            raise NotFound(f"no person {person_id!r}")
        require_person_access(principal, row["org_id"], person_id)
        return row

    def load(self, principal: Principal, person_id: str) -> Person:
        return person(self.row(principal, person_id))

    def org_of(self, person_id: str) -> str:
        row = self.store.query_one("SELECT org_id FROM identity_people WHERE id = ?", (person_id,))
        if row is None:
            raise NotFound(f"no person {person_id!r}")
        return str(row["org_id"])

    def by_document_hash(self, org_id: str, doc_hash: str) -> dict[str, Any] | None:
        return self.store.query_one("SELECT * FROM identity_people WHERE org_id = ? AND doc_hash = ?",
                                    (org_id, doc_hash))

    def list(self, principal: Principal, status: Status | None = None) -> list[Person]:
        """Operators see their organisation; members and agents see themselves."""
        sql, params = "SELECT * FROM identity_people WHERE org_id = ?", [principal.org_id]
        if not principal.is_operator:
            sql += " AND id = ?"
            params.append(principal.subject)
        if status is not None:
            sql += " AND status = ?"
            params.append(Status(status).value)
        return [person(r) for r in self.store.query(sql + " ORDER BY created_at, id", params)]


def person(row: Mapping[str, Any]) -> Person:
    return Person(
        id=row["id"], org_id=row["org_id"], legal_name=row["legal_name"], document_type=row["doc_type"],
        document_country=row["doc_country"], phone=row["phone"], email=row["email"], status=Status(row["status"]),
        phone_verified_at=from_text(row["phone_verified_at"]) if row["phone_verified_at"] else None,
        decided_at=from_text(row["decided_at"]) if row["decided_at"] else None,
        created_at=from_text(row["created_at"]),
    )
