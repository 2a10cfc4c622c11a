"""Envelope rows in the store and back: loading whole envelopes (a page of them in four queries), and the few
writes the service makes.  Portable SQL through :class:`~server.store.Store` only.

Every change to an envelope goes through :func:`update_envelope` exactly once per transaction: it bumps
``version`` only when the row still has the version that was read (optimistic concurrency, so that a store
without SQLite's single writer cannot interleave two changes unnoticed).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from ..clock import from_text, to_text
from ..errors import FailedPrecondition
from ..store import Row, Sealed, Store
from .model import (
    PDF,
    Document,
    Envelope,
    EnvelopeState,
    FormField,
    FormFieldKind,
    Recipient,
    RecipientRole,
    RecipientState,
    Revision,
    SignatureField,
    SigningMethod,
)


def ms(when: datetime) -> datetime:
    """``when`` truncated to whole milliseconds: the precision envelope times are recorded and shown with."""
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def text(when: datetime | None) -> str | None:
    return to_text(ms(when)) if when is not None else None


def _time(value: Any) -> datetime | None:
    return from_text(value) if value else None


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def load(store: Store, envelope_id: str) -> Envelope | None:
    rows = store.query("SELECT * FROM envelopes WHERE id = ?", (envelope_id,))
    found = assemble(store, rows)
    return found[0] if found else None


def assemble(store: Store, rows: Sequence[Row]) -> list[Envelope]:
    """Whole envelopes for ``rows`` of the envelopes table, in the same order."""
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    marks = _marks(ids)
    docs: dict[str, list[Row]] = defaultdict(list)
    for d in store.query(f"SELECT * FROM envelope_documents WHERE envelope_id IN ({marks}) "  # noqa: S608 - marks only
                         "ORDER BY envelope_id, position", ids):
        docs[d["envelope_id"]].append(d)
    revs: dict[str, list[Revision]] = defaultdict(list)
    sql = ("SELECT r.* FROM envelope_revisions r JOIN envelope_documents d ON d.id = r.document_id "  # noqa: S608
           f"WHERE d.envelope_id IN ({marks}) ORDER BY r.document_id, r.seq")  # (only ? marks are formatted in)
    for r in store.query(sql, ids):
        revs[r["document_id"]].append(_revision(r))
    forms: dict[str, list[FormField]] = defaultdict(list)
    for f in store.query(f"SELECT * FROM envelope_form_fields WHERE envelope_id IN ({marks}) "  # noqa: S608 - marks
                         "ORDER BY recipient_id, position", ids):
        forms[f["recipient_id"]].append(FormField(f["name"], FormFieldKind(f["kind"]), int(f["page"]), float(f["x1"]),
                                                  float(f["y1"]), float(f["x2"]), float(f["y2"]), bool(f["required"])))
    recs: dict[str, list[Row]] = defaultdict(list)
    for r in store.query(f"SELECT * FROM envelope_recipients WHERE envelope_id IN ({marks}) "  # noqa: S608 - marks
                         "ORDER BY envelope_id, position", ids):
        recs[r["envelope_id"]].append(r)
    return [_envelope(row, [_document(d, revs[d["id"]]) for d in docs[row["id"]]],
                      [_recipient(r, forms[r["id"]]) for r in recs[row["id"]]]) for row in rows]


def _revision(r: Row) -> Revision:
    return Revision(r["document_id"], int(r["seq"]), r["kind"], r["sha256"], int(r["size"]), r["recipient_id"],
                    r["certificate_serial"], from_text(r["at"]))


def _document(d: Row, revisions: list[Revision]) -> Document:
    current = [r for r in revisions if r.kind != "detached"][-1]
    signed = [r for r in revisions if r.seq > 0]
    return Document(id=d["id"], name=d["name"], media_type=d["media_type"], original_sha256=d["locked_sha256"] or "",
                    current_sha256=current.sha256, size=current.size, pages=int(d["pages"]), signatures=len(signed),
                    signed_by=tuple(r.recipient_id or "" for r in signed))


def _recipient(r: Row, form_fields: list[FormField]) -> Recipient:
    field = None
    if r["field_page"] is not None:
        field = SignatureField(int(r["field_page"]), float(r["field_x1"]), float(r["field_y1"]),
                               float(r["field_x2"]), float(r["field_y2"]))
    return Recipient(
        id=r["id"], person_id=r["person_id"], org_id=r["org_id"], legal_name=r["legal_name"],
        role=RecipientRole(r["role"]), routing_order=int(r["routing_order"]),
        signing_method=SigningMethod(r["signing_method"]), state=RecipientState(r["state"]),
        notified_at=_time(r["notified_at"]), viewed_at=_time(r["viewed_at"]), signed_at=_time(r["signed_at"]),
        declined_at=_time(r["declined_at"]), decline_reason=r["decline_reason"],
        certificate_serial=r["certificate_serial"], field=field, reminders_sent=int(r["reminders_sent"]),
        next_reminder_at=_time(r["next_reminder_at"]), form_fields=tuple(form_fields))


def _envelope(row: Row, documents: list[Document], recipients: list[Recipient]) -> Envelope:
    return Envelope(
        id=row["id"], org_id=row["org_id"], sender_person_id=row["sender_person_id"], sender_name=row["sender_name"],
        title=row["title"], message=row["message"], tags=tuple(json.loads(row["tags"])),
        state=EnvelopeState(row["state"]), documents=tuple(documents), recipients=tuple(recipients),
        created_at=from_text(row["created_at"]), expires_in_days=int(row["expires_in_days"]),
        version=int(row["version"]), sent_at=_time(row["sent_at"]), completed_at=_time(row["completed_at"]),
        expires_at=_time(row["expires_at"]), reminder_every_days=int(row["reminder_every_days"]),
        reminder_max=int(row["reminder_max"]))


def revisions(store: Store, document_id: str) -> list[Revision]:
    rows = store.query("SELECT * FROM envelope_revisions WHERE document_id = ? ORDER BY seq", (document_id,))
    return [_revision(r) for r in rows]


# -- writes ---------------------------------------------------------------------------------------------------------
def insert_envelope(store: Store, env: Envelope) -> None:
    store.insert("envelopes", {
        "id": env.id, "org_id": env.org_id, "sender_person_id": env.sender_person_id,
        "sender_name": Sealed(env.sender_name),
        "title": Sealed(env.title), "message": Sealed(env.message),
        "tags": Sealed(json.dumps(list(env.tags), ensure_ascii=False)),
        "state": env.state.value, "expires_in_days": env.expires_in_days, "created_at": text(env.created_at),
        "sent_at": None, "expires_at": None, "completed_at": None, "ended_at": None, "version": env.version,
        "reminder_every_days": env.reminder_every_days, "reminder_max": env.reminder_max})


def insert_document(store: Store, envelope_id: str, position: int, doc: Document, at: datetime) -> None:
    store.insert("envelope_documents", {
        "id": doc.id, "envelope_id": envelope_id, "position": position, "name": Sealed(doc.name),
        "media_type": doc.media_type, "pages": doc.pages if doc.media_type == PDF else 0, "locked_sha256": None})
    store.insert("envelope_revisions", {
        "document_id": doc.id, "seq": 0, "kind": "original", "sha256": doc.current_sha256, "size": doc.size,
        "recipient_id": None, "certificate_serial": None, "at": text(at)})


def insert_recipient(store: Store, envelope_id: str, position: int, r: Recipient) -> None:
    f = r.field
    store.insert("envelope_recipients", {
        "id": r.id, "envelope_id": envelope_id, "position": position, "person_id": r.person_id, "org_id": r.org_id,
        "legal_name": Sealed(r.legal_name), "role": r.role.value, "routing_order": r.routing_order,
        "signing_method": r.signing_method.value, "state": r.state.value,
        "field_page": f.page if f else None, "field_x1": f.x1 if f else None, "field_y1": f.y1 if f else None,
        "field_x2": f.x2 if f else None, "field_y2": f.y2 if f else None, "notified_at": None, "viewed_at": None,
        "signed_at": None, "declined_at": None, "decline_reason": Sealed(""), "certificate_serial": ""})
    for i, ff in enumerate(r.form_fields):
        store.insert("envelope_form_fields", {
            "envelope_id": envelope_id, "recipient_id": r.id, "position": i, "name": ff.name, "kind": ff.kind.value,
            "page": ff.page, "x1": ff.x1, "y1": ff.y1, "x2": ff.x2, "y2": ff.y2, "required": int(ff.required)})


def replace_form_fields(store: Store, envelope_id: str, fields: Mapping[str, Sequence[FormField]]) -> None:
    """Draft recipients' form fields (by recipient id), as their sender placed them (in this order)."""
    for recipient_id in fields:  # all first: a name may pass from one recipient to another
        store.execute("DELETE FROM envelope_form_fields WHERE recipient_id = ?", (recipient_id,))
    for recipient_id, theirs in fields.items():
        for i, ff in enumerate(theirs):
            store.insert("envelope_form_fields", {
                "envelope_id": envelope_id, "recipient_id": recipient_id, "position": i, "name": ff.name,
                "kind": ff.kind.value, "page": ff.page, "x1": ff.x1, "y1": ff.y1, "x2": ff.x2, "y2": ff.y2,
                "required": int(ff.required)})


