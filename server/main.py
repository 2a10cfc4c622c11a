"""`signet-server`: ``init`` creates the server's keys and TLS material; ``run`` serves gRPC and the PKI HTTP listener.

``signet-server init --config F`` (idempotent; never replaces anything):
  the HSM key set on the server token (:func:`server.keys.init_server_keys`), the data keys wrapped by
  the token's archive KEK, and the gRPC listeners' TLS key (0600) and certificate from our issuing CA.
  It refuses to run when the token already holds server keys that this store does not know (another
  installation's token) or when TLS files are half there or do not match.
``signet-server run --config F``:
  gRPC on two TLS listeners (mutual-TLS API, server-authenticated enrollment; health + reflection)
  and the PKI HTTP listener (OCSP, CRL, TSA, CA certificates), with ``[csc] listen`` the CSC API's HTTPS
  listener (:mod:`server.csc`), and the envelope scheduler and notice
  dispatcher threads.  Prints one ``signet-server ready ...`` line with the bound addresses; SIGTERM or
  SIGINT stops it cleanly (event watches end, scheduler and dispatcher stop, listeners drain, store closed,
  token logged out).

Exit codes: 0 done, 1 unexpected failure, 2 configuration error, 3 refused (would overwrite / not
initialised).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from asn1crypto import pem, x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from hsm import HsmError, KeyNotFound
from signet import logs

from .ca import PkiUrls, Role, ServerKeysMissing
from .ca import db as ca_db
from .clock import SystemClock
from .config import ConfigError, ServerConfig, load_config
from .datakeys import ensure_data_keys, load_data_keys
from .keys import ServerKeys, init_server_keys, label_for, load_server_keys
from .runtime import Runtime, key_set_policy, open_runtime, open_token, tsa_policy
from .store import FieldSealer, Store, open_store
from .tls import certs_pem, issue_server_certificate, key_pem, new_tls_key, spki_of, write_file

if TYPE_CHECKING:
    from .csc import CscHttpServer
    from .portal import PortalHttpServer

log = logging.getLogger("signet-server")


class Refused(Exception):
    """init would overwrite or mix up existing state; nothing was changed by the refused step."""


def tls_paths(cfg: ServerConfig) -> tuple[Path, Path, Path]:
    """(server key, server certificate chain, TLS root for clients) under ``<state_dir>/tls``."""
    return cfg.tls_dir / "server.key", cfg.tls_dir / "server.crt", cfg.tls_dir / "ca.pem"


def signing_root_path(cfg: ServerConfig) -> Path:
    """The signing root certificate (PEM): the trust anchor verifiers of Signet signatures need."""
    return cfg.state_dir / "signing-root.pem"


def _check_token_matches_store(token: object, store: Store) -> None:
    ca_db.migrate(store)
    try:
        root = token.key(label=label_for(Role.SIGNING_ROOT))  # type: ignore[attr-defined]
    except KeyNotFound:
        return
    if ca_db.find_by_key(store, ca_db.spki_hash(root.public_key_der)) is None:
        raise Refused("the server token already holds a Signet root key that this store does not know "
                      "(another installation's token?); refusing to issue new certificates for it")


def _ensure_tls(cfg: ServerConfig, keys: ServerKeys, store: Store) -> tuple[list[str], list[str]]:
    key_path, crt_path, ca_path = tls_paths(cfg)
    root_pem = certs_pem(keys.certificate_der(Role.TLS_ROOT))
    created, existing = [], []
    if key_path.exists() != crt_path.exists():
        raise Refused(f"only one of {key_path.name} and {crt_path.name} exists in {cfg.tls_dir}; restore the other "
                      "or remove both to have new TLS material issued")
    if key_path.exists():
        key = load_pem_private_key(key_path.read_bytes(), None)
        leaf = next(pem.unarmor(crt_path.read_bytes(), multiple=True))[2]
        if x509.Certificate.load(leaf).public_key.dump() != spki_of(key):  # type: ignore[arg-type]
            raise Refused(f"{crt_path} does not belong to {key_path}; refusing to replace either")
        existing += [key_path.name, crt_path.name]
    else:
        key = new_tls_key()
        der = issue_server_certificate(keys, store, SystemClock(), PkiUrls(cfg.http.base_url), spki_of(key),
                                       cfg.grpc.server_names, validity=timedelta(days=cfg.ca.client_validity_days),
                                       organisation=cfg.server.organisation)
        write_file(key_path, key_pem(key), 0o600)
        write_file(crt_path, certs_pem(der, keys.certificate_der(Role.TLS_CA)), 0o644)
        created += [key_path.name, crt_path.name]
    if ca_path.exists():
        if ca_path.read_bytes() != root_pem:
            raise Refused(f"{ca_path} is not this server's root CA certificate; refusing to replace it")
        existing.append(ca_path.name)
    else:
        write_file(ca_path, root_pem, 0o644)
        created.append(ca_path.name)
    signing_root = signing_root_path(cfg)
    signing_pem = certs_pem(keys.certificate_der(Role.SIGNING_ROOT))
    if signing_root.exists():
        if signing_root.read_bytes() != signing_pem:
            raise Refused(f"{signing_root} is not this server's signing root certificate; refusing to replace it")
        existing.append(signing_root.name)
    else:
        write_file(signing_root, signing_pem, 0o644)
        created.append(signing_root.name)
    return created, existing


def cmd_init(cfg: ServerConfig) -> int:
    cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = open_token(cfg)
    store = open_store(cfg.server.store_url, password=cfg.server.store_password)
    try:
        _check_token_matches_store(token, store)
        report = init_server_keys(token, store, cfg.server.organisation, SystemClock(),
                                  urls=PkiUrls(cfg.http.base_url), policy=key_set_policy(cfg))
        keys = load_server_keys(token, store)
        data_created, data_existing = ensure_data_keys(cfg, token)
        store.attach_field_sealer(FieldSealer(load_data_keys(cfg, token).box))  # certificates' names sealed
        tls_created, tls_existing = _ensure_tls(cfg, keys, store)
    finally:
        store.close()
        token.logout()
    created = [*report.created, *data_created, *tls_created]
    existing = [*report.existing, *data_existing, *tls_existing]
    print(f"signet-server init: state in {cfg.state_dir}")
    print("  created: " + (", ".join(created) if created else "nothing (already initialised)"))
    if existing:
        print("  kept:    " + ", ".join(existing))
    print(f"  TLS clients trust {tls_paths(cfg)[2]}; verifiers of signatures trust {signing_root_path(cfg)}")
    return 0


def _read_tls(cfg: ServerConfig) -> tuple[bytes, bytes]:
    key_path, crt_path, _ = tls_paths(cfg)
    if not key_path.exists() or not crt_path.exists():
        raise ServerKeysMissing(f"the TLS material in {cfg.tls_dir} is missing; run `signet-server init`")
    if key_path.stat().st_mode & 0o077:
        raise ConfigError(str(cfg.path), [f"{key_path} is readable by others: chmod 600 it"])
    return key_path.read_bytes(), crt_path.read_bytes()


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _start_csc(cfg: ServerConfig, rt: Runtime) -> CscHttpServer | None:
    """The CSC API's HTTPS listener over the remote-signing keys, when ``[csc] listen`` is set."""
    if not cfg.csc.listen:
        return None
    from .csc import CscHttpServer, CscService

    key_path, crt_path, _ = tls_paths(cfg)
    service = CscService(rt.remote_keys, rt.identity, rt.notifier, rt.store, rt.clock,
                         token_seconds=cfg.csc.token_seconds, sad_seconds=cfg.csc.sad_seconds)
    csc = CscHttpServer(_host_port(cfg.csc.listen), service, crt_path, key_path)
    csc.start()
    return csc


