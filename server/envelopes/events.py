"""The envelope's event log: one row per state change (and per refusal), written in the transaction of the change.

Ids increase across all envelopes (an integrator can resume from the last id it saw).  They are assigned as
MAX(id) + 1 under the transaction's write lock: portable SQL, and the primary key refuses a duplicate should
two writers ever race.  Because writers take that lock one after another, ids also become visible in order:
a reader that sees event N sees every event before it, which is what lets WatchEnvelopeEvents follow the log
with "id > the last one seen" and never skip one (:mod:`.watch`).  Details are JSON objects and never hold
codes or document contents.

Every event is also a leaf of the audit log (:mod:`server.audit`), appended in the same transaction: kind
``envelope.<type>``, subject the envelope id, payload ``{"event_id", "actor", "detail"}``: the detail as stored
here, except free text (a title, a decline or void reason) which the leaf holds as its SHA-256
(:func:`signet.auditformat.event_leaf_payload`).  The detail column itself is sealed at rest
(:mod:`server.store.fields`).  The audit tables are created beside the envelope tables
(:class:`.service.EnvelopeService`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from signet.auditformat import event_leaf_payload

from .. import audit
from ..clock import from_text
from ..store import Row, Sealed, Store
from .model import Event
from .records import text


def append(store: Store, envelope_id: str, type_: str, actor: str, at: datetime,
           detail: Mapping[str, Any] | None = None) -> int:
    with store.transaction():
        row = store.query_one("SELECT MAX(id) AS last FROM envelope_events")
        event_id = int(row["last"]) + 1 if row and row["last"] is not None else 1
        data = dict(detail or {})
        store.insert("envelope_events", {
            "id": event_id, "envelope_id": envelope_id, "type": type_, "actor": actor, "at": text(at),
            "detail": Sealed(json.dumps(data, ensure_ascii=False, sort_keys=True))})
        audit.append(store, f"envelope.{type_}", envelope_id, event_leaf_payload(type_, event_id, actor, data), at)
    return event_id


def after(store: Store, envelope_id: str, after_id: int, limit: int) -> list[Event]:
    rows = store.query("SELECT * FROM envelope_events WHERE envelope_id = ? AND id > ? ORDER BY id LIMIT ?",
                       (envelope_id, after_id, limit))
    return [_event(r) for r in rows]


def _event(r: Row) -> Event:
    return Event(int(r["id"]), r["envelope_id"], r["type"], r["actor"], from_text(r["at"]), json.loads(r["detail"]))


def head(store: Store) -> int:
    """The id of the newest event (0 when there is none)."""
    row = store.query_one("SELECT MAX(id) AS last FROM envelope_events")
    return int(row["last"]) if row and row["last"] is not None else 0


def window(store: Store, after_id: int, up_to: int, scope: str, params: Sequence[object], limit: int) -> list[Event]:
    """Events with ``after_id`` < id <= ``up_to`` whose envelope ``e`` matches ``scope`` (an SQL condition written
    in code, its values in ``params``), oldest first."""
    sql = ("SELECT ev.* FROM envelope_events ev JOIN envelopes e ON e.id = ev.envelope_id "  # noqa: S608 - scope
           f"WHERE ev.id > ? AND ev.id <= ? AND ({scope}) ORDER BY ev.id LIMIT ?")  # is code, values are bound
    return [_event(r) for r in store.query(sql, [after_id, up_to, *params, limit])]
