"""Loading a PKCS#11 module once per process, safe to call from many threads.

A :class:`Module` is one module file: python-pkcs11's ``lib`` for it, initialised with
``CKF_OS_LOCKING_OK`` (:mod:`hsm.compat`), the same module's function table through ctypes
(:mod:`hsm.functions`), and a readers-writer lock (:mod:`hsm.rwlock`) that every PKCS#11 call holds
shared.  ``reinitialize()`` (needed to see tokens that appeared, since SoftHSM has no slot events)
finalises the module, which invalidates every session of every thread: it takes the lock exclusively,
and a generation counter tells session pools to start afresh.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import pkcs11

from . import compat
from .errors import ModuleLoadError
from .functions import RawFunctions
from .rwlock import RWLock

log = logging.getLogger(__name__)

DEFAULT_MODULE_PATHS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


def find_module_path(explicit: str | None = None) -> str:
    """The PKCS#11 module to load: explicit, $SIGNET_PKCS11_MODULE, or SoftHSM2."""
    for cand in (explicit, os.environ.get("SIGNET_PKCS11_MODULE"), *DEFAULT_MODULE_PATHS):
        if cand and os.path.exists(cand):
            return cand
    raise ModuleLoadError(
        "no PKCS#11 module found: set SIGNET_PKCS11_MODULE or install softhsm2 "
        "(apt-get install softhsm2)"
    )


class Module:
    """One loaded PKCS#11 module. Use :func:`load` to get the shared instance."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.raw = RawFunctions(path)
        self._rw = RWLock()
        # shared() without its generator, for hot paths: pair every acquire_shared() with release_shared()
        self.acquire_shared: Callable[[], None] = self._rw.acquire_shared
        self.release_shared: Callable[[], None] = self._rw.release_shared
        self.generation = 0
        try:
            self.lib = compat.open_lib(path, self.raw)
        except pkcs11.PKCS11Error as e:
            raise ModuleLoadError(f"cannot initialise PKCS#11 module {path}: {e!r}") from e

    @property
    def description(self) -> str:
        return f"{self.lib.manufacturer_id} {self.lib.library_description}".strip()

    def shared(self) -> AbstractContextManager[None]:
        """Hold while calling into the module (many holders at once)."""
        return self._rw.shared()

    def activity(self) -> tuple[int, int]:
        """(calls ever started, calls in flight) through :meth:`shared`."""
        return self._rw.entries, self._rw.readers

    def reinitialize(self) -> None:
        """C_Finalize + C_Initialize, after every in-flight call has returned.

        Every session of every thread is invalid afterwards; pools notice the
        new ``generation`` and open fresh sessions.
        """
        with self._rw.exclusive():
            self.lib.finalize()
            self.lib.initialize()
            self.generation += 1
        # DEBUG: a watcher may do this every few seconds; token arrivals and departures are logged instead
        log.debug("PKCS#11 module %s reinitialised (generation %d)", self.path, self.generation)


_modules: dict[str, Module] = {}
_modules_lock = threading.Lock()


def load(path: str | None = None) -> Module:
    """The process-wide Module for ``path`` (one per module file)."""
    real = os.path.realpath(find_module_path(path))
    with _modules_lock:
        mod = _modules.get(real)
        if mod is None:
            mod = _modules[real] = Module(real)
        return mod
