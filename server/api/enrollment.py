"""EnrollmentService servicer: served on the server-authenticated TLS listener, authenticated per call by the
person id and a fresh one-time code (a new agent has no client certificate yet)."""

from __future__ import annotations

import grpc

from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pb_grpc

from ..ca import Role, db
from ..enrollment import Enrollment
from ..errors import InvalidArgument
from ..ratelimit import SlidingWindow, client_host
from . import convert
from .status import rpc_open

_MAX_ID = 64


def _person_id(value: str) -> str:
    if not value or len(value) > _MAX_ID:
        raise InvalidArgument("a person id is required", reason="PERSON_ID_REQUIRED")
    return value


class EnrollmentServicer(pb_grpc.EnrollmentServiceServicer):
    """No client certificate here: every call counts against its client address's rate limit first."""

    def __init__(self, enrollment: Enrollment, requests_per_minute: int = 10) -> None:
        self.enrollment = enrollment
        self.throttle = SlidingWindow(requests_per_minute, 60.0, reason="ENROLLMENT_THROTTLED")

    @rpc_open
    def StartEnrollment(self, request: pb.StartEnrollmentRequest,
                        context: grpc.ServicerContext) -> pb.StartEnrollmentResponse:
        self.throttle.hit(client_host(context.peer()))
        challenge = self.enrollment.start(_person_id(request.person_id))
        return pb.StartEnrollmentResponse(challenge=convert.challenge(challenge))

    @rpc_open
    def Enroll(self, request: pb.EnrollRequest, context: grpc.ServicerContext) -> pb.EnrollResponse:
        self.throttle.hit(client_host(context.peer()))
        if not request.one_time_code:
            raise InvalidArgument("the enrollment code is required", reason="OTP_REQUIRED")
        done = self.enrollment.enroll(_person_id(request.person_id), request.one_time_code, request.csr_der,
                                      request.agent_tls_csr_der, request.code_id or None)
        return pb.EnrollResponse(certificate_der=done.certificate_der, chain_der=list(done.chain_der),
                                 agent_certificate_der=done.agent_certificate_der or b"",
                                 serial=db.serial_text(done.serial),
                                 root_der=self.enrollment.keys.certificate_der(Role.SIGNING_ROOT),
                                 agent_chain_der=[self.enrollment.keys.certificate_der(Role.TLS_CA),
                                                  self.enrollment.keys.certificate_der(Role.TLS_ROOT)])
