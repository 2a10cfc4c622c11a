"""Who is calling: an organisation, a subject and a role; and what each role may do.

- ``operator``: staff of the organisation; acts on every person of that organisation and is the
  only role that registers people and decides on real-name approval.  ``subject`` is the
  operator's login, recorded as the approver.
- ``member``: a registered person acting for themselves; ``subject`` is their person id.
- ``agent``: a signet-agent acting for the person it is enrolled for; ``subject`` is that
  person id.  Same rights as ``member``.
- ``station``: a signing station (signet-agent in kiosk mode); ``subject`` is the station's name.  It acts for
  nobody by itself: the API layer lets it open card sessions only (:mod:`server.kiosk`), and a call carrying a
  card session acts as the card's holder (a ``member``, ``via`` the station).  Every check here treats a station
  as no person and no operator.

A caller never sees another organisation's people: lookups across organisations fail exactly as
lookups of ids that do not exist (:class:`~server.errors.NotFound`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ..errors import InvalidArgument, NotFound, PermissionDenied


class Role(StrEnum):
    OPERATOR = "operator"
    MEMBER = "member"
    AGENT = "agent"
    STATION = "station"


@dataclass(frozen=True)
class Principal:
    org_id: str
    subject: str
    role: Role
    via: str = ""  # how the caller came in when it is not a certificate, e.g. "signet-admin by OS user root"

    def __post_init__(self) -> None:
        if not self.org_id or not self.subject:
            raise InvalidArgument("a principal needs an organisation and a subject")
        object.__setattr__(self, "role", Role(self.role))

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR

    @property
    def is_person(self) -> bool:
        """A person acting for themselves (``subject`` is their person id)."""
        return self.role in (Role.MEMBER, Role.AGENT)


def require_operator(principal: Principal, action: str) -> None:
    if not principal.is_operator:
        raise PermissionDenied(f"only an operator of the organisation may {action}")


def require_person_access(principal: Principal, org_id: str, person_id: str) -> None:
    """Operators of the person's organisation, or the person themselves (as member or via their agent)."""
    if principal.org_id != org_id:
        raise NotFound(f"no person {person_id!r}")
    if not principal.is_operator and (not principal.is_person or principal.subject != person_id):
        raise PermissionDenied("a member or agent may act only for its own person")
