"""Signed JSON over HTTPS: the one webhook contract Signet speaks (notifications, identity providers).

Every request is a ``POST`` of a UTF-8 JSON object with these headers:

``X-Signet-Timestamp``
    Unix seconds when this attempt was signed (a retry is signed afresh).
``X-Signet-Signature``
    ``sha256=<hex>`` where hex is HMAC-SHA256(secret, ``<timestamp>`` + ``"."`` + body bytes).
``X-Signet-Delivery``
    An id that stays the same across the retries of one delivery, so receivers can drop duplicates.

Receivers must recompute the HMAC over the exact body bytes, compare in constant time and refuse
timestamps older than a few minutes.  Answers that matter (an identity provider's decision) are
signed the same way by the receiver, and checked here with :func:`verify_signature`.

Transport: HTTPS with certificate verification unless ``allow_http`` (tests); no redirects are
followed.  5xx answers and connection errors are retried with exponential backoff; any other
non-2xx answer is final.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import secrets
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .clock import Clock, SystemClock
from .errors import InvalidArgument, Unauthenticated, Unavailable

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signet-Signature"
TIMESTAMP_HEADER = "X-Signet-Timestamp"
DELIVERY_HEADER = "X-Signet-Delivery"


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Signet-Signature`` header value for ``body`` signed at ``timestamp``."""
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: bytes, headers: Mapping[str, str], body: bytes, now: float, tolerance: float = 300
) -> None:
    """Raise :class:`Unauthenticated` unless the headers carry a fresh, valid signature of ``body``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    ts_text = lowered.get(TIMESTAMP_HEADER.lower(), "")
    sig = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not ts_text.isdigit() or not sig.startswith("sha256="):
        raise Unauthenticated("webhook signature headers are missing or malformed", reason="SIGNATURE_INVALID")
    ts = int(ts_text)
    if abs(now - ts) > tolerance:
        raise Unauthenticated("webhook signature timestamp is outside the allowed window", reason="SIGNATURE_STALE")
    if not hmac.compare_digest(sign(secret, ts, body).encode("ascii"), sig.encode("ascii", "replace")):
        raise Unauthenticated("webhook signature does not match", reason="SIGNATURE_INVALID")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.5  # seconds before the 2nd attempt; doubles each time
    max_delay: float = 30.0
    timeout: float = 10.0  # per attempt, connect + read

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.base_delay * (2 ** (attempt - 1)), self.max_delay))


@dataclass(frozen=True)
class WebhookResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)
    attempts: int
    delivery_id: str

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise Unavailable("webhook answered with a body that is not JSON") from e


@dataclass(frozen=True)
class WebhookTarget:
    """Where and how to POST; ``secret`` is never shown in reprs."""

    url: str
    secret: bytes = field(repr=False)
    allow_http: bool = False
    cafile: str | None = None
    retry: RetryPolicy = RetryPolicy()

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise InvalidArgument(f"webhook URL {self.url!r} is not an absolute http(s) URL")
        if parts.scheme == "http" and not self.allow_http:
            raise InvalidArgument(f"webhook URL {self.url!r} must use https (plain http is for tests only)")
        if len(self.secret) < 16:
            raise InvalidArgument("webhook secret must be at least 16 bytes")


class _Retryable(Exception):
    pass


def post_signed_json(
    target: WebhookTarget,
    payload: Mapping[str, Any],
    *,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
    delivery_id: str | None = None,
) -> WebhookResponse:
    """POST ``payload`` with retries; returns the first 2xx answer or raises :class:`Unavailable`.

    Never logs the payload (it may hold a one-time code or personal data).
    """
    clock = clock or SystemClock()
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    delivery_id = delivery_id or secrets.token_hex(12)
    parts = urlsplit(target.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    policy = target.retry
    last = "no attempt made"
    for attempt in range(1, policy.max_attempts + 1):
        ts = int(clock.now().timestamp())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "signet-server",
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(target.secret, ts, body),
            DELIVERY_HEADER: delivery_id,
        }
        try:
            status, resp_headers, resp_body = _post_once(target, parts, path, body, headers)
            if 500 <= status <= 599:
                raise _Retryable(f"HTTP {status}")
        except (_Retryable, OSError, http.client.HTTPException) as e:
            last = str(e) or type(e).__name__
            log.warning("webhook delivery %s to %s failed (attempt %d/%d): %s",
                        delivery_id, parts.hostname, attempt, policy.max_attempts, last)
            if attempt < policy.max_attempts:
                sleep(policy.delay(attempt))
            continue
        if not 200 <= status <= 299:
            log.warning("webhook delivery %s to %s refused with HTTP %d", delivery_id, parts.hostname, status)
            raise Unavailable(f"webhook {parts.hostname} refused the delivery with HTTP {status}",
                              reason="WEBHOOK_REFUSED")
        log.info("webhook delivery %s to %s done (attempt %d)", delivery_id, parts.hostname, attempt)
        return WebhookResponse(status, resp_headers, resp_body, attempt, delivery_id)
    raise Unavailable(f"webhook {parts.hostname} unreachable after {policy.max_attempts} attempts ({last})",
                      reason="WEBHOOK_UNREACHABLE")


def _post_once(
    target: WebhookTarget, parts: Any, path: str, body: bytes, headers: Mapping[str, str]
) -> tuple[int, dict[str, str], bytes]:
    timeout = target.retry.timeout
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        ctx = ssl.create_default_context(cafile=target.cafile)
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers=dict(headers))
        resp = conn.getresponse()
        data = resp.read(1 << 20)  # answers are small; never buffer an unbounded body
        return resp.status, {k: v for k, v in resp.getheaders()}, data
    finally:
        conn.close()
