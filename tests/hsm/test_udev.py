"""The udev classifier (hsm.udev) on synthetic devices and on real pyudev.Device objects built from a udev environment.

No token involved: in containers udev delivers no events, so what a device event *would* trigger is tested here,
and the watcher's reaction to a match in test_watcher.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from hsm import udev

from ..conftest import ROOT


@dataclass
class FakeDevice:
    """Just what classify() reads from a pyudev.Device."""

    action: str | None
    properties: Mapping[str, str] = field(default_factory=dict)
    attributes: Mapping[str, bytes] = field(default_factory=dict)


READER = FakeDevice("add", {"ID_USB_INTERFACES": ":0b0000:"})
USB_STICK = FakeDevice("add", {"ID_USB_INTERFACES": ":080650:", "PRODUCT": "781/5581/100"})


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
    match = udev.classify(device)
    assert match is not None and match.kind == kind and match.vendor_id == vendor
    assert match.action == device.action


@pytest.mark.parametrize(
    "device",
    [
        FakeDevice("add", {"ID_USB_INTERFACES": ":030102:", "ID_VENDOR_ID": "046d"}),  # a mouse
        USB_STICK,
        FakeDevice("change", {"ID_USB_INTERFACES": ":0b0000:"}),  # not an arrival or departure
        FakeDevice(None, {"ID_USB_INTERFACES": ":0b0000:"}),  # enumerated, not an event
        FakeDevice("add", {"INTERFACE": "3/1/1"}),
    ],
)
def test_classifier_ignores_other_devices(device: FakeDevice) -> None:
    assert udev.classify(device) is None


_CLASSIFY_FROM_ENV = """
import pyudev
from hsm.udev import classify
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
