"""Which udev device events can mean a token came or went: USB smart-card readers and known token vendors.

:func:`classify` is a small pure function over what a ``pyudev.Device`` offers (:class:`DeviceLike`),
so it is tested with synthetic devices: in containers udev delivers no events at all.
:func:`open_monitor` starts a pyudev monitor on the ``usb`` subsystem when udev is there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

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


def open_monitor() -> Any:
    """A started pyudev monitor on the ``usb`` subsystem, or None where udev is unavailable."""
    try:
        import pyudev

        monitor = pyudev.Monitor.from_netlink(pyudev.Context())
        monitor.filter_by("usb")
        monitor.start()
    except Exception as e:  # noqa: BLE001 - udev is optional; pyudev reaches libudev through ctypes and
        # fails in many ways (no libudev, missing symbols, no netlink in containers): slot polling still works
        log.info("udev monitor unavailable (%s); slot polling only", e)
        return None
    return monitor
