"""The audit log's wire formats, shared by the server (which writes the log) and the `signet` CLI (which checks an
evidence bundle offline): a leaf's bytes (canonical JSON of ``{seq, time, kind, subject, payload}``), timestamps
(ISO 8601 UTC, milliseconds), and the message a signed tree head's signature covers.  See
:mod:`server.audit.log` for the log itself and :mod:`signet.merkle` for the tree."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from . import merkle

HEAD_LABEL = b"signet-audit-tree-head-v1\x00"


class AuditError(ValueError):
    """A request the audit log refuses: a payload that is not canonical JSON, a size or seq out of range."""


def _check_json(value: object, where: str) -> None:
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise AuditError(f"{where}: text that is not valid Unicode") from e
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, str):
                raise AuditError(f"{where}: key {k!r} is not a string")
            _check_json(k, f"{where} key")
            _check_json(item, f"{where}.{k}")
        return
    raise AuditError(f"{where}: {type(value).__name__} is not allowed in the audit log "
                     "(strings, integers, booleans, null, lists and objects only)")


def canonical_json(value: object) -> str:
    """The canonical JSON text of ``value`` (see the module docstring); :class:`AuditError` when not encodable."""
    _check_json(value, "payload")
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)


# free text an envelope event's detail may carry (a title, a decline or void reason): the audit leaf holds its
# SHA-256 instead (``title_sha256``), so the public log commits to it without disclosing it
PRIVATE_DETAIL = {"created": ("title",), "declined": ("reason",), "voided": ("reason",)}


def event_leaf_payload(type_: str, event_id: int, actor: str, detail: Mapping[str, Any]) -> dict[str, Any]:
    """The payload of the audit leaf of envelope event ``type_``: ``{event_id, actor, detail}``, the detail's
    free text (:data:`PRIVATE_DETAIL`) replaced by the SHA-256 of its UTF-8 canonical JSON."""
    private = PRIVATE_DETAIL.get(type_, ())
    shown: dict[str, Any] = {}
    for k, v in detail.items():
        if k in private:
            shown[f"{k}_sha256"] = hashlib.sha256(canonical_json(v).encode()).hexdigest()
        else:
            shown[k] = v
    return {"event_id": event_id, "actor": actor, "detail": shown}


def leaf_bytes(seq: int, time: str, kind: str, subject: str, payload: Mapping[str, Any]) -> bytes:
    """The bytes of a leaf, hashed as ``SHA-256(0x00 || leaf)``."""
    return _leaf_text(seq, time, kind, subject, canonical_json(payload))


def _leaf_text(seq: int, time: str, kind: str, subject: str, payload_json: str) -> bytes:
    """:func:`leaf_bytes` from the payload's canonical JSON text (the keys in their sorted order)."""
    def text(v: str) -> str:
        return json.dumps(v, ensure_ascii=False)

    return (f'{{"kind":{text(kind)},"payload":{payload_json},"seq":{int(seq)},"subject":{text(subject)},'
            f'"time":{text(time)}}}').encode()


def _ms(when: datetime) -> int:
    if when.tzinfo is None:
        raise AuditError("naive datetime: the audit log takes UTC only")
    delta = when.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    ms = delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    if ms < 0:
        raise AuditError("a time before 1970 cannot be a tree head's timestamp")
    return ms


def time_text(when: datetime) -> str:
    """``when`` as ISO 8601 UTC with milliseconds (truncated): ``2030-01-01T12:00:00.123Z``."""
    if when.tzinfo is None:
        raise AuditError("naive datetime: the audit log takes UTC only")
    u = when.astimezone(UTC)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def parse_time(text: str) -> datetime:
    """The inverse of :func:`time_text`; :class:`AuditError` for anything else."""
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise AuditError(f"not an audit timestamp (ISO 8601 UTC, 3-digit milliseconds): {text!r}")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError as e:
        raise AuditError(f"not an audit timestamp: {text!r}") from e


def head_message(tree_size: int, timestamp_ms: int, root: bytes) -> bytes:
    """The bytes a tree head's signature covers."""
    if not 0 <= tree_size < 1 << 64 or not 0 <= timestamp_ms < 1 << 64 or len(root) != merkle.HASH_SIZE:
        raise AuditError("tree size, timestamp or root out of range for a tree head")
    return HEAD_LABEL + tree_size.to_bytes(8, "big") + timestamp_ms.to_bytes(8, "big") + root
