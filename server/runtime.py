"""Wiring: the server's parts built from a :class:`~server.config.ServerConfig`, shared by `signet-server run`
and `signet-admin` (both act on the same token and store).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from hsm import Hsm, Token

from .ca import CertificateAuthority, ExternalRoots, LeafProfile, PkiUrls, SerialPolicy
from .clock import Clock, SystemClock
from .config import ServerConfig
from .datakeys import DataKeys, load_data_keys
from .enrollment import Enrollment
from .identity import IdentityService
from .keys import ServerKeys, load_server_keys
from .notify import OutboxChannel, Router, SmtpChannel, SmtpConfig, WebhookChannel
from .notify.message import AddressKind, Channel
from .otp import OtpPolicy
from .store import Store, open_store
from .webhooks import WebhookTarget

log = logging.getLogger(__name__)


def open_token(cfg: ServerConfig) -> Token:
    """The server token, logged in with the configured PIN (wrong PINs are counted by hsm's guard)."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = Hsm(cfg.pkcs11_module, pin_state=cfg.pin_state_path).token(label=cfg.token_label)
    token.login(cfg.pin)
    return token


def _channel(cfg: ServerConfig, name: str, outbox: OutboxChannel, clock: Clock) -> Channel:
    if name == "smtp":
        assert cfg.smtp is not None
        s = cfg.smtp
        return SmtpChannel(SmtpConfig(s.host, s.port, s.sender, s.security, s.username, s.password, cafile=s.cafile))  # type: ignore[arg-type]
    if name == "webhook":
        assert cfg.webhook is not None
        w = cfg.webhook
        return WebhookChannel(WebhookTarget(w.url, w.secret, allow_http=w.allow_http, cafile=w.cafile), clock=clock)
    return outbox


def _external_roots(cfg: ServerConfig) -> ExternalRoots:
    from asn1crypto import pem

    ders = []
    for path in cfg.external_roots:
        data = path.read_bytes()
        ders += [der for _, _, der in pem.unarmor(data, multiple=True)] if pem.detect(data) else [data]
    return ExternalRoots(tuple(ders))


@dataclass
class Runtime:
    config: ServerConfig
    token: Token = field(repr=False)
    store: Store
    keys: ServerKeys
    urls: PkiUrls
    clock: Clock
    data: DataKeys = field(repr=False)
    outbox: OutboxChannel
    notifier: Channel
    identity: IdentityService
    ca: CertificateAuthority
    enrollment: Enrollment
    external_roots: ExternalRoots

    def close(self) -> None:
        self.store.close()
        try:
            self.token.logout()
        except Exception as e:  # logging out at exit is best effort
            log.debug("logout at close failed: %s", type(e).__name__)


def open_runtime(cfg: ServerConfig, clock: Clock | None = None, token: Token | None = None) -> Runtime:
    """Log in to the token, open the store, load keys and data keys, build the services."""
    clock = clock or SystemClock()
    token = token or open_token(cfg)
    store = open_store(cfg.store_url)
    try:
        keys = load_server_keys(token, store)
        data = load_data_keys(cfg, token)
        urls = PkiUrls(cfg.base_url)
        outbox = OutboxChannel(store, data.box, clock)
        by_kind: dict[AddressKind, Any] = {}
        if cfg.notify_phone:
            by_kind[AddressKind.PHONE] = _channel(cfg, cfg.notify_phone, outbox, clock)
        if cfg.notify_email:
            by_kind[AddressKind.EMAIL] = _channel(cfg, cfg.notify_email, outbox, clock)
        notifier = Router(_channel(cfg, cfg.notify_default, outbox, clock), by_kind)
        policy = OtpPolicy(ttl=timedelta(seconds=cfg.otp_ttl_seconds),
                           min_interval=timedelta(seconds=cfg.otp_min_interval_seconds),
                           hourly_limit=cfg.otp_hourly_limit)
        identity = IdentityService(store, data.box, data.hmac_key, notifier, clock, otp_policy=policy)
        ca = CertificateAuthority(keys, store, clock, urls,
                                  LeafProfile(validity=timedelta(days=cfg.leaf_validity_days),
                                              serial_policy=SerialPolicy(cfg.serial_policy)))
        enrollment = Enrollment(identity, ca, keys, store, clock, notifier, hmac_key=data.hmac_key,
                                serial_policy=SerialPolicy(cfg.serial_policy),
                                client_validity=timedelta(days=cfg.client_validity_days))
    except BaseException:
        store.close()
        raise
    return Runtime(cfg, token, store, keys, urls, clock, data, outbox, notifier, identity, ca, enrollment,
                   _external_roots(cfg))
