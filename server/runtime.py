"""Wiring: the server's parts built from a :class:`~server.config.ServerConfig`, shared by `signet-server run`
and `signet-admin` (both act on the same token and store).  Only `signet-server run` starts the envelope
service's background threads (``runtime.envelopes.start()``: scheduler and notice dispatcher); `signet-admin`
writes rows (a notice replay) that the running server's dispatcher picks up at its next poll.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from pyhanko.sign.timestamps import HTTPTimeStamper

from formats import tlscontext
from formats.signer import TokenSigner
from hsm import Hsm, Token
from signet.pemfiles import read_certificates

from .archive import Archive
from .archive.retention import RetentionJob
from .archive.working import WorkingBlobs
from .audit.heads import HeadSigning
from .blobs import FileBlobStore
from .ca import CertificateAuthority, ExternalRoots, LeafProfile, PkiUrls, Role, SerialPolicy
from .ca.profiles import PolicySet
from .clock import Clock, SystemClock
from .config import ChannelName, ServerConfig
from .contracts import Contracts, index_contract
from .datakeys import DataKeys, load_data_keys
from .enrollment import Enrollment
from .envelopes import EnvelopeService, Limits, SigningRules, Tuning
from .envelopes.model import Envelope
from .envelopes.parties import Parties
from .identity import IdentityService
from .keys import KeySetPolicy, ServerKeys, load_server_keys
from .notify import OutboxChannel, Router, SmtpChannel, WebhookChannel
from .notify.message import AddressKind, Channel
from .otp import OtpPolicy
from .portal.links import PortalLinks
from .remotekeys import RemoteKeys
from .seal.sealer import Sealer, SealKey
from .sealing import derive_key
from .search import BlindIndex
from .store import FieldSealer, Store, open_store
from .tsa import TsaPolicy

log = logging.getLogger(__name__)


def open_token(cfg: ServerConfig) -> Token:
    """The server token, logged in with the configured PIN (wrong PINs are counted by hsm's guard)."""
    cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = Hsm(cfg.hsm.module, pin_state=cfg.pin_state_path).token(label=cfg.hsm.token_label)
    token.login(cfg.hsm.pin)
    return token


def key_set_policy(cfg: ServerConfig) -> KeySetPolicy:
    """Algorithms, subject country and certificate policies of the server's own keys (``signet-server init``)."""
    return KeySetPolicy(family=cfg.server.key_family.value, country=cfg.server.country,
                        policies=PolicySet(cfg.ca.signing_policy_oid, cfg.ca.remote_policy_oid, cfg.ca.seal_policy_oid,
                                           cfg.tsa.policy_oid))


def tsa_policy(cfg: ServerConfig) -> TsaPolicy:
    return TsaPolicy(policy_oid=cfg.tsa.policy_oid, accuracy_seconds=cfg.tsa.accuracy_seconds)


def _channel(cfg: ServerConfig, name: ChannelName, outbox: OutboxChannel, clock: Clock) -> Channel:
    if name is ChannelName.SMTP and cfg.notify.smtp is not None:  # a channel without its table is refused at load
        return SmtpChannel(cfg.notify.smtp)
    if name is ChannelName.WEBHOOK and cfg.notify.webhook is not None:
        return WebhookChannel(cfg.notify.webhook, clock=clock)
    return outbox


def _external_roots(cfg: ServerConfig) -> ExternalRoots:

    ders = []
    for path in cfg.ca.external_roots:
        ders += read_certificates(path)
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
    envelopes: EnvelopeService
    remote_keys: RemoteKeys
    archive: Archive
    sealer: Sealer
    contracts: Contracts
    portal_links: PortalLinks | None = None  # [portal] listen set: notices carry links to the portal

    def close(self) -> None:
        self.store.close()
        try:
            self.token.logout()
        except Exception as e:  # noqa: BLE001 - logging out at exit is best effort
            log.debug("logout at close failed: %s", type(e).__name__)


def seal_key(token: Token, keys: ServerKeys) -> SealKey:
    """The platform seal key on the server token, as a PDF signer and a CMS signer, with its certificates."""
    key = keys[Role.SEAL]
    chain = keys.chain_der(Role.SEAL)
    return SealKey(TokenSigner(token, key.key_id, certificate=key.certificate_der, chain=list(chain)),
                   keys.signer(Role.SEAL), (key.certificate_der, *chain))


def open_runtime(cfg: ServerConfig, clock: Clock | None = None, token: Token | None = None) -> Runtime:
    """Log in to the token, open the store, load keys and data keys, build the services."""
    clock = clock or SystemClock()
    token = token or open_token(cfg)
    store = open_store(cfg.server.store_url, password=cfg.server.store_password)
    try:
        keys = load_server_keys(token, store)  # first: "not initialised" is its error (the server's own
        # certificates, written by init before the sealer exists, are never sealed)
        data = load_data_keys(cfg, token)
        store.attach_field_sealer(FieldSealer(data.box))  # before any service reads or writes a sealed field
        urls = PkiUrls(cfg.http.base_url)
        outbox = OutboxChannel(store, data.box, clock)
        by_kind: dict[AddressKind, Any] = {}
        if cfg.notify.phone:
            by_kind[AddressKind.PHONE] = _channel(cfg, cfg.notify.phone, outbox, clock)
        if cfg.notify.email:
            by_kind[AddressKind.EMAIL] = _channel(cfg, cfg.notify.email, outbox, clock)
        notifier = Router(_channel(cfg, cfg.notify.default, outbox, clock), by_kind)
        policy = OtpPolicy(ttl=timedelta(seconds=cfg.otp.ttl_seconds),
                           min_interval=timedelta(seconds=cfg.otp.min_interval_seconds),
                           hourly_limit=cfg.otp.hourly_limit)
        identity = IdentityService(store, data.box, data.hmac_key, notifier, clock, otp_policy=policy,
                                   four_eyes=cfg.approval.four_eyes)
        ca = CertificateAuthority(keys, store, clock, urls,
                                  LeafProfile(validity=timedelta(days=cfg.ca.validity_days),
                                              document_signing=cfg.ca.document_signing_eku,
                                              policy_oids=(cfg.ca.signing_policy_oid,),
                                              serial_policy=SerialPolicy(cfg.ca.serial_policy.value)))
        enrollment = Enrollment(identity, ca, keys, store, clock, notifier, hmac_key=data.hmac_key,
                                serial_policy=SerialPolicy(cfg.ca.serial_policy.value),
                                client_validity=timedelta(days=cfg.ca.client_validity_days),
                                max_failures_per_day=cfg.enrollment.max_failures_per_day)
        remote_keys = RemoteKeys(token, identity, enrollment, ca, policy_oid=cfg.ca.remote_policy_oid,
                                 secret_key=data.hmac_key,
                                 client_validity=timedelta(days=cfg.ca.client_validity_days))
        archive = Archive(token, store, cfg.archive_dir, kek_label=keys.archive_kek_label, clock=clock)
        # working revisions encrypted in the archive; a plaintext blob directory of an older version stays readable
        blobs = WorkingBlobs(archive, FileBlobStore(cfg.blobs_dir) if cfg.blobs_dir.is_dir() else None)
        envelopes = EnvelopeService(
            store, blobs, identity, notifier, clock=clock,
            rules=SigningRules(trust_roots=(keys.certificate_der(Role.SIGNING_ROOT),),
                               issuer_key_hash=ca.issuer_key_hash, token_policy_oid=cfg.ca.signing_policy_oid,
                               remote_policy_oid=cfg.ca.remote_policy_oid,
                               timestamp_url=f"{cfg.http.base_url}/tsa" if cfg.envelopes.signature_timestamps else ""),
            limits=Limits(max_document_bytes=cfg.envelopes.max_document_bytes,
                          default_expiry_days=cfg.envelopes.default_expiry_days),
            tuning=Tuning(poll_seconds=cfg.envelopes.scheduler_seconds,
                          notice_max_attempts=cfg.envelopes.notice_max_attempts,
                          notice_retry_seconds=cfg.envelopes.notice_retry_seconds,
                          notice_retry_max_seconds=cfg.envelopes.notice_retry_max_seconds,
                          max_watches=cfg.envelopes.max_watches),
            remote_keys=remote_keys)
        tlscontext.install()  # the sealer's and remote signing's TSA, OCSP and CRL requests share one TLS context
        index = BlindIndex(store, derive_key(data.hmac_key, "contract-search-index"))
        heads = HeadSigning(store, keys.signer(Role.AUDIT), clock)
        sealer = Sealer(store, blobs, archive, Parties(identity), key=seal_key(token, keys),
                        timestamper=lambda: HTTPTimeStamper(f"{cfg.http.base_url}/tsa"),
                        trust_roots=(keys.certificate_der(Role.SIGNING_ROOT),), clock=clock,
                        indexer=partial(index_contract, index), after_seal=heads.sign_now)
        contracts = Contracts(store, archive, index, sealer, keys, clock)
        envelopes.add_loop("envelope-sealer", sealer.run_once_all)
        envelopes.add_loop("audit-heads", heads.run_once, woken_by_changes=False)
        envelopes.add_loop("archive-retention", RetentionJob(archive, store, clock).run_once, woken_by_changes=False)
        portal_links = None
        if cfg.portal.listen:
            portal_links = PortalLinks(store, data.hmac_key, clock, ttl=timedelta(days=cfg.portal.link_days))
            envelopes.notices.link_for = partial(_portal_link, portal_links, cfg.portal.base_url)
    except BaseException:
        store.close()
        raise
    return Runtime(cfg, token, store, keys, urls, clock, data, outbox, notifier, identity, ca, enrollment,
                   _external_roots(cfg), envelopes, remote_keys, archive, sealer, contracts, portal_links)


def _portal_link(links: PortalLinks, base_url: str, env: Envelope, recipient_id: str) -> str:
    """The link a "your turn" notice carries: a new token for this recipient of this envelope."""
    r = next(r for r in env.recipients if r.id == recipient_id)
    return f"{base_url}/r/{links.issue(env.id, r.id, r.person_id, r.org_id)}"
