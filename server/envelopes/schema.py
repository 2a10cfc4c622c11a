"""Envelope tables, registered with ``store.migrate("envelopes", MIGRATIONS)``.

Portable SQL only (the common subset of SQLite and PostgreSQL).  Times are UTC text in
:mod:`server.clock`'s fixed format, truncated to milliseconds.  Document bytes are never here: a revision names
its blob by SHA-256 (:mod:`server.blobs`).  Event ids are assigned as MAX(id) + 1 inside the writing transaction
(:mod:`.events`) rather than by an AUTOINCREMENT/SERIAL column, whose syntax differs between the two databases;
the primary key refuses a duplicate if two writers ever raced.

Version 2: the reminder schedule (per envelope; per recipient the count sent and the next due time), the
notice queue (:mod:`.notices`, delivered by :mod:`.dispatch`), and the indexes the scheduler and the dispatcher
poll (sent envelopes by expiry, recipients by next reminder, notices by next attempt, notices by event).

Version 3: the form fields assigned to recipients (placed in the PDFs when the draft is created).
"""

from __future__ import annotations

from ..store import Store


def _v1(store: Store) -> None:
    store.execute(
        "CREATE TABLE envelopes ("
        " id TEXT PRIMARY KEY,"
        " org_id TEXT NOT NULL,"  # the sender's organisation
        " sender_person_id TEXT NOT NULL,"
        " sender_name TEXT NOT NULL,"
        " title TEXT NOT NULL,"
        " message TEXT NOT NULL,"
        " tags TEXT NOT NULL,"  # JSON array of strings
        " state TEXT NOT NULL,"  # draft | sent | completed | declined | voided | expired
        " expires_in_days INTEGER NOT NULL,"
        " created_at TEXT NOT NULL,"
        " sent_at TEXT,"
        " expires_at TEXT,"
        " completed_at TEXT,"
        " ended_at TEXT,"  # declined, voided or expired
        " version INTEGER NOT NULL)"
    )
    store.execute("CREATE INDEX envelopes_sender ON envelopes (sender_person_id, created_at)")
    store.execute("CREATE INDEX envelopes_org ON envelopes (org_id, created_at)")
    store.execute(
        "CREATE TABLE envelope_documents ("
        " id TEXT PRIMARY KEY,"
        " envelope_id TEXT NOT NULL REFERENCES envelopes (id),"
        " position INTEGER NOT NULL,"
        " name TEXT NOT NULL,"
        " media_type TEXT NOT NULL,"
        " pages INTEGER NOT NULL,"
        " locked_sha256 TEXT,"  # set at send: the SHA-256 of the bytes as sent
        " UNIQUE (envelope_id, position))"
    )
    store.execute(
        "CREATE TABLE envelope_recipients ("
        " id TEXT PRIMARY KEY,"
        " envelope_id TEXT NOT NULL REFERENCES envelopes (id),"
        " position INTEGER NOT NULL,"
        " person_id TEXT NOT NULL,"
        " org_id TEXT NOT NULL,"  # the recipient's own organisation (any)
        " legal_name TEXT NOT NULL,"
        " role TEXT NOT NULL,"  # signer | approver | copy
        " routing_order INTEGER NOT NULL,"
        " signing_method TEXT NOT NULL,"  # token | remote
        " state TEXT NOT NULL,"  # pending | notified | viewed | signed | declined
        " field_page INTEGER,"
        " field_x1 REAL, field_y1 REAL, field_x2 REAL, field_y2 REAL,"
        " notified_at TEXT,"
        " viewed_at TEXT,"
        " signed_at TEXT,"
        " declined_at TEXT,"
        " decline_reason TEXT NOT NULL,"
        " certificate_serial TEXT NOT NULL,"
        " UNIQUE (envelope_id, person_id),"
        " UNIQUE (envelope_id, position))"
    )
    store.execute("CREATE INDEX envelope_recipients_person ON envelope_recipients (person_id, envelope_id)")
    store.execute(
        "CREATE TABLE envelope_revisions ("
        " document_id TEXT NOT NULL REFERENCES envelope_documents (id),"
        " seq INTEGER NOT NULL,"  # 0: the bytes uploaded; then one per signature
        " kind TEXT NOT NULL,"  # original | pdf (a whole new revision) | detached (a CMS signature)
        " sha256 TEXT NOT NULL,"  # the blob: the document bytes, or the detached signature
        " size INTEGER NOT NULL,"
        " recipient_id TEXT REFERENCES envelope_recipients (id),"
        " certificate_serial TEXT,"
        " at TEXT NOT NULL,"
        " PRIMARY KEY (document_id, seq))"
    )
    store.execute(
        "CREATE TABLE envelope_events ("
        " id INTEGER PRIMARY KEY,"
        " envelope_id TEXT NOT NULL REFERENCES envelopes (id),"
        " type TEXT NOT NULL,"
        " actor TEXT NOT NULL,"
        " at TEXT NOT NULL,"
        " detail TEXT NOT NULL)"  # JSON object; never codes or document contents
    )
    store.execute("CREATE INDEX envelope_events_envelope ON envelope_events (envelope_id, id)")
    store.execute(
        "CREATE TABLE envelope_idempotency ("
        " caller TEXT NOT NULL,"
        " operation TEXT NOT NULL,"
        " idempotency_key TEXT NOT NULL,"
        " request_sha256 TEXT NOT NULL,"  # what the first request asked: the same key for another is refused
        " envelope_id TEXT NOT NULL,"
        " answer TEXT NOT NULL,"  # the first answer (the envelope as it was returned), JSON
        " created_at TEXT NOT NULL,"
        " PRIMARY KEY (caller, operation, idempotency_key))"
    )


