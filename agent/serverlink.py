"""The agent's link to signet-server: gRPC over TLS with the generated stubs (the agent never imports server/).

Two endpoints: the enrollment listener (server-authenticated TLS; used before the agent has a client
certificate) and the API listener (mutual TLS with the agent certificate issued at enrollment).
Both verify the server against the server's root CA certificate, never the system trust store.
A refused call raises :class:`ServerRefused` carrying the status code name and the server's
machine-readable reason (from the ``signet-error-bin`` trailer).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import grpc

from signet.v1 import server_pb2, server_pb2_grpc
from signet.wire import reason_of

TIMEOUT = 30.0
R = TypeVar("R")


class ServerRefused(Exception):
    """signet-server answered with a non-OK status."""

    def __init__(self, code: str, reason: str, message: str) -> None:
        super().__init__(f"{message} ({code}, {reason})" if reason else f"{message} ({code})")
        self.code = code
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ServerTarget:
    """Where the server is and how to authenticate to it (PEM bytes)."""

    enroll: str  # HOST:PORT of the enrollment listener
    ca_pem: bytes  # the Signet TLS root: what the server's listeners are checked against
    api: str | None = None  # HOST:PORT of the mutual-TLS API listener
    client_cert_pem: bytes | None = None  # agent certificate + TLS CA
    client_key_pem: bytes | None = field(default=None, repr=False)
    server_name: str | None = None  # override the TLS name checked (when dialling an IP not in the certificate)


@dataclass(frozen=True)
class Challenge:
    code_id: str
    expires_at: datetime
    channel: str


@dataclass(frozen=True)
class Enrolled:
    certificate_der: bytes
    chain_der: tuple[bytes, ...]
    agent_certificate_der: bytes
    serial: str
    root_der: bytes  # the signing root: anchor of certificate_der
    agent_chain_der: tuple[bytes, ...]  # TLS CA, TLS root: chain of agent_certificate_der


def _refused(e: grpc.RpcError) -> ServerRefused:
    code = e.code() if isinstance(e, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = e.details() if isinstance(e, grpc.Call) else ""
    return ServerRefused(code.name, reason_of(e), details or "")


class ServerLink:
    """Stubs for the server's services; use as a context manager or call :meth:`close`."""

    def __init__(self, target: ServerTarget) -> None:
        self.target = target
        opts: list[tuple[str, Any]] = []
        if target.server_name:
            opts.append(("grpc.ssl_target_name_override", target.server_name))
        self._enroll_channel = grpc.secure_channel(
            target.enroll, grpc.ssl_channel_credentials(root_certificates=target.ca_pem), options=opts)
        self.enrollment = server_pb2_grpc.EnrollmentServiceStub(self._enroll_channel)
        self._api_channel: grpc.Channel | None = None
        if target.api:
            creds = grpc.ssl_channel_credentials(root_certificates=target.ca_pem,
                                                 private_key=target.client_key_pem,
                                                 certificate_chain=target.client_cert_pem)
            self._api_channel = grpc.secure_channel(target.api, creds, options=opts)
            self.identity = server_pb2_grpc.IdentityServiceStub(self._api_channel)
            self.certificates = server_pb2_grpc.CertificateServiceStub(self._api_channel)
            self.envelopes = server_pb2_grpc.EnvelopeServiceStub(self._api_channel)
            self.contracts = server_pb2_grpc.ContractServiceStub(self._api_channel)

    def __enter__(self) -> ServerLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._enroll_channel.close()
        if self._api_channel is not None:
            self._api_channel.close()

    @staticmethod
    def call(method: Callable[..., R], request: Any, timeout: float = TIMEOUT) -> R:
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as e:
            raise _refused(e) from None

    # --- enrollment (no client certificate) ---

    def start_enrollment(self, person_id: str) -> Challenge:
        r = self.call(self.enrollment.StartEnrollment, server_pb2.StartEnrollmentRequest(person_id=person_id))
        return Challenge(r.challenge.code_id, r.challenge.expires_at.ToDatetime(), r.challenge.channel)

    def enroll(self, person_id: str, code: str, csr_der: bytes, agent_tls_csr_der: bytes = b"",
               code_id: str = "") -> Enrolled:
        r = self.call(self.enrollment.Enroll, server_pb2.EnrollRequest(
            person_id=person_id, one_time_code=code, code_id=code_id, csr_der=csr_der,
            agent_tls_csr_der=agent_tls_csr_der))
        return Enrolled(r.certificate_der, tuple(r.chain_der), r.agent_certificate_der, r.serial, r.root_der,
                        tuple(r.agent_chain_der))

    # --- API (mutual TLS with the agent certificate) ---

    def _api(self) -> None:
        if self._api_channel is None:
            raise ServerRefused("FAILED_PRECONDITION", "NO_API_TARGET",
                                "no API address and client certificate configured: enroll first")

    def get_person(self, person_id: str) -> server_pb2.Person:
        self._api()
        return self.call(self.identity.GetPerson, server_pb2.GetPersonRequest(person_id=person_id)).person

    def list_certificates(self, person_id: str) -> list[server_pb2.CertificateInfo]:
        self._api()
        r = self.call(self.certificates.ListCertificates, server_pb2.ListCertificatesRequest(person_id=person_id))
        return list(r.certificates)

    def certificate_status(self, serial: str) -> server_pb2.CertificateInfo:
        self._api()
        r = self.call(self.certificates.GetCertificateStatus, server_pb2.GetCertificateStatusRequest(serial=serial))
        return r.certificate

    def revoke_certificate(self, serial: str, reason: str = "unspecified") -> server_pb2.CertificateInfo:
        self._api()
        r = self.call(self.certificates.RevokeCertificate,
                      server_pb2.RevokeCertificateRequest(serial=serial, reason=reason))
        return r.certificate
