"""Unlock policy: who may sign with a logged-in token, for how long and how many times.

PKCS#11 login belongs to the whole process, so the agent keeps its own grants
per (caller, token serial): ``Unlock`` logs the token in and grants the caller a
bounded time and number of signatures (capped by ``[unlock]`` in the config).
The token is logged out, and the PIN dropped from memory, as soon as no grant
and no in-flight per-call-PIN operation needs it (a reaper thread ends expired
grants within a second).

The PIN stays in memory (never on disk, never in logs) only while a grant
lives: it is needed to log in again when the same token (same serial) comes
back after being pulled out.  A token that comes back with a *different*
serial -- a re-created SoftHSM token, another card with the same label -- is a
different token, and the caller must unlock it again.

When the token is already logged in, C_Login does not check a PIN (it answers
USER_ALREADY_LOGGED_IN), so a second caller's PIN is compared with an HMAC of
the PIN the token was logged in with; a mismatch counts as a wrong PIN in the
hsm layer's PinGuard like any other, so nobody can guess PINs for free.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from hsm import LoginRequired, PinIncorrect, PinLocked, Token

from .config import UnlockPolicy
from .errors import GrantExhausted, InvalidRequest

log = logging.getLogger(__name__)


@dataclass
class Grant:
    caller: str
    serial: str
    expires_at: float
    left: int
    pin: str = field(repr=False)


class UnlockManager:
    """Grants, per-call PIN checks and the token logins they need."""

    def __init__(self, policy: UnlockPolicy, clock: Callable[[], float] = time.time) -> None:
        self.policy = policy
        self._clock = clock
        self._lock = threading.RLock()
        self._grants: dict[tuple[str, str], Grant] = {}
        self._tokens: dict[str, Token] = {}
        self._checks: dict[str, bytes] = {}  # serial -> HMAC of the PIN it is logged in with
        self._active: dict[str, int] = {}
        self._hkey = os.urandom(32)
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="unlock-reaper", daemon=True)
        self._reaper.start()

    def _digest(self, pin: str) -> bytes:
        return hmac.new(self._hkey, pin.encode("utf-8"), hashlib.sha256).digest()

    # -- login ------------------------------------------------------------
    def _login(self, token: Token, pin: str) -> None:
        """Log ``token`` in with ``pin`` or check ``pin`` against the current login (caller holds _lock)."""
        if not pin:
            raise PinIncorrect("an empty PIN was given", token.pin_tries_left())
        serial = token.serial
        self._tokens[serial] = token
        check = self._digest(pin)
        if token.logged_in and serial in self._checks:
            guard = token.pool.guard
            guard.check(serial, token.label)
            if hmac.compare_digest(check, self._checks[serial]):
                guard.record_success(serial)
                return
            left = guard.record_failure(serial)
            log.warning("wrong PIN for token %s (%d tries left)", serial, left)
            if left <= 0:
                self._drop_token(serial)
                raise PinLocked(f"wrong PIN; token {token.label or serial} is now locked after "
                                f"{guard.max_failures} failures")
            raise PinIncorrect(f"wrong PIN for token {token.label or serial}; {left} tries left before it locks",
                               left)
        if token.logged_in:
            token.logout()  # logged in with a PIN we cannot vouch for
        token.login(pin)
        self._checks[serial] = check

    def _drop_token(self, serial: str) -> None:
        for k in [k for k in self._grants if k[1] == serial]:
            del self._grants[k]
        self._checks.pop(serial, None)
        tok = self._tokens.get(serial)
        if tok is not None and tok.logged_in:
            try:
                tok.logout()
            except Exception as e:  # a removed token cannot log out; its login is gone anyway
                log.info("logout of token %s failed: %s", serial, type(e).__name__)

    def _live(self, caller: str, serial: str) -> Grant | None:
        g = self._grants.get((caller, serial))
        if g is not None and (g.expires_at <= self._clock() or g.left <= 0):
            del self._grants[(caller, serial)]
            return None
        return g

    def _maybe_logout(self, serial: str) -> bool:
        if self._active.get(serial, 0) > 0:
            return False
        if any(self._live(c, s) for (c, s) in list(self._grants) if s == serial):
            return False
        if serial in self._checks or (serial in self._tokens and self._tokens[serial].logged_in):
            self._drop_token(serial)
            log.info("token %s logged out: no grant left", serial)
            return True
        return False

    # -- grants -------------------------------------------------------------
    def unlock(self, caller: str, token: Token, pin: str, ttl_seconds: int = 0, max_signatures: int = 0) -> Grant:
        ttl = min(ttl_seconds or self.policy.max_seconds, self.policy.max_seconds)
        count = min(max_signatures or self.policy.max_signatures, self.policy.max_signatures)
        with self._lock:
            self._login(token, pin)
            grant = Grant(caller, token.serial, self._clock() + ttl, count, pin)
            self._grants[(caller, token.serial)] = grant
        log.info("caller %s unlocked token %s for %ds / %d signatures", caller, token.serial, ttl, count)
        return grant

    def lock(self, caller: str, serial: str) -> bool:
        with self._lock:
            self._grants.pop((caller, serial), None)
            return self._maybe_logout(serial)

    def unlocked_serials(self, caller: str) -> list[str]:
        with self._lock:
            return sorted(s for (c, s) in list(self._grants) if c == caller and self._live(c, s))

    @contextmanager
    def use(self, caller: str, token: Token, pin: str | None, signatures: int = 1) -> Iterator[Grant | None]:
        """Hold the token logged in for one operation of ``signatures`` signatures by ``caller``.

        With ``pin`` the PIN is checked (and the token logged in if needed) for this call only; else the
        caller's grant pays for the signatures.  Signatures of a failed operation are given back.
        """
        serial = token.serial
        with self._lock:
            grant = None
            if pin:
                if not self.policy.allow_per_call_pin:
                    raise InvalidRequest("per-call PINs are disabled on this agent: Unlock the token first")
                self._login(token, pin)
            else:
                grant = self._live(caller, serial)
                if grant is None:
                    raise LoginRequired(
                        f"token {token.label or serial} is not unlocked for caller {caller}: "
                        "Unlock it (signet unlock) or give a PIN with the request"
                    )
                if grant.left < signatures:
                    raise GrantExhausted(f"the unlock grant for token {token.label or serial} has "
                                         f"{grant.left} signatures left, {signatures} requested; unlock again")
                grant.left -= signatures
                if not token.logged_in:  # the same token came back after removal: log in again
                    try:
                        self._login(token, grant.pin)
                    except BaseException:
                        grant.left += signatures
                        raise
            self._active[serial] = self._active.get(serial, 0) + 1
        ok = False
        try:
            yield grant
            ok = True
        finally:
            with self._lock:
                if grant is not None and not ok:
                    grant.left += signatures
                self._active[serial] -= 1
                self._maybe_logout(serial)

    def relogin(self, caller: str, token: Token, pin: str | None) -> None:
        """Log in again inside :meth:`use` after the token lost its login (removed and back)."""
        with self._lock:
            if pin is None:
                grant = self._grants.get((caller, token.serial))
                if grant is None:
                    raise LoginRequired(f"token {token.label or token.serial} lost its login; unlock it again")
                pin = grant.pin
            self._checks.pop(token.serial, None)
            self._login(token, pin)

    # -- housekeeping -------------------------------------------------------
    def reap(self) -> None:
        with self._lock:
            serials = {s for (c, s) in list(self._grants) if self._live(c, s) is None}
            for s in serials | {s for s in self._checks if not any(k[1] == s for k in self._grants)}:
                self._maybe_logout(s)

    def _reap_loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.reap()
            except Exception:
                log.exception("unlock reaper failed")

    def close(self) -> None:
        self._stop.set()
        if self._reaper.is_alive() and self._reaper is not threading.current_thread():
            self._reaper.join(timeout=5)
        with self._lock:
            for s in list(self._checks):
                self._drop_token(s)
            self._grants.clear()
