"""EnvelopeService: the envelope operations the gRPC servicer calls, each taking the calling Principal.

Every state change and its event rows (and its notices, :mod:`.notices`) are one store transaction, which
reads the envelope again under the write lock; create, send, sign, decline and void honour idempotency keys
(:mod:`.idempotency`).  Accepting a signature is in :meth:`EnvelopeService.submit_signature`, its checks in
:mod:`.acceptance` and :mod:`.signing`.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from ..blobs import BlobStore
from ..ca import db
from ..clock import Clock, SystemClock
from ..errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, ServerError
from ..identity import IdentityService, Person, Principal
from ..notify.message import Channel
from ..otp import Challenge
from ..store import Store, StoreError
from . import acceptance, drafting, events, listing, records
from .acceptance import SigningRules
from .access import Access, access, actor, caller_key, person_id, require_recipient, require_sender
from .drafting import DocumentInput, Limits, RecipientInput
from .idempotency import Key, key_for, plain, recall, remember
from .model import (
    PDF,
    Document,
    DocumentContent,
    Envelope,
    EnvelopeState,
    Event,
    Page,
    Recipient,
    RecipientState,
    SigningMethod,
    envelope_move,
    recipient_move,
)
from .notices import Notices
from .parties import Parties
from .routing import Router, has_finished
from .schema import MIGRATIONS
from .signing import SigningCodes, binding

log = logging.getLogger(__name__)

REVISION_ALLOWANCE = 1024 * 1024  # what signatures may add to a document's size, all together
MAX_REASON = 1000


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _reason(text: str) -> str:
    text = " ".join(text.split())
    if not 0 < len(text) <= MAX_REASON:
        raise InvalidArgument(f"give a reason of 1 to {MAX_REASON} characters", reason="REASON_REQUIRED")
    return text


class EnvelopeService:
    def __init__(self, store: Store, blobs: BlobStore, identity: IdentityService, notifier: Channel, *,
                 rules: SigningRules, clock: Clock | None = None, limits: Limits | None = None) -> None:
        self._store = store
        self._blobs = blobs
        self._clock = clock or SystemClock()
        self.rules = rules
        self.limits = limits or Limits()
        self._parties = Parties(identity)
        self._notices = Notices(notifier, self._clock)
        self._codes = SigningCodes(store, identity.codes, notifier)
        self._router = Router(store, self._parties, self._notices)
        store.migrate("envelopes", MIGRATIONS)

    def _now(self) -> datetime:
        return records.ms(self._clock.now())

    def _access(self, p: Principal, envelope_id: str) -> Access:
        env = records.load(self._store, envelope_id) if 0 < len(envelope_id) <= 64 else None
        return access(p, env, envelope_id)

    def _reload(self, env: Envelope) -> Envelope:
        found = records.load(self._store, env.id)
        if found is None:  # envelopes are never deleted
            raise NotFound(f"no envelope {env.id!r}", reason="ENVELOPE_NOT_FOUND")
        return found

    # --- drafting and sending -----------------------------------------------------------------------------------
    def create(self, p: Principal, *, title: str, documents: Sequence[DocumentInput],
               recipients: Sequence[RecipientInput], message: str = "", tags: Sequence[str] = (),
               expires_in_days: int = 0, idempotency_key: str = "") -> Envelope:
        """A draft from the calling person (through their agent); the documents are stored as blobs."""
        sender_id = person_id(p, "send envelopes")
        key = key_for(caller_key(p), "create", idempotency_key, title, message, list(tags),
                      [(d.name, d.media_type, _sha(d.content)) for d in documents],
                      [plain(r) for r in recipients], expires_in_days)
        if (first := recall(self._store, key)) is not None:
            return first
        texts = drafting.texts(title, message, tags)
        days = drafting.expiry_days(expires_in_days, self.limits)
        pages = drafting.documents(documents, self.limits)
        drafting.recipients(recipients, [n for n, d in zip(pages, documents, strict=True) if d.media_type == PDF])
        sender = self._parties.approved(sender_id, "the sender")
        if sender.org_id != p.org_id:  # a certificate naming a person of another organisation: no such sender
            raise NotFound(f"no person {sender_id!r}", reason="PERSON_NOT_FOUND")
        people = [self._parties.approved(r.person_id, "recipient") for r in recipients]
        # blobs first (durable, content-addressed: one the transaction below never refers to is harmless)
        docs = tuple(Document("doc_" + secrets.token_hex(12), d.name, d.media_type, "", self._blobs.put(d.content),
                              len(d.content), n, 0) for d, n in zip(documents, pages, strict=True))
        rcpts = tuple(Recipient(
            "rcp_" + secrets.token_hex(12), r.person_id, person.org_id, person.legal_name, drafting.role_of(r),
            r.routing_order, r.signing_method or SigningMethod.TOKEN, RecipientState.PENDING,
            field=r.field) for r, person in zip(recipients, people, strict=True))
        with self._store.transaction():
            if (first := recall(self._store, key)) is not None:
                return first
            now = self._now()
            env = Envelope("env_" + secrets.token_hex(12), p.org_id, sender.id, sender.legal_name, texts.title,
                           texts.message, texts.tags, EnvelopeState.DRAFT, docs, rcpts, now, days, 1)
            records.insert_envelope(self._store, env)
            for i, d in enumerate(docs):
                records.insert_document(self._store, env.id, i, d, now)
            for i, r in enumerate(rcpts):
                records.insert_recipient(self._store, env.id, i, r)
            events.append(self._store, env.id, "created", actor(p), now, {
                "title": env.title, "documents": {d.id: d.current_sha256 for d in docs},
                "recipients": {r.id: r.person_id for r in rcpts}})
            created = self._reload(env)
            remember(self._store, key, created, now)
        log.info("envelope %s created by person %s (%d documents, %d recipients)", created.id, sender.id,
                 len(docs), len(rcpts))
        return created

    def send(self, p: Principal, envelope_id: str, idempotency_key: str = "") -> Envelope:
        """Lock the documents, record the send time, notify the first routing group."""
        key = key_for(caller_key(p), "send", idempotency_key, envelope_id)
        if (first := recall(self._store, key)) is not None:
            return first
        with self._store.transaction():
            if (first := recall(self._store, key)) is not None:
                return first
            a = self._access(p, envelope_id)
            require_sender(a, "send")
            env = a.envelope
            state = envelope_move(env.state, "send")
            for d in env.documents:
                self._blobs.get(d.current_sha256)  # the bytes being locked are the bytes uploaded
            now = self._now()
            expires = now + timedelta(days=env.expires_in_days)
            records.lock_documents(self._store, env)
            events.append(self._store, env.id, "sent", actor(p), now, {
                "sent_at": records.text(now), "expires_at": records.text(expires),
                "documents": {d.id: d.current_sha256 for d in env.documents}})
            changes = self._router.advance(replace(env, state=state, sent_at=now), now)
            records.update_envelope(self._store, env, state=state, sent_at=now, expires_at=expires, **changes)
            sent = self._reload(env)
            remember(self._store, key, sent, now)
        log.info("envelope %s sent", sent.id)
        return sent

    # --- reading ------------------------------------------------------------------------------------------------
    def get(self, p: Principal, envelope_id: str) -> Envelope:
        return self._access(p, envelope_id).envelope

    def list_envelopes(self, p: Principal, view: str = "", page_size: int = 0, page_token: str = "") -> Page:
        return listing.list_page(self._store, p, view, listing.page_size(page_size), page_token)

    def get_document(self, p: Principal, envelope_id: str, document_id: str) -> DocumentContent:
        """The current revision; a notified recipient's first fetch marks them viewed."""
        a = self._access(p, envelope_id)
        doc = a.envelope.document(document_id)
        if a.recipient is not None and a.recipient.state is RecipientState.NOTIFIED \
                and a.envelope.state is EnvelopeState.SENT:
            self._viewed(p, a.envelope.id)
            doc = self._access(p, envelope_id).envelope.document(document_id)
        signatures = tuple(self._blobs.get(r.sha256) for r in records.revisions(self._store, doc.id)
                           if r.kind == "detached")
        return DocumentContent(doc, self._blobs.get(doc.current_sha256), signatures)

    def _viewed(self, p: Principal, envelope_id: str) -> None:
        with self._store.transaction():
            a = self._access(p, envelope_id)
            r = a.recipient
            if r is None or r.state is not RecipientState.NOTIFIED or a.envelope.state is not EnvelopeState.SENT:
                return  # someone else's fetch got there first
            now = self._now()
            records.update_recipient(self._store, r.id, state=recipient_move(r.state, "view"), viewed_at=now)
            events.append(self._store, envelope_id, "viewed", actor(p), now, {"recipient_id": r.id})
            records.update_envelope(self._store, a.envelope)

    def list_events(self, p: Principal, envelope_id: str, after_event_id: int = 0, page_size: int = 0) -> list[Event]:
        """The envelope's events after ``after_event_id``, oldest first (pass the last id seen for the next page)."""
        self._access(p, envelope_id)
        return events.after(self._store, envelope_id, max(0, after_event_id), listing.page_size(page_size))

    # --- signing ------------------------------------------------------------------------------------------------
    def _turn(self, a: Access, document_id: str, action: str) -> tuple[Recipient, Document]:
        """The calling recipient and the document, when it is that recipient's turn to sign it."""
        r = require_recipient(a, "sign")
        doc = a.envelope.document(document_id)
        envelope_move(a.envelope.state, action)
        if not r.signs:
            raise PermissionDenied("a copy recipient receives the envelope and never signs it",
                                   reason="COPY_RECIPIENT")
        recipient_move(r.state, action)
        if r.signing_method is SigningMethod.REMOTE:
            raise FailedPrecondition("remote signing (a key held on the server token) is not available yet",
                                     reason="REMOTE_SIGNING_UNAVAILABLE")
        if r.id in doc.signed_by:
            raise FailedPrecondition("this recipient has signed this document already",
                                     reason="DOCUMENT_ALREADY_SIGNED")
        return r, doc

    def start_signing(self, p: Principal, envelope_id: str, document_id: str, revision_sha256: str) -> Challenge:
        """Send the recipient whose turn it is a code bound to the current revision of the document."""
        a = self._access(p, envelope_id)
        r, doc = self._turn(a, document_id, "start_signing")
        if revision_sha256.strip().lower() != doc.current_sha256:
            raise FailedPrecondition("revision_sha256 is not the document's current revision: fetch it again",
                                     reason="REVISION_CHANGED")
        challenge = self._codes.send(a.envelope, r, doc, self._parties.person(r.person_id).phone)
        events.append(self._store, envelope_id, "code_sent", actor(p), self._now(), {
            "recipient_id": r.id, "document_id": doc.id, "revision_sha256": doc.current_sha256,
            "code_id": challenge.code_id, "channel": challenge.delivery.channel})
        return challenge

    def submit_signature(self, p: Principal, envelope_id: str, document_id: str, *, content: bytes, code: str,
                         code_id: str = "", idempotency_key: str = "") -> Envelope:
        """Accept the recipient's signature after every check (:mod:`.acceptance`); a refusal changes nothing and
        is recorded as a ``refused`` event with its reason."""
        key = key_for(caller_key(p), "sign", idempotency_key, envelope_id, document_id, code_id, _sha(content))
        if (first := recall(self._store, key)) is not None:
            return first
        a = self._access(p, envelope_id)
        try:
            return self._submit(p, a, key, document_id, content=content, code=code, code_id=code_id)
        except ServerError as e:
            self._refused(p, a.envelope.id, document_id, e)
            raise

    def _submit(self, p: Principal, a: Access, key: Key | None, document_id: str, *, content: bytes, code: str,
                code_id: str) -> Envelope:
        r, doc = self._turn(a, document_id, "sign")
        if not content:
            raise InvalidArgument("the signed revision (or detached signature) is required", reason="CONTENT_REQUIRED")
        if len(content) > self.limits.max_document_bytes + REVISION_ALLOWANCE:
            raise InvalidArgument("the submitted revision is larger than any signed document may be",
                                  reason="DOCUMENT_TOO_LARGE")
        previous = self._blobs.get(doc.current_sha256)
        if doc.is_pdf:
            acceptance.require_current(records.revisions(self._store, doc.id), previous, content)
        bind = binding(a.envelope.id, r.id, doc.id, doc.current_sha256)
        self._codes.check(bind, code, code_id)
        verdict, signer = acceptance.check_revision(doc, previous, content, r, self.rules)
        cert = acceptance.check_signer(self._store, self.rules, signer, r, self._clock.now())
        serial = db.serial_text(cert.serial)
        with self._store.transaction():
            if (first := recall(self._store, key)) is not None:
                return first
            now = self._now()
            now_access = self._access(p, a.envelope.id)
            env = now_access.envelope
            r2, doc2 = self._turn(now_access, doc.id, "sign")
            if doc2.current_sha256 != doc.current_sha256:
                raise FailedPrecondition("another signature was added meanwhile: fetch the current revision, ask "
                                         "for a new code and sign it again", reason="REVISION_CHANGED")
            accepted = self._codes.spend(bind, code, code_id)
            sha = self._blobs.put(content)  # durable before the transaction that refers to it commits
            seq = records.add_revision(self._store, doc.id, kind="pdf" if doc.is_pdf else "detached", sha256=sha,
                                       size=len(content), recipient_id=r.id, certificate_serial=serial, at=now)
            env = self._reload(env)
            finished = has_finished(env, r2)
            records.update_recipient(self._store, r.id, certificate_serial=serial,
                                     **({"state": recipient_move(r2.state, "finish"), "signed_at": now}
                                        if finished else {}))
            events.append(self._store, env.id, "signed", actor(p), now, {
                "recipient_id": r.id, "document_id": doc.id, "seq": seq, "sha256": sha,
                "previous_sha256": doc.current_sha256, "certificate_serial": serial, "code_id": accepted.code_id,
                "field": verdict.field_name, "recipient_finished": finished})
            env = self._reload(env)
            records.update_envelope(self._store, env, **self._router.advance(env, now))
            done = self._reload(env)
            remember(self._store, key, done, now)
        log.info("envelope %s: document %s signed by recipient %s (certificate %s, revision %d)", done.id, doc.id,
                 r.id, serial, seq)
        return done

    def _refused(self, p: Principal, envelope_id: str, document_id: str, e: ServerError) -> None:
        try:
            events.append(self._store, envelope_id, "refused", actor(p), self._now(), {
                "operation": "submit_signature", "document_id": document_id, "reason": e.reason})
        except StoreError:  # the refusal itself is what the caller must hear about
            log.exception("envelope %s: could not record a refusal (%s)", envelope_id, e.reason)
        log.info("envelope %s: signature refused (%s)", envelope_id, e.reason)

    # --- ending -------------------------------------------------------------------------------------------------
    def decline(self, p: Principal, envelope_id: str, reason: str, idempotency_key: str = "") -> Envelope:
        """A recipient whose turn it is declines; the envelope is declined and the others are told."""
        why = _reason(reason)
        key = key_for(caller_key(p), "decline", idempotency_key, envelope_id, why)
        if (first := recall(self._store, key)) is not None:
            return first
        with self._store.transaction():
            if (first := recall(self._store, key)) is not None:
                return first
            a = self._access(p, envelope_id)
            r = require_recipient(a, "decline")
            env = a.envelope
            state = envelope_move(env.state, "decline")
            if not r.signs:
                raise PermissionDenied("a copy recipient has nothing to decline", reason="COPY_RECIPIENT")
            now = self._now()
            records.update_recipient(self._store, r.id, state=recipient_move(r.state, "decline"), declined_at=now,
                                     decline_reason=why)
            events.append(self._store, env.id, "declined", actor(p), now, {"recipient_id": r.id, "reason": why})
            for person in self._told(env, skip=r.person_id):
                self._notices.declined(env, person, r.legal_name, why)
            records.update_envelope(self._store, env, state=state, ended_at=now)
            done = self._reload(env)
            remember(self._store, key, done, now)
        log.info("envelope %s declined by recipient %s", done.id, r.id)
        return done

    def void(self, p: Principal, envelope_id: str, reason: str, idempotency_key: str = "") -> Envelope:
        """The sender, or an operator of the sender's organisation, voids a draft or a sent envelope."""
        why = _reason(reason)
        key = key_for(caller_key(p), "void", idempotency_key, envelope_id, why)
        if (first := recall(self._store, key)) is not None:
            return first
        with self._store.transaction():
            if (first := recall(self._store, key)) is not None:
                return first
            a = self._access(p, envelope_id)
            if not (a.sender or a.operator):
                raise PermissionDenied("only the sender or an operator of its organisation may void this envelope")
            env = a.envelope
            state = envelope_move(env.state, "void")
            now = self._now()
            events.append(self._store, env.id, "voided", actor(p), now, {"reason": why, "was": env.state.value})
            by = "the sender" if a.sender else "an operator of the sender's organisation"
            for person in self._told(env, skip=None if a.operator else env.sender_person_id):
                self._notices.voided(env, person, by, why)
            records.update_envelope(self._store, env, state=state, ended_at=now)
            done = self._reload(env)
            remember(self._store, key, done, now)
        log.info("envelope %s voided by %s", done.id, actor(p))
        return done

    def _told(self, env: Envelope, skip: str | None) -> list[Person]:
        """Who hears that an envelope ended: the sender and every recipient notified so far, once each."""
        ids = [env.sender_person_id] + [r.person_id for r in env.recipients if r.state is not RecipientState.PENDING]
        return [self._parties.person(i) for i in dict.fromkeys(ids) if i != skip]
