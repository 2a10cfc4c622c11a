"""Pooled sessions per token, the token's single login, and what a failed call means.

PKCS#11 login state belongs to the application, not to a session: one
C_Login logs every session of the token in, and closing the last session
logs everything out.  The pool therefore keeps one *anchor* session open for
as long as it is logged in, opens all sessions without a user (so python-
pkcs11's ``Session.close`` never calls C_Logout behind the others' backs),
and logs in and out through the module's raw function table.

When a call fails with one of :data:`hsm.rv.GONE_ERRORS`, the pool asks the
slot whether the token is still there before it answers:

* the token is gone: :class:`~hsm.errors.TokenRemoved`; login, PIN and
  sessions are dropped (the PIN is asked again);
* an object handle went stale (deleted elsewhere): :class:`~hsm.errors.KeyNotFound`;
  session and login kept;
* the module lost the session (SESSION_HANDLE_INVALID and the like: token
  reset, or removed and inserted again): :class:`~hsm.errors.TokenRemoved`;
  the pool logs out, closes every session it has and forgets the PIN, since
  it can no longer tell what the module's login state is;
* a device error (DEVICE_ERROR, GENERAL_ERROR): the operation's failure class
  (HsmError, SigningFailed, WrapError) saying "retry"; the session is closed,
  the login kept.

No session leaks: a session whose C_CloseSession fails is closed again with
the next ones the pool closes.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pkcs11
from pkcs11 import UserType

from . import rv
from .compat import ATTRIBUTE_MAPPER
from .constants import (
    CKR_OK,
    CKR_PIN_INCORRECT,
    CKR_PIN_INVALID,
    CKR_PIN_LEN_RANGE,
    CKR_PIN_LOCKED,
    CKR_USER_ALREADY_LOGGED_IN,
    CKR_USER_NOT_LOGGED_IN,
)
from .errors import HsmError, KeyNotFound, LoginRequired, PinIncorrect, PinLocked, TokenNotFound, TokenRemoved
from .module import Module
from .pinguard import PinGuard
from .tokens import TokenInfo, find_raw_token

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_UNCLOSED = 64  # sessions kept for another C_CloseSession; beyond that the oldest are given up


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
    generation: int  # the module generation it was opened in (C_Finalize closes it)
    epoch: int = 0  # the pool epoch it was opened in (a pool that drops its sessions starts a new one)
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
        self._epoch = 0
        self._token: Any = None  # invariant: None means no anchor and no idle session either
        self._unclosed: list[PooledSession] = []
        self._unclosed_lock = threading.Lock()  # never held while calling into the module
        self.label = ""
        self._mine = threading.local()  # the session this thread used last: given back to it when idle

    @property
    def _name(self) -> str:
        return self.label or self.serial

    # -- token handle ---------------------------------------------------
    def _refresh(self) -> Any:
        """Token object for the current module generation (caller holds module.shared() and self._lock)."""
        gen = self.module.generation
        if self._token is not None and self._generation == gen:
            return self._token
        try:
            tok = find_raw_token(self.module, serial=self.serial)
        except TokenNotFound as e:
            self._token, self._anchor, self._pin = None, None, None  # a removed token takes its login with it
            self._idle.clear()
            raise TokenRemoved(f"token {self._name} is not present: {e}") from e
        # any other HsmError (the slot list could not be read) changes nothing: a retry may work
        if self._generation != gen:
            # C_Finalize closed every session of the previous generation; the PIN stays for a new login
            self._idle.clear()
            self._anchor = None
            with self._unclosed_lock:
                self._unclosed.clear()
        self._token = tok
        self.label = tok.label.strip()
        self._generation = gen
        return tok

    def info(self) -> TokenInfo:
        with self.module.shared():
            with self._lock:
                tok = self._refresh()
            try:
                return TokenInfo.from_token(tok.slot.get_token())
            except pkcs11.PKCS11Error as e:
                raise self._explain(tok, e, f"reading the state of token {self._name}") from e

    def _open(self, tok: Any, generation: int, epoch: int) -> PooledSession:
        """A new session; python-pkcs11's errors are the caller's to explain (:meth:`_explain`)."""
        if self._unclosed:
            self._close(())  # sessions whose C_CloseSession failed earlier: try again before adding one
        return PooledSession(tok.open(rw=True, attribute_mapper=ATTRIBUTE_MAPPER), generation, epoch)

    def _present(self, tok: Any) -> bool:
        try:
            return TokenInfo.from_token(tok.slot.get_token()).serial == self.serial
        except pkcs11.PKCS11Error:
            return False

    def _explain(
        self, tok: Any, e: pkcs11.PKCS11Error, what: str, failure: type[HsmError] = HsmError,
        *, in_session: bool = False,
    ) -> HsmError:
        """The layer's error for python-pkcs11's ``e``, after updating the pool (see the module docstring).

        The caller holds module.shared() and not self._lock.
        """
        if not isinstance(e, rv.GONE_ERRORS):
            return failure(f"{what} failed: {type(e).__name__}")
        if tok is None or not self._present(tok):
            with self._lock:
                self._drop_locked(token_gone=True)
            return self._removed_error()
        if in_session and isinstance(e, rv.STALE_OBJECT_ERRORS):
            # the token is there: an object handle went stale (deleted through another session or
            # process), which must not cost the token its login
            return KeyNotFound(
                f"a key or certificate on token {self._name} was deleted while in use; list the keys and retry")
        if isinstance(e, rv.SESSION_LOST_ERRORS):
            with self._lock:
                self._drop_locked()
            return TokenRemoved(
                f"token {self._name} dropped its sessions ({type(e).__name__}): it was reset, or removed and "
                "inserted again; unlock it again and retry")
        return failure(f"{what} failed: the token reported {type(e).__name__}; retry")

    # -- login ----------------------------------------------------------
    @property
    def logged_in(self) -> bool:
        """Logged in, or about to be again: after the module was reinitialised the old generation's login is
        gone but the PIN is kept, and the next borrowed session logs in with it (``_borrow``)."""
        return self._anchor is not None or self._pin is not None

    def login(self, pin: str) -> None:
        """Log the token in; wrong PINs are counted and the token locked at the limit."""
        if not isinstance(pin, str) or not pin:
            raise PinIncorrect("an empty PIN was given", self.guard.remaining(self.serial))
        with self.module.shared():
            tok = None
            try:
                with self._lock:
                    tok = self._refresh()
                    self._login_locked(pin.encode("utf-8"))
            except pkcs11.PKCS11Error as e:
                raise self._explain(tok, e, f"login to token {self._name}") from e

    def _wrong_pin(self, name: str) -> HsmError:
        left = self.guard.record_failure(self.serial)
        log.warning("wrong PIN for token %s (%d tries left)", self.serial, left)
        if left <= 0:
            return PinLocked(f"wrong PIN; token {name} is now locked after {self.guard.max_failures} failures")
        return PinIncorrect(f"wrong PIN for token {name}; {left} tries left before it locks", left)

    def _login_locked(self, pin: bytes) -> None:
        """Log in (caller holds module.shared() and self._lock); the module's own errors are raised as
        python-pkcs11's exceptions for the caller to explain."""
        name = self._name
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
        anchor = self._open(self._token, self._generation, self._epoch)
        r = self.module.raw.login(anchor.session.handle, UserType.USER, pin)
        if r == CKR_USER_ALREADY_LOGGED_IN:
            # logged in by another pool of this process: PKCS#11 has no way to check the PIN
            # without logging everyone out, so this is accepted as the standard says
            log.warning("token %s was already logged in by another user of the module", self.serial)
        if r in (CKR_OK, CKR_USER_ALREADY_LOGGED_IN):
            self.guard.record_success(self.serial)
            self._anchor = anchor
            self._pin = pin
            log.info("token %s logged in", self.serial)
            return
        self._close((anchor,))  # never leak the session a failed login opened
        if r in (CKR_PIN_INCORRECT, CKR_PIN_INVALID, CKR_PIN_LEN_RANGE):
            raise self._wrong_pin(name)
        if r == CKR_PIN_LOCKED:
            raise PinLocked(f"token {name} has locked its user PIN; reset it with the SO PIN")
        raise rv.error(r)  # not about the PIN: never counted as a wrong one

    def prove_pin(self, pin: str, *, so: bool = False) -> None:
        """One login attempt that ignores this process's own wrong-PIN lock (the guard), to clear that lock.

        The token's own flags still stop it (final try, locked).  ``so`` proves the security officer's PIN
        instead of the user's.  The login ends again before this returns; a wrong PIN raises PinIncorrect (a
        wrong user PIN is counted by the guard, like any other).
        """
        if not pin:
            raise PinIncorrect("an empty PIN was given", self.guard.remaining(self.serial))
        secret = pin.encode("utf-8")
        with self.module.shared(), self._lock:
            tok = self._refresh()
            name = self._name
            if not so and self._anchor is not None and self._pin is not None:
                if hmac.compare_digest(secret, self._pin):
                    return  # logged in with this PIN right now: proven
                raise self._wrong_pin(name)
            info = TokenInfo.from_token(tok.slot.get_token())
            if so and info.so_pin_locked:
                raise PinLocked(f"token {name} reports its SO PIN locked")
            refusal = None if so else login_refusal(info, name)
            if refusal is not None:
                raise refusal
            s = self._open(tok, self._generation, self._epoch)
            try:
                r = self.module.raw.login(s.session.handle, UserType.SO if so else UserType.USER, secret)
                if r == CKR_OK:
                    self.module.raw.logout(s.session.handle)
                    return
            finally:
                self._close((s,))
        if r in (CKR_PIN_INCORRECT, CKR_PIN_INVALID, CKR_PIN_LEN_RANGE):
            if so:
                raise PinIncorrect(f"wrong SO PIN for token {name}", -1)
            raise self._wrong_pin(name)
        if r == CKR_PIN_LOCKED:
            raise PinLocked(f"token {name} has locked its {'SO' if so else 'user'} PIN")
        raise HsmError(f"token {name} refused the {'SO ' if so else ''}login (rv=0x{r:x}); is it in use?")

    def logout(self) -> None:
        """Log out and close every pooled session."""
        with self.module.shared(), self._lock:
            self._drop_locked()

    def forget(self) -> None:
        """The token was removed: drop its login, its PIN and its sessions (closing any the module still has)."""
        with self.module.shared(), self._lock:
            self._drop_locked(token_gone=True)

    def close_idle(self) -> int:
        """Close the idle sessions (the login's anchor session stays open); returns how many were idle."""
        with self.module.shared(), self._lock:
            idle, self._idle = self._idle, []
            self._close(idle)
        return len(idle)

    def _drop_locked(self, *, token_gone: bool = False) -> None:
        """Forget the login, the PIN and every pooled session; log out and close what the module still has.

        The caller holds module.shared() and self._lock.  Sessions borrowed right now belong to the old
        epoch: they are closed, not pooled, when given back.
        """
        anchor, self._anchor, self._pin = self._anchor, None, None
        idle, self._idle = self._idle, []
        self._epoch += 1
        if token_gone:
            self._token = None
        if anchor is not None:
            if anchor.generation == self.module.generation:
                r = self.module.raw.logout(anchor.session.handle)
                if r not in (CKR_OK, CKR_USER_NOT_LOGGED_IN) and not isinstance(rv.error(r), rv.SESSION_LOST_ERRORS):
                    # closing the pool's sessions below still ends the login, unless another user of the
                    # module in this process has sessions open on the token (login belongs to the process)
                    log.warning("C_Logout on token %s failed (%s, rv=0x%x); closing its sessions instead",
                                self.serial, type(rv.error(r)).__name__, r)
            idle.append(anchor)
        self._close(idle)

    def _close(self, sessions: Iterable[PooledSession]) -> None:
        """C_CloseSession for each session of the current module generation (caller holds module.shared()).

        A session the module could not close (a device error) is kept and closed again with the next
        ones, so that none leaks; one the module no longer knows needs nothing.
        """
        with self._unclosed_lock:
            todo, self._unclosed = [*self._unclosed, *sessions], []
        gen = self.module.generation
        failed = []
        for s in todo:
            if s.generation != gen:
                continue  # closed by C_Finalize; its handle number may belong to a new session now
            try:
                s.session.close()
            except rv.SESSION_LOST_ERRORS:
                continue
            except pkcs11.PKCS11Error as e:
                log.debug("closing a session of token %s failed (%s); trying again later", self.serial,
                          type(e).__name__)
                failed.append(s)
        if failed:
            with self._unclosed_lock:
                self._unclosed = [*self._unclosed, *failed][-MAX_UNCLOSED:]

    # -- borrowing ------------------------------------------------------
    def _borrow(self, need_login: bool) -> tuple[PooledSession, Any]:
        """(session, token object); the caller holds module.shared()."""
        mine = getattr(self._mine, "s", None)
        tok = None
        try:
            with self._lock:
                tok = self._token
                if tok is None or self._generation != self.module.generation:
                    tok = self._refresh()
                if self._anchor is None and self._pin is not None:
                    # the module was reinitialised under us: log in again, once (a PIN the token
                    # refuses now is never sent again; the caller is asked to log in).  The PIN stays
                    # set meanwhile: ``logged_in``, read without the lock, must not see a gap
                    try:
                        self._login_locked(self._pin)
                    except BaseException:
                        self._pin = None
                        raise
                if need_login and self._anchor is None:
                    raise LoginRequired(f"token {self._name} is locked: unlock it with its PIN first")
                idle = self._idle
                if mine is not None and idle and idle[-1] is not mine and mine in idle:
                    idle.remove(mine)  # a thread keeps its own session: SoftHSM's state for it stays on its CPU
                    s = mine
                else:
                    s = idle.pop() if idle else None
                generation, epoch = self._generation, self._epoch
            if s is None:
                s = self._open(tok, generation, epoch)
        except pkcs11.PKCS11Error as e:
            raise self._explain(tok, e, f"opening a session on token {self._name}") from e
        if s is not mine:
            self._mine.s = s
        return s, tok

    def _give_back(self, s: PooledSession, keep: bool) -> None:
        keep = keep and not s.discard
        if keep:
            with self._lock:
                keep = (s.generation == self._generation and s.epoch == self._epoch
                        and len(self._idle) < self.max_idle)
                if keep:
                    self._idle.append(s)
        if not keep:
            self._close((s,))

    def _failure(
        self, tok: Any, s: PooledSession, e: pkcs11.PKCS11Error, failure: type[HsmError],
    ) -> tuple[bool, HsmError]:
        """(keep the session?, what to raise) for a python-pkcs11 error raised while ``s`` was borrowed."""
        err = self._explain(tok, e, f"an operation on token {self._name}", failure, in_session=True)
        if isinstance(err, KeyNotFound):
            s.cache.clear()
            return True, err
        return False, err

    @contextmanager
    def session(self, *, need_login: bool = True, failure: type[HsmError] = HsmError) -> Iterator[PooledSession]:
        """A session of this token for the duration of the block.

        ``failure`` is the error class for a device error inside the block while the token is there.
        """
        with self.module.shared():
            s, tok = self._borrow(need_login)
            keep = True
            try:
                yield s
            except rv.GONE_ERRORS as e:
                keep, err = self._failure(tok, s, e, failure)
                raise err from e
            finally:
                self._give_back(s, keep)

    def run(
        self, fn: Callable[..., T], *args: Any, need_login: bool = True, failure: type[HsmError] = HsmError,
    ) -> T:
        """``fn(session, *args)`` with a borrowed session: :meth:`session` without a generator per call (hot paths)."""
        module = self.module
        module.acquire_shared()
        try:
            s, tok = self._borrow(need_login)
            keep = True
            try:
                return fn(s, *args)
            except rv.GONE_ERRORS as e:
                keep, err = self._failure(tok, s, e, failure)
                raise err from e
            finally:
                self._give_back(s, keep)
        finally:
            module.release_shared()

    def _removed_error(self) -> TokenRemoved:
        # a removed token takes its login with it (forget()): the PIN is asked again
        return TokenRemoved(
            f"token {self._name} was removed or stopped answering; insert it again and retry"
        )
