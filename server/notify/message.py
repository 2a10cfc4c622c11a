"""What a notification is: an address, a subject and a text that may hold a secret."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class AddressKind(StrEnum):
    PHONE = "phone"  # E.164, e.g. +8613800138000
    EMAIL = "email"


@dataclass(frozen=True)
class Address:
    kind: AddressKind
    value: str

    @classmethod
    def phone(cls, e164: str) -> Address:
        return cls(AddressKind.PHONE, e164)

    @classmethod
    def email(cls, addr: str) -> Address:
        return cls(AddressKind.EMAIL, addr)


@dataclass(frozen=True)
class Message:
    """One notification.

    ``body`` is left out of ``repr`` because it may carry a one-time code; log ``id`` and
    ``topic`` instead.  ``topic`` is a short machine label (``otp.phone-verification``,
    ``envelope.sent``) that is safe to log and store in clear.
    """

    to: Address
    subject: str
    body: str = field(repr=False)
    topic: str = "general"
    id: str = field(default_factory=lambda: secrets.token_hex(12))


@dataclass(frozen=True)
class Delivery:
    message_id: str
    channel: str
    reference: str  # channel-specific: outbox row id, SMTP queue answer, webhook delivery id
    attempts: int = 1


class Channel(Protocol):
    """Delivers messages; raises :class:`server.errors.Unavailable` when it cannot."""

    name: str

    def send(self, message: Message) -> Delivery: ...
