"""Token watcher: the udev classifier on synthetic devices, and SoftHSM tokens coming and going while it runs."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from hsm import Hsm, ReinitPolicy, TokenRemoved, TokenWatcher
from hsm import watcher as w
from hsm.tokens import find_token

from ..conftest import ROOT, create_token, delete_token


@dataclass
class FakeDevice:
    """Just what classify() reads from a pyudev.Device."""

    action: str | None
    properties: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, bytes] = field(default_factory=dict)


@pytest.mark.parametrize(
    ("device", "kind", "vendor"),
    [
        (FakeDevice("add", {"ID_USB_INTERFACES": ":0b0000:", "ID_VENDOR_ID": "04e6"}), "ccid", "04e6"),
        (FakeDevice("remove", {"ID_USB_INTERFACES": ":030101:0b0000:", "PRODUCT": "1050/407/543"}), "ccid", "1050"),
        (FakeDevice("bind", {"INTERFACE": "11/0/0"}), "ccid", None),
        (FakeDevice("add", {}, {"bInterfaceClass": b"0b", "idVendor": b"076b"}), "ccid", "076b"),
        (FakeDevice("add", {"ID_USB_INTERFACES": ":030000:", "ID_VENDOR_ID": "1050"}), "hid-token", "1050"),
        (FakeDevice("add", {"PRODUCT": "20a0/4108/100"}), "hid-token", "20a0"),
        (FakeDevice("unbind", {}, {"idVendor": b"096e"}), "hid-token", "096e"),
    ],
)
def test_classifier_picks_readers_and_tokens(device: FakeDevice, kind: str, vendor: str | None) -> None:
    match = w.classify(device)
    assert match is not None and match.kind == kind and match.vendor_id == vendor
    assert match.action == device.action


@pytest.mark.parametrize(
    "device",
    [
        FakeDevice("add", {"ID_USB_INTERFACES": ":030102:", "ID_VENDOR_ID": "046d"}),  # a mouse
        FakeDevice("add", {"ID_USB_INTERFACES": ":080650:", "PRODUCT": "781/5581/100"}),  # a USB stick
        FakeDevice("change", {"ID_USB_INTERFACES": ":0b0000:"}),  # not an arrival or departure
        FakeDevice(None, {"ID_USB_INTERFACES": ":0b0000:"}),  # enumerated, not an event
        FakeDevice("add", {"INTERFACE": "3/1/1"}),
    ],
)
def test_classifier_ignores_other_devices(device: FakeDevice) -> None:
    assert w.classify(device) is None


_CLASSIFY_FROM_ENV = """
import pyudev
from hsm.watcher import classify
dev = pyudev.Devices.from_environment(pyudev.Context())
assert isinstance(dev, pyudev.Device)
m = classify(dev)
print(None if m is None else (m.kind, m.action, m.vendor_id))
"""


def _classify_in_udev_env(**props: str) -> str:
    # libudev builds the device from the process environment, as for a program run by a udev rule;
    # a child process gets exactly that environment (in-process environ edits are not reliable)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "SUBSYSTEM": "usb", "DEVTYPE": "usb_device",
           "SEQNUM": "7", "DEVPATH": "/devices/pci0000:00/0000:00:14.0/usb1/1-2", **props}
    res = subprocess.run([sys.executable, "-c", _CLASSIFY_FROM_ENV], env=env, capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_classifier_reads_real_pyudev_devices() -> None:
    """Real pyudev.Device objects built by libudev from a udev event environment."""
    yubikey = {"ID_VENDOR_ID": "1050", "PRODUCT": "1050/407/543"}
    assert _classify_in_udev_env(ACTION="add", ID_USB_INTERFACES=":030101:0b0000:", **yubikey) \
        == "('ccid', 'add', '1050')"
    assert _classify_in_udev_env(ACTION="remove", ID_USB_INTERFACES=":030101:", **yubikey) \
        == "('hid-token', 'remove', '1050')"
    assert _classify_in_udev_env(ACTION="add", ID_USB_INTERFACES=":030102:", ID_VENDOR_ID="046d") == "None"


def _next(q: queue.Queue, timeout: float = 10.0) -> w.TokenEvent:
    return q.get(timeout=timeout)


def test_tokens_created_and_deleted_while_running(hsm_module) -> None:
    watcher = TokenWatcher(hsm_module, interval=0.1, reinitialize=ReinitPolicy.ALWAYS, use_udev=False)
    seen: list[w.TokenEvent] = []
    watcher.subscribe(seen.append)
    q = watcher.events()
    label = f"hot-{os.getpid()}"
    with watcher:
        assert watcher.running
        before = {t.serial for t in watcher.present()}
        create_token(label)
        ev = _next(q)
        assert isinstance(ev, w.TokenInserted) and ev.token.label == label and ev.token.serial not in before
        assert ev.token.initialized and ev.token.login_required
        serial = ev.token.serial
        delete_token(label)
        ev = _next(q)
        assert ev == w.TokenRemoved(serial, label)
        assert serial not in {t.serial for t in watcher.present()}
    assert not watcher.running
    assert watcher.errors == 0 and watcher.reinits >= 2
    assert seen[:2] == [w.TokenInserted(seen[0].token), w.TokenRemoved(serial, label)]  # callbacks saw the same


def test_idle_policy_reinitialises_only_when_idle_or_on_udev(hsm_module, logged_in_token) -> None:
    t, tok = logged_in_token
    key = tok.generate_key("p256", "busy")
    watcher = TokenWatcher(hsm_module, interval=60, reinitialize="idle", use_udev=False)
    watcher.start()
    try:
        reinits = watcher.reinits
        tok.sign(key.key_id, b"activity since the last poll")
        watcher.poll()
        assert watcher.reinits == reinits  # busy: no reinitialisation
        watcher.poll()
        assert watcher.reinits == reinits + 1  # nothing happened since: idle, so reinitialise
        # a call in flight also counts as busy
        with tok.pool.session():
            watcher.poll()
        assert watcher.reinits == reinits + 1
        # the pool noticed the new module generation, reopened sessions and logged in again
        tok.sign(key.key_id, b"after reinit")
        assert tok.logged_in
        # a matching udev event wakes the poller, which reinitialises even though the module is busy
        label = f"udev-{os.getpid()}"
        create_token(label)
        q = watcher.events()
        tok.sign(key.key_id, b"busy again")
        assert watcher.handle_udev_event(FakeDevice("add", {"ID_USB_INTERFACES": ":0b0000:"})) is not None
        assert watcher.handle_udev_event(FakeDevice("add", {"ID_USB_INTERFACES": ":080650:"})) is None
        ev = _next(q)
        assert isinstance(ev, w.TokenInserted) and ev.token.label == label
        assert watcher.udev_matches == 1
        # the caller's veto wins
        vetoed = TokenWatcher(hsm_module, reinitialize="always", may_reinitialize=lambda: False, use_udev=False)
        vetoed.poll()
        assert vetoed.reinits == 0
    finally:
        watcher.stop()
        delete_token(label)


def test_never_policy_sees_removals_without_reinitialising(hsm_module) -> None:
    label = f"nev-{os.getpid()}"
    create_token(label)
    hsm_module.reinitialize()
    serial = find_token(hsm_module, label=label).serial
    watcher = TokenWatcher(hsm_module, reinitialize=ReinitPolicy.NEVER, use_udev=False)
    watcher.start()
    watcher.stop()
    assert serial in {t.serial for t in watcher.present()}
    generation = hsm_module.generation
    delete_token(label)
    assert watcher.poll() == [w.TokenRemoved(serial, label)]
    assert hsm_module.generation == generation and watcher.reinits == 0


def test_removed_token_stale_handles_and_login(make_token, tmp_path) -> None:
    """After removal: TokenRemoved errors (never python-pkcs11 ones) and the login is gone with the token."""
    t = make_token("stale")
    h = Hsm(pin_state=tmp_path / "pins.json")
    tok = h.token(serial=t.serial)
    tok.login(t.pin)
    key = tok.generate_key("p256", "k")
    tok.sign(key.key_id, b"x")
    watcher = h.watch(interval=0.1, reinitialize=ReinitPolicy.NEVER, use_udev=False)
    q = watcher.events()
    try:
        delete_token(t.label)
        assert _next(q) == w.TokenRemoved(t.serial, t.label)
        assert not tok.logged_in  # Hsm.watch() made the pool forget the login and PIN
        assert tok.pool._pin is None
        for fn in (lambda: tok.sign(key.key_id, b"x"), tok.keys, tok.info):
            with pytest.raises(TokenRemoved):
                fn()
    finally:
        watcher.stop()


def test_a_failing_subscriber_does_not_stop_the_watcher(hsm_module) -> None:
    watcher = TokenWatcher(hsm_module, interval=0.1, reinitialize="always", use_udev=False)
    calls = threading.Event()

    def bad(_: w.TokenEvent) -> None:
        calls.set()
        raise RuntimeError("subscriber bug")

    watcher.subscribe(bad)
    q = watcher.events()
    label = f"sub-{os.getpid()}"
    with watcher:
        create_token(label)
        assert isinstance(_next(q), w.TokenInserted)
        assert calls.is_set() and watcher.running
        delete_token(label)
        assert isinstance(_next(q), w.TokenRemoved)


def test_start_stop_is_clean_and_udev_is_optional(hsm_module) -> None:
    watcher = TokenWatcher(hsm_module, interval=0.05, reinitialize="never")
    watcher.start()
    with pytest.raises(RuntimeError):
        watcher.start()
    names = {th.name for th in threading.enumerate()}
    assert "hsm-token-poll" in names
    assert ("hsm-token-udev" in names) == watcher.udev_active
    watcher.stop()
    assert not watcher.running
    assert not {"hsm-token-poll", "hsm-token-udev"} & {th.name for th in threading.enumerate()}
    watcher.start(emit_present=True)  # restartable
    watcher.stop()
    with pytest.raises(ValueError):
        TokenWatcher(hsm_module, interval=0)