def _v2(store: Store) -> None:
    store.execute("ALTER TABLE envelopes ADD COLUMN reminder_every_days INTEGER NOT NULL DEFAULT 0")
    store.execute("ALTER TABLE envelopes ADD COLUMN reminder_max INTEGER NOT NULL DEFAULT 0")
    store.execute("CREATE INDEX envelopes_expiry ON envelopes (state, expires_at)")
    store.execute("ALTER TABLE envelope_recipients ADD COLUMN reminders_sent INTEGER NOT NULL DEFAULT 0")
    store.execute("ALTER TABLE envelope_recipients ADD COLUMN next_reminder_at TEXT")  # NULL: none due
    store.execute("CREATE INDEX envelope_recipients_reminder ON envelope_recipients (next_reminder_at)")
    store.execute(
        "CREATE TABLE envelope_notices ("
        " id TEXT PRIMARY KEY,"  # also the message id every channel shows (webhook X-Signet-Delivery ...)
        " event_id INTEGER NOT NULL,"  # the event the notice announces
        " envelope_id TEXT NOT NULL REFERENCES envelopes (id),"
        " recipient_id TEXT,"  # set on a "your turn" notice: its delivery sets the recipient's notified_at
        " person_id TEXT NOT NULL,"
        " to_kind TEXT NOT NULL,"
        " to_value TEXT NOT NULL,"
        " kind TEXT NOT NULL,"  # your_turn | reminder | completed | declined | voided | expired
        " params TEXT NOT NULL,"  # JSON: what the body is rendered from besides the envelope; never a code
        " replay_of TEXT,"  # the notice this one re-sends (signet-admin notice replay)
        " state TEXT NOT NULL,"  # pending | delivered | failed
        " attempts INTEGER NOT NULL,"
        " next_attempt_at TEXT,"  # pending only
        " sending_since TEXT,"  # set (committed) just before an external channel is called
        " in_doubt INTEGER NOT NULL,"  # times it was found mid-hand-off after a crash and handed over again
        " last_error TEXT NOT NULL,"  # the channel's reason code, never a body
        " created_at TEXT NOT NULL,"
        " delivered_at TEXT,"
        " channel TEXT NOT NULL,"
        " message_ref TEXT NOT NULL)"  # the channel's reference: outbox row, SMTP Message-ID, webhook delivery
    )
    store.execute("CREATE INDEX envelope_notices_due ON envelope_notices (state, next_attempt_at)")
    store.execute("CREATE INDEX envelope_notices_event ON envelope_notices (event_id)")


def _v3(store: Store) -> None:
    store.execute(
        "CREATE TABLE envelope_form_fields ("
        " envelope_id TEXT NOT NULL REFERENCES envelopes (id),"
        " recipient_id TEXT NOT NULL REFERENCES envelope_recipients (id),"
        " position INTEGER NOT NULL,"  # order within the recipient's fields
        " name TEXT NOT NULL,"  # the PDF field's name, unique in the envelope
        " kind TEXT NOT NULL,"  # text | date | checkbox
        " page INTEGER NOT NULL,"
        " x1 REAL NOT NULL, y1 REAL NOT NULL, x2 REAL NOT NULL, y2 REAL NOT NULL,"
        " required INTEGER NOT NULL,"
        " PRIMARY KEY (envelope_id, name))"
    )
    store.execute("CREATE INDEX envelope_form_fields_recipient ON envelope_form_fields (recipient_id, position)")


MIGRATIONS = [_v1, _v2, _v3]
