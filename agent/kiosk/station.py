"""The station's link to signet-server: mutual TLS with the station certificate; card sessions (KioskService) and
the card holder's envelope calls, each carrying the session in the ``signet-card-session`` metadata.

The station's organisation and name (what a card's statement names, :mod:`signet.cardproof`) are those of its own
certificate's caller URI (``urn:signet:org:ORG:role:station:subject:NAME``), as the server reads them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from signet.pemfiles import read_certificates
from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pb_grpc
from signet.wire import reason_of

from ..config import KioskConfig
from ..serverlink import ServerRefused

CARD_SESSION_METADATA = "signet-card-session"
TIMEOUT = 30.0
MAX_MESSAGE = 300 * 1024 * 1024
_STATION_URI = re.compile(r"urn:signet:org:([A-Za-z0-9_.-]{1,64}):role:station:subject:([A-Za-z0-9_.@-]{1,128})")


def station_of(cert_path: Path) -> tuple[str, str]:
    """(organisation id, station name) of the station certificate in ``cert_path`` (its first certificate)."""
    try:
        cert = x509.load_der_x509_certificate(read_certificates(cert_path)[0])
        uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.UniformResourceIdentifier)
    except (OSError, ValueError, IndexError, x509.ExtensionNotFound):
        uris = []
    found = [m for m in map(_STATION_URI.fullmatch, uris) if m is not None]
    if len(found) != 1:
        raise ValueError(f"{cert_path} is not a station certificate (signet-admin station-cert issue)")
    return found[0].group(1), found[0].group(2)


class StationLink:
    def __init__(self, cfg: KioskConfig) -> None:
        if cfg.station_cert is None or cfg.station_key is None or cfg.server_ca is None:
            raise ValueError("kiosk mode needs the station's certificate, key and the server's CA")
        self.org_id, self.station = station_of(cfg.station_cert)
        creds = grpc.ssl_channel_credentials(root_certificates=cfg.server_ca.read_bytes(),
                                             private_key=cfg.station_key.read_bytes(),
                                             certificate_chain=cfg.station_cert.read_bytes())
        opts: list[tuple[str, Any]] = [("grpc.max_receive_message_length", MAX_MESSAGE),
                                       ("grpc.max_send_message_length", MAX_MESSAGE)]
        if cfg.server_name:
            opts.append(("grpc.ssl_target_name_override", cfg.server_name))
        self._channel = grpc.secure_channel(cfg.server_api, creds, options=opts)
        self.kiosk = pb_grpc.KioskServiceStub(self._channel)
        self.envelopes = pb_grpc.EnvelopeServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    @staticmethod
    def _call(method: Any, request: Any, session: str | None = None) -> Any:
        try:
            return method(request, timeout=TIMEOUT,
                          metadata=((CARD_SESSION_METADATA, session),) if session else None)
        except grpc.RpcError as e:
            code = e.code().name if isinstance(e, grpc.Call) else "UNKNOWN"
            details = (e.details() if isinstance(e, grpc.Call) else "") or ""
            raise ServerRefused(code, reason_of(e), details) from None

    def open(self, certificate_der: bytes, proof_statement: bytes,
             proof_signature: bytes) -> pb.OpenCardSessionResponse:
        """A card session for the card's certificate, with the card's proof (its signed statement)."""
        r: pb.OpenCardSessionResponse = self._call(self.kiosk.OpenCardSession, pb.OpenCardSessionRequest(
            certificate_der=certificate_der, proof_statement=proof_statement, proof_signature=proof_signature))
        return r

    def close_session(self, session: str) -> None:
        try:
            self._call(self.kiosk.CloseCardSession, pb.CloseCardSessionRequest(session_id=session))
        except ServerRefused:
            pass  # ended on the server already, or the server is away: it expires there by itself

    def inbox(self, session: str) -> list[pb.Envelope]:
        r = self._call(self.envelopes.ListEnvelopes, pb.ListEnvelopesRequest(view="inbox", page_size=50), session)
        return list(r.envelopes)

    def envelope(self, session: str, envelope_id: str) -> pb.Envelope:
        r = self._call(self.envelopes.GetEnvelope, pb.GetEnvelopeRequest(envelope_id=envelope_id), session)
        env: pb.Envelope = r.envelope
        return env

    def document(self, session: str, envelope_id: str, document_id: str) -> bytes:
        r = self._call(self.envelopes.GetDocument, pb.GetDocumentRequest(envelope_id=envelope_id,
                                                                          document_id=document_id), session)
        return bytes(r.content)

    def start_signing(self, session: str, envelope_id: str, document_id: str,
                      sha256: str) -> pb.StartSigningResponse:
        r: pb.StartSigningResponse = self._call(self.envelopes.StartSigning, pb.StartSigningRequest(
            envelope_id=envelope_id, document_id=document_id, revision_sha256=sha256), session)
        return r

    def submit(self, session: str, envelope_id: str, document_id: str, *, content: bytes, code: str,
               code_id: str, idempotency_key: str) -> pb.Envelope:
        r = self._call(self.envelopes.SubmitSignature, pb.SubmitSignatureRequest(
            envelope_id=envelope_id, document_id=document_id, content=content, one_time_code=code, code_id=code_id,
            idempotency_key=idempotency_key), session)
        env: pb.Envelope = r.envelope
        return env
