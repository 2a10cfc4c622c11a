"""Pooled sessions per token and the token's single login.

PKCS#11 login state belongs to the application, not to a session: one
C_Login logs every session of the token in, and closing the last session
logs everything out.  The pool therefore keeps one *anchor* session open for
as long as it is logged in, opens all sessions without a user (so python-
pkcs11's ``Session.close`` never calls C_Logout behind the others' backs),
and logs in and out through the module's raw function table.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pkcs11

from .errors import HsmError, LoginRequired, PinIncorrect, PinLocked, TokenRemoved
from .module import Module
from .pinguard import PinGuard
from .tokens import TokenInfo, find_raw_token

log = logging.getLogger(__name__)

CKU_USER = 1
CKR_OK = 0
CKR_PIN_INCORRECT = 0xA0
CKR_PIN_INVALID = 0xA1
CKR_PIN_LEN_RANGE = 0xA2
CKR_PIN_LOCKED = 0xA4
CKR_USER_ALREADY_LOGGED_IN = 0x100
CKR_USER_NOT_LOGGED_IN = 0x101

# python-pkcs11 errors that mean "this token/session is gone"
GONE_ERRORS: tuple[type[BaseException], ...] = (
    pkcs11.SessionHandleInvalid,
    pkcs11.SessionClosed,
    pkcs11.TokenNotPresent,
    pkcs11.TokenNotRecognised,
    pkcs11.DeviceRemoved,
    pkcs11.SlotIDInvalid,
    pkcs11.ObjectHandleInvalid,
    pkcs11.DeviceError,
    pkcs11.GeneralError,
)


@dataclass
class PooledSession:
    """A session plus the objects already looked up in it."""

    session: Any
    generation: int
    cache: dict[Any, Any] = field(default_factory=dict)


class SessionPool:
    """Sessions of one token (by serial), its login state and its PIN guard."""

    def __init__(self, module: Module, serial: str, guard: PinGuard, max_idle: int = 16) -> None:
        self.module = module
        self.serial = serial
        self.guard = guard
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[PooledSession] = []
        self._anchor: PooledSession | None = None
        self._pin: bytes | None = None  # kept only while logged in, to log in again after reinit
        self._generation = -1
        self._token: Any = None
        self.label = ""

    # -- token handle ---------------------------------------------------
    def _refresh(self) -> Any:
        """Token object for the current module generation (caller holds module.shared())."""
        gen = self.module.generation
        if self._token is None or self._generation != gen:
            self._idle.clear()
            had_login = self._anchor is not None
            self._anchor = None
            try:
                self._token = find_raw_token(self.module, serial=self.serial)
            except HsmError as e:
                self._token = None
                raise TokenRemoved(f"token {self.label or self.serial} is not present: {e}") from e
            self.label = self._token.label.strip()
            self._generation = gen
            if had_login and self._pin is not None:
                self._login_locked(self._pin)  # the module was reinitialised under us
        return self._token

    def info(self) -> TokenInfo:
        with self.module.shared(), self._lock:
            tok = self._refresh()
            try:
                return TokenInfo.from_token(tok.slot.get_token())
            except GONE_ERRORS as e:
                raise TokenRemoved(f"token {self.label or self.serial} was removed") from e

    def _open(self) -> PooledSession:
        try:
            return PooledSession(self._token.open(rw=True), self._generation)
        except GONE_ERRORS as e:
            self._token = None
            raise TokenRemoved(f"token {self.label or self.serial} was removed") from e
        except pkcs11.PKCS11Error as e:
            raise HsmError(f"cannot open a session on token {self.label or self.serial}: {e!r}") from e

    # -- login ----------------------------------------------------------
    @property
    def logged_in(self) -> bool:
        return self._anchor is not None

    def login(self, pin: str) -> None:
        """Log the token in; wrong PINs are counted and the token locked at the limit."""
        if not isinstance(pin, str) or not pin:
            raise PinIncorrect("an empty PIN was given", self.guard.remaining(self.serial))
        with self.module.shared(), self._lock:
            self._refresh()
            self._login_locked(pin.encode("utf-8"))

    def _login_locked(self, pin: bytes) -> None:
        name = self.label or self.serial
        self.guard.check(self.serial, name)
        info = TokenInfo.from_token(self._token.slot.get_token())
        if info.pin_locked:
            raise PinLocked(f"token {name} reports its user PIN locked; reset it with the SO PIN")
        if info.pin_final_try:
            raise PinLocked(
                f"token {name} reports one PIN try left; refusing to risk it. "
                "Verify the PIN with the token's own tool, or reset it with the SO PIN"
            )
        anchor = self._anchor or self._open()
        rv = self.module.raw.login(anchor.session.handle, CKU_USER, pin)
        if rv in (CKR_OK, CKR_USER_ALREADY_LOGGED_IN):
            self.guard.record_success(self.serial)
            self._anchor = anchor
            self._pin = pin
            log.info("token %s logged in", self.serial)
            return
        if self._anchor is None:
            self._close_quietly(anchor)  # never leak the session a failed login opened
        if rv in (CKR_PIN_INCORRECT, CKR_PIN_INVALID, CKR_PIN_LEN_RANGE):
            left = self.guard.record_failure(self.serial)
            log.warning("wrong PIN for token %s (%d tries left)", self.serial, left)
            if left <= 0:
                raise PinLocked(f"wrong PIN; token {name} is now locked after {self.guard.max_failures} failures")
            raise PinIncorrect(f"wrong PIN for token {name}; {left} tries left before it locks", left)
        if rv == CKR_PIN_LOCKED:
            raise PinLocked(f"token {name} has locked its user PIN; reset it with the SO PIN")
        raise HsmError(f"login to token {name} failed (rv=0x{rv:x})")

    def logout(self) -> None:
        """Log out and close every pooled session."""
        with self.module.shared(), self._lock:
            anchor, self._anchor, self._pin = self._anchor, None, None
            idle, self._idle = self._idle, []
            if anchor is not None and anchor.generation == self.module.generation:
                self.module.raw.logout(anchor.session.handle)
                self._close_quietly(anchor)
            for s in idle:
                if s.generation == self.module.generation:
                    self._close_quietly(s)

    @staticmethod
    def _close_quietly(s: PooledSession) -> None:
        try:
            s.session.close()
        except pkcs11.PKCS11Error:
            pass

    # -- borrowing ------------------------------------------------------
    @contextmanager
    def session(self, *, need_login: bool = True) -> Iterator[PooledSession]:
        """A session of this token for the duration of the block."""
        with self.module.shared():
            with self._lock:
                self._refresh()
                if need_login and self._anchor is None:
                    raise LoginRequired(f"token {self.label or self.serial} is locked: unlock it with its PIN first")
                s = self._idle.pop() if self._idle else None
            if s is None:
                with self._lock:
                    s = self._open()
            gone = False
            try:
                yield s
            except GONE_ERRORS as e:
                gone = True
                with self._lock:
                    # a removed token takes its login with it: the PIN is asked again
                    self._token = None
                    self._anchor = None
                    self._pin = None
                    self._idle.clear()
                raise TokenRemoved(
                    f"token {self.label or self.serial} was removed or stopped answering; "
                    "insert it again and retry"
                ) from e
            finally:
                if not gone:
                    with self._lock:
                        keep = s.generation == self._generation and len(self._idle) < self.max_idle
                        if keep:
                            self._idle.append(s)
                    if not keep:
                        self._close_quietly(s)
