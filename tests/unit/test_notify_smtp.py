"""The SMTP channel against a real aiosmtpd server on 127.0.0.1 (plain and STARTTLS)."""

from __future__ import annotations

import email
import email.policy
import logging
from pathlib import Path

import pytest

from server.errors import InvalidArgument, Unavailable
from server.notify import Address, Message, SmtpChannel, SmtpConfig
from tests.server_helpers import free_port, make_tls, smtp_server


def test_delivery_received_by_a_real_smtp_server(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    msg = Message(Address.email("bob@example.com"), "Your code", "Your Signet code is 135790.", topic="otp.t")
    with smtp_server() as (sink, port):
        channel = SmtpChannel(SmtpConfig("127.0.0.1", port, sender="signet@example.org", security="none"))
        delivery = channel.send(msg)
    assert len(sink.envelopes) == 1
    mail_from, rcpt, raw = sink.envelopes[0]
    assert (mail_from, rcpt) == ("signet@example.org", ["bob@example.com"])
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "Your code" and parsed["X-Signet-Message-Id"] == msg.id
    assert parsed["Message-ID"].strip() == delivery.reference
    assert parsed.get_content().strip() == "Your Signet code is 135790."
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("server")]  # mail.log is the test server's
    assert ours and not any("135790" in m for m in ours)


def test_starttls_with_certificate_verification(tmp_path: Path) -> None:
    tls = make_tls(tmp_path)
    msg = Message(Address.email("bob@example.com"), "s", "over TLS")
    with smtp_server(tls) as (sink, port):
        SmtpChannel(SmtpConfig("localhost", port, cafile=str(tls.cert))).send(msg)  # starttls is the default
        with pytest.raises(Unavailable):  # the system trust store does not know our test CA
            SmtpChannel(SmtpConfig("localhost", port)).send(msg)
        with pytest.raises(Unavailable):  # the server insists on STARTTLS
            SmtpChannel(SmtpConfig("localhost", port, security="none")).send(msg)
    assert len(sink.envelopes) == 1


def test_refusals() -> None:
    with pytest.raises(InvalidArgument):
        SmtpChannel(SmtpConfig("127.0.0.1", 25, security="none", username="u", password="p"))
    channel = SmtpChannel(SmtpConfig("127.0.0.1", free_port(), security="none", timeout=2))
    with pytest.raises(InvalidArgument):
        channel.send(Message(Address.phone("+8613800138000"), "s", "b"))
    with pytest.raises(Unavailable) as info:
        channel.send(Message(Address.email("a@example.com"), "s", "b"))
    assert info.value.reason == "SMTP_FAILED"
    assert "pw" not in repr(SmtpConfig("h", password="pw"))
