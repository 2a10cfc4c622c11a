"""Sealed fields: titles, names, reasons and other contract or personal text encrypted in the database.

Domain code marks a value it writes with :class:`Sealed` (``store.insert("envelopes", {"title":
Sealed(title)})``, or as a parameter of an ``UPDATE``); a store with a :class:`FieldSealer` attached stores it
as ``sealed:1:`` + base64(:class:`~server.sealing.SecretBox` ciphertext), and opens every value carrying that
prefix when a query reads it back, whatever the column or alias.  The server runtime attaches the sealer made
from its HSM-unwrapped data key before any service runs, so no title word, party name or free-text reason is
written to the database file or its WAL in plaintext.

A sealed column is never compared in SQL (the ciphertext is randomised): lookups go through ids, or keyed hashes
(:func:`server.sealing.keyed_hash`) and the blind search index.

A store without a sealer (unit tests, benches, tools that never see contract text) keeps :class:`Sealed`
values as the plaintext they wrap; reading a sealed value from such a store is an error, never ciphertext
returned as text.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..sealing import SealingError, SecretBox

PREFIX = "sealed:1:"
_PREFIX_BYTES = PREFIX.encode()
_AAD = b"signet/store/field/v1"


@dataclass(frozen=True, slots=True)
class Sealed:
    """A value to be written encrypted: text or bytes."""

    value: str | bytes

    def __repr__(self) -> str:  # the value is what must not leak
        return "Sealed(...)"


class FieldSealer:
    """Seals and opens field values with one :class:`SecretBox`."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box

    def seal(self, value: str | bytes) -> str | bytes:
        if isinstance(value, str):
            return PREFIX + base64.b64encode(self._box.encrypt(b"s" + value.encode(), _AAD)).decode("ascii")
        return _PREFIX_BYTES + self._box.encrypt(b"b" + bytes(value), _AAD)

    def open(self, value: str | bytes) -> str | bytes:
        try:
            raw = base64.b64decode(value[len(PREFIX):], validate=True) if isinstance(value, str) \
                else bytes(value[len(_PREFIX_BYTES):])
        except (binascii.Error, ValueError) as e:
            raise SealingError("a sealed field is not valid base64") from e
        plain = self._box.decrypt(raw, _AAD)
        kind, body = plain[:1], plain[1:]
        if kind == b"s":
            return body.decode("utf-8")
        if kind == b"b":
            return body
        raise SealingError("a sealed field has an unknown type")


def is_sealed(value: object) -> bool:
    return (isinstance(value, str) and value.startswith(PREFIX)) or \
        (isinstance(value, bytes) and value.startswith(_PREFIX_BYTES))


def bind(sealer: FieldSealer | None, params: Sequence[Any]) -> tuple[Any, ...]:
    """Parameters as the database gets them: :class:`Sealed` ones encrypted (or unwrapped without a sealer)."""
    if not any(isinstance(p, Sealed) for p in params):
        return tuple(params)
    return tuple((sealer.seal(p.value) if sealer else p.value) if isinstance(p, Sealed) else p for p in params)


def open_row(sealer: FieldSealer | None, names: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """One result row with its sealed values opened."""
    row = dict(zip(names, values, strict=True))
    for k, v in row.items():
        if is_sealed(v):
            if sealer is None:
                raise SealingError(f"column {k!r} holds a sealed value and this store has no field key")
            row[k] = sealer.open(v)
    return row


__all__ = ["PREFIX", "FieldSealer", "Sealed", "bind", "is_sealed", "open_row"]
