"""The agent's parts wired together (no gRPC here): HSM, tokens, unlock, policy, journal, workers, documents."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from formats import tlscontext
from hsm import Hsm
from hsm.watcher import TokenEvent, TokenInserted
from signet.pemfiles import read_certificates
from signet.private import NotPrivate, ensure_private_dir, ensure_private_file

from .callers import TlsClients
from .clock import Clock, SystemClock
from .config import AgentConfig
from .documents import Documents
from .errors import ConfigError
from .journal import Journal
from .policy import Authorizer
from .revocation import OwnCertificateStatus
from .signing import SigningService
from .tokens import TokenDirectory
from .unlock import UnlockManager
from .uploads import DocumentGate
from .workers import DocumentWorkers

log = logging.getLogger(__name__)


def _read_roots(paths: tuple[Path, ...]) -> list[bytes]:
    roots: list[bytes] = []
    for p in paths:
        try:
            roots.extend(read_certificates(p))
        except OSError as e:
            raise ConfigError(f"agent.trust_roots: cannot read {p}: {e.strerror}") from e
    return roots


class Agent:
    """One running agent's state; ``close`` releases everything."""

    def __init__(self, config: AgentConfig, clock: Clock | None = None) -> None:
        tlscontext.install()  # timestamp requests of in-process document work (pdf_workers = 0)
        self.config = config
        self.clock = clock or SystemClock()
        try:
            ensure_private_dir(config.state_dir)
            ensure_private_dir(config.spool_dir)
            # before any connection opens them: closing another descriptor of a file later would drop SQLite's
            # POSIX locks on it (new files are 0600 anyway: the agent runs with umask 077)
            for db in (config.journal_path, config.usage_path):
                for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                    ensure_private_file(path)
        except NotPrivate as e:
            raise ConfigError(f"agent.state_dir: {e}") from None
        self._lock_fd = os.open(config.state_dir / "agent.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise ConfigError(f"another agent is running with state directory {config.state_dir}") from None
        for stale in config.spool_dir.glob("job-*"):  # left by a crash: private, but useless now
            stale.unlink(missing_ok=True)
        self.trust_roots = _read_roots(config.trust_roots)
        self.tls_clients = TlsClients(config.tls) if config.tls is not None else None
        self.hsm = Hsm(config.pkcs11_module, pin_state=config.pin_state_path,
                       max_pin_failures=config.max_pin_failures)
        self.directory = TokenDirectory(self.hsm, config.token_poll_seconds, config.token_reinit_seconds)
        self.unlock = UnlockManager(config.unlock, self.clock)
        self.journal = Journal(config.journal_path, self.clock.now)
        self.auth = Authorizer(config)
        status = OwnCertificateStatus(timeout=config.verify.fetch_timeout_seconds,
                                      refuse_unknown=config.verify.refuse_unknown_status) \
            if config.verify.check_before_signing else None
        self.signing = SigningService(self.directory, self.unlock, self.auth, self.journal, config.sign_threads,
                                      status=status, default_confirm=config.policy.confirm)
        self.sign_workers = DocumentWorkers(config.pdf_workers, job_seconds=config.job_seconds,
                                            memory_mib=config.worker_memory_mib, name="signing")
        self.verify_workers = DocumentWorkers(config.verify_workers, job_seconds=config.job_seconds,
                                              memory_mib=config.worker_memory_mib, name="verification")
        self.documents = Documents(config, self.signing, self.sign_workers, self.verify_workers, self.journal,
                                   DocumentGate(config.document_streams), self.trust_roots)
        self.directory.start()
        if self.directory.watcher is not None:
            self.directory.watcher.subscribe(self._on_token_event)

    def _on_token_event(self, event: TokenEvent) -> None:
        if not isinstance(event, TokenInserted):
            self.unlock.token_removed(event.serial)
            self.signing.material.forget(event.serial)

    def close(self) -> None:
        self.directory.stop()
        self.unlock.close()
        self.sign_workers.close()
        self.verify_workers.close()
        self.signing.close()
        self.journal.close()
        os.close(self._lock_fd)
