"""The envelope's event log: one row per state change (and per refusal), written in the transaction of the change.

Ids increase across all envelopes (an integrator can resume from the last id it saw).  They are assigned as
MAX(id) + 1 under the transaction's write lock: portable SQL, and the primary key refuses a duplicate should
two writers ever race.  Details are JSON objects and never hold codes or document contents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..clock import from_text
from ..store import Store
from .model import Event
from .records import text


def append(store: Store, envelope_id: str, type_: str, actor: str, at: datetime,
           detail: Mapping[str, Any] | None = None) -> int:
    with store.transaction():
        row = store.query_one("SELECT MAX(id) AS last FROM envelope_events")
        event_id = int(row["last"]) + 1 if row and row["last"] is not None else 1
        store.insert("envelope_events", {
            "id": event_id, "envelope_id": envelope_id, "type": type_, "actor": actor, "at": text(at),
            "detail": json.dumps(dict(detail or {}), ensure_ascii=False, sort_keys=True)})
    return event_id


def after(store: Store, envelope_id: str, after_id: int, limit: int) -> list[Event]:
    rows = store.query("SELECT * FROM envelope_events WHERE envelope_id = ? AND id > ? ORDER BY id LIMIT ?",
                       (envelope_id, after_id, limit))
    return [Event(int(r["id"]), r["envelope_id"], r["type"], r["actor"], from_text(r["at"]), json.loads(r["detail"]))
            for r in rows]