def replace_original(store: Store, document_id: str, *, sha256: str, size: int) -> None:
    """A draft document's bytes before any signature (revision 0), remade by its sender (form fields placed again);
    locked at send like the bytes uploaded."""
    store.execute("UPDATE envelope_revisions SET sha256 = ?, size = ? WHERE document_id = ? AND seq = 0",
                  (sha256, size, document_id))


def add_revision(store: Store, document_id: str, *, kind: str, sha256: str, size: int, recipient_id: str,
                 certificate_serial: str, at: datetime) -> int:
    row = store.query_one("SELECT MAX(seq) AS seq FROM envelope_revisions WHERE document_id = ?", (document_id,))
    seq = int(row["seq"]) + 1 if row and row["seq"] is not None else 0
    store.insert("envelope_revisions", {
        "document_id": document_id, "seq": seq, "kind": kind, "sha256": sha256, "size": size,
        "recipient_id": recipient_id, "certificate_serial": certificate_serial, "at": text(at)})
    return seq


# columns whose text names a party or says what the contract is about: encrypted at rest (server.store.fields)
SEALED_COLUMNS = frozenset({"sender_name", "title", "message", "tags", "name", "legal_name", "decline_reason"})


def _assignments(fields: dict[str, Any]) -> tuple[str, list[Any]]:
    values = [Sealed(v) if k in SEALED_COLUMNS and isinstance(v, str) else
              text(v) if isinstance(v, datetime) else (v.value if isinstance(v, Enum) else v)
              for k, v in fields.items()]
    return ", ".join(f"{k} = ?" for k in fields), values


