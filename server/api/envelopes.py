"""EnvelopeService servicer (API listener, mutual TLS): requests to :class:`server.envelopes.EnvelopeService`
calls, its values back to protobuf messages.  Authorisation is the service's (:mod:`server.envelopes.access`):
another party's or organisation's envelope is NOT_FOUND, like an id that does not exist.

BulkSendEnvelopes answers one result per row: a row's error travels in its result (code, reason, message), not
as the call's status, which is refused only for what concerns the whole call.

WatchEnvelopeEvents is a response stream: its refusals (authentication, NOT_FOUND, BUSY) come before the first
message, its end when the server stops after the last one (UNAVAILABLE ``SERVER_STOPPING``); errors are mapped
here as :func:`server.api.status.rpc` maps those of unary calls."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import grpc

from hsm import HsmError
from signet.v1 import common_pb2
from signet.v1 import server_pb2 as pb
from signet.v1 import server_pb2_grpc as pb_grpc
from signet.wire import abort as wire_abort

from ..envelopes import (
    Document,
    DocumentInput,
    Envelope,
    EnvelopeService,
    EnvelopeState,
    Event,
    FormField,
    FormFieldKind,
    Recipient,
    RecipientInput,
    RecipientRole,
    RecipientState,
    RowResult,
    SignatureField,
    SigningMethod,
)
from ..errors import InvalidArgument, ServerError
from ..identity import Principal
from ..store import StoreBusy
from . import convert
from .auth import Authenticator
from .status import code_for, rpc

log = logging.getLogger(__name__)

ENVELOPE_STATE = {s: pb.EnvelopeState.Value(f"ENVELOPE_STATE_{s.name}") for s in EnvelopeState}
RECIPIENT_STATE = {s: pb.RecipientState.Value(f"RECIPIENT_STATE_{s.name}") for s in RecipientState}
ROLE = {r: pb.RecipientRole.Value(f"RECIPIENT_ROLE_{r.name}") for r in RecipientRole}
ROLE_FROM_PB = {v: k for k, v in ROLE.items()}
METHOD = {m: pb.SigningMethod.Value(f"SIGNING_METHOD_{m.name}") for m in SigningMethod}
METHOD_FROM_PB = {v: k for k, v in METHOD.items()}
FORM_KIND = {k: pb.FormFieldKind.Value(f"FORM_FIELD_KIND_{k.name}") for k in FormFieldKind}
FORM_KIND_FROM_PB = {v: k for k, v in FORM_KIND.items()}


# -- domain values -> messages ---------------------------------------------------------------------------------------
def _field(f: SignatureField | None) -> pb.SignatureField | None:
    return pb.SignatureField(page=f.page, x1=f.x1, y1=f.y1, x2=f.x2, y2=f.y2) if f is not None else None


def _form_field(f: FormField) -> pb.FormFieldSpec:
    return pb.FormFieldSpec(name=f.name, kind=FORM_KIND[f.kind], page=f.page, x1=f.x1, y1=f.y1, x2=f.x2, y2=f.y2,
                            required=f.required)


def document(d: Document) -> pb.EnvelopeDocument:
    return pb.EnvelopeDocument(id=d.id, name=d.name, media_type=d.media_type, original_sha256=d.original_sha256,
                               current_sha256=d.current_sha256, size=d.size, pages=d.pages, signatures=d.signatures)


def recipient(r: Recipient) -> pb.Recipient:
    return pb.Recipient(
        id=r.id, person_id=r.person_id, legal_name=r.legal_name, role=ROLE[r.role], routing_order=r.routing_order,
        signing_method=METHOD[r.signing_method], state=RECIPIENT_STATE[r.state], notified_at=convert.ts(r.notified_at),
        viewed_at=convert.ts(r.viewed_at), signed_at=convert.ts(r.signed_at), declined_at=convert.ts(r.declined_at),
        decline_reason=r.decline_reason, certificate_serial=r.certificate_serial, field=_field(r.field),
        reminders_sent=r.reminders_sent, next_reminder_at=convert.ts(r.next_reminder_at),
        form_fields=[_form_field(f) for f in r.form_fields])


def envelope(e: Envelope) -> pb.Envelope:
    return pb.Envelope(
        id=e.id, organisation_id=e.org_id, sender_person_id=e.sender_person_id, sender_name=e.sender_name,
        title=e.title, message=e.message, tags=list(e.tags), state=ENVELOPE_STATE[e.state],
        documents=[document(d) for d in e.documents], recipients=[recipient(r) for r in e.recipients],
        created_at=convert.ts(e.created_at), sent_at=convert.ts(e.sent_at), completed_at=convert.ts(e.completed_at),
        expires_at=convert.ts(e.expires_at), version=e.version, reminder_every_days=e.reminder_every_days,
        reminder_max=e.reminder_max)


def event(e: Event) -> pb.EnvelopeEvent:
    return pb.EnvelopeEvent(id=e.id, envelope_id=e.envelope_id, type=e.type, actor=e.actor, at=convert.ts(e.at),
                            detail_json=json.dumps(dict(e.detail), ensure_ascii=False, sort_keys=True))


def bulk_result(r: RowResult) -> pb.BulkRowResult:
    """A row's outcome; a refused row carries the status its error maps to, as a refused call would."""
    if r.error is not None:
        return pb.BulkRowResult(row=r.row, error=pb.BulkRowError(code=code_for(r.error).name, reason=r.error.reason,
                                                                 message=r.error.message))
    return pb.BulkRowResult(row=r.row, envelope_id=r.envelope.id if r.envelope is not None else "")


