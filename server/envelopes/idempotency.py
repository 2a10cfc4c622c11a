"""Idempotency keys: a retried create, send, sign, decline or void returns the first answer and acts once.

A key belongs to its caller and operation.  Next to it the store keeps a SHA-256 of what the first request
asked (never a one-time code) and the first answer, the envelope as it was returned then (JSON).  The same key
with a different request is refused (INVALID_ARGUMENT ``IDEMPOTENCY_KEY_REUSED``): it is a client bug, and
answering it with another request's result would hide it.  The key row is written in the transaction that
acts, after reading it again under the write lock, so two concurrent retries cannot both act.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from ..clock import from_text, to_text
from ..errors import InvalidArgument
from ..store import Sealed, Store
from .model import (
    Document,
    Envelope,
    EnvelopeState,
    FormField,
    FormFieldKind,
    Recipient,
    RecipientRole,
    RecipientState,
    SignatureField,
    SigningMethod,
)

MAX_KEY = 200


@dataclass(frozen=True)
class Key:
    caller: str
    operation: str
    key: str
    request_sha256: str


def key_for(caller: str, operation: str, key: str, *request: Any) -> Key | None:
    """The idempotency key of a request (None without one); ``request`` is what identifies the request."""
    if not key:
        return None
    if len(key) > MAX_KEY or not key.isprintable():
        raise InvalidArgument(f"an idempotency key is 1 to {MAX_KEY} printable characters",
                              reason="IDEMPOTENCY_KEY_INVALID")
    digest = hashlib.sha256(json.dumps(list(request), sort_keys=True, default=str).encode("utf-8")).hexdigest()
    return Key(caller, operation, key, digest)


def recall(store: Store, key: Key | None) -> Envelope | None:
    """The first answer given under ``key``, or None when the key is new."""
    if key is None:
        return None
    row = store.query_one("SELECT request_sha256, answer FROM envelope_idempotency "
                          "WHERE caller = ? AND operation = ? AND idempotency_key = ?",
                          (key.caller, key.operation, key.key))
    if row is None:
        return None
    if row["request_sha256"] != key.request_sha256:
        raise InvalidArgument("this idempotency key was used for a different request; use a new key for a new "
                              "request", reason="IDEMPOTENCY_KEY_REUSED")
    return restore(json.loads(row["answer"]))


def remember(store: Store, key: Key | None, envelope: Envelope, at: datetime) -> None:
    if key is None:
        return
    store.insert("envelope_idempotency", {
        "caller": key.caller, "operation": key.operation, "idempotency_key": key.key,
        "request_sha256": key.request_sha256, "envelope_id": envelope.id, "answer": Sealed(json.dumps(plain(envelope))),
        "created_at": to_text(at)})


# -- the stored answer ------------------------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """A JSON-ready form of an envelope value (dataclasses, tuples, enums, datetimes)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return to_text(value)
    return value


def _time(value: str | None) -> datetime | None:
    return from_text(value) if value else None


def _recipient(d: dict[str, Any]) -> Recipient:
    # answers stored before a field existed lack it: the field's default stands
    times: dict[str, datetime | None] = {
        k: _time(d[k]) for k in ("notified_at", "viewed_at", "signed_at", "declined_at", "next_reminder_at") if k in d}
    return Recipient(**{**d, **times, "role": RecipientRole(d["role"]), "state": RecipientState(d["state"]),
                        "signing_method": SigningMethod(d["signing_method"]),
                        "field": SignatureField(**d["field"]) if d["field"] else None,
                        "form_fields": tuple(FormField(**{**f, "kind": FormFieldKind(f["kind"])})
                                             for f in d.get("form_fields", ()))})


def restore(d: dict[str, Any]) -> Envelope:
    return Envelope(**{
        **d, "tags": tuple(d["tags"]), "state": EnvelopeState(d["state"]),
        "documents": tuple(Document(**{**x, "signed_by": tuple(x["signed_by"])}) for x in d["documents"]),
        "recipients": tuple(_recipient(x) for x in d["recipients"]),
        "created_at": from_text(d["created_at"]), "sent_at": _time(d["sent_at"]),
        "completed_at": _time(d["completed_at"]), "expires_at": _time(d["expires_at"])})
