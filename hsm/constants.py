"""The PKCS#11 numbers hsm uses that python-pkcs11 does not define (return values, C_Initialize flags).

Everything python-pkcs11 already names (``Attribute``, ``TokenFlag``, ``UserType``, ``Mechanism``, ...)
is used from :mod:`pkcs11.constants` instead; only the values it keeps inside its Cython module are here.
Values from the PKCS#11 v2.40 specification (``pkcs11t.h``).
"""

from __future__ import annotations

from typing import Final

# CK_C_INITIALIZE_ARGS.flags
CKF_OS_LOCKING_OK: Final = 0x00000002

# CK_RV
CKR_OK: Final = 0x000
CKR_GENERAL_ERROR: Final = 0x005
CKR_DEVICE_ERROR: Final = 0x030
CKR_DEVICE_REMOVED: Final = 0x032
CKR_KEY_HANDLE_INVALID: Final = 0x060
CKR_OBJECT_HANDLE_INVALID: Final = 0x082
CKR_PIN_INCORRECT: Final = 0x0A0
CKR_PIN_INVALID: Final = 0x0A1
CKR_PIN_LEN_RANGE: Final = 0x0A2
CKR_PIN_LOCKED: Final = 0x0A4
CKR_SESSION_CLOSED: Final = 0x0B0
CKR_SESSION_HANDLE_INVALID: Final = 0x0B3
CKR_TOKEN_NOT_PRESENT: Final = 0x0E0
CKR_USER_ALREADY_LOGGED_IN: Final = 0x100
CKR_USER_NOT_LOGGED_IN: Final = 0x101
CKR_BUFFER_TOO_SMALL: Final = 0x150
CKR_CRYPTOKI_NOT_INITIALIZED: Final = 0x190
CKR_CRYPTOKI_ALREADY_INITIALIZED: Final = 0x191
