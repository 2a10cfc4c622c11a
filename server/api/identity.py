"""IdentityService servicer: people, phone possession and real-name decisions over mutual TLS."""

from __future__ import annotations

import grpc

from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pb_grpc

from ..enrollment import Enrollment
from ..identity import IdentityService, Principal
from . import convert
from .auth import Authenticator
from .status import rpc


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    def __init__(self, identity: IdentityService, auth: Authenticator, enrollment: Enrollment) -> None:
        self.identity = identity
        self.auth = auth
        self.enrollment = enrollment

    @rpc
    def RegisterPerson(self, request: pb.RegisterPersonRequest, principal: Principal,
                       context: grpc.ServicerContext) -> pb.RegisterPersonResponse:
        p = self.identity.register_person(
            principal, legal_name=request.legal_name, document_type=request.document_type,
            document_number=request.document_number, phone=request.phone, email=request.email,
            document_country=request.document_country or None)
        return pb.RegisterPersonResponse(person=convert.person(p))

    @rpc
    def GetPerson(self, request: pb.GetPersonRequest, principal: Principal,
                  context: grpc.ServicerContext) -> pb.GetPersonResponse:
        return pb.GetPersonResponse(person=convert.person(self.identity.get_person(principal, request.person_id)))

    @rpc
    def ListPeople(self, request: pb.ListPeopleRequest, principal: Principal,
                   context: grpc.ServicerContext) -> pb.ListPeopleResponse:
        status = convert.STATUS_FROM_PB.get(request.status)
        people = self.identity.list_people(principal, status)
        return pb.ListPeopleResponse(people=[convert.person(p) for p in people])

    @rpc
    def StartPhoneVerification(self, request: pb.StartPhoneVerificationRequest, principal: Principal,
                               context: grpc.ServicerContext) -> pb.StartPhoneVerificationResponse:
        challenge = self.identity.start_phone_verification(principal, request.person_id)
        return pb.StartPhoneVerificationResponse(challenge=convert.challenge(challenge))

    @rpc
    def ConfirmPhone(self, request: pb.ConfirmPhoneRequest, principal: Principal,
                     context: grpc.ServicerContext) -> pb.ConfirmPhoneResponse:
        p = self.identity.confirm_phone(principal, request.person_id, request.code, request.code_id or None)
        return pb.ConfirmPhoneResponse(person=convert.person(p))

    @rpc
    def ApprovePerson(self, request: pb.ApprovePersonRequest, principal: Principal,
                      context: grpc.ServicerContext) -> pb.ApprovePersonResponse:
        p = self.identity.approve(principal, request.person_id, evidence=request.evidence,
                                  reference=request.reference)
        return pb.ApprovePersonResponse(person=convert.person(p))

    @rpc
    def RejectPerson(self, request: pb.RejectPersonRequest, principal: Principal,
                     context: grpc.ServicerContext) -> pb.RejectPersonResponse:
        p = self.identity.reject(principal, request.person_id, reason=request.reason, reference=request.reference)
        return pb.RejectPersonResponse(person=convert.person(p))

    @rpc
    def ListEvidence(self, request: pb.ListEvidenceRequest, principal: Principal,
                     context: grpc.ServicerContext) -> pb.ListEvidenceResponse:
        records = self.identity.evidence(principal, request.person_id)
        return pb.ListEvidenceResponse(records=[convert.evidence(r) for r in records])

    @rpc
    def UnlockEnrollment(self, request: pb.UnlockEnrollmentRequest, principal: Principal,
                         context: grpc.ServicerContext) -> pb.UnlockEnrollmentResponse:
        self.enrollment.unlock(principal, request.person_id, request.evidence)
        return pb.UnlockEnrollmentResponse()
