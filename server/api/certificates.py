"""CertificateService servicer: revocation and status for operators of the holder's organisation and for
the holder's own agent; registration of externally issued certificates and remote-signing keys
(:mod:`server.remotekeys`) by operators.

A certificate is reachable only through its holder (``person_id``): the holder lookup applies the
identity layer's rules, so another organisation's certificate is NOT_FOUND, exactly like a serial
that does not exist, and one member's agent cannot touch another member's certificate
(PERMISSION_DENIED).  Server and operator TLS certificates have no holder: they are managed with
signet-admin on the server host only.
"""

from __future__ import annotations

import grpc

from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pb_grpc

from ..ca import CertificateAuthority, ExternalRoots, db, register_external
from ..ca.errors import CertificateNotFound
from ..errors import FailedPrecondition, InvalidArgument
from ..identity import IdentityService, Principal
from ..identity.principal import require_operator
from ..remotekeys import RemoteKeys
from . import convert
from .auth import Authenticator
from .status import rpc


def _serial(text: str) -> int:
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    if not cleaned or len(cleaned) > 40:
        raise InvalidArgument("a certificate serial is 1 to 40 hex digits", reason="SERIAL_INVALID")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise InvalidArgument("a certificate serial is hex digits", reason="SERIAL_INVALID") from None


class CertificateServicer(pb_grpc.CertificateServiceServicer):
    def __init__(self, ca: CertificateAuthority, identity: IdentityService, roots: ExternalRoots,
                 auth: Authenticator, remote_keys: RemoteKeys | None = None) -> None:
        self.remote_keys = remote_keys
        self.ca = ca
        self.identity = identity
        self.roots = roots
        self.auth = auth

    def _held(self, principal: Principal, serial_text: str) -> db.CertRecord:
        serial = _serial(serial_text)
        rec = self.ca.status(serial)
        if rec is None or rec.person_id is None:
            raise CertificateNotFound(f"no certificate with serial {db.serial_text(serial)}")
        self.identity.get_person(principal, rec.person_id)  # NotFound across organisations
        return rec

    @rpc
    def RevokeCertificate(self, request: pb.RevokeCertificateRequest, principal: Principal,
                          context: grpc.ServicerContext) -> pb.RevokeCertificateResponse:
        rec = self._held(principal, request.serial)
        revoked = self.ca.revoke(rec.serial, request.reason or "unspecified")
        return pb.RevokeCertificateResponse(certificate=convert.certificate(revoked))

    @rpc
    def GetCertificateStatus(self, request: pb.GetCertificateStatusRequest, principal: Principal,
                             context: grpc.ServicerContext) -> pb.GetCertificateStatusResponse:
        return pb.GetCertificateStatusResponse(certificate=convert.certificate(self._held(principal, request.serial)))

    @rpc
    def ListCertificates(self, request: pb.ListCertificatesRequest, principal: Principal,
                         context: grpc.ServicerContext) -> pb.ListCertificatesResponse:
        self.identity.get_person(principal, request.person_id)
        records = self.ca.certificates_of(request.person_id)
        return pb.ListCertificatesResponse(certificates=[convert.certificate(r) for r in records])

    @rpc
    def RegisterExternalCertificate(self, request: pb.RegisterExternalCertificateRequest,
                                    principal: Principal,
                                    context: grpc.ServicerContext) -> pb.RegisterExternalCertificateResponse:
        require_operator(principal, "register externally issued certificates")
        self.identity.get_person(principal, request.person_id)
        rec = register_external(self.ca.store, request.person_id, request.certificate_der,
                                list(request.intermediates_der), self.roots, self.ca.clock)
        return pb.RegisterExternalCertificateResponse(certificate=convert.certificate(rec))

    @rpc
    def CreateRemoteKey(self, request: pb.CreateRemoteKeyRequest, principal: Principal,
                        context: grpc.ServicerContext) -> pb.CreateRemoteKeyResponse:
        if self.remote_keys is None:
            raise FailedPrecondition("this server makes no remote-signing keys", reason="REMOTE_SIGNING_UNAVAILABLE")
        made = self.remote_keys.create(principal, request.person_id, request.evidence, request.tls_csr_der)
        return pb.CreateRemoteKeyResponse(certificate=convert.certificate(made.record),
                                          chain_der=list(made.certificate.chain),
                                          tls_certificate_der=made.tls_certificate_der or b"",
                                          tls_chain_der=list(made.tls_chain_der),
                                          csc_client_secret=made.csc_client_secret)
