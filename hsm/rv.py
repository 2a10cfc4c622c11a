"""PKCS#11 return values to python-pkcs11's exception classes, and what those classes mean to the layer.

The table is python-pkcs11 0.9.5's own ``map_rv_to_error`` (``_pkcs11.pxd``), value for value, so
that code catching python-pkcs11's exceptions (the session pool's stale-handle and removed-token
logic) sees the same classes whichever way the module was called (python-pkcs11 or ctypes).
"""

from __future__ import annotations

from pkcs11 import exceptions as x

from .constants import CKR_BUFFER_TOO_SMALL, CKR_OK

__all__ = ["CKR_BUFFER_TOO_SMALL", "CKR_OK", "DEVICE_ERRORS", "GONE_ERRORS", "SESSION_LOST_ERRORS",
           "STALE_OBJECT_ERRORS", "error"]

# What a python-pkcs11 error means to the layer.  The session pool asks the slot whether the token is
# still there before it decides (hsm.sessions); a token that is gone is TokenRemoved whatever the error.
# An object handle went stale (deleted through another session or process): KeyNotFound, login kept.
# SoftHSM answers C_SignInit with OBJECT_HANDLE_INVALID for a deleted key; the standard says KEY_HANDLE_INVALID.
STALE_OBJECT_ERRORS: tuple[type[x.PKCS11Error], ...] = (x.ObjectHandleInvalid, x.KeyHandleInvalid)
# The module no longer knows the session (token reset, removed and inserted again, sessions closed under
# us): the login went with it.
SESSION_LOST_ERRORS: tuple[type[x.PKCS11Error], ...] = (
    x.SessionHandleInvalid, x.SessionClosed, x.TokenNotPresent, x.TokenNotRecognised, x.DeviceRemoved,
    x.SlotIDInvalid,
)
# The device failed this call (SoftHSM also says GENERAL_ERROR for a token whose files were deleted):
# a retry may work while the token is there.
DEVICE_ERRORS: tuple[type[x.PKCS11Error], ...] = (x.DeviceError, x.GeneralError)
# Every error the pool classifies; any other is the operation's own failure (bad mechanism, data, ...).
GONE_ERRORS: tuple[type[x.PKCS11Error], ...] = SESSION_LOST_ERRORS + STALE_OBJECT_ERRORS + DEVICE_ERRORS

