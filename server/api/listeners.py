"""The two gRPC servers of signet-server, both TLS with the server certificate from our own CA.

- API (``[grpc] listen``): client certificates required and verified against our CA (mutual TLS);
  IdentityService, CertificateService, EnvelopeService, ContractService, AuditService and KioskService
  (signing stations' card sessions).  Its messages may be
  as large as the largest document an envelope may hold (``[envelopes] max_document_bytes``) plus
  :data:`ENVELOPE_SLACK` for the message around it and the signatures a revision gathers.
- Enrollment (``[grpc] enroll_listen``): server-authenticated TLS only; EnrollmentService.

Two listeners because grpc-python either requires a client certificate or never asks for one: it
cannot request one optionally, and a new agent has none yet.  Both serve grpc.health.v1 and server
reflection (so `grpcurl` works without the .proto files).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health

from signet.serving import add_health_and_reflection
from signet.v1 import server_pb2, server_pb2_grpc

from ..audit.service import AuditQueries
from ..kiosk import CardSessions
from ..runtime import Runtime
from .audit import AuditServicer
from .auth import Authenticator, client_ca_pem
from .certificates import CertificateServicer
from .contracts import ContractServicer
from .enrollment import EnrollmentServicer
from .envelopes import EnvelopeServicer
from .identity import IdentityServicer
from .kiosk import KioskServicer

log = logging.getLogger(__name__)

MAX_MESSAGE = 1024 * 1024  # the enrollment listener: CSRs and certificates
ENVELOPE_SLACK = 2 * 1024 * 1024
_SERVICES = server_pb2.DESCRIPTOR.services_by_name


@dataclass
class Listeners:
    api: grpc.Server
    enroll: grpc.Server
    api_port: int
    enroll_port: int
    health: tuple[health.HealthServicer, health.HealthServicer]

    def stop(self, grace: float = 5.0) -> None:
        for h in self.health:
            h.enter_graceful_shutdown()
        events = [self.api.stop(grace), self.enroll.stop(grace)]
        for e in events:
            e.wait(grace + 1)


def api_message_limit(max_document_bytes: int) -> int:
    """The API listener's message limit: one document of the largest size, with room around it."""
    return max(MAX_MESSAGE, max_document_bytes + ENVELOPE_SLACK)


def _server(workers: int, services: list[str], max_message: int = MAX_MESSAGE
            ) -> tuple[grpc.Server, health.HealthServicer]:
    server = grpc.server(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
                         options=[("grpc.max_receive_message_length", max_message),
                                  ("grpc.max_send_message_length", max_message),
                                  ("grpc.so_reuseport", 0)])
    checker = add_health_and_reflection(server, [_SERVICES[s].full_name for s in services])
    return server, checker


def _port(server: grpc.Server, address: str, credentials: grpc.ServerCredentials) -> int:
    port = server.add_secure_port(address, credentials)
    if port == 0:
        raise OSError(f"cannot listen on {address} (address in use or not local)")
    return port


def start_listeners(rt: Runtime, server_key_pem: bytes, server_chain_pem: bytes) -> Listeners:
    cfg = rt.config
    client_ca = client_ca_pem(rt.keys)
    auth = Authenticator.of(rt.store, rt.keys)
    auth.card_sessions = sessions = CardSessions.of(rt.store, rt.data.hmac_key, rt.clock, rt.identity, rt.keys)

    api, api_health = _server(cfg.grpc.workers, ["IdentityService", "CertificateService", "EnvelopeService",
                                                 "ContractService", "AuditService", "KioskService"],
                              api_message_limit(cfg.envelopes.max_document_bytes))
    server_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityServicer(rt.identity, auth, rt.enrollment), api)
    server_pb2_grpc.add_CertificateServiceServicer_to_server(
        CertificateServicer(rt.ca, rt.identity, rt.external_roots, auth, rt.remote_keys), api)
    server_pb2_grpc.add_EnvelopeServiceServicer_to_server(EnvelopeServicer(rt.envelopes, auth), api)
    server_pb2_grpc.add_ContractServiceServicer_to_server(ContractServicer(rt.contracts, auth), api)
    server_pb2_grpc.add_AuditServiceServicer_to_server(
        AuditServicer(AuditQueries(rt.store, rt.keys, rt.clock), auth), api)
    server_pb2_grpc.add_KioskServiceServicer_to_server(KioskServicer(sessions, auth), api)
    api_port = _port(api, cfg.grpc.listen, grpc.ssl_server_credentials(
        [(server_key_pem, server_chain_pem)], root_certificates=client_ca, require_client_auth=True))

    enroll, enroll_health = _server(max(2, cfg.grpc.workers // 2), ["EnrollmentService"])
    server_pb2_grpc.add_EnrollmentServiceServicer_to_server(
        EnrollmentServicer(rt.enrollment, cfg.enrollment.requests_per_minute), enroll)
    enroll_port = _port(enroll, cfg.grpc.enroll_listen, grpc.ssl_server_credentials(
        [(server_key_pem, server_chain_pem)], require_client_auth=False))

    api.start()
    enroll.start()
    log.info("gRPC API (mutual TLS) on port %d, enrollment (TLS) on port %d", api_port, enroll_port)
    return Listeners(api, enroll, api_port, enroll_port, (api_health, enroll_health))
