"""The SMTP channel: e-mail through a relay with smtplib (STARTTLS by default)."""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal

from ..errors import InvalidArgument, Unavailable
from .message import AddressKind, Delivery, Message

log = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int = 587
    sender: str = "signet@localhost"
    security: Security = "starttls"  # "none" only for a relay on localhost or in tests
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 15.0
    cafile: str | None = None


class SmtpChannel:
    name = "smtp"

    def __init__(self, config: SmtpConfig) -> None:
        if config.security not in ("starttls", "tls", "none"):
            raise InvalidArgument(f"unknown SMTP security mode {config.security!r}")
        if config.username and config.security == "none":
            raise InvalidArgument("refusing to send SMTP credentials without TLS")
        self.config = config

    def send(self, message: Message) -> Delivery:
        if message.to.kind is not AddressKind.EMAIL:
            raise InvalidArgument(f"the SMTP channel delivers e-mail only, not to a {message.to.kind.value} address")
        cfg = self.config
        mail = EmailMessage()
        mail["From"] = cfg.sender
        mail["To"] = message.to.value
        mail["Subject"] = message.subject
        # derived from the message id alone: a message handed over twice (a retry) carries the same Message-ID,
        # by which mail systems drop the duplicate
        mail["Message-ID"] = f"<{message.id}@{cfg.sender.rpartition('@')[2] or 'signet'}>"
        mail["X-Signet-Message-Id"] = message.id
        mail.set_content(message.body)
        try:
            smtp = self._connect()
            try:
                if cfg.username:
                    smtp.login(cfg.username, cfg.password or "")
                refused = smtp.send_message(mail)
            finally:
                try:
                    smtp.quit()
                except smtplib.SMTPException:
                    pass
        except (OSError, smtplib.SMTPException) as e:
            # smtplib errors carry the server's reply, never our message body
            log.warning("smtp: message %s (%s) not delivered: %s", message.id, message.topic, type(e).__name__)
            raise Unavailable(f"SMTP relay {cfg.host}:{cfg.port} did not accept the message ({type(e).__name__})",
                              reason="SMTP_FAILED") from e
        if refused:
            raise Unavailable("SMTP relay refused the recipient", reason="SMTP_RECIPIENT_REFUSED")
        log.info("smtp: message %s (%s) accepted by %s", message.id, message.topic, cfg.host)
        return Delivery(message.id, self.name, mail["Message-ID"])

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        if cfg.security == "tls":
            return smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout,
                                    context=ssl.create_default_context(cafile=cfg.cafile))
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        try:
            if cfg.security == "starttls":
                smtp.starttls(context=ssl.create_default_context(cafile=cfg.cafile))
        except BaseException:
            smtp.close()
            raise
        return smtp
