"""EnvelopeService servicer (API listener, mutual TLS): requests to :class:`server.envelopes.EnvelopeService`
calls, its values back to protobuf messages.  Authorisation is the service's (:mod:`server.envelopes.access`):
another party's or organisation's envelope is NOT_FOUND, like an id that does not exist."""

from __future__ import annotations

import json

import grpc

from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pb_grpc

from ..envelopes import (
    Document,
    DocumentInput,
    Envelope,
    EnvelopeService,
    EnvelopeState,
    Event,
    Recipient,
    RecipientInput,
    RecipientRole,
    RecipientState,
    SignatureField,
    SigningMethod,
)
from ..identity import Principal
from . import convert
from .auth import Authenticator
from .status import rpc

ENVELOPE_STATE = {s: pb.EnvelopeState.Value(f"ENVELOPE_STATE_{s.name}") for s in EnvelopeState}
RECIPIENT_STATE = {s: pb.RecipientState.Value(f"RECIPIENT_STATE_{s.name}") for s in RecipientState}
ROLE = {r: pb.RecipientRole.Value(f"RECIPIENT_ROLE_{r.name}") for r in RecipientRole}
ROLE_FROM_PB = {v: k for k, v in ROLE.items()}
METHOD = {m: pb.SigningMethod.Value(f"SIGNING_METHOD_{m.name}") for m in SigningMethod}
METHOD_FROM_PB = {v: k for k, v in METHOD.items()}


# -- domain values -> messages ---------------------------------------------------------------------------------------
def _field(f: SignatureField | None) -> pb.SignatureField | None:
    return pb.SignatureField(page=f.page, x1=f.x1, y1=f.y1, x2=f.x2, y2=f.y2) if f is not None else None


def document(d: Document) -> pb.EnvelopeDocument:
    return pb.EnvelopeDocument(id=d.id, name=d.name, media_type=d.media_type, original_sha256=d.original_sha256,
                               current_sha256=d.current_sha256, size=d.size, pages=d.pages, signatures=d.signatures)


def recipient(r: Recipient) -> pb.Recipient:
    return pb.Recipient(
        id=r.id, person_id=r.person_id, legal_name=r.legal_name, role=ROLE[r.role], routing_order=r.routing_order,
        signing_method=METHOD[r.signing_method], state=RECIPIENT_STATE[r.state], notified_at=convert.ts(r.notified_at),
        viewed_at=convert.ts(r.viewed_at), signed_at=convert.ts(r.signed_at), declined_at=convert.ts(r.declined_at),
        decline_reason=r.decline_reason, certificate_serial=r.certificate_serial, field=_field(r.field))


def envelope(e: Envelope) -> pb.Envelope:
    return pb.Envelope(
        id=e.id, organisation_id=e.org_id, sender_person_id=e.sender_person_id, sender_name=e.sender_name,
        title=e.title, message=e.message, tags=list(e.tags), state=ENVELOPE_STATE[e.state],
        documents=[document(d) for d in e.documents], recipients=[recipient(r) for r in e.recipients],
        created_at=convert.ts(e.created_at), sent_at=convert.ts(e.sent_at), completed_at=convert.ts(e.completed_at),
        expires_at=convert.ts(e.expires_at), version=e.version)


def event(e: Event) -> pb.EnvelopeEvent:
    return pb.EnvelopeEvent(id=e.id, envelope_id=e.envelope_id, type=e.type, actor=e.actor, at=convert.ts(e.at),
                            detail_json=json.dumps(dict(e.detail), ensure_ascii=False, sort_keys=True))


# -- messages -> domain inputs ---------------------------------------------------------------------------------------
def _recipient_input(s: pb.RecipientSpec) -> RecipientInput:
    f = s.field
    return RecipientInput(
        person_id=s.person_id, role=ROLE_FROM_PB.get(s.role), routing_order=s.routing_order,
        signing_method=METHOD_FROM_PB.get(s.signing_method),
        field=SignatureField(f.page, f.x1, f.y1, f.x2, f.y2) if s.HasField("field") else None)