_BY_RV: dict[int, type[x.PKCS11Error] | tuple[type[x.PKCS11Error], str]] = {
    0x002: x.HostMemory,  # CKR_HOST_MEMORY
    0x003: x.SlotIDInvalid,  # CKR_SLOT_ID_INVALID
    0x005: x.GeneralError,  # CKR_GENERAL_ERROR
    0x006: x.FunctionFailed,  # CKR_FUNCTION_FAILED
    0x007: x.ArgumentsBad,  # CKR_ARGUMENTS_BAD
    0x008: x.NoEvent,  # CKR_NO_EVENT
    0x010: x.AttributeReadOnly,  # CKR_ATTRIBUTE_READ_ONLY
    0x011: x.AttributeSensitive,  # CKR_ATTRIBUTE_SENSITIVE
    0x012: x.AttributeTypeInvalid,  # CKR_ATTRIBUTE_TYPE_INVALID
    0x013: x.AttributeValueInvalid,  # CKR_ATTRIBUTE_VALUE_INVALID
    0x020: x.DataInvalid,  # CKR_DATA_INVALID
    0x021: x.DataLenRange,  # CKR_DATA_LEN_RANGE
    0x030: x.DeviceError,  # CKR_DEVICE_ERROR
    0x031: x.DeviceMemory,  # CKR_DEVICE_MEMORY
    0x032: x.DeviceRemoved,  # CKR_DEVICE_REMOVED
    0x040: x.EncryptedDataInvalid,  # CKR_ENCRYPTED_DATA_INVALID
    0x041: x.EncryptedDataLenRange,  # CKR_ENCRYPTED_DATA_LEN_RANGE
    0x050: x.FunctionCancelled,  # CKR_FUNCTION_CANCELED
    0x054: x.FunctionNotSupported,  # CKR_FUNCTION_NOT_SUPPORTED
    0x060: x.KeyHandleInvalid,  # CKR_KEY_HANDLE_INVALID
    0x062: x.KeySizeRange,  # CKR_KEY_SIZE_RANGE
    0x063: x.KeyTypeInconsistent,  # CKR_KEY_TYPE_INCONSISTENT
    0x064: x.KeyNotNeeded,  # CKR_KEY_NOT_NEEDED
    0x066: x.KeyNeeded,  # CKR_KEY_NEEDED
    0x067: x.KeyIndigestible,  # CKR_KEY_INDIGESTIBLE
    0x069: x.KeyNotWrappable,  # CKR_KEY_NOT_WRAPPABLE
    0x06A: x.KeyUnextractable,  # CKR_KEY_UNEXTRACTABLE
    0x070: x.MechanismInvalid,  # CKR_MECHANISM_INVALID
    0x071: x.MechanismParamInvalid,  # CKR_MECHANISM_PARAM_INVALID
    0x082: x.ObjectHandleInvalid,  # CKR_OBJECT_HANDLE_INVALID
    0x090: x.OperationActive,  # CKR_OPERATION_ACTIVE
    0x091: x.OperationNotInitialized,  # CKR_OPERATION_NOT_INITIALIZED
    0x0A0: x.PinIncorrect,  # CKR_PIN_INCORRECT
    0x0A1: x.PinInvalid,  # CKR_PIN_INVALID
    0x0A2: x.PinLenRange,  # CKR_PIN_LEN_RANGE
    0x0A3: x.PinExpired,  # CKR_PIN_EXPIRED
    0x0A4: x.PinLocked,  # CKR_PIN_LOCKED
    0x0B0: x.SessionClosed,  # CKR_SESSION_CLOSED
    0x0B1: x.SessionCount,  # CKR_SESSION_COUNT
    0x0B3: x.SessionHandleInvalid,  # CKR_SESSION_HANDLE_INVALID
    0x0B4: (x.PKCS11Error, "Parallel not supported. Should never see this."),  # CKR_SESSION_PARALLEL_NOT_SUPPORTED
    0x0B5: x.SessionReadOnly,  # CKR_SESSION_READ_ONLY
    0x0B6: x.SessionExists,  # CKR_SESSION_EXISTS
    0x0B7: x.SessionReadOnlyExists,  # CKR_SESSION_READ_ONLY_EXISTS
    0x0B8: x.SessionReadWriteSOExists,  # CKR_SESSION_READ_WRITE_SO_EXISTS
    0x0C0: x.SignatureInvalid,  # CKR_SIGNATURE_INVALID
    0x0C1: x.SignatureLenRange,  # CKR_SIGNATURE_LEN_RANGE
    0x0D0: x.TemplateIncomplete,  # CKR_TEMPLATE_INCOMPLETE
    0x0D1: x.TemplateInconsistent,  # CKR_TEMPLATE_INCONSISTENT
    0x0E0: x.TokenNotPresent,  # CKR_TOKEN_NOT_PRESENT
    0x0E1: x.TokenNotRecognised,  # CKR_TOKEN_NOT_RECOGNIZED
    0x0E2: x.TokenWriteProtected,  # CKR_TOKEN_WRITE_PROTECTED
    0x0F0: x.UnwrappingKeyHandleInvalid,  # CKR_UNWRAPPING_KEY_HANDLE_INVALID
    0x0F1: x.UnwrappingKeySizeRange,  # CKR_UNWRAPPING_KEY_SIZE_RANGE
    0x0F2: x.UnwrappingKeyTypeInconsistent,  # CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT
    0x100: x.UserAlreadyLoggedIn,  # CKR_USER_ALREADY_LOGGED_IN
    0x101: x.UserNotLoggedIn,  # CKR_USER_NOT_LOGGED_IN
    0x102: x.UserPinNotInitialized,  # CKR_USER_PIN_NOT_INITIALIZED
    0x103: (x.PKCS11Error, "User type invalid. Should never see this."),  # CKR_USER_TYPE_INVALID
    0x104: x.AnotherUserAlreadyLoggedIn,  # CKR_USER_ANOTHER_ALREADY_LOGGED_IN
    0x105: x.UserTooManyTypes,  # CKR_USER_TOO_MANY_TYPES
    0x110: x.WrappedKeyInvalid,  # CKR_WRAPPED_KEY_INVALID
    0x112: x.WrappedKeyLenRange,  # CKR_WRAPPED_KEY_LEN_RANGE
    0x113: x.WrappingKeyHandleInvalid,  # CKR_WRAPPING_KEY_HANDLE_INVALID
    0x114: x.WrappingKeySizeRange,  # CKR_WRAPPING_KEY_SIZE_RANGE
    0x115: x.WrappingKeyTypeInconsistent,  # CKR_WRAPPING_KEY_TYPE_INCONSISTENT
    0x120: x.RandomSeedNotSupported,  # CKR_RANDOM_SEED_NOT_SUPPORTED
    0x121: x.RandomNoRNG,  # CKR_RANDOM_NO_RNG
    0x130: x.DomainParamsInvalid,  # CKR_DOMAIN_PARAMS_INVALID
    0x150: (x.PKCS11Error, "Buffer was too small. Should never see this."),  # CKR_BUFFER_TOO_SMALL
    0x190: (x.PKCS11Error, "Initialisation error (not initialized). Should never see this."),
    0x191: (x.PKCS11Error, "Initialisation error (already initialized). Should never see this."),
    0x1B5: x.ExceededMaxIterations,  # CKR_EXCEEDED_MAX_ITERATIONS
    0x1B8: x.PinTooWeak,  # CKR_PIN_TOO_WEAK
    0x1B9: x.PublicKeyInvalid,  # CKR_PUBLIC_KEY_INVALID
    0x200: x.FunctionRejected,  # CKR_FUNCTION_REJECTED
}


def error(rv: int) -> x.PKCS11Error:
    """The exception python-pkcs11 raises for ``rv`` (not CKR_OK); unknown values keep the rv in hex."""
    entry = _BY_RV.get(rv)
    if entry is None:
        return x.PKCS11Error(f"Unmapped error code {rv:#x}")
    if isinstance(entry, tuple):
        return entry[0](entry[1])
    return entry()
