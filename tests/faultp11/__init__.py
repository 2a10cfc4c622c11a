"""faultp11: a PKCS#11 module that forwards to a real one and injects return values and delays (see README.md).

``build(tmpdir)`` compiles faultp11.c with the system C compiler (once per process, i.e. per test session);
:class:`Rules` writes the rules file the module reads; :func:`counters` reads its per-function counts.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

SOURCE = Path(__file__).with_name("faultp11.c")

# return values tests inject (PKCS#11 v2.40)
CKR_GENERAL_ERROR = 0x05
CKR_DEVICE_ERROR = 0x30
CKR_SESSION_HANDLE_INVALID = 0xB3

_built: dict[str, Path] = {}
_lock = threading.Lock()


class CompilerMissing(RuntimeError):
    """No C compiler on this machine (Debian: apt-get install gcc libc6-dev)."""


def build(tmpdir: Path) -> Path:
    """The faultp11 shared object, compiled into ``tmpdir`` with ``gcc -shared -fPIC`` once per process.

    Raises CompilerMissing without a C compiler, subprocess.CalledProcessError (with the compiler's output)
    when faultp11.c does not compile.
    """
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    with _lock:
        done = _built.get(digest)
        if done is not None and done.exists():
            return done
        cc = shutil.which("gcc") or shutil.which("cc")
        if cc is None:
            raise CompilerMissing("faultp11 needs a C compiler: apt-get install gcc libc6-dev")
        out = Path(tmpdir) / f"faultp11-{digest}.so"
        partial = out.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run(
            [cc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden", "-pthread",
             "-o", str(partial), str(SOURCE), "-ldl"],
            check=True, capture_output=True, text=True, timeout=120,
        )
        partial.replace(out)
        _built[digest] = out
        return out


class Rules:
    """The rules file a faultp11 module reads ($FAULTP11_CONTROL): one rule per line, e.g. ``C_Sign 0x30 3``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def set(self, *rules: str) -> None:
        """Replace every rule (written beside and renamed: the module sees a new file, so counts start afresh)."""
        partial = self.path.with_suffix(".partial")
        partial.write_text("".join(f"{r}\n" for r in rules))
        partial.replace(self.path)

    def clear(self) -> None:
        """No rules: every call is forwarded."""
        self.path.unlink(missing_ok=True)

    def env(self, real_module: str) -> dict[str, str]:
        """The environment a process loading the faultp11 module needs."""
        return {"FAULTP11_MODULE": real_module, "FAULTP11_CONTROL": str(self.path)}


def counters(so_path: str | os.PathLike[str], function: str) -> tuple[int, int]:
    """(calls, injected faults) of one wrapped function in this process's copy of the faultp11 module."""
    lib = ctypes.CDLL(str(so_path))
    out = []
    for name in ("faultp11_calls", "faultp11_injected"):
        fn = getattr(lib, name)
        fn.restype = ctypes.c_ulong
        fn.argtypes = [ctypes.c_char_p]
        n = fn(function.encode("ascii"))
        if n == ctypes.c_ulong(-1).value:
            raise ValueError(f"faultp11 does not wrap {function}")
        out.append(int(n))
    return out[0], out[1]
