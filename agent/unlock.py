"""Unlock grants: who may sign with a logged-in token, with which handle, for how long and how many times.

PKCS#11 login belongs to the whole process, so the agent keeps its own grants.  ``Unlock`` checks the PIN,
logs the token in and returns a random grant *handle* (128 bits, shown once, kept here only as a hash).  A
later call uses the grant only when it presents the handle and comes from the same caller: another process
of the same user, which reaches the same socket, cannot use a grant it was not given.  A grant expires on a
monotonic clock, covers one document by default (``unlock.max_signatures`` = 1), and ends when its token
is removed (a token that comes back must be unlocked again).  The token is logged out, and its PIN dropped
from memory, as soon as no grant and no in-flight per-call-PIN operation needs it.

When the token is already logged in, C_Login does not check a PIN (it answers USER_ALREADY_LOGGED_IN), so a
second caller's PIN is compared with an HMAC of the PIN the token was logged in with; a mismatch counts as a
wrong PIN in the hsm layer's PinGuard like any other.  Wrong PINs are also throttled per caller
(``unlock.pin_tries_per_minute``): a caller that keeps guessing is refused before the token is asked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import os
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hsm import LoginRequired, PinIncorrect, PinLocked, Token

from .clock import Clock, SystemClock
from .config import UnlockPolicy
from .errors import GrantExhausted, InvalidRequest, PinThrottled

log = logging.getLogger(__name__)

_WINDOW = 60.0


@dataclass
class Grant:
    handle_hash: bytes
    caller: str
    serial: str
    expires_mono: float
    expires_at: dt.datetime
    left: int


def _hash(handle: str) -> bytes:
    return hashlib.sha256(handle.encode("utf-8", "replace")).digest()


class UnlockManager:
    """Grants, per-call PIN checks, the PIN throttle and the token logins they need."""

    def __init__(self, policy: UnlockPolicy, clock: Clock | None = None) -> None:
        self.policy = policy
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._grants: dict[bytes, Grant] = {}
        self._tokens: dict[str, Token] = {}
        self._checks: dict[str, bytes] = {}  # serial -> HMAC of the PIN it is logged in with
        self._active: dict[str, int] = {}
        self._failures: dict[str, deque[float]] = {}  # caller -> monotonic times of recent wrong PINs
        self._hkey = os.urandom(32)
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="unlock-reaper", daemon=True)
        self._reaper.start()

    def _digest(self, pin: str) -> bytes:
        return hmac.new(self._hkey, pin.encode("utf-8"), hashlib.sha256).digest()

    # -- PIN throttle -------------------------------------------------------
    def _throttle(self, caller: str) -> None:
        now = self._clock.monotonic()
        recent = self._failures.get(caller)
        if recent is None:
            return
        while recent and recent[0] <= now - _WINDOW:
            recent.popleft()
        if len(recent) >= self.policy.pin_tries_per_minute:
            wait = recent[0] + _WINDOW - now
            raise PinThrottled(f"too many wrong PINs from this caller; wait {max(1, round(wait))} s before the next "
                               "try", retry_after=wait)

    def _failed(self, caller: str) -> None:
        self._failures.setdefault(caller, deque()).append(self._clock.monotonic())

    # -- login ------------------------------------------------------------
    def _login(self, caller: str, token: Token, pin: str) -> None:
        """Log ``token`` in with ``pin`` or check ``pin`` against the current login (caller holds _lock)."""
        self._throttle(caller)
        guard = token.pool.guard
        before = guard.failures(token.serial)
        try:
            self._login_unthrottled(token, pin)
        except (PinIncorrect, PinLocked):
            if guard.failures(token.serial) > before:  # a wrong PIN (not a refusal before any try)
                self._failed(caller)
            raise

    def _login_unthrottled(self, token: Token, pin: str) -> None:
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
        for h in [h for h, g in self._grants.items() if g.serial == serial]:
            del self._grants[h]
        self._checks.pop(serial, None)
        tok = self._tokens.get(serial)
        if tok is not None and tok.logged_in:
            try:
                tok.logout()
            except Exception as e:  # noqa: BLE001 - a removed token cannot log out; its login is gone anyway
                log.info("logout of token %s failed: %s", serial, type(e).__name__)

    def _live(self, g: Grant) -> bool:
        if g.expires_mono <= self._clock.monotonic() or g.left <= 0:
            self._grants.pop(g.handle_hash, None)
            return False
        return True

    def _maybe_logout(self, serial: str) -> bool:
        if self._active.get(serial, 0) > 0:
            return False
        if any(self._live(g) for g in list(self._grants.values()) if g.serial == serial):
            return False
        if serial in self._checks or (serial in self._tokens and self._tokens[serial].logged_in):
            self._drop_token(serial)
            log.info("token %s logged out: no grant left", serial)
            return True
        return False

    # -- grants -------------------------------------------------------------
    def unlock(self, caller: str, token: Token, pin: str, ttl_seconds: int = 0,
               max_signatures: int = 0) -> tuple[str, Grant]:
        """Check the PIN and log in; returns (the new grant's handle, the grant)."""
        ttl = min(ttl_seconds or self.policy.max_seconds, self.policy.max_seconds)
        count = min(max_signatures or self.policy.max_signatures, self.policy.max_signatures)
        handle = secrets.token_urlsafe(24)  # 192 bits
        with self._lock:
            self._login(caller, token, pin)
            grant = Grant(_hash(handle), caller, token.serial, self._clock.monotonic() + ttl,
                          self._clock.now() + dt.timedelta(seconds=ttl), count)
            self._grants[grant.handle_hash] = grant
        log.info("caller %s unlocked token %s for %ds / %d signatures", caller, token.serial, ttl, count)
        return handle, grant

    def _grant(self, caller: str, handle: str | None, serial: str) -> Grant | None:
        if not handle:
            return None
        g = self._grants.get(_hash(handle))
        if g is None or g.caller != caller or g.serial != serial or not self._live(g):
            return None
        return g

    def lock(self, caller: str, serial: str, handle: str | None = None) -> bool:
        """End this caller's grant(s) for the token (one, when ``handle`` is given); log out when none is left."""
        with self._lock:
            for h, g in list(self._grants.items()):
                if g.caller == caller and g.serial == serial and (handle is None or h == _hash(handle)):
                    del self._grants[h]
            return self._maybe_logout(serial)

    def unlocked_serials(self, caller: str) -> list[str]:
        with self._lock:
            return sorted({g.serial for g in list(self._grants.values()) if g.caller == caller and self._live(g)})

    def grant_left(self, caller: str, handle: str | None, serial: str) -> int | None:
        with self._lock:
            g = self._grant(caller, handle, serial)
            return g.left if g is not None else None

    @contextmanager
    def use(self, caller: str, token: Token, pin: str | None, signatures: int = 1,
            handle: str | None = None) -> Iterator[Grant | None]:
        """Hold the token logged in for one operation of ``signatures`` signatures by ``caller``.

        With ``pin`` the PIN is checked (and the token logged in if needed) for this call only; else the grant
        named by ``handle`` pays for the signatures.  Signatures of a failed operation are given back.
        """
        serial = token.serial
        with self._lock:
            grant = None
            if pin:
                if not self.policy.allow_per_call_pin:
                    raise InvalidRequest("per-call PINs are disabled on this agent: Unlock the token first")
                self._login(caller, token, pin)
            else:
                grant = self._grant(caller, handle, serial)
                if grant is None:
                    raise LoginRequired(
                        f"token {token.label or serial} is not unlocked for this call: Unlock it (signet unlock) "
                        "and present the grant handle, or give a PIN with the request")
                if grant.left < signatures:
                    raise GrantExhausted(f"the unlock grant for token {token.label or serial} has "
                                         f"{grant.left} signatures left, {signatures} requested; unlock again")
                if not token.logged_in:
                    raise LoginRequired(f"token {token.label or serial} lost its login; unlock it again")
                grant.left -= signatures
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

    def reset_pin_lock(self, caller: str, token: Token, pin: str | None, so_pin: str | None) -> None:
        """Clear the agent's own wrong-PIN lock of ``token`` once the caller proves the PIN or the SO PIN.

        The proof is one login attempt that bypasses the agent's lock (the token's own final-try and locked
        flags still stop it); a wrong proof counts as a wrong PIN and goes through the per-caller throttle.
        """
        with self._lock:
            self._throttle(caller)
            try:
                token.pool.prove_pin(so_pin if so_pin else (pin or ""), so=bool(so_pin))
            except PinIncorrect:
                self._failed(caller)
                raise
            token.pool.guard.reset(token.serial)
        log.info("caller %s cleared the PIN lock of token %s (%s)", caller, token.serial,
                 "SO PIN" if so_pin else "user PIN")

    def token_removed(self, serial: str) -> None:
        """The token left its slot: every grant on it ends (a token that comes back is unlocked again)."""
        with self._lock:
            dropped = [h for h, g in self._grants.items() if g.serial == serial]
            for h in dropped:
                del self._grants[h]
            self._checks.pop(serial, None)
        if dropped:
            log.info("token %s removed: %d grant(s) ended", serial, len(dropped))

    # -- housekeeping -------------------------------------------------------
    def reap(self) -> None:
        with self._lock:
            serials = {g.serial for g in list(self._grants.values()) if not self._live(g)}
            for s in serials | {s for s in self._checks if not any(g.serial == s for g in self._grants.values())}:
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
