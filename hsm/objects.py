"""Object searches that tolerate objects deleted meanwhile through another session or process.

python-pkcs11 reads each found object's class while it iterates a search; an object destroyed between
C_FindObjects and that read gives ObjectHandleInvalid, which would fail a listing (or a chain lookup) because
of an object it may not even want (SoftHSM 2.6, another process deleting keys).  A search that meets a deleted
object starts again.  Within one process, :class:`hsm.token.Token` also serialises its object management.
"""

from __future__ import annotations

from typing import Any

from .rv import STALE_OBJECT_ERRORS

SEARCH_TRIES = 8


def find(session: Any, template: dict[Any, Any]) -> list[Any]:
    """Every object matching ``template``, the search exhausted (a live search blocks the session)."""
    for attempt in range(SEARCH_TRIES):
        try:
            return list(session.get_objects(template))
        except STALE_OBJECT_ERRORS:
            if attempt == SEARCH_TRIES - 1:
                raise
    raise AssertionError("unreachable")


__all__ = ["SEARCH_TRIES", "find"]
