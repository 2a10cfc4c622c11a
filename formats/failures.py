"""Where third-party failures enter formats: parser failures become InvalidDocument, signing failures SigningError.

pyHanko reads documents lazily, so a malformed document can fail at any later step (reading fields, difference
analysis, writing the signed revision, XMP metadata) and with almost any exception type: its own
PdfReadError, but also ValueError (negative seeks), RecursionError (deep nesting, self-referencing object
streams), AssertionError, IndexError, KeyError, UnicodeDecodeError, TypeError...  ``PARSE_ERRORS`` names them
once.  Messages never carry the exception text: parser messages can quote document bytes.

Token failures (``hsm.HsmError``, or whatever a token stand-in raises) pass through unchanged: a
:class:`TokenSigner` remembers the exception its token raised, and these guards re-raise exactly that one.
"""

from __future__ import annotations

import binascii
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import aiohttp
from cryptography.exceptions import UnsupportedAlgorithm
from pyhanko.pdf_utils.metadata.xmp_xml import XmpXmlProcessingError
from pyhanko.pdf_utils.misc import PdfDecodeLimitError, PdfError, PdfStreamError
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko_certvalidator.errors import CRLValidationError, OCSPValidationError, PathError, ValidationError

from .errors import FormatError, InvalidDocument, SigningError

# RuntimeError covers RecursionError and NotImplementedError; ValueError covers UnicodeDecodeError, the XMP
# parser's XmpXmlProcessingError and asn1crypto's parse errors; LookupError covers KeyError and IndexError.
# cryptography's UnsupportedAlgorithm: a signer's or a trust root's key of a type it cannot load.
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    PdfError, ValueError, LookupError, TypeError, AttributeError, AssertionError, RuntimeError, ArithmeticError,
    EOFError, struct.error, zlib.error, binascii.Error, UnsupportedAlgorithm,
)

# What validating one signature can raise besides parser failures (pyHanko's own validation errors are
# ValueErrors): certificate-path and revocation errors, and network failures while fetching.
VALIDATION_ERRORS: tuple[type[BaseException], ...] = (
    *PARSE_ERRORS, PathError, ValidationError, CRLValidationError, OCSPValidationError, TimeoutError,
    aiohttp.ClientError,
)


class TokenFailureSource(Protocol):
    """What the guards need from a signer: the exception its token raised last, if any."""

    @property
    def token_failure(self) -> BaseException | None: ...


def _token_failure_in(e: BaseException, source: TokenFailureSource | None) -> BaseException | None:
    failure = source.token_failure if source is not None else None
    if failure is None:
        return None
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:  # pyHanko may have wrapped it
        if cur is failure:
            return failure
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def describe(e: BaseException) -> str:
    """A parser failure in words, then its type; never its message (which may quote document bytes)."""
    name = type(e).__name__
    if isinstance(e, RecursionError):
        words = "objects nested or referring to each other too deeply"
    elif isinstance(e, PdfDecodeLimitError):
        words = "a compressed stream expands beyond the decoding limits"
    elif isinstance(e, UnicodeDecodeError | XmpXmlProcessingError):
        words = "text or metadata that is not validly encoded"
    elif isinstance(e, ValueError) and "seek" in str(e):
        words = "an offset (startxref, /Prev or a cross-reference entry) points outside the file"
    elif isinstance(e, PdfStreamError | EOFError | struct.error | zlib.error | binascii.Error):
        words = "a truncated or malformed stream, string or token"
    elif isinstance(e, PdfError):
        words = "malformed cross-reference data or objects"
    else:
        words = "a structure the parser cannot follow"
    return f"{words} ({name})"


@contextmanager
def reading(name: str) -> Iterator[None]:
    """Any parser failure while reading ``name`` is an InvalidDocument that says so in words."""
    try:
        yield
    except FormatError:
        raise
    except PARSE_ERRORS as e:
        raise InvalidDocument(f"{name} is damaged and cannot be read: {describe(e)}") from e


@contextmanager
def signing_errors(timestamp_url: str | None, signer: TokenFailureSource | None = None) -> Iterator[None]:
    """Failures while signing: the token's own pass through; TSA and pyHanko signing failures are SigningError;
    parser failures on the document (found only now, pyHanko reads lazily) are InvalidDocument."""
    try:
        yield
    except FormatError:
        raise
    except Exception as e:
        failure = _token_failure_in(e, signer)
        if failure is not None:
            if failure is e:
                raise
            raise failure from None
        if isinstance(e, TimeoutError | TimestampRequestError | aiohttp.ClientError):
            what = "timed out" if isinstance(e, TimeoutError) else f"failed: {type(e).__name__}"
            raise SigningError(f"the timestamp authority at {timestamp_url} {what}") from e
        if isinstance(e, PyHankoSigningError):  # before ValueError: pyHanko's SigningError is one
            raise SigningError(f"signing failed: {e}") from e
        if isinstance(e, PARSE_ERRORS):
            raise InvalidDocument(f"the document to sign is damaged and cannot be signed: {describe(e)}") from e
        raise
