"""The statement a card signs to open a card session at a signing station (KioskService.OpenCardSession).

A certificate read from a card is public: by itself it proves nothing about the card being present.  To open a
session the station has the card sign, with the PIN its holder entered for this one signature, a short statement
naming the station, the card's certificate, the time and a random nonce; the server checks the statement and the
signature (:mod:`server.kiosk`).  The statement is ASCII, exactly these six lines joined by ``\\n`` (no final
newline)::

    signet-card-session-v1
    <the station's organisation id>
    <the station's name: the subject of its certificate>
    <SHA-256 of the card's certificate (DER), 64 lowercase hex digits>
    <the station's UTC time, ISO 8601 with milliseconds: 2030-01-01T12:00:00.123Z>
    <16 to 64 random bytes, lowercase hex>

Both sides use :func:`statement` and :func:`parse`; anything else is not a statement (:class:`BadStatement`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

VERSION = "signet-card-session-v1"
NONCE_BYTES = 16  # what a station draws; the parser takes 16 to 64
MAX_STATEMENT = 512  # bytes: a longer one is refused before it is parsed
_ORG = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # as in a client certificate's caller URI (server.tls)
_STATION = re.compile(r"[A-Za-z0-9_.@-]{1,128}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_NONCE = re.compile(r"(?:[0-9a-f]{2}){16,64}")


class BadStatement(ValueError):
    """Bytes that are not a card-session statement."""


@dataclass(frozen=True)
class Statement:
    org_id: str
    station: str
    certificate_sha256: str  # hex
    time: datetime  # aware, UTC, whole milliseconds
    nonce: str  # hex

    def encode(self) -> bytes:
        stamp = self.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.time.microsecond // 1000:03d}Z"
        return "\n".join((VERSION, self.org_id, self.station, self.certificate_sha256, stamp, self.nonce)).encode()


def statement(org_id: str, station: str, certificate_der: bytes, *, at: datetime | None = None,
              nonce: bytes | None = None) -> bytes:
    """The statement for ``certificate_der`` at station ``station`` of ``org_id``, at ``at`` (default: now) with a
    fresh random nonce (or ``nonce``)."""
    when = (at or datetime.now(UTC)).astimezone(UTC)
    when = when.replace(microsecond=when.microsecond // 1000 * 1000)
    s = Statement(org_id, station, hashlib.sha256(certificate_der).hexdigest(), when,
                  (nonce if nonce is not None else secrets.token_bytes(NONCE_BYTES)).hex())
    data = s.encode()
    parse(data)  # what this side writes, the other side reads
    return data


def parse(data: bytes) -> Statement:
    """The statement ``data`` is, checked field by field; BadStatement (saying which field) otherwise."""
    if not data or len(data) > MAX_STATEMENT:
        raise BadStatement("the statement is empty or too long")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise BadStatement("the statement is not ASCII") from None
    lines = text.split("\n")
    if len(lines) != 6 or lines[0] != VERSION:
        raise BadStatement(f"the statement is not six lines starting with {VERSION}")
    _, org_id, station, digest, stamp, nonce = lines
    for value, pattern, what in ((org_id, _ORG, "organisation"), (station, _STATION, "station"),
                                 (digest, _SHA256, "certificate hash"), (stamp, _TIME, "time"),
                                 (nonce, _NONCE, "nonce")):
        if pattern.fullmatch(value) is None:
            raise BadStatement(f"the statement's {what} is malformed")
    try:
        when = datetime.strptime(stamp[:-1] + "000", "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    except ValueError:
        raise BadStatement("the statement's time is not a date") from None
    return Statement(org_id, station, digest, when, nonce)


__all__ = ["MAX_STATEMENT", "NONCE_BYTES", "VERSION", "BadStatement", "Statement", "parse", "statement"]
