"""Webhook / SMS-gateway channel against a real local HTTP(S) server: HMAC, retries, backoff, give-up."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from pathlib import Path

import pytest

from server.clock import ManualClock
from server.errors import InvalidArgument, Unauthenticated, Unavailable
from server.notify import Address, Message, WebhookChannel
from server.webhooks import RetryPolicy, WebhookTarget, sign, verify_signature
from tests.server_helpers import Received, free_port, http_receiver, make_tls

SECRET = b"gateway-shared-secret-0123456789"


def receiver_checks_signature(req: Received, clock: ManualClock) -> bool:
    """What a gateway does, written independently of server.webhooks."""
    ts = req.headers["X-Signet-Timestamp"]
    expected = "sha256=" + hmac.new(SECRET, ts.encode() + b"." + req.body, hashlib.sha256).hexdigest()
    fresh = abs(int(ts) - clock.now().timestamp()) <= 300
    return fresh and hmac.compare_digest(expected, req.headers["X-Signet-Signature"])


def test_fails_twice_then_succeeds_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = ManualClock()
    delays: list[float] = []

    def answer(req: Received, i: int) -> tuple[int, dict[str, str], bytes]:
        if not receiver_checks_signature(req, clock):
            return 401, {}, b"bad signature"
        return (503, {}, b"busy") if i < 2 else (202, {}, b"{}")

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        clock.advance(seconds)

    msg = Message(Address.phone("+8613800138000"), "Code", "Signet code 246810", topic="otp.phone-verification")
    with http_receiver(answer) as rec:
        target = WebhookTarget(rec.url, SECRET, allow_http=True, retry=RetryPolicy(max_attempts=4, base_delay=0.25))
        delivery = WebhookChannel(target, clock=clock, sleep=sleep).send(msg)
    assert delivery.attempts == 3 and delivery.channel == "webhook"
    assert delays == [0.25, 0.5]
    assert len(rec.requests) == 3
    assert {r.headers["X-Signet-Delivery"] for r in rec.requests} == {msg.id}
    assert [int(r.headers["X-Signet-Timestamp"]) for r in rec.requests] == \
        [int(clock.now().timestamp() - 0.75), int(clock.now().timestamp() - 0.5), int(clock.now().timestamp())]
    body = json.loads(rec.requests[-1].body)
    assert body == {"id": msg.id, "topic": "otp.phone-verification", "subject": "Code",
                    "to": {"kind": "phone", "value": "+8613800138000"}, "text": "Signet code 246810"}
    assert "246810" not in caplog.text


def test_bad_secret_is_refused_by_the_receiver_and_not_retried() -> None:
    clock = ManualClock()
    with http_receiver(lambda req, i: (200, {}, b"") if receiver_checks_signature(req, clock)
                       else (401, {}, b"")) as rec:
        target = WebhookTarget(rec.url, b"x" * 32, allow_http=True, retry=RetryPolicy(max_attempts=3, base_delay=0))
        with pytest.raises(Unavailable) as info:
            WebhookChannel(target, clock=clock).send(Message(Address.phone("+8613800138000"), "s", "b"))
    assert info.value.reason == "WEBHOOK_REFUSED" and len(rec.requests) == 1


def test_gives_up_after_n_attempts() -> None:
    delays: list[float] = []
    with http_receiver(lambda req, i: (500, {}, b"")) as rec:
        target = WebhookTarget(rec.url, SECRET, allow_http=True,
                               retry=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02))
        with pytest.raises(Unavailable) as info:
            WebhookChannel(target, sleep=delays.append).send(Message(Address.phone("+8613800138000"), "s", "b"))
    assert len(rec.requests) == 4 and delays == [0.01, 0.02, 0.02]
    assert info.value.reason == "WEBHOOK_UNREACHABLE" and "4 attempts" in str(info.value)


def test_connection_errors_are_retried() -> None:
    delays: list[float] = []
    target = WebhookTarget(f"http://127.0.0.1:{free_port()}/hook", SECRET, allow_http=True,
                           retry=RetryPolicy(max_attempts=3, base_delay=0.01, timeout=2))
    with pytest.raises(Unavailable):
        WebhookChannel(target, sleep=delays.append).send(Message(Address.phone("+8613800138000"), "s", "b"))
    assert delays == [0.01, 0.02]


def test_https_by_default_with_verified_certificate(tmp_path: Path) -> None:
    tls = make_tls(tmp_path)
    with pytest.raises(InvalidArgument, match="https"):
        WebhookTarget("http://127.0.0.1:1/hook", SECRET)
    with pytest.raises(InvalidArgument):
        WebhookTarget("https://127.0.0.1/hook", b"short")
    with http_receiver(lambda req, i: (200, {}, b""), tls=tls) as rec:
        assert rec.url.startswith("https://localhost:")
        WebhookChannel(WebhookTarget(rec.url, SECRET, cafile=str(tls.cert))).send(
            Message(Address.phone("+8613800138000"), "s", "b"))
        with pytest.raises(Unavailable):  # unknown CA: certificate verification fails, no fallback
            WebhookChannel(WebhookTarget(rec.url, SECRET, retry=RetryPolicy(max_attempts=1))).send(
                Message(Address.phone("+8613800138000"), "s", "b"))
    assert len(rec.requests) == 1


def test_verify_signature() -> None:
    body = b'{"a":1}'
    headers = {"X-Signet-Timestamp": "1000", "X-Signet-Signature": sign(SECRET, 1000, body)}
    verify_signature(SECRET, headers, body, now=1100)
    verify_signature(SECRET, {k.lower(): v for k, v in headers.items()}, body, now=1100)
    for bad_headers, bad_body, now in [
        (headers, b'{"a":2}', 1100),
        (headers, body, 1301),
        ({**headers, "X-Signet-Signature": "sha1=00"}, body, 1100),
        ({"X-Signet-Signature": headers["X-Signet-Signature"]}, body, 1100),
        ({**headers, "X-Signet-Timestamp": "1001"}, body, 1100),
    ]:
        with pytest.raises(Unauthenticated):
            verify_signature(SECRET, bad_headers, bad_body, now=now)
    with pytest.raises(Unauthenticated):
        verify_signature(b"y" * 32, headers, body, now=1100)