class EnvelopeServicer(pb_grpc.EnvelopeServiceServicer):
    def __init__(self, envelopes: EnvelopeService, auth: Authenticator) -> None:
        self.envelopes = envelopes
        self.auth = auth

    @rpc
    def CreateEnvelope(self, request: pb.CreateEnvelopeRequest, principal: Principal,
                       context: grpc.ServicerContext) -> pb.CreateEnvelopeResponse:
        created = self.envelopes.create(
            principal, title=request.title, message=request.message, tags=list(request.tags),
            documents=[DocumentInput(d.name, d.media_type, d.content) for d in request.documents],
            recipients=[_recipient_input(r) for r in request.recipients], expires_in_days=request.expires_in_days,
            idempotency_key=request.idempotency_key)
        return pb.CreateEnvelopeResponse(envelope=envelope(created))

    @rpc
    def SendEnvelope(self, request: pb.SendEnvelopeRequest, principal: Principal,
                     context: grpc.ServicerContext) -> pb.SendEnvelopeResponse:
        sent = self.envelopes.send(principal, request.envelope_id, request.idempotency_key)
        return pb.SendEnvelopeResponse(envelope=envelope(sent))

    @rpc
    def GetEnvelope(self, request: pb.GetEnvelopeRequest, principal: Principal,
                    context: grpc.ServicerContext) -> pb.GetEnvelopeResponse:
        return pb.GetEnvelopeResponse(envelope=envelope(self.envelopes.get(principal, request.envelope_id)))

    @rpc
    def ListEnvelopes(self, request: pb.ListEnvelopesRequest, principal: Principal,
                      context: grpc.ServicerContext) -> pb.ListEnvelopesResponse:
        page = self.envelopes.list_envelopes(principal, request.view, request.page_size, request.page_token)
        return pb.ListEnvelopesResponse(envelopes=[envelope(e) for e in page.envelopes],
                                        next_page_token=page.next_page_token)

    @rpc
    def GetDocument(self, request: pb.GetDocumentRequest, principal: Principal,
                    context: grpc.ServicerContext) -> pb.GetDocumentResponse:
        got = self.envelopes.get_document(principal, request.envelope_id, request.document_id)
        return pb.GetDocumentResponse(document=document(got.document), content=got.content,
                                      signatures=list(got.signatures))

    @rpc
    def StartSigning(self, request: pb.StartSigningRequest, principal: Principal,
                     context: grpc.ServicerContext) -> pb.StartSigningResponse:
        challenge = self.envelopes.start_signing(principal, request.envelope_id, request.document_id,
                                                 request.revision_sha256)
        return pb.StartSigningResponse(challenge=convert.challenge(challenge))

    @rpc
    def SubmitSignature(self, request: pb.SubmitSignatureRequest, principal: Principal,
                        context: grpc.ServicerContext) -> pb.SubmitSignatureResponse:
        done = self.envelopes.submit_signature(principal, request.envelope_id, request.document_id,
                                               content=request.content, code=request.one_time_code,
                                               code_id=request.code_id, idempotency_key=request.idempotency_key)
        return pb.SubmitSignatureResponse(envelope=envelope(done))

    @rpc
    def DeclineEnvelope(self, request: pb.DeclineEnvelopeRequest, principal: Principal,
                        context: grpc.ServicerContext) -> pb.DeclineEnvelopeResponse:
        done = self.envelopes.decline(principal, request.envelope_id, request.reason, request.idempotency_key)
        return pb.DeclineEnvelopeResponse(envelope=envelope(done))

    @rpc
    def VoidEnvelope(self, request: pb.VoidEnvelopeRequest, principal: Principal,
                     context: grpc.ServicerContext) -> pb.VoidEnvelopeResponse:
        done = self.envelopes.void(principal, request.envelope_id, request.reason, request.idempotency_key)
        return pb.VoidEnvelopeResponse(envelope=envelope(done))

    @rpc
    def ListEnvelopeEvents(self, request: pb.ListEnvelopeEventsRequest, principal: Principal,
                           context: grpc.ServicerContext) -> pb.ListEnvelopeEventsResponse:
        found = self.envelopes.list_events(principal, request.envelope_id, request.after_event_id,
                                           request.page_size)
        return pb.ListEnvelopeEventsResponse(events=[event(e) for e in found])
