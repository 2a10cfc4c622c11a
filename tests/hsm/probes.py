"""Independent looks at a SoftHSM token for the hsm tests: pkcs11-tool output and open-session counts."""

from __future__ import annotations

import ctypes
import os
import subprocess

from hsm.constants import CKR_OK
from hsm.module import Module


class _SessionInfo(ctypes.Structure):
    _fields_ = [("slotID", ctypes.c_ulong), ("state", ctypes.c_ulong), ("flags", ctypes.c_ulong),
                ("ulDeviceError", ctypes.c_ulong)]


_GET_SESSION_INFO = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong, ctypes.POINTER(_SessionInfo))
CKS_RO_PUBLIC, CKS_RO_USER, CKS_RW_PUBLIC, CKS_RW_USER = 0, 1, 2, 3


def open_sessions(module: Module, slot_id: int, upto: int = 20000) -> dict[int, int]:
    """{session handle: state} of every open session on this slot (SoftHSM hands out increasing handles)."""
    fn = ctypes.cast(module.raw.fl.C_GetSessionInfo, _GET_SESSION_INFO)
    out = {}
    info = _SessionInfo()
    for h in range(1, upto):
        if fn(h, ctypes.byref(info)) == CKR_OK and info.slotID == slot_id:
            out[h] = info.state
    return out


def pkcs11_tool(module: Module, *args: str, pin: str | None = None) -> str:
    """Run pkcs11-tool against the test session's SoftHSM (SOFTHSM2_CONF is inherited)."""
    cmd = ["pkcs11-tool", "--module", module.path, *args]
    if pin is not None:
        cmd += ["--login", "--pin", pin]
    res = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert res.returncode == 0, res.stderr
    return res.stdout


def object_blocks(listing: str) -> list[str]:
    """pkcs11-tool -O output split into one text block per object."""
    blocks: list[str] = []
    for line in listing.splitlines():
        if line and not line.startswith(" "):
            blocks.append(line)
        elif blocks:
            blocks[-1] += "\n" + line
    return blocks
