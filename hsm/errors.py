"""Errors raised by the hsm layer; no python-pkcs11 exception escapes it."""

from __future__ import annotations


class HsmError(Exception):
    """Base class of every error raised by :mod:`hsm`."""

    reason = "HSM_ERROR"


class ModuleLoadError(HsmError):
    reason = "MODULE_LOAD_FAILED"


class TokenNotFound(HsmError):
    reason = "TOKEN_NOT_FOUND"


class TokenAmbiguous(HsmError):
    reason = "TOKEN_AMBIGUOUS"


class TokenRemoved(HsmError):
    """The token went away (or its handles went stale) during an operation."""

    reason = "TOKEN_REMOVED"


class LoginRequired(HsmError):
    reason = "LOGIN_REQUIRED"


class PinIncorrect(HsmError):
    """Wrong PIN; ``remaining`` tries are left before the token is locked."""

    reason = "PIN_INCORRECT"

    def __init__(self, message: str, remaining: int) -> None:
        super().__init__(message)
        self.remaining = remaining


class PinLocked(HsmError):
    reason = "PIN_LOCKED"


class KeyNotFound(HsmError):
    reason = "KEY_NOT_FOUND"


class KeyExists(HsmError):
    reason = "KEY_EXISTS"


class UnsupportedAlgorithm(HsmError):
    reason = "UNSUPPORTED_ALGORITHM"


class SigningFailed(HsmError):
    reason = "SIGNING_FAILED"


class CertificateError(HsmError):
    reason = "CERTIFICATE_INVALID"


class WrapError(HsmError):
    reason = "WRAP_FAILED"
