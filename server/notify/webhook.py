"""The webhook / SMS-gateway channel: each message POSTed as signed JSON (see :mod:`server.webhooks`).

Request body::

    {"id": "<message id>", "topic": "otp.phone-verification", "to": {"kind": "phone", "value": "+86..."},
     "subject": "...", "text": "..."}

The gateway answers 2xx once it has taken the message; 5xx or a broken connection is retried with
exponential backoff, other answers are final.  The message id doubles as ``X-Signet-Delivery``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..clock import Clock
from ..webhooks import WebhookTarget, post_signed_json
from .message import Delivery, Message

log = logging.getLogger(__name__)


class WebhookChannel:
    name = "webhook"

    def __init__(self, target: WebhookTarget, *, clock: Clock | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.target = target
        self._clock = clock
        self._sleep = sleep

    def send(self, message: Message) -> Delivery:
        payload = {
            "id": message.id,
            "topic": message.topic,
            "to": {"kind": message.to.kind.value, "value": message.to.value},
            "subject": message.subject,
            "text": message.body,
        }
        resp = post_signed_json(self.target, payload, clock=self._clock, sleep=self._sleep, delivery_id=message.id)
        return Delivery(message.id, self.name, resp.delivery_id, resp.attempts)
