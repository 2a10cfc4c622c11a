"""The people an envelope names, looked up across organisations (recipients may belong to any).

The identity layer keeps every lookup inside the caller's organisation; an envelope's sender and recipients
are read here as themselves (the pattern enrollment uses), after the envelope's own access rules decided the
caller may act.  Contact details leave this module only as notice addresses.
"""

from __future__ import annotations

from ..errors import FailedPrecondition, NotFound
from ..identity import IdentityService, Person, Principal, Role, Status


class Parties:
    def __init__(self, identity: IdentityService) -> None:
        self._identity = identity

    def person(self, person_id: str) -> Person:
        """Raises NotFound for an unknown person id."""
        if not person_id or len(person_id) > 64:
            raise NotFound(f"no person {person_id!r}", reason="PERSON_NOT_FOUND")
        try:
            me = Principal(self._identity.org_of(person_id), person_id, Role.AGENT)
            return self._identity.get_person(me, person_id)
        except NotFound:
            raise NotFound(f"no person {person_id!r}", reason="PERSON_NOT_FOUND") from None

    def approved(self, person_id: str, who: str) -> Person:
        """An approved person (real-name check passed, so the phone is verified too)."""
        person = self.person(person_id)
        if person.status is not Status.APPROVED:
            raise FailedPrecondition(f"{who} {person_id} has not passed the real-name check (not approved)",
                                     reason="NOT_APPROVED")
        return person