def update_envelope(store: Store, env: Envelope, **fields: Any) -> None:
    """Set ``fields`` and bump the version, if the row is still at ``env.version``."""
    sets, values = _assignments(fields)
    sql = f"UPDATE envelopes SET {sets + ', ' if sets else ''}version = version + 1 WHERE id = ? AND version = ?"  # noqa: S608 - columns from code, values bound
    if store.execute(sql, [*values, env.id, env.version]) != 1:
        raise FailedPrecondition("the envelope changed while this request was handled; read it again and retry",
                                 reason="ENVELOPE_CHANGED")


def update_recipient(store: Store, recipient_id: str, **fields: Any) -> None:
    sets, values = _assignments(fields)
    store.execute(f"UPDATE envelope_recipients SET {sets} WHERE id = ?", [*values, recipient_id])  # noqa: S608


def touch(store: Store, envelope_id: str) -> None:
    """Bump the version of an envelope inside a write transaction that read nothing of it to decide (a notice's
    delivery setting ``notified_at``: the write lock is held, so no other change can interleave)."""
    store.execute("UPDATE envelopes SET version = version + 1 WHERE id = ?", (envelope_id,))


def stop_reminders(store: Store, envelope_id: str) -> None:
    """No reminder is due any more for anyone on the envelope (it ended)."""
    store.execute("UPDATE envelope_recipients SET next_reminder_at = NULL WHERE envelope_id = ? "
                  "AND next_reminder_at IS NOT NULL", (envelope_id,))


def lock_documents(store: Store, env: Envelope) -> None:
    for d in env.documents:
        store.execute("UPDATE envelope_documents SET locked_sha256 = ? WHERE id = ?", (d.current_sha256, d.id))
