"""Token insertion and removal events: slot polling, woken early by udev.

Two sources feed one poll of the module's slot list:

* **udev** — a pyudev monitor on the ``usb`` subsystem (:mod:`hsm.udev`).
  :func:`hsm.udev.classify` picks USB smart-card readers (interface class
  0x0B, CCID) and known HID/FIDO-style token vendors; a match wakes the
  poller at once.  In containers udev delivers nothing, so this source is
  optional.
* **slot polling** — every ``interval`` seconds the watcher lists the slots and
  compares token serials with the previous list.

Why reinitialising is a policy and not a habit: a module such as SoftHSM only
shows a *new* token after ``C_Finalize`` + ``C_Initialize``
(:meth:`hsm.module.Module.reinitialize`), and that invalidates every session of
every thread.  The module's readers-writer lock makes it wait for calls in
flight, and :class:`hsm.sessions.SessionPool` reopens sessions and logs in
again by itself, but anyone holding raw python-pkcs11 objects loses them, and
each reinitialisation stalls callers for the time it takes.  So:

* ``ReinitPolicy.NEVER`` — cheap slot polls only (removals are still seen;
  insertions only with modules that update their slot list, e.g. OpenSC).
* ``ReinitPolicy.IDLE`` (default) — reinitialise on a poll only when no
  PKCS#11 call has started since the previous poll and none is in flight, and
  at most once per ``reinit_interval`` seconds; or at once when udev just
  reported a matching device.  ``may_reinitialize`` (a callable) can veto
  either.
* ``ReinitPolicy.ALWAYS`` — every poll (tools and tests with no long sessions).

``reinit_interval`` (default 5 s) is the trade-off of the IDLE policy: with
SoftHSM (no udev device behind its tokens) a token created while the agent is
idle shows up, and TokenInserted is emitted, only at the next reinitialisation,
so up to ``reinit_interval`` (plus one ``interval``) later; a shorter interval
finds new tokens sooner, but an idle agent then tears down and rebuilds every
session that often, and a request arriving meanwhile waits for it.  Removals
need no reinitialisation and are seen at the next poll.  udev-triggered and
forced (``poll(reinitialize=True)``, e.g. the agent's rescan of a token it
cannot find) reinitialisations are not limited by it.

Removed tokens leave stale handles behind (SoftHSM answers GeneralError or
ObjectHandleInvalid for them): listing skips such slots, and a failed poll is
logged (once, until polls succeed again) and retried, never fatal to the thread.
Logging follows changes, not polls: insertions and removals at INFO,
reinitialisations and udev matches at DEBUG.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import udev
from .errors import HsmError
from .module import Module
from .tokens import TokenInfo, list_tokens
from .udev import DeviceLike, UdevMatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenInserted:
    token: TokenInfo


@dataclass(frozen=True)
class TokenRemoved:
    serial: str
    label: str


TokenEvent = TokenInserted | TokenRemoved


class ReinitPolicy(enum.Enum):
    NEVER = "never"
    IDLE = "idle"
    ALWAYS = "always"


class TokenWatcher:
    """Watches one module's slots and tells subscribers about tokens coming and going."""

    def __init__(
        self,
        module: Module,
        *,
        interval: float = 2.0,
        reinitialize: ReinitPolicy | str = ReinitPolicy.IDLE,
        may_reinitialize: Callable[[], bool] | None = None,
        use_udev: bool = True,
        reinit_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``reinit_interval``: the minimum seconds between two IDLE-policy reinitialisations (see the
        module docstring for the trade-off); ``clock``: monotonic seconds, replaceable in tests."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        if reinit_interval < 0:
            raise ValueError("reinit_interval must not be negative")
        self.module = module
        self.interval = interval
        self.reinit_interval = reinit_interval
        self._clock = clock
        self._last_reinit: float | None = None  # clock() after this watcher's last reinitialisation
        self._failing = False  # the last poll failed: log the next failure at DEBUG, the recovery at INFO
        self.policy = ReinitPolicy(reinitialize)
        self.may_reinitialize = may_reinitialize
        self.use_udev = use_udev
        self.polls = 0
        self.reinits = 0
        self.errors = 0
        self.udev_matches = 0
        self._known: dict[str, TokenInfo] = {}
        self._subscribers: list[Callable[[TokenEvent], None]] = []
        self._sub_lock = threading.Lock()
        self._poll_lock = threading.Lock()
        self._wake = threading.Event()
        self._udev_pending = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last_activity: int | None = None
        self._monitor: Any = None

    # -- subscribers ------------------------------------------------------
    def subscribe(self, callback: Callable[[TokenEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` (on the watcher's thread); returns an unsubscribe function."""
        with self._sub_lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._sub_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def events(self) -> queue.Queue[TokenEvent]:
        """A new queue that receives every event from now on."""
        q: queue.Queue[TokenEvent] = queue.Queue()
        self.subscribe(q.put)
        return q

    def _emit(self, event: TokenEvent) -> None:
        with self._sub_lock:
            subs = list(self._subscribers)
        for cb in subs:
            try:
                cb(event)
            except Exception:  # one bad subscriber must not stop the others or the watcher
                log.exception("token watcher subscriber failed on %s", type(event).__name__)

    # -- polling ----------------------------------------------------------
    def present(self) -> list[TokenInfo]:
        """Tokens seen by the last poll."""
        with self._poll_lock:
            return list(self._known.values())

    def _should_reinitialize(self, udev_triggered: bool) -> bool:
        if self.policy is ReinitPolicy.NEVER:
            return False
        if self.may_reinitialize is not None and not self.may_reinitialize():
            return False
        if self.policy is ReinitPolicy.ALWAYS or udev_triggered:
            return True
        if self._last_reinit is not None and self._clock() - self._last_reinit < self.reinit_interval:
            return False
        started, in_flight = self.module.activity()
        return in_flight == 0 and started == self._last_activity

    def _poll_failed(self, what: str, e: BaseException) -> None:
        self.errors += 1
        level = logging.DEBUG if self._failing else logging.WARNING
        self._failing = True
        log.log(level, "%s of %s failed: %s", what, self.module.path, e)

    def poll(self, *, reinitialize: bool | None = None, udev_triggered: bool = False) -> list[TokenEvent]:
        """Look at the slots now; emit and return the changes since the last poll.

        ``reinitialize`` forces (True) or forbids (False) a module reinitialisation;
        None applies the policy.
        """
        with self._poll_lock:
            self.polls += 1
            if reinitialize is None:
                reinitialize = self._should_reinitialize(udev_triggered)
            try:
                if reinitialize:
                    self.module.reinitialize()
                    self.reinits += 1
                    self._last_reinit = self._clock()
                current = {t.serial: t for t in list_tokens(self.module) if t.initialized and t.serial}
            except HsmError as e:
                self._poll_failed("token poll", e)
                return []
            finally:
                # our own listing counts as activity: remember the count after it
                self._last_activity = self.module.activity()[0]
            if self._failing:
                self._failing = False
                log.info("token poll of %s works again", self.module.path)
            events: list[TokenEvent] = []
            for serial, old in self._known.items():
                if serial not in current:
                    events.append(TokenRemoved(serial, old.label))
            for serial, info in current.items():
                if serial not in self._known:
                    events.append(TokenInserted(info))
            self._known = current
        for ev in events:
            log.info("%s: token %s", type(ev).__name__, ev.token.serial if isinstance(ev, TokenInserted) else ev.serial)
            self._emit(ev)
        return events

    def handle_udev_event(self, device: DeviceLike) -> UdevMatch | None:
        """Feed one udev device event (the monitor thread does; tests may too)."""
        match = udev.classify(device)
        if match is not None:
            self.udev_matches += 1
            log.debug("udev: %s %s (vendor %s): polling slots now", match.action, match.kind, match.vendor_id)
            self._udev_pending.set()
            self._wake.set()
        return match

    # -- threads ----------------------------------------------------------
    def start(self, *, emit_present: bool = False) -> None:
        """Take the first snapshot and start polling (and listening to udev when available).

        With ``emit_present`` the tokens already there are announced as TokenInserted.
        """
        if self._threads:
            raise RuntimeError("token watcher already started")
        self._stop.clear()
        if not emit_present:
            with self._poll_lock:
                try:
                    self._known = {t.serial: t for t in list_tokens(self.module) if t.initialized and t.serial}
                except HsmError as e:
                    self._poll_failed("first token poll", e)
                self._last_activity = self.module.activity()[0]
        else:
            self.poll(reinitialize=False)
        poller = threading.Thread(target=self._poll_loop, name="hsm-token-poll", daemon=True)
        self._threads.append(poller)
        if self.use_udev:
            self._monitor = udev.open_monitor()
            if self._monitor is not None:
                self._threads.append(threading.Thread(target=self._udev_loop, name="hsm-token-udev", daemon=True))
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = []
        self._monitor = None

    def __enter__(self) -> TokenWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def udev_active(self) -> bool:
        return self._monitor is not None

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            udev_triggered = self._udev_pending.is_set()
            self._udev_pending.clear()
            try:
                self.poll(udev_triggered=udev_triggered)
            except Exception:  # the watcher thread must survive anything a module does
                self.errors += 1
                log.exception("token poll failed")

    def _udev_loop(self) -> None:
        monitor = self._monitor
        while not self._stop.is_set() and monitor is not None:
            try:
                device = monitor.poll(timeout=0.5)
            except Exception:
                log.exception("udev monitor failed; slot polling only")
                return
            if device is not None:
                self.handle_udev_event(device)
