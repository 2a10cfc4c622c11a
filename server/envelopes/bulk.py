"""Bulk send: one envelope per row, from a draft of the sender's used as a template.

The template lends each envelope its documents (the same blobs, new document rows), message, tags, expiry,
reminder schedule and recipients.  Placeholders ``{{name}}`` (:data:`.drafting.PLACEHOLDER`) in the title, the
message and the recipients' person ids take the row's values (a row maps names to values; names the template
does not use are ignored).  A row whose value is missing for a placeholder the template uses is
INVALID_ARGUMENT ``PLACEHOLDER_UNKNOWN`` (no such name in the row) or ``PLACEHOLDER_VALUE_MISSING`` (empty).

Each row goes through the checks and steps of create and send (:mod:`.drafting`, :mod:`.posting`) in one
transaction: a row is sent whole or leaves nothing behind, and its error is reported in its result while the
other rows go on.  What concerns the whole call is refused for the whole call, before any row: more than
:data:`MAX_ROWS` rows (``TOO_MANY_ROWS``) or none (``ROWS_REQUIRED``), a template the caller may not see
(NOT_FOUND) or did not send (PERMISSION_DENIED, like SendEnvelope), a template that is not a draft
(FAILED_PRECONDITION ``ENVELOPE_<STATE>``), a sender no longer approved.  The template stays a draft.

Idempotency is per (caller, key, row index): row ``i`` is remembered under operation ``bulk_send/i`` with the
envelope it sent, so a retried call answers the rows sent the first time without sending them again and tries
the failed ones again.  The same key and row index with other values (or another template) is that row's
INVALID_ARGUMENT ``IDEMPOTENCY_KEY_REUSED``.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..blobs import BlobStore
from ..clock import Clock
from ..errors import FailedPrecondition, InvalidArgument, ServerError
from ..identity import Person, Principal
from ..store import Store
from . import drafting, records
from .access import access, caller_key, require_sender
from .bell import Bell
from .drafting import PLACEHOLDER, RecipientInput
from .idempotency import Key, key_for, recall, remember
from .model import Document, Envelope, EnvelopeState, as_of
from .posting import Post

log = logging.getLogger(__name__)

MAX_ROWS = 1000


@dataclass(frozen=True)
class RowResult:
    """What became of one row: the envelope sent for it, or why nothing was."""

    row: int
    envelope: Envelope | None = None
    error: ServerError | None = None


def fill(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every ``{{name}}`` replaced by the row's value (once: a value is never read for placeholders)."""
    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            raise InvalidArgument(f"the template uses {{{{{name}}}}}, for which the row has no value (no column "
                                  f"{name!r})", reason="PLACEHOLDER_UNKNOWN")
        if not values[name].strip():
            raise InvalidArgument(f"the row's value for {{{{{name}}}}} is empty", reason="PLACEHOLDER_VALUE_MISSING")
        return values[name]

    return PLACEHOLDER.sub(value, text)


