"""Loading a PKCS#11 module so that it is safe to call from many threads.

python-pkcs11 0.9 calls ``C_Initialize(NULL)``; with NULL arguments SoftHSM
(correctly, per the standard) assumes a single-threaded caller and turns its
own locking off, and two threads signing in their own sessions corrupt its
heap within a fraction of a second.  We subclass python-pkcs11's ``lib`` and
override ``initialize``/``finalize`` so the module is initialised with
``CKF_OS_LOCKING_OK`` instead: the library then locks its own state with OS
primitives and concurrent sessions run in parallel (the GIL is released
during every PKCS#11 call).

The same module is also opened with ctypes (dlopen gives the same handle) and its function table
read up to C_Sign: for C_Initialize/C_Finalize as above, C_Login/C_Logout (the session pool's one
login), and C_SignInit/C_Sign for the signing hot path (hsm/signing.py ``sign_raw``).

``reinitialize()`` (needed to see tokens that appeared, since SoftHSM has no
slot events) finalises the module, which invalidates every session of every
thread; a readers-writer lock keeps it from running while any call is in
flight, and a generation counter tells session pools to start afresh.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pkcs11
from pkcs11 import _pkcs11

from .errors import ModuleLoadError

log = logging.getLogger(__name__)

CKF_OS_LOCKING_OK = 0x00000002
CKR_OK = 0
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x191
CKR_CRYPTOKI_NOT_INITIALIZED = 0x190

DEFAULT_MODULE_PATHS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


class _InitArgs(ctypes.Structure):
    _fields_ = [
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("pReserved", ctypes.c_void_p),
    ]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


_CK_RV = ctypes.c_ulong
_FN = ctypes.CFUNCTYPE


class Mechanism(ctypes.Structure):
    """CK_MECHANISM."""

    _fields_ = [("mechanism", ctypes.c_ulong), ("pParameter", ctypes.c_void_p), ("ulParameterLen", ctypes.c_ulong)]


class RsaPssParams(ctypes.Structure):
    """CK_RSA_PKCS_PSS_PARAMS."""

    _fields_ = [("hashAlg", ctypes.c_ulong), ("mgf", ctypes.c_ulong), ("sLen", ctypes.c_ulong)]


_ULONG_P = ctypes.POINTER(ctypes.c_ulong)
SignInitFn = _FN(_CK_RV, ctypes.c_ulong, ctypes.POINTER(Mechanism), ctypes.c_ulong)
SignFn = _FN(_CK_RV, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p, _ULONG_P)


class _FunctionList(ctypes.Structure):
    """The head of CK_FUNCTION_LIST (PKCS#11 v2.40 order) up to C_Sign: the entries called through ctypes."""

    _fields_ = [
        ("version", _Version),
        ("C_Initialize", _FN(_CK_RV, ctypes.c_void_p)),
        ("C_Finalize", _FN(_CK_RV, ctypes.c_void_p)),
        ("C_GetInfo", ctypes.c_void_p),
        ("C_GetFunctionList", ctypes.c_void_p),
        ("C_GetSlotList", ctypes.c_void_p),
        ("C_GetSlotInfo", ctypes.c_void_p),
        ("C_GetTokenInfo", ctypes.c_void_p),
        ("C_GetMechanismList", ctypes.c_void_p),
        ("C_GetMechanismInfo", ctypes.c_void_p),
        ("C_InitToken", ctypes.c_void_p),
        ("C_InitPIN", ctypes.c_void_p),
        ("C_SetPIN", ctypes.c_void_p),
        ("C_OpenSession", ctypes.c_void_p),
        ("C_CloseSession", ctypes.c_void_p),
        ("C_CloseAllSessions", ctypes.c_void_p),
        ("C_GetSessionInfo", ctypes.c_void_p),
        ("C_GetOperationState", ctypes.c_void_p),
        ("C_SetOperationState", ctypes.c_void_p),
        (
            "C_Login",
            _FN(_CK_RV, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong),
        ),
        ("C_Logout", _FN(_CK_RV, ctypes.c_ulong)),
        ("C_CreateObject", ctypes.c_void_p),
        ("C_CopyObject", ctypes.c_void_p),
        ("C_DestroyObject", ctypes.c_void_p),
        ("C_GetObjectSize", ctypes.c_void_p),
        ("C_GetAttributeValue", ctypes.c_void_p),
        ("C_SetAttributeValue", ctypes.c_void_p),
        ("C_FindObjectsInit", ctypes.c_void_p),
        ("C_FindObjects", ctypes.c_void_p),
        ("C_FindObjectsFinal", ctypes.c_void_p),
        ("C_EncryptInit", ctypes.c_void_p),
        ("C_Encrypt", ctypes.c_void_p),
        ("C_EncryptUpdate", ctypes.c_void_p),
        ("C_EncryptFinal", ctypes.c_void_p),
        ("C_DecryptInit", ctypes.c_void_p),
        ("C_Decrypt", ctypes.c_void_p),
        ("C_DecryptUpdate", ctypes.c_void_p),
        ("C_DecryptFinal", ctypes.c_void_p),
        ("C_DigestInit", ctypes.c_void_p),
        ("C_Digest", ctypes.c_void_p),
        ("C_DigestUpdate", ctypes.c_void_p),
        ("C_DigestKey", ctypes.c_void_p),
        ("C_DigestFinal", ctypes.c_void_p),
        ("C_SignInit", SignInitFn),
        ("C_Sign", SignFn),
    ]


class _RawFunctions:
    """ctypes view of the same loaded module (dlopen returns the same handle)."""

    def __init__(self, path: str) -> None:
        try:
            dll = ctypes.CDLL(path)
        except OSError as e:
            raise ModuleLoadError(f"cannot load PKCS#11 module {path}: {e}") from e
        get_list = dll.C_GetFunctionList
        get_list.restype = _CK_RV
        get_list.argtypes = [ctypes.POINTER(ctypes.POINTER(_FunctionList))]
        ptr = ctypes.POINTER(_FunctionList)()
        rv = get_list(ctypes.byref(ptr))
        if rv != CKR_OK:
            raise ModuleLoadError(f"C_GetFunctionList failed in {path} (rv=0x{rv:x})")
        self._dll = dll  # keeps the library loaded
        self.fl = ptr.contents
        # read once: every read of a function-pointer field builds a new ctypes object.  Like every
        # CFUNCTYPE call, these release the GIL while the module runs (python-pkcs11 does the same)
        self.sign_init: Any = self.fl.C_SignInit
        self.sign: Any = self.fl.C_Sign

    def initialize(self) -> int:
        args = _InitArgs(None, None, None, None, CKF_OS_LOCKING_OK, None)
        return int(self.fl.C_Initialize(ctypes.cast(ctypes.pointer(args), ctypes.c_void_p)))

    def finalize(self) -> int:
        return int(self.fl.C_Finalize(None))

    def login(self, session_handle: int, user_type: int, pin: bytes) -> int:
        return int(self.fl.C_Login(session_handle, user_type, pin, len(pin)))

    def logout(self, session_handle: int) -> int:
        return int(self.fl.C_Logout(session_handle))


_RAW: dict[str, _RawFunctions] = {}


class _ThreadSafeLib(_pkcs11.lib):  # type: ignore[misc]
    """python-pkcs11's lib, initialised with CKF_OS_LOCKING_OK."""

    @property
    def raw(self) -> _RawFunctions:
        # python-pkcs11 sets self.so before it calls initialize()
        return _RAW[self.so]

    def initialize(self) -> None:  # overrides a cpdef method; python-pkcs11 calls it
        rv = self.raw.initialize()
        if rv not in (CKR_OK, CKR_CRYPTOKI_ALREADY_INITIALIZED):
            raise ModuleLoadError(f"C_Initialize failed (rv=0x{rv:x})")

    def finalize(self) -> None:
        rv = self.raw.finalize()
        if rv not in (CKR_OK, CKR_CRYPTOKI_NOT_INITIALIZED):
            raise ModuleLoadError(f"C_Finalize failed (rv=0x{rv:x})")


class _RWLock:
    """Many readers (PKCS#11 calls) or one writer (reinitialize)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # taken directly (a C-level context manager) on the hot path
        self._cond = threading.Condition(self._lock)
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self.entries = 0  # shared() entries ever: lets a watcher tell "idle since" cheaply

    @property
    def readers(self) -> int:
        return self._readers

    def acquire_shared(self) -> None:
        """Enter as a reader; every call must be paired with :meth:`release_shared`."""
        with self._lock:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
            self.entries += 1

    def release_shared(self) -> None:
        with self._lock:
            self._readers -= 1
            if not self._readers and self._writers_waiting:
                # only a writer waits for readers; readers wait only for writers
                self._cond.notify_all()

    @contextmanager
    def shared(self) -> Iterator[None]:
        self.acquire_shared()
        try:
            yield
        finally:
            self.release_shared()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


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
        self.raw = _RawFunctions(path)
        self._rw = _RWLock()
        # shared() without its generator, for hot paths: pair every acquire_shared() with release_shared()
        self.acquire_shared: Callable[[], None] = self._rw.acquire_shared
        self.release_shared: Callable[[], None] = self._rw.release_shared
        self.generation = 0
        try:
            _RAW[path] = self.raw
            self.lib: Any = _ThreadSafeLib(path)
        except pkcs11.PKCS11Error as e:
            raise ModuleLoadError(f"cannot initialise PKCS#11 module {path}: {e}") from e
        # pyHanko and other users of pkcs11.lib() get the same, safely initialised object
        pkcs11._loaded[path] = self.lib  # type: ignore[attr-defined]

    @property
    def description(self) -> str:
        return f"{self.lib.manufacturer_id} {self.lib.library_description}".strip()

    def shared(self) -> Any:
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
        log.info("PKCS#11 module %s reinitialised (generation %d)", self.path, self.generation)


_modules: dict[str, Module] = {}
_modules_lock = threading.Lock()


@atexit.register
def _keep_libs_at_exit() -> None:
    """Keep python-pkcs11's lib objects from being deallocated during interpreter teardown.

    ``lib.__dealloc__`` calls ``self.unload()`` through attribute lookup; during teardown our
    subclass's type may already be half cleared, which prints "Error in sys.excepthook" noise.
    One extra reference for ever means ``__dealloc__`` never runs at shutdown; the OS unloads the
    module with the process.  No C_Finalize here: it would have to wait for daemon threads that
    may still be inside a PKCS#11 call, and the module writes token objects as they are created.
    """
    with _modules_lock:
        for mod in _modules.values():
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(mod.lib))


def load(path: str | None = None) -> Module:
    """The process-wide Module for ``path`` (one per module file)."""
    real = os.path.realpath(find_module_path(path))
    with _modules_lock:
        mod = _modules.get(real)
        if mod is None:
            mod = _modules[real] = Module(real)
        return mod
