"""What a signing station may call: the mapping from a station's certificate (and a card session) to a principal.

Default-deny.  A station certificate alone reaches only :data:`STATION_RPCS` (KioskService: open and close card
sessions).  A call carrying a card session (metadata :data:`CARD_SESSION_METADATA`) acts as the card's holder -- a
``member`` principal, ``via`` the station -- for exactly :data:`CARD_RPCS`, with the request checks beside each
(the inbox only, for ListEnvelopes).  Every other call of a station is PERMISSION_DENIED STATION_NOT_ALLOWED, whatever
it carries; callers that are not stations are left as they are (their certificate decides).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import grpc

from ..errors import PermissionDenied
from ..identity import Principal, Role
from ..kiosk import CardSessions

CARD_SESSION_METADATA = "signet-card-session"
STATION_RPCS = frozenset({"KioskService.OpenCardSession", "KioskService.CloseCardSession"})
# what the card's holder does at the station: see what waits for them, read it, and sign it
CARD_RPCS: Mapping[str, Callable[[object], bool]] = {
    "EnvelopeService.ListEnvelopes": lambda request: getattr(request, "view", None) == "inbox",
    "EnvelopeService.GetEnvelope": lambda request: True,
    "EnvelopeService.GetDocument": lambda request: True,
    "EnvelopeService.StartSigning": lambda request: True,
    "EnvelopeService.SubmitSignature": lambda request: True,
}
NOT_ALLOWED = "a signing station may not make this call"


def card_session_of(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == CARD_SESSION_METADATA:
            return value if isinstance(value, str) else None
    return None


def gate(principal: Principal, context: grpc.ServicerContext, rpc: str, request: object,
         sessions: CardSessions | None) -> Principal:
    """The principal a call of ``rpc`` ("Service.Method") acts as; refuses what a station may not call."""
    if principal.role is not Role.STATION:
        return principal
    if rpc in STATION_RPCS:
        return principal
    check = CARD_RPCS.get(rpc)
    session = card_session_of(context)
    if check is None or session is None or sessions is None or not check(request):
        raise PermissionDenied(NOT_ALLOWED, reason="STATION_NOT_ALLOWED")
    return sessions.holder(principal, session)