class BulkSender:
    def __init__(self, store: Store, blobs: BlobStore, clock: Clock, bell: Bell, post: Post,
                 sender: Callable[[Principal, str], Person]) -> None:
        self._store = store
        self._blobs = blobs
        self._clock = clock
        self._bell = bell
        self._post = post
        self._sender = sender  # the approved sender of the caller's organisation (as CreateEnvelope checks it)

    def run(self, p: Principal, template_id: str, rows: Sequence[Mapping[str, str]],
            idempotency_key: str = "") -> list[RowResult]:
        if not rows:
            raise InvalidArgument("give at least one row", reason="ROWS_REQUIRED")
        if len(rows) > MAX_ROWS:
            raise InvalidArgument(f"{len(rows)} rows: at most {MAX_ROWS} rows per call (send the rest in another "
                                  "call, with another idempotency key)", reason="TOO_MANY_ROWS")
        keys = [key_for(caller_key(p), f"bulk_send/{i}", idempotency_key, template_id, sorted(row.items()))
                for i, row in enumerate(rows)]
        template = self._template(p, template_id)
        results: dict[int, RowResult] = {}
        for i, key in enumerate(keys):
            try:
                if (first := recall(self._store, key)) is not None:
                    results[i] = RowResult(i, first)
            except ServerError as e:
                results[i] = RowResult(i, error=e)
        if len(results) < len(rows):  # something is left to send: the template must still be a usable draft
            if template.state is not EnvelopeState.DRAFT:
                raise FailedPrecondition(f"the template is {template.state.value}: only a draft is a template",
                                         reason=f"ENVELOPE_{template.state.name}")
            sender = self._sender(p, template.sender_person_id)
            for d in template.documents:
                # the bytes every row's envelope will lock are the bytes uploaded
                self._blobs.get(d.current_sha256, org=template.org_id)
            pages = [d.pages for d in template.documents if d.is_pdf]
            model = replace(template, sender_name=sender.legal_name)
            for i, row in enumerate(rows):
                if i not in results:
                    results[i] = self._row(p, model, pages, i, row, keys[i])
        failed = sum(1 for r in results.values() if r.error is not None)
        log.info("bulk send from template %s by %s: %d rows, %d sent, %d failed", template.id, p.subject, len(rows),
                 len(rows) - failed, failed)
        return [results[i] for i in range(len(rows))]

    def _template(self, p: Principal, template_id: str) -> Envelope:
        """The template, authorised like SendEnvelope: NOT_FOUND unless the caller sees it, else only its
        sender."""
        env = records.load(self._store, template_id) if 0 < len(template_id) <= 64 else None
        a = access(p, as_of(env, self._clock.now()) if env is not None else None, template_id)
        require_sender(a, "bulk-send")
        return a.envelope

    def _row(self, p: Principal, template: Envelope, pages: list[int], i: int, row: Mapping[str, str],
             key: Key | None) -> RowResult:
        try:
            draft = self._draft(template, pages, row)
            with self._store.transaction():
                if (first := recall(self._store, key)) is not None:
                    return RowResult(i, first)
                now = records.ms(self._clock.now())
                self._still_draft(template.id)
                created = self._post.insert_draft(p, replace(draft, created_at=now), now,
                                                  bulk={"template_id": template.id, "row": i})
                sent = self._post.send_draft(p, created, now)
                remember(self._store, key, sent, now)
        except ServerError as e:
            log.info("bulk send from template %s: row %d refused (%s)", template.id, i, e.reason)
            return RowResult(i, error=e)
        self._bell.ring()
        return RowResult(i, sent)

    def _draft(self, template: Envelope, pages: list[int], row: Mapping[str, str]) -> Envelope:
        """The row's envelope as a draft value, checked as CreateEnvelope checks one (nothing stored yet)."""
        texts = drafting.texts(fill(template.title, row), fill(template.message, row), template.tags)
        specs = [RecipientInput(fill(r.person_id, row).strip(), r.role, r.routing_order, r.signing_method, r.field,
                                r.form_fields)
                 for r in template.recipients]
        drafting.recipients(specs, pages)
        rcpts = self._post.recipients(specs, placeholders=False)  # a value is a person id, never a blank again
        docs = tuple(Document("doc_" + secrets.token_hex(12), d.name, d.media_type, "", d.current_sha256, d.size,
                              d.pages, 0) for d in template.documents)
        return replace(template, id="env_" + secrets.token_hex(12), title=texts.title, message=texts.message,
                       tags=texts.tags, state=EnvelopeState.DRAFT, documents=docs, recipients=rcpts, version=1,
                       sent_at=None, completed_at=None, expires_at=None)  # created_at: set in the transaction

    def _still_draft(self, template_id: str) -> None:
        """The template was not voided while the rows before were being sent."""
        row = self._store.query_one("SELECT state FROM envelopes WHERE id = ?", (template_id,))
        state = EnvelopeState(row["state"]) if row else EnvelopeState.VOIDED
        if state is not EnvelopeState.DRAFT:
            raise FailedPrecondition(f"the template is {state.value} now: it was changed during the bulk send",
                                     reason=f"ENVELOPE_{state.name}")
