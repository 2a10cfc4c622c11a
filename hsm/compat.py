"""Every place hsm depends on python-pkcs11's internals, for python-pkcs11 0.9.x only (tested: 0.9.5).

Supported: python-pkcs11 >= 0.9.3, < 0.10 (pyproject.toml; pyHanko's pkcs11 extra pins ~=0.9.3).
:func:`open_lib` refuses other versions with :class:`~hsm.errors.ModuleLoadError`: 0.10 loads modules
through C_GetInterface (PKCS#11 3.x), and nothing below has been checked against it.  What is
touched, and why no public API does it:

1. ``pkcs11._pkcs11.lib`` is subclassed and its ``initialize`` (a Cython ``cpdef`` method, which
   python-pkcs11's own constructor calls, so a Python override takes effect) and ``finalize`` are
   overridden.  python-pkcs11 calls ``C_Initialize(NULL)``; with NULL arguments SoftHSM assumes a
   single-threaded caller and turns its locking off, and two threads signing in their own sessions
   corrupt its heap within a fraction of a second (DESIGN.md, "Known pitfalls").  The override calls
   C_Initialize with ``CKF_OS_LOCKING_OK`` through ctypes (:mod:`hsm.functions`) instead.  The Cython
   ``initialized`` flag is read-only from Python and stays False, so python-pkcs11's ``unload`` never
   calls C_Finalize behind the module's readers-writer lock.
2. ``pkcs11._loaded`` (python-pkcs11's cache behind ``pkcs11.lib(path)``) gets our instance, so
   pyHanko and any other user of ``pkcs11.lib(path)`` share the one safely initialised module instead
   of initialising it again with NULL arguments.
3. :data:`ATTRIBUTE_MAPPER` registers a handler for ``CKA_CERTIFICATE_CATEGORY``, which 0.9.5 names
   (``Attribute.CERTIFICATE_CATEGORY``) but cannot pack: it raises NotImplementedError *after*
   allocating the template, and freeing that half-built template later segfaults.  Every session the
   pool opens uses this mapper.
4. At interpreter exit each lib object gets one extra reference (:func:`_keep_libs_at_exit`):
   ``lib.__dealloc__`` calls ``self.unload()`` through attribute lookup, and during teardown our
   subclass's type may already be half cleared ("Error in sys.excepthook" noise).  The OS unloads
   the module with the process; no C_Finalize there, since it would wait for daemon threads that may
   still be inside a PKCS#11 call.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.metadata
import threading

import pkcs11
from pkcs11 import Attribute, _pkcs11
from pkcs11.attributes import AttributeMapper, handle_ulong

from .constants import CKR_CRYPTOKI_ALREADY_INITIALIZED, CKR_CRYPTOKI_NOT_INITIALIZED, CKR_OK
from .errors import ModuleLoadError
from .functions import RawFunctions

SUPPORTED_SERIES = (0, 9)

# python-pkcs11 sets ``self.so`` and then calls initialize() from its constructor, before a subclass
# could keep anything on the instance (Cython passes every constructor argument to ``__cinit__``,
# which takes only the path): the raw function table is found by path.
_RAW: dict[str, RawFunctions] = {}
_LIBS: list[_pkcs11.lib] = []
_lock = threading.Lock()


def check_version() -> None:
    """Raise ModuleLoadError unless the installed python-pkcs11 is a 0.9.x release."""
    try:
        version = importlib.metadata.version("python-pkcs11")
    except importlib.metadata.PackageNotFoundError:
        return  # not installed as a distribution (a source checkout): nothing to compare
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if parts != SUPPORTED_SERIES:
        raise ModuleLoadError(
            f"python-pkcs11 {version} is not supported: hsm/compat.py depends on 0.9.x internals "
            "(install python-pkcs11>=0.9.3,<0.10)"
        )


class ThreadSafeLib(_pkcs11.lib):
    """python-pkcs11's lib, initialised with CKF_OS_LOCKING_OK."""

    @property
    def raw(self) -> RawFunctions:
        return _RAW[self.so]

    def initialize(self) -> None:  # overrides a cpdef method; python-pkcs11's constructor calls it
        rv = self.raw.initialize()
        # ALREADY_INITIALIZED: pkcs11.lib(path) calls initialize() again (the flag it reads stays False)
        if rv not in (CKR_OK, CKR_CRYPTOKI_ALREADY_INITIALIZED):
            raise ModuleLoadError(f"C_Initialize failed (rv=0x{rv:x})")

    def finalize(self) -> None:
        rv = self.raw.finalize()
        if rv not in (CKR_OK, CKR_CRYPTOKI_NOT_INITIALIZED):
            raise ModuleLoadError(f"C_Finalize failed (rv=0x{rv:x})")


def open_lib(path: str, raw: RawFunctions) -> ThreadSafeLib:
    """python-pkcs11's lib for ``path``, initialised through ``raw`` and shared with ``pkcs11.lib(path)``.

    Raises ModuleLoadError for an unsupported python-pkcs11, pkcs11.PKCS11Error when the module refuses.
    """
    check_version()
    with _lock:
        _RAW[path] = raw
        lib = ThreadSafeLib(path)
        pkcs11._loaded[path] = lib
        _LIBS.append(lib)
    return lib


def _attribute_mapper() -> AttributeMapper:
    mapper = AttributeMapper()
    mapper.register_handler(Attribute.CERTIFICATE_CATEGORY, *handle_ulong)
    return mapper


#: python-pkcs11's mapper plus the attributes hsm writes that it cannot pack (see point 3 above).
ATTRIBUTE_MAPPER = _attribute_mapper()


@atexit.register
def _keep_libs_at_exit() -> None:
    """One extra reference per lib object, so ``lib.__dealloc__`` never runs during teardown (point 4)."""
    with _lock:
        for lib in _LIBS:
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(lib))
