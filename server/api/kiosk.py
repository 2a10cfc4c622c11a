"""KioskService servicer (API listener, mutual TLS): card sessions of signing stations (:mod:`server.kiosk`)."""

from __future__ import annotations

import grpc

from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pb_grpc

from ..identity import Principal
from ..kiosk import CardSessions
from .auth import Authenticator
from .status import rpc


class KioskServicer(pb_grpc.KioskServiceServicer):
    def __init__(self, sessions: CardSessions, auth: Authenticator) -> None:
        self.sessions = sessions
        self.auth = auth

    @rpc
    def OpenCardSession(self, request: pb.OpenCardSessionRequest, principal: Principal,
                        context: grpc.ServicerContext) -> pb.OpenCardSessionResponse:
        opened = self.sessions.open(principal, request.certificate_der, proof_statement=request.proof_statement,
                                    proof_signature=request.proof_signature)
        return pb.OpenCardSessionResponse(session_id=opened.session_id, person_id=opened.person_id,
                                          display_name=opened.display_name, idle_seconds=opened.idle_seconds)

    @rpc
    def CloseCardSession(self, request: pb.CloseCardSessionRequest, principal: Principal,
                         context: grpc.ServicerContext) -> pb.CloseCardSessionResponse:
        return pb.CloseCardSessionResponse(closed=self.sessions.close(principal, request.session_id))
