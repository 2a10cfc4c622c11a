"""Finding tokens for requests: selectors, the label cache, and rescans when a token goes or comes.

A selector by serial pins one physical token; a selector by label follows
whatever token carries that label now (a re-created SoftHSM token gets a new
serial).  SoftHSM only shows a new token after the module is reinitialised, so
when a lookup fails or a token stops answering, the directory asks the watcher
for a forced rescan (rate-limited to one per ``min_interval`` seconds).
"""

from __future__ import annotations

import builtins
import logging
import threading
import time

from hsm import Hsm, HsmError, Token, TokenInfo, TokenNotFound, TokenRemoved
from hsm.watcher import ReinitPolicy, TokenEvent, TokenWatcher
from hsm.watcher import TokenRemoved as TokenRemovedEvent

from .errors import InvalidRequest

log = logging.getLogger(__name__)


class TokenDirectory:
    """Resolves selectors to :class:`hsm.Token` objects and keeps them fresh."""

    def __init__(self, hsm: Hsm, poll_seconds: float = 1.0, reinit_seconds: float = 5.0) -> None:
        self.hsm = hsm
        self.min_interval = min(poll_seconds, 0.5)
        self.poll_seconds = poll_seconds
        self.reinit_seconds = reinit_seconds
        self.watcher: TokenWatcher | None = None
        self._labels: dict[str, str] = {}
        self._seen: dict[str, str] = {}  # every label ever resolved -> its last serial (removal vs. typo)
        self._lock = threading.Lock()
        self._scan_lock = threading.Lock()
        self._last_scan = 0.0

    def start(self) -> None:
        # Hsm.watch also makes a removed token's pool forget its login (the PIN is asked again)
        self.watcher = self.hsm.watch(interval=self.poll_seconds, reinitialize=ReinitPolicy.IDLE,
                                      reinit_interval=self.reinit_seconds)
        self.watcher.subscribe(self._on_event)

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()

    def _on_event(self, event: TokenEvent) -> None:
        if isinstance(event, TokenRemovedEvent):
            with self._lock:
                for label in [lb for lb, s in self._labels.items() if s == event.serial]:
                    del self._labels[label]

    def rescan(self) -> None:
        """Reinitialise the module so tokens that came back show up.

        Always a rescan that *starts* after the call (so a token inserted just before is seen), but at most
        one per ``min_interval``: concurrent callers share one, later ones wait for the interval.
        """
        asked = time.monotonic()
        with self._scan_lock:
            if self._last_scan >= asked:
                return  # a rescan started after we asked
            wait = self._last_scan + self.min_interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_scan = time.monotonic()
            if self.watcher is not None:
                self.watcher.poll(reinitialize=True)
            else:
                self.hsm.reinitialize()
        with self._lock:
            self._labels.clear()

    def list(self) -> list[TokenInfo]:
        return [t for t in self.hsm.tokens() if t.initialized and t.serial]

    def seen(self) -> builtins.list[TokenInfo]:
        """The tokens the watcher saw at its last poll, without a PKCS#11 call: for pages that ask every second
        (the kiosk). Asking the module itself that often would keep it from ever being idle, so a SoftHSM token
        that comes back would never show up (the watcher reinitialises only an idle module)."""
        if self.watcher is None:
            return self.list()
        return [t for t in self.watcher.present() if t.initialized and t.serial]

    def resolve(self, serial: str = "", label: str = "") -> Token:
        if not serial and not label:
            raise InvalidRequest("select a token by serial or label (signet tokens lists them)")
        try:
            return self._resolve(serial, label)
        except (TokenNotFound, TokenRemoved):
            self.rescan()
        try:
            return self._resolve(serial, label)
        except TokenNotFound:
            with self._lock:
                gone = self._seen.get(label) if label else None
            if gone is None:
                raise
            raise TokenRemoved(f"token {label} (serial {gone}) was removed; insert it again and retry") from None

    def _resolve(self, serial: str, label: str) -> Token:
        # No presence check on the hot path: a token that went away makes the operation fail, and
        # confirm_removed() then turns that into TokenRemoved and forgets the label.
        if serial:
            return self.hsm.token(serial=serial)
        with self._lock:
            known = self._labels.get(label)
        if known is not None:
            return self.hsm.token(serial=known)
        tok = self.hsm.token(label=label)
        with self._lock:
            self._labels[label] = self._seen[label] = tok.serial
        return tok

    def present(self, serial: str, *, scan: bool = True) -> bool:
        """Whether a token with this serial is in a slot now (optionally after a rescan)."""
        if scan:
            self.rescan()
        try:
            return any(t.serial == serial for t in self.hsm.tokens())
        except HsmError:
            return False

    def confirm_removed(self, token: Token, error: Exception, *, rescan: bool = False) -> Exception:
        """After an operation failed strangely: TokenRemoved if the token is really gone, else ``error``."""
        if isinstance(error, TokenRemoved) or not self.present(token.serial, scan=rescan):
            with self._lock:
                for label in [lb for lb, s in self._labels.items() if s == token.serial]:
                    del self._labels[label]
            if isinstance(error, TokenRemoved):
                return error
            removed = TokenRemoved(f"token {token.label or token.serial} was removed; insert it again and retry")
            removed.__cause__ = error
            return removed
        return error
