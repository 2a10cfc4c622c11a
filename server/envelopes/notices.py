"""Notices about envelopes, by e-mail through the server's notifier :class:`~server.notify.Channel`.

A notice names the envelope, its title and who acts; never a document's bytes, never a one-time code (signing
codes go to the phone, :mod:`.signing`).  Each notice is handed to the channel inside the transaction of the
change it announces: with the outbox (the default channel, a store table) the change and its notices commit
together; a channel that fails (SMTP relay, webhook down) fails the change, which a client retries (with its
idempotency key) rather than leaving recipients waiting for a notice that never went out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from ..clock import Clock
from ..identity import Person
from ..notify.message import Address, Channel, Delivery, Message
from .model import Envelope
from .records import ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    delivery: Delivery
    at: datetime  # when the notice was handed to the channel (ms precision)


class Notices:
    def __init__(self, channel: Channel, clock: Clock) -> None:
        self._channel = channel
        self._clock = clock

    def _send(self, env: Envelope, to: Person, topic: str, subject: str, body: str) -> Sent:
        at = ms(self._clock.now())
        delivery = self._channel.send(Message(to=Address.email(to.email), subject=subject, body=body,
                                              topic=f"envelope.{topic}"))
        log.info("envelope %s: %s notice %s to person %s", env.id, topic, delivery.message_id, to.id)
        return Sent(delivery, at)

    def your_turn(self, env: Envelope, to: Person, *, signs: bool) -> Sent:
        action = "review and sign it with your token" if signs else "it is sent to you for your information"
        body = (f"{env.sender_name} sent you the envelope \"{env.title}\" ({len(env.documents)} document(s)): "
                f"{action}.\nEnvelope: {env.id}\n"
                + (f"Message from the sender: {env.message}\n" if env.message else ""))
        return self._send(env, to, "sent", f"Signet: \"{env.title}\" from {env.sender_name}", body)

    def completed(self, env: Envelope, to: Person) -> Sent:
        body = (f"Every party has signed the envelope \"{env.title}\" from {env.sender_name}.\nEnvelope: {env.id}\n")
        return self._send(env, to, "completed", f"Signet: \"{env.title}\" is completed", body)

    def declined(self, env: Envelope, to: Person, by: str, reason: str) -> Sent:
        body = (f"{by} declined to sign the envelope \"{env.title}\" from {env.sender_name}; it is closed.\n"
                f"Reason given: {reason}\nEnvelope: {env.id}\n")
        return self._send(env, to, "declined", f"Signet: \"{env.title}\" was declined", body)

    def voided(self, env: Envelope, to: Person, by: str, reason: str) -> Sent:
        body = (f"The envelope \"{env.title}\" from {env.sender_name} was voided by {by}; nothing more is to be "
                f"signed.\nReason given: {reason}\nEnvelope: {env.id}\n")
        return self._send(env, to, "voided", f"Signet: \"{env.title}\" was voided", body)