# -- messages -> domain inputs ---------------------------------------------------------------------------------------
def _recipient_input(s: pb.RecipientSpec) -> RecipientInput:
    f = s.field
    return RecipientInput(
        person_id=s.person_id, role=ROLE_FROM_PB.get(s.role), routing_order=s.routing_order,
        signing_method=METHOD_FROM_PB.get(s.signing_method),
        field=SignatureField(f.page, f.x1, f.y1, f.x2, f.y2) if s.HasField("field") else None,
        form_fields=tuple(_form_field_input(x) for x in s.form_fields))


def _form_field_input(f: pb.FormFieldSpec) -> FormField:
    kind = FORM_KIND_FROM_PB.get(f.kind)
    if kind is None:
        raise InvalidArgument(f"form field {f.name[:70]!r} needs a kind: text, date or checkbox",
                              reason="FORM_FIELD_INVALID")
    return FormField(f.name, kind, f.page, f.x1, f.y1, f.x2, f.y2, f.required)


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
            reminder_every_days=request.reminder_every_days, reminder_max=request.reminder_max,
            idempotency_key=request.idempotency_key, append_signature_page=request.append_signature_page)
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
        return pb.StartSigningResponse(challenge=convert.challenge(challenge), timestamp_url=challenge.timestamp_url)

    @rpc
    def SubmitSignature(self, request: pb.SubmitSignatureRequest, principal: Principal,
                        context: grpc.ServicerContext) -> pb.SubmitSignatureResponse:
        done = self.envelopes.submit_signature(principal, request.envelope_id, request.document_id,
                                               content=request.content, code=request.one_time_code,
                                               code_id=request.code_id, idempotency_key=request.idempotency_key)
        return pb.SubmitSignatureResponse(envelope=envelope(done))

    @rpc
    def SignRemotely(self, request: pb.SignRemotelyRequest, principal: Principal,
                     context: grpc.ServicerContext) -> pb.SignRemotelyResponse:
        done = self.envelopes.sign_remotely(principal, request.envelope_id, request.document_id,
                                            request.revision_sha256, code=request.one_time_code,
                                            code_id=request.code_id, idempotency_key=request.idempotency_key,
                                            field_values=dict(request.field_values))
        return pb.SignRemotelyResponse(envelope=envelope(done))

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

    @rpc
    def BulkSendEnvelopes(self, request: pb.BulkSendEnvelopesRequest, principal: Principal,
                          context: grpc.ServicerContext) -> pb.BulkSendEnvelopesResponse:
        results = self.envelopes.bulk_send(principal, request.template_envelope_id,
                                           [dict(r.values) for r in request.rows], request.idempotency_key)
        return pb.BulkSendEnvelopesResponse(results=[bulk_result(r) for r in results])

    def WatchEnvelopeEvents(self, request: pb.WatchEnvelopeEventsRequest,
                            context: grpc.ServicerContext) -> Iterator[pb.WatchEnvelopeEventsResponse]:
        try:
            principal = self.auth.principal(context, "EnvelopeService.WatchEnvelopeEvents", request)
            context.add_callback(self.envelopes.bell.ring)  # a cancelled call wakes its watch at once
            for item in self.envelopes.watch(principal, request.envelope_id, request.after_event_id,
                                             cancelled=lambda: not context.is_active()):
                yield pb.WatchEnvelopeEventsResponse(event=event(item.event) if item.event else None,
                                                     caught_up=item.caught_up, last_event_id=item.last_event_id)
            return
        except ServerError as e:
            failure: tuple[grpc.StatusCode, str, str, float | None] = (
                code_for(e), e.message, e.reason, getattr(e, "retry_after", None))
        except HsmError as e:
            log.error("api WatchEnvelopeEvents: server HSM failed: %s", type(e).__name__)
            failure = (grpc.StatusCode.UNAVAILABLE, "the server's HSM is unavailable; try again later",
                       "HSM_UNAVAILABLE", None)
        except StoreBusy as e:
            failure = (grpc.StatusCode.UNAVAILABLE, str(e), "STORE_BUSY", 1.0)
        except Exception:  # anything unexpected is INTERNAL for the caller, logged here
            log.exception("api WatchEnvelopeEvents failed")
            failure = (grpc.StatusCode.INTERNAL, "internal server error", "INTERNAL", None)
        code, message, reason, retry_after = failure
        log.info("api WatchEnvelopeEvents ended: %s (%s)", code.name, reason)
        wire_abort(context, code, message, common_pb2.ErrorDetail(reason=reason), retry_after)
