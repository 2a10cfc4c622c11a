"""Notifications: one :class:`Channel` interface, three ways to deliver.

- :class:`OutboxChannel` (default): a store table, bodies encrypted at rest; ``list``/``read``
  back `signet-admin outbox`.
- :class:`SmtpChannel`: e-mail via an SMTP relay (STARTTLS by default).
- :class:`WebhookChannel`: HTTPS POST of signed JSON to a webhook or SMS gateway, retried with
  exponential backoff on 5xx and connection errors (contract in :mod:`server.webhooks`).

:class:`Router` picks a channel per address kind (e.g. phone -> SMS gateway, e-mail -> SMTP) and
falls back to a default.  Message bodies may carry one-time codes: channels log message ids and
topics, never bodies.
"""

from __future__ import annotations

from collections.abc import Mapping

from .message import Address, AddressKind, Channel, Delivery, Message
from .outbox import OutboxChannel, OutboxEntry, OutboxMessage
from .smtp import SmtpChannel, SmtpConfig
from .webhook import WebhookChannel


class Router:
    """A channel that hands each message to the channel configured for its address kind."""

    name = "router"

    def __init__(self, default: Channel, by_kind: Mapping[AddressKind, Channel] | None = None) -> None:
        self.default = default
        self.by_kind = dict(by_kind or {})

    def channel_for(self, to: Address) -> Channel:
        """The channel a message to ``to`` goes through."""
        return self.by_kind.get(to.kind, self.default)

    def send(self, message: Message) -> Delivery:
        return self.channel_for(message.to).send(message)


__all__ = [
    "Address", "AddressKind", "Channel", "Delivery", "Message", "OutboxChannel", "OutboxEntry",
    "OutboxMessage", "Router", "SmtpChannel", "SmtpConfig", "WebhookChannel",
]
