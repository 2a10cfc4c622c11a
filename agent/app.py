"""The agent's parts wired together (no gRPC here): HSM, tokens, unlock, policy, journal, workers."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from hsm import Hsm

from .config import AgentConfig
from .errors import ConfigError
from .journal import Journal
from .policy import Authorizer
from .signing import SigningService
from .spool import prepare_dir
from .tokens import TokenDirectory
from .unlock import UnlockManager
from .workers import DocumentWorkers

log = logging.getLogger(__name__)


def _read_roots(paths: tuple[Path, ...]) -> list[bytes]:
    from asn1crypto import pem

    roots: list[bytes] = []
    for p in paths:
        try:
            data = p.read_bytes()
        except OSError as e:
            raise ConfigError(f"agent.trust_roots: cannot read {p}: {e.strerror}") from e
        if pem.detect(data):
            roots.extend(der for _, _, der in pem.unarmor(data, multiple=True))
        else:
            roots.append(data)
    return roots


class Agent:
    """One running agent's state; ``close`` releases everything."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        prepare_dir(config.state_dir)
        self._lock_fd = os.open(config.state_dir / "agent.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise ConfigError(f"another agent is running with state directory {config.state_dir}") from None
        prepare_dir(config.spool_dir)
        for stale in config.spool_dir.glob("job-*"):  # left by a crash: private, but useless now
            stale.unlink(missing_ok=True)
        self.trust_roots = _read_roots(config.trust_roots)
        self.hsm = Hsm(config.pkcs11_module, pin_state=config.pin_state_path,
                       max_pin_failures=config.max_pin_failures)
        self.directory = TokenDirectory(self.hsm, config.token_poll_seconds)
        self.unlock = UnlockManager(config.unlock)
        self.journal = Journal(config.journal_path)
        self.auth = Authorizer(config)
        self.signing = SigningService(self.directory, self.unlock, self.auth, self.journal, config.sign_threads)
        self.workers = DocumentWorkers(config.pdf_workers)
        self.directory.start()

    def close(self) -> None:
        self.directory.stop()
        self.unlock.close()
        self.workers.close()
        self.signing.close()
        self.journal.close()
        os.close(self._lock_fd)
