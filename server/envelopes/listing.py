"""Lists of envelopes: the caller's views, newest first, in pages behind an opaque token.

Views: ``""`` (everything the caller may see: a person's sent envelopes and those addressed to them once sent;
an operator's organisation), ``"sent"`` (a person's own; an operator's organisation), ``"inbox"`` (sent
envelopes waiting for the caller's signature: a signer or approver whose group has started and who has not
finished; operators sign nothing and have an empty inbox).  Pages hold ``page_size`` envelopes (default 50,
at most 200); the token carries the view and the position after the last envelope returned (keyset
pagination: a page never repeats or skips an envelope because others were created meanwhile).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from ..errors import InvalidArgument
from ..identity import Principal
from ..store import Store
from . import records
from .model import Page

VIEWS = ("", "sent", "inbox")
DEFAULT_PAGE = 50
MAX_PAGE = 200

_MINE = "(e.org_id = ? AND e.sender_person_id = ?)"
_ADDRESSED = ("EXISTS (SELECT 1 FROM envelope_recipients r WHERE r.envelope_id = e.id AND r.person_id = ? "
              "AND r.org_id = ?{extra})")
_WAITING = " AND r.role <> 'copy' AND r.state IN ('notified', 'viewed')"


def page_size(requested: int) -> int:
    """0 means the default; more than the maximum is the maximum."""
    return DEFAULT_PAGE if requested <= 0 else min(requested, MAX_PAGE)


def _token(view: str, created_at: str, envelope_id: str) -> str:
    raw = json.dumps({"v": view, "c": created_at, "i": envelope_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _position(token: str, view: str) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if data["v"] == view and isinstance(data["c"], str) and isinstance(data["i"], str):
            return data["c"], data["i"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        pass
    raise InvalidArgument("the page token is not one this list returned", reason="PAGE_TOKEN_INVALID")


def _where(p: Principal, view: str) -> tuple[str, list[Any]] | None:
    if p.is_operator:
        return (None if view == "inbox" else ("e.org_id = ?", [p.org_id]))
    if not p.is_person:  # a station by itself: nothing
        return None
    me = [p.org_id, p.subject]
    them = [p.subject, p.org_id]
    if view == "sent":
        return _MINE, me
    if view == "inbox":
        return "e.state = 'sent' AND " + _ADDRESSED.format(extra=_WAITING), them
    return f"({_MINE} OR (e.state <> 'draft' AND {_ADDRESSED.format(extra='')}))", [*me, *them]


def list_page(store: Store, p: Principal, view: str, size: int, token: str) -> Page:
    if view not in VIEWS:
        raise InvalidArgument(f"unknown view {view!r}: use \"\", \"sent\" or \"inbox\"", reason="VIEW_INVALID")
    position = _position(token, view)
    where = _where(p, view)
    if where is None:
        return Page((), "")
    sql, params = where
    if position is not None:
        sql += " AND (e.created_at < ? OR (e.created_at = ? AND e.id < ?))"
        params += [position[0], position[0], position[1]]
    rows = store.query(f"SELECT e.* FROM envelopes e WHERE {sql} "  # noqa: S608 - fixed fragments, values bound
                       "ORDER BY e.created_at DESC, e.id DESC LIMIT ?", [*params, size + 1])
    more = len(rows) > size
    rows = rows[:size]
    next_token = _token(view, rows[-1]["created_at"], rows[-1]["id"]) if more else ""
    return Page(tuple(records.assemble(store, rows)), next_token)
