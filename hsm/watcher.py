"""Token insertion and removal events: pyudev for USB devices plus slot polling.

Two sources feed one poll of the module's slot list:

* **udev** — a pyudev monitor on the ``usb`` subsystem.  :func:`classify` (a
  small pure function) picks USB smart-card readers (interface class 0x0B,
  CCID) and known HID/FIDO-style token vendors; a match wakes the poller at
  once.  In containers udev delivers nothing, so this source is optional.
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
  PKCS#11 call has started since the previous poll and none is in flight, or
  when udev just reported a matching device; ``may_reinitialize`` (a callable)
  can veto either.
* ``ReinitPolicy.ALWAYS`` — every poll (tools and tests with no long sessions).

Removed tokens leave stale handles behind (SoftHSM answers GeneralError or
ObjectHandleInvalid for them): listing skips such slots, and a failed poll is
logged and retried, never fatal to the thread.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import HsmError
from .module import Module
from .tokens import TokenInfo, list_tokens

log = logging.getLogger(__name__)

CCID_INTERFACE_CLASS = 0x0B
# USB vendor ids of tokens that also (or only) show up as HID devices
TOKEN_VENDORS: Mapping[str, str] = {
    "1050": "Yubico",
    "20a0": "Nitrokey",
    "096e": "Feitian",
    "0529": "SafeNet (Aladdin)",
    "0a89": "Aktiv (Rutoken)",
}
_ACTIONS = frozenset({"add", "remove", "bind", "unbind"})


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


class DeviceLike(Protocol):
    """What :func:`classify` reads from a ``pyudev.Device``."""

    @property
    def action(self) -> str | None: ...

    @property
    def properties(self) -> Mapping[str, str]: ...

    @property
    def attributes(self) -> Any: ...


@dataclass(frozen=True)
class UdevMatch:
    kind: str  # "ccid" or "hid-token"
    action: str
    vendor_id: str | None
    vendor: str | None = None


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip().lower() or None


def _attr(device: DeviceLike, name: str) -> str | None:
    attrs = getattr(device, "attributes", None)
    if attrs is None:
        return None
    try:
        return _text(attrs.get(name))
    except (KeyError, OSError, AttributeError, UnicodeError):
        return None  # a removed device's sysfs attributes are gone


def _vendor_id(props: Mapping[str, str], device: DeviceLike) -> str | None:
    vid = _text(props.get("ID_VENDOR_ID")) or _attr(device, "idVendor")
    if vid is None and props.get("PRODUCT"):  # "1050/407/543": hex without leading zeros
        head = _text(props["PRODUCT"].split("/")[0])
        vid = head.zfill(4) if head else None
    return vid


def _is_ccid(props: Mapping[str, str], device: DeviceLike) -> bool:
    # usb_device: ID_USB_INTERFACES=":030101:0b0000:" (class, subclass, protocol in hex per interface)
    for entry in (props.get("ID_USB_INTERFACES") or "").split(":"):
        if entry.lower().startswith("0b"):
            return True
    # usb_interface: INTERFACE="11/0/0" (decimal) or the sysfs attribute bInterfaceClass="0b"
    iface = props.get("INTERFACE")
    if iface and iface.split("/")[0].strip() == str(CCID_INTERFACE_CLASS):
        return True
    cls = _attr(device, "bInterfaceClass")
    return cls is not None and cls.zfill(2) == f"{CCID_INTERFACE_CLASS:02x}"


def classify(device: DeviceLike) -> UdevMatch | None:
    """A USB smart-card reader or known token being added/removed, else None."""
    action = _text(getattr(device, "action", None))
    if action not in _ACTIONS:
        return None
    try:
        props = dict(device.properties)
    except (AttributeError, TypeError):
        props = {}
    vid = _vendor_id(props, device)
    if _is_ccid(props, device):
        return UdevMatch("ccid", action, vid, TOKEN_VENDORS.get(vid or ""))
    if vid is not None and vid in TOKEN_VENDORS:
        return UdevMatch("hid-token", action, vid, TOKEN_VENDORS[vid])
    return None


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
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.module = module
        self.interval = interval
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
        started, in_flight = self.module.activity()
        return in_flight == 0 and started == self._last_activity

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
                current = {t.serial: t for t in list_tokens(self.module) if t.initialized and t.serial}
            except HsmError as e:
                self.errors += 1
                log.warning("token poll of %s failed: %s", self.module.path, e)
                return []
            finally:
                # our own listing counts as activity: remember the count after it
                self._last_activity = self.module.activity()[0]
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
        match = classify(device)
        if match is not None:
            self.udev_matches += 1
            log.info("udev: %s %s (vendor %s): polling slots now", match.action, match.kind, match.vendor_id)
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
                    log.warning("first token poll of %s failed: %s", self.module.path, e)
                self._last_activity = self.module.activity()[0]
        else:
            self.poll(reinitialize=False)
        poller = threading.Thread(target=self._poll_loop, name="hsm-token-poll", daemon=True)
        self._threads.append(poller)
        if self.use_udev:
            self._monitor = self._open_monitor()
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
            udev = self._udev_pending.is_set()
            self._udev_pending.clear()
            try:
                self.poll(udev_triggered=udev)
            except Exception:  # the watcher thread must survive anything a module does
                self.errors += 1
                log.exception("token poll failed")

    @staticmethod
    def _open_monitor() -> Any:
        try:
            import pyudev

            monitor = pyudev.Monitor.from_netlink(pyudev.Context())
            monitor.filter_by("usb")
            monitor.start()
            return monitor
        except Exception as e:  # no udev (containers, non-Linux): polling alone still works
            log.info("udev monitor unavailable (%s); slot polling only", e)
            return None

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
