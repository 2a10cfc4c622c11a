"""Pooled sessions per token and the token's single login.

PKCS#11 login state belongs to the application, not to a session: one
C_Login logs every session of the token in, and closing the last session
logs everything out.  The pool therefore keeps one *anchor* session open for
as long as it is logged in, opens all sessions without a user (so python-
pkcs11's ``Session.close`` never calls C_Logout behind the others' backs),
and logs in and out through the module's raw function table.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pkcs11
from pkcs11.attributes import AttributeMapper, handle_ulong

from .errors import HsmError, KeyNotFound, LoginRequired, PinIncorrect, PinLocked, TokenRemoved
from .module import Module
from .pinguard import PinGuard
from .tokens import TokenInfo, find_raw_token

log = logging.getLogger(__name__)
T = TypeVar("T")

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
    pkcs11.KeyHandleInvalid,
    pkcs11.DeviceError,
    pkcs11.GeneralError,
)
# ...of which these also mean "an object was destroyed (elsewhere) under its handle" while the
# token is still there: the pool asks the slot before it decides which one happened
STALE_OBJECT_ERRORS: tuple[type[BaseException], ...] = (
    pkcs11.ObjectHandleInvalid,
    pkcs11.KeyHandleInvalid,  # what the standard has C_SignInit return for a bad key (SoftHSM: the one above)
    pkcs11.GeneralError,
    pkcs11.DeviceError,
)
_STALE_KEY_ERRORS = (pkcs11.ObjectHandleInvalid, pkcs11.KeyHandleInvalid)


CKA_CERTIFICATE_CATEGORY = 0x87


def _attribute_mapper() -> AttributeMapper:
    """python-pkcs11's mapper plus the attributes it lacks.

    Not cosmetic: python-pkcs11 0.9.5 raises NotImplementedError for an attribute it
    cannot pack *after* allocating the template, and frees uninitialised pointers when
    that half-built template is collected (a SIGSEGV some time later).
    """
    mapper = AttributeMapper()
    mapper.register_handler(CKA_CERTIFICATE_CATEGORY, *handle_ulong)  # type: ignore[arg-type]
    return mapper


ATTRIBUTE_MAPPER = _attribute_mapper()


def login_refusal(info: TokenInfo, name: str) -> PinLocked | None:
    """Why not to send a PIN to this token at all (it reports locked or final try), or None."""
    if info.pin_locked:
        return PinLocked(f"token {name} reports its user PIN locked; reset it with the SO PIN")
    if info.pin_final_try:
        return PinLocked(
            f"token {name} reports one PIN try left; refusing to risk it. "
            "Verify the PIN with the token's own tool, or reset it with the SO PIN"
        )
    return None


@dataclass(eq=False)
class PooledSession:
    """A session plus the objects already looked up in it (compared by identity)."""

    session: Any
    generation: int
    cache: dict[Any, Any] = field(default_factory=dict)
    discard: bool = False  # set when the session must not be used again (e.g. an operation left active)


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
        self._mine = threading.local()  # the session this thread used last: given back to it when idle

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
                self._pin = None  # a removed token takes its login with it
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

    def _open(self, tok: Any, generation: int) -> PooledSession:
        try:
            return PooledSession(tok.open(rw=True, attribute_mapper=ATTRIBUTE_MAPPER), generation)
        except GONE_ERRORS as e:
            if self._token is tok:
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
            try:
                self._login_locked(pin.encode("utf-8"))
            except GONE_ERRORS as e:
                self._token, self._anchor, self._pin = None, None, None
                raise self._removed_error() from e
            except pkcs11.PKCS11Error as e:
                raise HsmError(f"login to token {self.label or self.serial} failed: {type(e).__name__}") from e

    def _wrong_pin(self, name: str) -> HsmError:
        left = self.guard.record_failure(self.serial)
        log.warning("wrong PIN for token %s (%d tries left)", self.serial, left)
        if left <= 0:
            return PinLocked(f"wrong PIN; token {name} is now locked after {self.guard.max_failures} failures")
        return PinIncorrect(f"wrong PIN for token {name}; {left} tries left before it locks", left)

    def _login_locked(self, pin: bytes) -> None:
        name = self.label or self.serial
        self.guard.check(self.serial, name)
        if self._anchor is not None and self._pin is not None:
            # already logged in: the token answers USER_ALREADY_LOGGED_IN to *any* PIN, so
            # check against the PIN it accepted instead of letting a wrong one through
            if hmac.compare_digest(pin, self._pin):
                self.guard.record_success(self.serial)
                return
            raise self._wrong_pin(name)
        refusal = login_refusal(TokenInfo.from_token(self._token.slot.get_token()), name)
        if refusal is not None:
            raise refusal
        anchor = self._anchor or self._open(self._token, self._generation)
        rv = self.module.raw.login(anchor.session.handle, CKU_USER, pin)
        if rv == CKR_USER_ALREADY_LOGGED_IN:
            # logged in by another pool of this process: PKCS#11 has no way to check the PIN
            # without logging everyone out, so this is accepted as the standard says
            log.warning("token %s was already logged in by another user of the module", self.serial)
        if rv in (CKR_OK, CKR_USER_ALREADY_LOGGED_IN):
            self.guard.record_success(self.serial)
            self._anchor = anchor
            self._pin = pin
            log.info("token %s logged in", self.serial)
            return
        if self._anchor is None:
            self._close_quietly(anchor)  # never leak the session a failed login opened
        if rv in (CKR_PIN_INCORRECT, CKR_PIN_INVALID, CKR_PIN_LEN_RANGE):
            raise self._wrong_pin(name)
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

    def forget(self) -> None:
        """The token was removed: drop its login, its PIN and its (now stale) sessions."""
        with self._lock:
            self._token = None
            self._anchor = None
            self._pin = None
            self._idle.clear()

    def _present(self, tok: Any) -> bool:
        try:
            return TokenInfo.from_token(tok.slot.get_token()).serial == self.serial
        except pkcs11.PKCS11Error:
            return False

    @staticmethod
    def _close_quietly(s: PooledSession) -> None:
        try:
            s.session.close()
        except pkcs11.PKCS11Error:
            pass

    # -- borrowing ------------------------------------------------------
    def _borrow(self, need_login: bool) -> tuple[PooledSession, Any]:
        """(session, token object); the caller holds module.shared()."""
        mine = getattr(self._mine, "s", None)
        with self._lock:
            tok = self._token
            if tok is None or self._generation != self.module.generation:
                tok = self._refresh()
            if need_login and self._anchor is None:
                raise LoginRequired(f"token {self.label or self.serial} is locked: unlock it with its PIN first")
            idle = self._idle
            if mine is not None and idle and idle[-1] is not mine and mine in idle:
                idle.remove(mine)  # a thread keeps its own session: SoftHSM's state for it stays on its CPU
                s = mine
            else:
                s = idle.pop() if idle else None
            generation = self._generation
        if s is None:
            s = self._open(tok, generation)
        if s is not mine:
            self._mine.s = s
        return s, tok

    def _give_back(self, s: PooledSession, keep: bool) -> None:
        if keep and not s.discard:
            with self._lock:
                keep = s.generation == self._generation and len(self._idle) < self.max_idle
                if keep:
                    self._idle.append(s)
        if not keep:
            self._close_quietly(s)

    def _failure(self, tok: Any, s: PooledSession, e: BaseException) -> tuple[bool, BaseException]:
        """(keep the session?, what to raise) for a python-pkcs11 error raised while ``s`` was borrowed."""
        if isinstance(e, STALE_OBJECT_ERRORS):
            if not self._present(tok):
                self.forget()
                return False, self._removed_error()
            # the token is there: an object handle went stale (deleted through another
            # session or process), which must not cost the token its login
            s.cache.clear()
            if isinstance(e, _STALE_KEY_ERRORS):
                return True, KeyNotFound(
                    f"a key or certificate on token {self.label or self.serial} was deleted while in use; "
                    "list the keys and retry")
            return False, HsmError(f"token {self.label or self.serial} reported {type(e).__name__}; retry")
        self.forget()
        return False, self._removed_error()

    @contextmanager
    def session(self, *, need_login: bool = True) -> Iterator[PooledSession]:
        """A session of this token for the duration of the block."""
        with self.module.shared():
            s, tok = self._borrow(need_login)
            keep = True
            try:
                yield s
            except GONE_ERRORS as e:
                keep, err = self._failure(tok, s, e)
                raise err from e
            finally:
                self._give_back(s, keep)

    def run(self, fn: Callable[..., T], *args: Any, need_login: bool = True) -> T:
        """``fn(session, *args)`` with a borrowed session: :meth:`session` without a generator per call (hot paths)."""
        module = self.module
        module.acquire_shared()
        try:
            s, tok = self._borrow(need_login)
            keep = True
            try:
                return fn(s, *args)
            except GONE_ERRORS as e:
                keep, err = self._failure(tok, s, e)
                raise err from e
            finally:
                self._give_back(s, keep)
        finally:
            module.release_shared()

    def _removed_error(self) -> TokenRemoved:
        # a removed token takes its login with it (forget()): the PIN is asked again
        return TokenRemoved(
            f"token {self.label or self.serial} was removed or stopped answering; insert it again and retry"
        )
