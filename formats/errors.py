"""Errors raised by :mod:`formats`; pyHanko and asn1crypto errors are wrapped where they enter."""

from __future__ import annotations


class FormatError(Exception):
    """Base class of every error raised by :mod:`formats`."""

    reason = "FORMAT_ERROR"


class InvalidDocument(FormatError):
    """The input cannot be processed: empty, not a PDF, truncated, encrypted or unparseable.

    The message says what is wrong and never contains document bytes.
    """

    reason = "INVALID_DOCUMENT"


class SigningError(FormatError):
    """A signature could not be produced (token failure, missing certificate, timestamp failure)."""

    reason = "SIGNING_FAILED"


class VerificationFailed(FormatError):
    """A signature did not verify; carries the report that says why."""

    reason = "VERIFICATION_FAILED"

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report


class InvalidOptions(FormatError, ValueError):
    """Signing options that do not fit the request or the document (unknown level, missing page...)."""

    reason = "INVALID_OPTIONS"
