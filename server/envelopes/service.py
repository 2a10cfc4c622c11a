"""EnvelopeService: the envelope operations the gRPC servicer calls, each taking the calling Principal.

Every state change and its event rows (and its queued notices, :mod:`.notices`) are one store transaction,
which reads the envelope again under the write lock; after it commits the :class:`~.bell.Bell` rings, so the
dispatcher (:mod:`.dispatch`) delivers the notices and the watchers (:mod:`.watch`) see the events at once.
Create, send, sign, decline and void honour idempotency keys (:mod:`.idempotency`); create and send share
their steps with bulk send (:mod:`.posting`, :mod:`.bulk`).  Accepting a signature is
in :meth:`EnvelopeService.submit_signature`, its checks in :mod:`.acceptance` and :mod:`.signing`; remote signing
(the server signs with the recipient's key on the server token, then accepts through the same checks) in
:mod:`.remote`; expiry and
reminders in :mod:`.scheduler`; :meth:`EnvelopeService.start` runs the scheduler and the dispatcher
(:mod:`.background`) in ``signet-server run``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

from .. import audit
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
from .background import Background, Tuning
from .bell import Bell
from .bulk import BulkSender, RowResult
from .dispatch import Dispatcher, RetryRule
from .drafting import DocumentInput, Limits, RecipientInput
from .idempotency import Key, key_for, plain, recall, remember
from .model import (
    PDF,
    Document,
    DocumentContent,
    Envelope,
    EnvelopeState,
    Event,
    FormField,
    Page,
    Recipient,
    RecipientState,
    SignatureField,
    SigningMethod,
    as_of,
    envelope_move,
    recipient_move,
)
from .notices import Notice, NoticeQueue
from .parties import Parties
from .posting import Post
from .remote import NoRemoteKeys, RemoteKeyring, RemoteSigning
from .routing import Router, has_finished, told
from .scheduler import Scheduler
from .schema import MIGRATIONS
from .signing import SigningCodes, binding
from .watch import Watches, WatchItem

log = logging.getLogger(__name__)

REVISION_ALLOWANCE = 1024 * 1024  # what signatures may add to a document's size, all together
MAX_REASON = 1000


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _spec(r: RecipientInput) -> object:
    """A recipient as its idempotency key sees it (without form fields when it has none: keys stay as they were)."""
    d = plain(r)
    if not r.form_fields:
        d.pop("form_fields")
    return d


def _form_changes(before: Mapping[str, Sequence[FormField]],
                  after: Mapping[str, Sequence[FormField]]) -> dict[str, str]:
    """The form fields added, changed or removed, for a ``placed`` event's detail."""
    old = {f.name: (rid, f) for rid, fs in before.items() for f in fs}
    new = {f.name: (rid, f) for rid, fs in after.items() for f in fs}
    out = {name: "removed" for name in old if name not in new}
    for name, (rid, f) in new.items():
        if old.get(name) != (rid, f):
            out[name] = (f"{rid} {f.kind.value}{' required' if f.required else ''} page {f.page}: "
                         f"{f.x1:.2f} {f.y1:.2f} {f.x2:.2f} {f.y2:.2f}")
    return dict(sorted(out.items()))


def _reason(text: str) -> str:
    text = " ".join(text.split())
    if not 0 < len(text) <= MAX_REASON:
        raise InvalidArgument(f"give a reason of 1 to {MAX_REASON} characters", reason="REASON_REQUIRED")
    return text