def _start_portal(cfg: ServerConfig, rt: Runtime) -> PortalHttpServer | None:
    """The recipients' portal (HTTPS), when ``[portal] listen`` is set."""
    if rt.portal_links is None:
        return None
    from .api.auth import Authenticator, client_ca_pem
    from .portal import PortalHttpServer as Portal

    key_path, crt_path, _ = tls_paths(cfg)
    portal = Portal(_host_port(cfg.portal.listen), rt.envelopes, rt.portal_links, rt.data.hmac_key,
                    crt_path, key_path, bridge_url=cfg.portal.bridge, base_url=cfg.portal.base_url,
                    identity=rt.identity, contracts=rt.contracts, authenticator=Authenticator.of(rt.store, rt.keys),
                    client_ca=client_ca_pem(rt.keys),  # sign-in for senders' and operators' pages
                    posts_per_minute=cfg.portal.posts_per_minute)
    portal.start()
    return portal


def cmd_run(cfg: ServerConfig) -> int:
    from .api.listeners import start_listeners
    from .http import PkiHttpServer, build_services

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    rt = open_runtime(cfg)
    try:
        key, chain = _read_tls(cfg)
        http = PkiHttpServer(_host_port(cfg.http.listen),
                             build_services(rt.keys, rt.store, rt.clock, tsa_policy=tsa_policy(cfg)),
                             max_connections=cfg.http.max_connections,
                             request_deadline=cfg.http.request_deadline_seconds,
                             rate_per_minute=cfg.http.rate_per_minute)
        http.start()
        csc = _start_csc(cfg, rt)
        portal = _start_portal(cfg, rt)
        try:
            rt.envelopes.start()  # scheduler and notice dispatcher: what the last run left pending goes out now
            listeners = start_listeners(rt, key, chain)
            host = _host_port(cfg.grpc.listen)[0]
            print(f"signet-server ready api={host}:{listeners.api_port} "
                  f"enroll={_host_port(cfg.grpc.enroll_listen)[0]}:{listeners.enroll_port} pki={http.base_url}"
                  + (f" csc={csc.base_url}" if csc is not None else "")
                  + (f" portal={portal.base_url}" if portal is not None else ""), flush=True)
            stop.wait()
            log.info("stopping: ending event watches and the envelope scheduler, draining gRPC calls")
            rt.envelopes.stop()  # watches end (UNAVAILABLE SERVER_STOPPING) before the listeners drain
            listeners.stop()
        finally:
            rt.envelopes.stop()  # notices queued by calls drained just now stay queued for the next start
            if csc is not None:
                csc.stop()
            if portal is not None:
                portal.stop()
            http.stop()
    finally:
        rt.close()
    print("signet-server stopped", flush=True)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="signet-server", description="Signet server: identity, CA, enrollment.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("init", "create the server keys on its token and the TLS material (idempotent)"),
                       ("run", "serve gRPC (TLS; mutual TLS for clients) and the PKI HTTP listener")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--config", required=True, help="the server's TOML configuration")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.umask(0o077)  # state, store and key files are private whatever the caller's umask
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"signet-server: configuration error: {e}", file=sys.stderr)
        return 2
    logs.setup(cfg.server.log_level)
    try:
        return cmd_init(cfg) if args.command == "init" else cmd_run(cfg)
    except ConfigError as e:
        print(f"signet-server: configuration error: {e}", file=sys.stderr)
        return 2
    except (Refused, ServerKeysMissing, FileExistsError) as e:
        print(f"signet-server: refused: {e}", file=sys.stderr)
        return 3
    except HsmError as e:
        print(f"signet-server: server token: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
