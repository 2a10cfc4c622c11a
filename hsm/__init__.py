"""PKCS#11 and nothing else: modules, tokens, sessions, keys, signing, certificates, wrapping."""

from __future__ import annotations

import os
import threading
from typing import Any

from .errors import HsmError, KeyNotFound, LoginRequired, PinIncorrect, PinLocked, TokenNotFound, TokenRemoved
from .keys import KeyAlgorithm, KeyInfo
from .module import Module, load
from .pinguard import PinGuard
from .sessions import SessionPool
from .signing import SignScheme
from .token import Token
from .tokens import TokenInfo, find_token, list_tokens
from .watcher import ReinitPolicy, TokenEvent, TokenInserted, TokenWatcher
from .wrap import WrappedKey

__all__ = [
    "Hsm", "HsmError", "KeyAlgorithm", "KeyInfo", "KeyNotFound", "LoginRequired", "Module",
    "PinGuard", "PinIncorrect", "PinLocked", "ReinitPolicy", "SignScheme", "Token", "TokenEvent", "TokenInfo",
    "TokenInserted", "TokenNotFound", "TokenRemoved", "TokenWatcher", "WrappedKey",
]
# hsm.TokenRemoved is the *error*; the watcher's removal event is hsm.watcher.TokenRemoved


class Hsm:
    """Entry point: one PKCS#11 module, its tokens, and the wrong-PIN guard."""

    def __init__(
        self,
        module_path: str | None = None,
        *,
        pin_state: str | os.PathLike[str] | None = None,
        max_pin_failures: int = 5,
    ) -> None:
        self.module: Module = load(module_path)
        self.guard = PinGuard(pin_state, max_pin_failures)
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def tokens(self) -> list[TokenInfo]:
        return list_tokens(self.module)

    def token(self, *, label: str | None = None, serial: str | None = None) -> Token:
        """The token with this label and/or serial (one object per serial)."""
        if serial and not label:
            with self._lock:
                tok = self._tokens.get(serial)
            if tok is not None:
                return tok
        info = find_token(self.module, label=label, serial=serial)
        with self._lock:
            tok = self._tokens.get(info.serial)
            if tok is None:
                tok = self._tokens[info.serial] = Token(SessionPool(self.module, info.serial, self.guard))
                tok.pool.label = info.label
            return tok

    def reinitialize(self) -> None:
        self.module.reinitialize()

    def watch(self, **kwargs: Any) -> TokenWatcher:
        """A started TokenWatcher on this module; a removed token also loses its login here."""
        watcher = TokenWatcher(self.module, **kwargs)
        watcher.subscribe(self._on_token_event)
        watcher.start()
        return watcher

    def _on_token_event(self, event: TokenEvent) -> None:
        if isinstance(event, TokenInserted):
            return
        with self._lock:
            tok = self._tokens.get(event.serial)
        if tok is not None:
            tok.pool.forget()