class EnvelopeService:
    def __init__(self, store: Store, blobs: BlobStore, identity: IdentityService, notifier: Channel, *,
                 rules: SigningRules, clock: Clock | None = None, limits: Limits | None = None,
                 tuning: Tuning | None = None, remote_keys: RemoteKeyring | None = None) -> None:
        self._store = store
        self._blobs = blobs
        self._clock = clock or SystemClock()
        self.rules = rules
        self.limits = limits or Limits()
        self.tuning = tuning or Tuning()
        self._parties = Parties(identity)
        self._codes = SigningCodes(store, identity.codes, notifier)
        self._remote = RemoteSigning(store, self._codes, remote_keys or NoRemoteKeys(), self._now, self._write,
                                     rules.timestamp_url)
        self.bell = Bell()
        self.notices = NoticeQueue(store)
        self._router = Router(store, self._parties, self.notices)
        self._post = Post(store, self._parties, self._router)
        self._bulk = BulkSender(store, blobs, self._clock, self.bell, self._post, self._sender)
        t = self.tuning
        self.dispatcher = Dispatcher(store, notifier, self._clock, self.notices,
                                     retry=RetryRule(t.notice_max_attempts, t.notice_retry_seconds,
                                                     t.notice_retry_max_seconds),
                                     changed=self.bell.ring, stopping=lambda: self.bell.closed)
        self.scheduler = Scheduler(store, self._parties, self.notices, self._clock, self.bell.ring)
        self._watches = Watches(store, self.bell, self._clock, t.poll_seconds, t.max_watches)
        self._background: Background | None = None
        self._extra_loops: list[tuple[str, Callable[[], Any], bool]] = []
        store.migrate("envelopes", MIGRATIONS)
        audit.migrate(store)  # every envelope event is also an audit leaf (events.append)

    # --- the server's background work (signet-server run) ------------------------------------------------------
    def add_loop(self, name: str, one_pass: Callable[[], Any], woken_by_changes: bool = True) -> None:
        """Another background loop started with the scheduler (e.g. the sealer); before :meth:`start`."""
        self._extra_loops.append((name, one_pass, woken_by_changes))

    def start(self) -> None:
        """Run the scheduler, the notice dispatcher (and any added loop) in their threads until :meth:`stop`."""
        if self._background is not None:
            return
        self.bell.reopen()
        self._background = Background([("envelope-scheduler", self.scheduler.run_once, False),
                                       ("envelope-notices", self.dispatcher.run_once, True), *self._extra_loops],
                                      self.tuning.poll_seconds, self.bell, lead=self._store.try_lead)
        self._background.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End every watch (UNAVAILABLE SERVER_STOPPING) and the background threads, waiting up to ``timeout``
        seconds for a pass in progress."""
        background, self._background = self._background, None
        if background is not None:
            background.stop(timeout)
        self.bell.close()

    # --- helpers ------------------------------------------------------------------------------------------------
    def _now(self) -> datetime:
        return records.ms(self._clock.now())

    @contextmanager
    def _write(self) -> Iterator[None]:
        """A write transaction; the bell rings once it has committed."""
        with self._store.transaction():
            yield
        self.bell.ring()

    def _once(self, key: Key | None, act: Callable[[], tuple[Envelope, datetime]],
              acted: Callable[[Envelope], None]) -> Envelope:
        """A call retried with the same idempotency key acts once: the first call's answer, else ``act()`` under
        the write lock, remembered (with the time it returns) in the same transaction; ``acted`` runs after the
        commit (what the call did, for the log)."""
        if (first := recall(self._store, key)) is not None:
            return first
        with self._write():
            if (first := recall(self._store, key)) is not None:
                return first
            done, now = act()
            remember(self._store, key, done, now)
        acted(done)
        return done

    def _access(self, p: Principal, envelope_id: str) -> Access:
        """What ``p`` is to the envelope, as it stands now (a sent envelope past its expiry is expired)."""
        env = records.load(self._store, envelope_id) if 0 < len(envelope_id) <= 64 else None
        return access(p, as_of(env, self._clock.now()) if env is not None else None, envelope_id)

    def _reload(self, env: Envelope) -> Envelope:
        found = records.load(self._store, env.id)
        if found is None:  # envelopes are never deleted
            raise NotFound(f"no envelope {env.id!r}", reason="ENVELOPE_NOT_FOUND")
        return found

    # --- drafting and sending -----------------------------------------------------------------------------------
    def create(self, p: Principal, *, title: str, documents: Sequence[DocumentInput],
               recipients: Sequence[RecipientInput], message: str = "", tags: Sequence[str] = (),
               expires_in_days: int = 0, reminder_every_days: int = 0, reminder_max: int = 0,
               idempotency_key: str = "", append_signature_page: bool = False) -> Envelope:
        """A draft from the calling person (through their agent); the documents are stored as blobs."""
        sender_id = person_id(p, "send envelopes")
        key = key_for(caller_key(p), "create", idempotency_key, title, message, list(tags),
                      [(d.name, d.media_type, _sha(d.content)) for d in documents],
                      [_spec(r) for r in recipients], expires_in_days,
                      *((reminder_every_days, reminder_max) if reminder_every_days or reminder_max else ()),
                      *(("signature page",) if append_signature_page else ()))
        if (first := recall(self._store, key)) is not None:
            return first
        texts = drafting.texts(title, message, tags)
        days = drafting.expiry_days(expires_in_days, self.limits)
        every, most = drafting.reminders(reminder_every_days, reminder_max)
        pages = drafting.documents(documents, self.limits)
        drafting.recipients(recipients, [n for n, d in zip(pages, documents, strict=True) if d.media_type == PDF])
        sender = self._sender(p, sender_id)
        rcpts = self._post.recipients(recipients, placeholders=True)  # a template may hold {{name}} blanks
        # form fields (and a signature page, asked for) as incremental updates, locked at send like any document
        contents, pages, rcpts = drafting.prepare(documents, pages, recipients, rcpts, texts.title,
                                                  append_signature_page)
        # blobs first (durable, content-addressed: one the transaction below never refers to is harmless)
        docs = tuple(Document("doc_" + secrets.token_hex(12), d.name, d.media_type, "",
                              self._blobs.put(c, org=p.org_id), len(c), n, 0)
                     for d, c, n in zip(documents, contents, pages, strict=True))
        with self._write():
            if (first := recall(self._store, key)) is not None:
                return first
            now = self._now()
            created = self._post.insert_draft(p, Envelope(
                "env_" + secrets.token_hex(12), p.org_id, sender.id, sender.legal_name, texts.title, texts.message,
                texts.tags, EnvelopeState.DRAFT, docs, rcpts, now, days, 1, reminder_every_days=every,
                reminder_max=most), now)
            remember(self._store, key, created, now)
        log.info("envelope %s created by person %s (%d documents, %d recipients)", created.id, sender.id,
                 len(docs), len(rcpts))
        return created

    def send(self, p: Principal, envelope_id: str, idempotency_key: str = "") -> Envelope:
        """Lock the documents, record the send time, notify the first routing group."""
        def act() -> tuple[Envelope, datetime]:
            a = self._access(p, envelope_id)
            require_sender(a, "send")
            env = a.envelope
            envelope_move(env.state, "send")
            for d in env.documents:
                self._blobs.get(d.current_sha256, org=env.org_id)  # the bytes being locked are the bytes uploaded
            now = self._now()
            return self._post.send_draft(p, env, now), now

        return self._once(key_for(caller_key(p), "send", idempotency_key, envelope_id), act,
                          lambda sent: log.info("envelope %s sent", sent.id))

    def update_fields(self, p: Principal, envelope_id: str, fields: Mapping[str, SignatureField],
                      form_fields: Mapping[str, Sequence[FormField]] | None = None) -> Envelope:
        """The sender places signature boxes and form fields on their draft (the portal's placement page):
        ``fields`` maps recipient ids (signers and approvers of the envelope) to their new box, each checked by
        :func:`.drafting.placed_field` against every PDF's pages; ``form_fields``, when given, is every form field
        of the envelope by recipient id (a recipient left out has none: fields are added, moved and removed),
        checked by :func:`.drafting.placed_form_fields` with the rules of create, and each PDF gets one incremental
        update taking out the fields removed or moved and placing those added or moved (:func:`.drafting.refilled`;
        a draft's documents are locked only at send).  What changes is recorded as one ``placed`` event (its detail:
        ``{"fields": {recipient id: "page N: x1 y1 x2 y2"}}``, and with form fields changed ``"form_fields": {name:
        "<recipient id> <kind>[ required] page N: x1 y1 x2 y2" or "removed"}`` and ``"documents": {document id:
        new sha256}``) and the version moves; nothing changes when anything is refused.  Only the sender (anyone
        else: not found, or PERMISSION_DENIED), only a draft (FAILED_PRECONDITION ``ENVELOPE_<STATE>``)."""
        person_id(p, "place signature boxes")
        if not len(fields) <= drafting.MAX_RECIPIENTS or not (fields or form_fields is not None):
            raise InvalidArgument("give the new box of 1 to 50 recipients", reason="FIELD_INVALID")

        def allowed() -> Envelope:
            a = self._access(p, envelope_id)
            require_sender(a, "place the signature boxes of")
            envelope_move(a.envelope.state, "edit")
            return a.envelope

        env = allowed()
        signing = {r.id: r for r in env.recipients if r.signs}
        unknown = sorted(set(fields) - set(signing))
        if unknown:
            raise InvalidArgument(f"{unknown[0][:64]!r} is not a signer or approver of this envelope",
                                  reason="FIELD_INVALID")
        pdfs = [(d, self._blobs.get(d.current_sha256, org=env.org_id)) for d in env.documents if d.is_pdf]
        pages = [drafting.page_boxes(content, d.name) for d, content in pdfs]
        checked = {rid: drafting.placed_field(f, pages, f"{signing[rid].legal_name or rid}'s box")
                   for rid, f in fields.items()}
        before = {r.id: r.form_fields for r in env.recipients if r.signs}
        forms = before if form_fields is None else drafting.placed_form_fields(env.recipients, form_fields, pages)
        old = [f for r in env.recipients for f in before.get(r.id, ())]
        new = [f for r in env.recipients for f in forms.get(r.id, ())]
        # each PDF with the fields placed again, made before anything is stored (a refusal leaves no blob)
        contents = {}
        for d, content in pdfs if old != new else ():
            if (again := drafting.refilled(content, old, new, d.name)) != content:
                contents[d.id] = again
        if any(len(c) > self.limits.max_document_bytes + REVISION_ALLOWANCE for c in contents.values()):
            raise InvalidArgument("the document would be larger than any document may be: create the envelope "
                                  "again with its form fields", reason="DOCUMENT_TOO_LARGE")
        shas = {k: self._blobs.put(c, org=env.org_id) for k, c in contents.items()}
        with self._write():
            forms_changed = {rid for rid in forms if forms[rid] != before.get(rid, ())}
            now_env = allowed()  # again, under the write lock
            if forms_changed and now_env.version != env.version:  # the PDFs were made from the envelope as read
                raise FailedPrecondition("the envelope changed while this request was handled; read it again and "
                                         "retry", reason="ENVELOPE_CHANGED")
            env = now_env
            changed = {r.id: checked[r.id] for r in env.recipients if r.id in checked and r.field != checked[r.id]}
            if not changed and not forms_changed:
                return env
            for rid, f in changed.items():
                records.update_recipient(self._store, rid, field_page=f.page, field_x1=f.x1, field_y1=f.y1,
                                         field_x2=f.x2, field_y2=f.y2)
            records.replace_form_fields(self._store, env.id, {rid: forms[rid] for rid in sorted(forms_changed)})
            for doc_id, sha in shas.items():
                records.replace_original(self._store, doc_id, sha256=sha, size=len(contents[doc_id]))
            detail: dict[str, Any] = {"fields": {
                rid: f"page {f.page}: {f.x1:.2f} {f.y1:.2f} {f.x2:.2f} {f.y2:.2f}" for rid, f in changed.items()}}
            if forms_changed:
                detail["form_fields"] = _form_changes(before, forms)
                detail["documents"] = shas
            events.append(self._store, env.id, "placed", actor(p), self._now(), detail)
            records.update_envelope(self._store, env)  # the version moves: a concurrent change fails, not mixes
            env = self._reload(env)
        log.info("envelope %s: %d signature box(es) and the form fields of %d recipient(s) placed by the sender",
                 env.id, len(changed), len(forms_changed))
        return env

    def bulk_send(self, p: Principal, template_id: str, rows: Sequence[Mapping[str, str]],
                  idempotency_key: str = "") -> list[RowResult]:
        """One envelope per row from the draft ``template_id``, each created and sent in one transaction or not at
        all (:mod:`.bulk`); the result of every row, in order."""
        return self._bulk.run(p, template_id, rows, idempotency_key)

    def _sender(self, p: Principal, sender_id: str) -> Person:
        sender = self._parties.approved(sender_id, "the sender")
        if sender.org_id != p.org_id:  # a certificate naming a person of another organisation: no such sender
            raise NotFound(f"no person {sender_id!r}", reason="PERSON_NOT_FOUND")
        return sender

    # --- reading ------------------------------------------------------------------------------------------------
    def get(self, p: Principal, envelope_id: str) -> Envelope:
        return self._access(p, envelope_id).envelope

    def list_envelopes(self, p: Principal, view: str = "", page_size: int = 0, page_token: str = "") -> Page:
        page = listing.list_page(self._store, p, view, listing.page_size(page_size), page_token)
        now = self._clock.now()
        return replace(page, envelopes=tuple(as_of(e, now) for e in page.envelopes))

    def get_document(self, p: Principal, envelope_id: str, document_id: str) -> DocumentContent:
        """The current revision; a notified recipient's first fetch marks them viewed."""
        a = self._access(p, envelope_id)
        doc = a.envelope.document(document_id)
        if a.recipient is not None and a.recipient.state is RecipientState.NOTIFIED \
                and a.envelope.state is EnvelopeState.SENT:
            self._viewed(p, a.envelope.id)
            doc = self._access(p, envelope_id).envelope.document(document_id)
        org = a.envelope.org_id
        signatures = tuple(self._blobs.get(r.sha256, org=org) for r in records.revisions(self._store, doc.id)
                           if r.kind == "detached")
        return DocumentContent(doc, self._blobs.get(doc.current_sha256, org=org), signatures)

    def _viewed(self, p: Principal, envelope_id: str) -> None:
        with self._write():
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
    def _turn(self, a: Access, document_id: str, action: str,
              method: SigningMethod | None = None) -> tuple[Recipient, Document]:
        """The calling recipient and the document, when it is that recipient's turn to sign it (with ``method``,
        when given)."""
        r = require_recipient(a, "sign")
        doc = a.envelope.document(document_id)
        envelope_move(a.envelope.state, action)
        if not r.signs:
            raise PermissionDenied("a copy recipient receives the envelope and never signs it",
                                   reason="COPY_RECIPIENT")
        recipient_move(r.state, action)
        if method is not None and r.signing_method is not method:
            raise FailedPrecondition(
                "this recipient signs remotely, with the key held for them on the server token: SignRemotely"
                if r.signing_method is SigningMethod.REMOTE else
                "this recipient signs with their own token: SubmitSignature",
                reason=f"{r.signing_method.name}_RECIPIENT")
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
        if r.signing_method is SigningMethod.REMOTE:
            self._remote.require_key(r.person_id)  # no code for a key that cannot sign
        challenge = self._codes.send(a.envelope, r, doc, self._parties.person(r.person_id).phone)
        with self._write():
            events.append(self._store, envelope_id, "code_sent", actor(p), self._now(), {
                "recipient_id": r.id, "document_id": doc.id, "revision_sha256": doc.current_sha256,
                "code_id": challenge.code_id, "channel": challenge.delivery.channel})
        if doc.is_pdf and self.rules.timestamp_url:
            return replace(challenge, timestamp_url=self.rules.timestamp_url)
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

    def sign_remotely(self, p: Principal, envelope_id: str, document_id: str, revision_sha256: str, *, code: str,
                      code_id: str = "", idempotency_key: str = "",
                      field_values: Mapping[str, str] | None = None) -> Envelope:
        """A remote recipient's turn: the code activates their server-held key for exactly ``revision_sha256``
        (:mod:`.remote`), the server signs, and the revision is accepted through the checks of
        :meth:`submit_signature`; a refusal is recorded as a ``refused`` event."""
        key = key_for(caller_key(p), "sign_remotely", idempotency_key, envelope_id, document_id,
                      revision_sha256.strip().lower(), code_id,
                      *([sorted(field_values.items())] if field_values else []))
        if (first := recall(self._store, key)) is not None:
            return first
        a = self._access(p, envelope_id)
        try:
            r, doc = self._turn(a, document_id, "sign", SigningMethod.REMOTE)
            values = acceptance.field_values(r, field_values or {}) if doc.is_pdf else {}

            def current() -> str:
                return self._turn(self._access(p, envelope_id), document_id, "sign", SigningMethod.REMOTE)[1] \
                    .current_sha256

            previous = self._blobs.get(doc.current_sha256, org=a.envelope.org_id)
            content = self._remote.sign(p, a.envelope, r, doc, revision_sha256, code=code, code_id=code_id,
                                        previous=previous, current=current, field_values=values)
            return self._submit(p, a, key, document_id, content=content, code="", code_id=code_id, activated=True)
        except ServerError as e:
            self._refused(p, a.envelope.id, document_id, e, "sign_remotely")
            raise

    def _submit(self, p: Principal, a: Access, key: Key | None, document_id: str, *, content: bytes, code: str,
                code_id: str, activated: bool = False) -> Envelope:
        """Validate and accept a revision; ``activated``: made by the server with the recipient's remote key, whose
        activation spent the code already."""
        method = SigningMethod.REMOTE if activated else SigningMethod.TOKEN
        r, doc = self._turn(a, document_id, "sign", method)
        if not content:
            raise InvalidArgument("the signed revision (or detached signature) is required", reason="CONTENT_REQUIRED")
        if len(content) > self.limits.max_document_bytes + REVISION_ALLOWANCE:
            raise InvalidArgument("the submitted revision is larger than any signed document may be",
                                  reason="DOCUMENT_TOO_LARGE")
        previous = self._blobs.get(doc.current_sha256, org=a.envelope.org_id)
        history = records.revisions(self._store, doc.id)
        if doc.is_pdf:
            acceptance.require_current(history, previous, content)
        bind = binding(a.envelope.id, r.id, doc.id, doc.current_sha256)
        if not activated:
            self._codes.check(bind, code, code_id)
        # the current revision is one this server accepted (every signature in it validated then) once a signature
        # revision exists: only the new signature needs validating; the bytes as uploaded get the full check
        accepted_before = any(rev.kind == "pdf" and rev.sha256 == doc.current_sha256 for rev in history)
        verdict, signer = acceptance.check_revision(doc, previous, content, r, self.rules,
                                                    earlier_accepted=accepted_before)
        cert = acceptance.check_signer(self._store, self.rules, signer, r, self._clock.now())
        serial = db.serial_text(cert.serial)
        with self._write():
            if (first := recall(self._store, key)) is not None:
                return first
            now = self._now()
            now_access = self._access(p, a.envelope.id)
            env = now_access.envelope
            r2, doc2 = self._turn(now_access, doc.id, "sign", method)
            if doc2.current_sha256 != doc.current_sha256:
                raise FailedPrecondition("another signature was added meanwhile: fetch the current revision, ask "
                                         "for a new code and sign it again", reason="REVISION_CHANGED")
            used = code_id if activated else self._codes.spend(bind, code, code_id).code_id
            sha = self._blobs.put(content, org=env.org_id)  # durable before the transaction that refers to it commits
            seq = records.add_revision(self._store, doc.id, kind="pdf" if doc.is_pdf else "detached", sha256=sha,
                                       size=len(content), recipient_id=r.id, certificate_serial=serial, at=now)
            env = self._reload(env)
            finished = has_finished(env, r2)
            records.update_recipient(self._store, r.id, certificate_serial=serial,
                                     **({"state": recipient_move(r2.state, "finish"), "signed_at": now,
                                         "next_reminder_at": None} if finished else {}))
            signed = events.append(self._store, env.id, "signed", actor(p), now, {
                "recipient_id": r.id, "document_id": doc.id, "seq": seq, "sha256": sha,
                "previous_sha256": doc.current_sha256, "certificate_serial": serial, "code_id": used,
                "field": verdict.field_name, "recipient_finished": finished, "method": method.value})
            env = self._reload(env)
            records.update_envelope(self._store, env, **self._router.advance(env, now, signed))
            done = self._reload(env)
            remember(self._store, key, done, now)
        log.info("envelope %s: document %s signed by recipient %s (certificate %s, revision %d)", done.id, doc.id,
                 r.id, serial, seq)
        return done

    def _refused(self, p: Principal, envelope_id: str, document_id: str, e: ServerError,
                 operation: str = "submit_signature") -> None:
        try:
            with self._write():
                events.append(self._store, envelope_id, "refused", actor(p), self._now(), {
                    "operation": operation, "document_id": document_id, "reason": e.reason})
        except StoreError:  # the refusal itself is what the caller must hear about
            log.exception("envelope %s: could not record a refusal (%s)", envelope_id, e.reason)
        log.info("envelope %s: signature refused (%s)", envelope_id, e.reason)

    # --- ending -------------------------------------------------------------------------------------------------
    def decline(self, p: Principal, envelope_id: str, reason: str, idempotency_key: str = "") -> Envelope:
        """A recipient whose turn it is declines; the envelope is declined and the others are told."""
        why = _reason(reason)
        declining = ""  # the recipient, for the log

        def act() -> tuple[Envelope, datetime]:
            nonlocal declining
            a = self._access(p, envelope_id)
            r = require_recipient(a, "decline")
            declining = r.id
            env = a.envelope
            state = envelope_move(env.state, "decline")
            if not r.signs:
                raise PermissionDenied("a copy recipient has nothing to decline", reason="COPY_RECIPIENT")
            now = self._now()
            records.update_recipient(self._store, r.id, state=recipient_move(r.state, "decline"), declined_at=now,
                                     decline_reason=why)
            declined = events.append(self._store, env.id, "declined", actor(p), now,
                                     {"recipient_id": r.id, "reason": why})
            for person_id_ in told(env, skip=r.person_id):
                self.notices.queue(env, self._parties.person(person_id_), "declined", declined, now,
                                   params={"by": r.legal_name, "reason": why})
            records.stop_reminders(self._store, env.id)
            records.update_envelope(self._store, env, state=state, ended_at=now)
            return self._reload(env), now

        return self._once(key_for(caller_key(p), "decline", idempotency_key, envelope_id, why), act,
                          lambda done: log.info("envelope %s declined by recipient %s", done.id, declining))

    def void(self, p: Principal, envelope_id: str, reason: str, idempotency_key: str = "") -> Envelope:
        """The sender, or an operator of the sender's organisation, voids a draft or a sent envelope."""
        why = _reason(reason)

        def act() -> tuple[Envelope, datetime]:
            a = self._access(p, envelope_id)
            if not (a.sender or a.operator):
                raise PermissionDenied("only the sender or an operator of its organisation may void this envelope")
            env = a.envelope
            state = envelope_move(env.state, "void")
            now = self._now()
            voided = events.append(self._store, env.id, "voided", actor(p), now,
                                   {"reason": why, "was": env.state.value})
            by = "the sender" if a.sender else "an operator of the sender's organisation"
            for person_id_ in told(env, skip=None if a.operator else env.sender_person_id):
                self.notices.queue(env, self._parties.person(person_id_), "voided", voided, now,
                                   params={"by": by, "reason": why})
            records.stop_reminders(self._store, env.id)
            records.update_envelope(self._store, env, state=state, ended_at=now)
            return self._reload(env), now

        return self._once(key_for(caller_key(p), "void", idempotency_key, envelope_id, why), act,
                          lambda done: log.info("envelope %s voided by %s", done.id, actor(p)))

    # --- notices and events for operators and integrators ------------------------------------------------------
    def notices_of(self, p: Principal, event_id: int) -> list[Notice]:
        """The notices announcing an event (originals and replays), for an operator of the sender's
        organisation."""
        env = self._event_envelope(p, event_id)
        return [n for n in self.notices.of_event(event_id) if n.envelope_id == env.id]

    def replay_notices(self, p: Principal, event_id: int) -> list[Notice]:
        """Queue the notices an event announced once more (new ids; each to the person's address as it is now),
        recorded as a ``notices_replayed`` event; the dispatcher delivers them."""
        with self._write():
            env = self._event_envelope(p, event_id)
            originals = [n for n in self.notices.of_event(event_id) if n.replay_of is None]
            if not originals:
                raise FailedPrecondition(f"event {event_id} announced no notice", reason="NO_NOTICES")
            now = self._now()
            people = {i: self._parties.person(i) for i in {n.person_id for n in originals}}
            ids = self.notices.replay(originals, env, people, now)
            events.append(self._store, env.id, "notices_replayed", actor(p), now,
                          {"event_id": event_id, "notices": ids, "replaying": [n.id for n in originals]})
        log.info("envelope %s: %d notice(s) of event %d queued again by %s", env.id, len(ids), event_id, actor(p))
        return [self.notices.get(i) for i in ids]

    def org_of_event(self, event_id: int) -> str:
        """The organisation whose operators may re-send an event's notices (signet-admin acts as one of them)."""
        row = self._store.query_one("SELECT envelope_id FROM envelope_events WHERE id = ?", (event_id,))
        env = records.load(self._store, row["envelope_id"]) if row else None
        if env is None:
            raise NotFound(f"no event {event_id}", reason="EVENT_NOT_FOUND")
        return env.org_id

    def _event_envelope(self, p: Principal, event_id: int) -> Envelope:
        row = self._store.query_one("SELECT envelope_id FROM envelope_events WHERE id = ?", (event_id,))
        a = self._access(p, row["envelope_id"]) if row else None
        if a is None or not a.operator:
            if a is not None and (a.sender or a.recipient):
                raise PermissionDenied("only an operator of the sender's organisation may re-send notices")
            raise NotFound(f"no event {event_id}", reason="EVENT_NOT_FOUND")
        return a.envelope

    def watch(self, p: Principal, envelope_id: str = "", after_event_id: int = 0,
              cancelled: Callable[[], bool] = lambda: False) -> Iterator[WatchItem]:
        """The events of one envelope (or of every envelope ``p`` may see) after ``after_event_id``, then new ones
        as they are written (:mod:`.watch`)."""
        return self._watches.watch(p, envelope_id, after_event_id, cancelled)
