"""The module's CK_FUNCTION_LIST through ctypes: the calls hsm makes without python-pkcs11.

The same shared object python-pkcs11 loads is opened again with ctypes (``dlopen`` returns the same
handle, so both see one module state) and its function table read up to C_Sign, for:

* C_Initialize / C_Finalize with ``CKF_OS_LOCKING_OK`` (see :mod:`hsm.compat` for why);
* C_Login / C_Logout, the session pool's one login per token (raw return values, no exceptions);
* C_SignInit / C_Sign, the signing hot path (:func:`hsm.signing.sign_raw`): two C calls per
  signature where python-pkcs11 makes three, with less Python around each.

Like every CFUNCTYPE call these release the GIL while the module runs (python-pkcs11 does the same).
"""

from __future__ import annotations

import ctypes
from typing import Any

from .constants import CKF_OS_LOCKING_OK, CKR_OK
from .errors import ModuleLoadError

_CK_RV = ctypes.c_ulong
_FN = ctypes.CFUNCTYPE
_ULONG_P = ctypes.POINTER(ctypes.c_ulong)


class InitArgs(ctypes.Structure):
    """CK_C_INITIALIZE_ARGS."""

    _fields_ = (
        ("CreateMutex", ctypes.c_void_p),
        ("DestroyMutex", ctypes.c_void_p),
        ("LockMutex", ctypes.c_void_p),
        ("UnlockMutex", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("pReserved", ctypes.c_void_p),
    )


class Version(ctypes.Structure):
    """CK_VERSION."""

    _fields_ = (("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte))


class Mechanism(ctypes.Structure):
    """CK_MECHANISM."""

    _fields_ = (("mechanism", ctypes.c_ulong), ("pParameter", ctypes.c_void_p), ("ulParameterLen", ctypes.c_ulong))


class RsaPssParams(ctypes.Structure):
    """CK_RSA_PKCS_PSS_PARAMS."""

    _fields_ = (("hashAlg", ctypes.c_ulong), ("mgf", ctypes.c_ulong), ("sLen", ctypes.c_ulong))


SignInitFn = _FN(_CK_RV, ctypes.c_ulong, ctypes.POINTER(Mechanism), ctypes.c_ulong)
SignFn = _FN(_CK_RV, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p, _ULONG_P)


class FunctionList(ctypes.Structure):
    """The head of CK_FUNCTION_LIST (PKCS#11 v2.40 order) up to C_Sign: the entries called through ctypes.

    Only a prefix is declared: the module owns the structure and ctypes never allocates one.
    """

    _fields_ = (
        ("version", Version),
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
        ("C_Login", _FN(_CK_RV, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_ulong)),
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
    )


class RawFunctions:
    """ctypes view of a loaded PKCS#11 module: raw return values, never exceptions."""

    def __init__(self, path: str) -> None:
        try:
            dll = ctypes.CDLL(path)
        except OSError as e:
            raise ModuleLoadError(f"cannot load PKCS#11 module {path}: {e}") from e
        try:
            get_list = dll.C_GetFunctionList
        except AttributeError as e:
            raise ModuleLoadError(f"{path} is not a PKCS#11 module (no C_GetFunctionList)") from e
        get_list.restype = _CK_RV
        get_list.argtypes = [ctypes.POINTER(ctypes.POINTER(FunctionList))]
        ptr = ctypes.POINTER(FunctionList)()
        rv = get_list(ctypes.byref(ptr))
        if rv != CKR_OK:
            raise ModuleLoadError(f"C_GetFunctionList failed in {path} (rv=0x{rv:x})")
        self._dll = dll  # keeps the library loaded
        self.fl = ptr.contents
        # read once: every read of a function-pointer field builds a new ctypes object.  Typed Any:
        # tests put Python callables with the same signature in their place
        self.sign_init: Any = self.fl.C_SignInit
        self.sign: Any = self.fl.C_Sign

    def initialize(self) -> int:
        """C_Initialize with CKF_OS_LOCKING_OK: the module locks its own state, threads may call it at once."""
        args = InitArgs(None, None, None, None, CKF_OS_LOCKING_OK, None)
        return int(self.fl.C_Initialize(ctypes.cast(ctypes.pointer(args), ctypes.c_void_p)))

    def finalize(self) -> int:
        return int(self.fl.C_Finalize(None))

    def login(self, session_handle: int, user_type: int, pin: bytes) -> int:
        return int(self.fl.C_Login(session_handle, user_type, pin, len(pin)))

    def logout(self, session_handle: int) -> int:
        return int(self.fl.C_Logout(session_handle))
