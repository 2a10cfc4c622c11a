"""The gRPC edge's error mapping: exception -> status code, message and ErrorDetail trailer.

This is the only place that knows about status codes.  Messages are the
exceptions' own (written for people, never containing PINs or document bytes);
unexpected exceptions become INTERNAL with a generic message and are logged
with their type only.
"""

from __future__ import annotations

import logging
from typing import NoReturn

import grpc

import hsm
from formats.errors import FormatError, InvalidDocument, SigningError
from hsm.errors import CertificateError, KeyExists, TokenAmbiguous, UnsupportedAlgorithm
from signet.v1 import common_pb2
from signet.wire import abort as wire_abort

from . import errors
from .workers import JobFailed

log = logging.getLogger(__name__)

C = grpc.StatusCode

_BY_TYPE: list[tuple[type[BaseException], grpc.StatusCode]] = [
    (hsm.PinIncorrect, C.UNAUTHENTICATED),
    (errors.ClientCertRevoked, C.UNAUTHENTICATED),
    (hsm.PinLocked, C.FAILED_PRECONDITION),
    (hsm.TokenRemoved, C.UNAVAILABLE),
    (hsm.LoginRequired, C.FAILED_PRECONDITION),
    (hsm.TokenNotFound, C.NOT_FOUND),
    (TokenAmbiguous, C.FAILED_PRECONDITION),
    (hsm.KeyNotFound, C.NOT_FOUND),
    (KeyExists, C.ALREADY_EXISTS),
    (UnsupportedAlgorithm, C.INVALID_ARGUMENT),
    (CertificateError, C.INVALID_ARGUMENT),
    (errors.PermissionDenied, C.PERMISSION_DENIED),
    (errors.UsageLimitReached, C.RESOURCE_EXHAUSTED),
    (errors.Busy, C.RESOURCE_EXHAUSTED),
    (errors.DocumentTooComplex, C.RESOURCE_EXHAUSTED),
    (errors.UploadStalled, C.DEADLINE_EXCEEDED),
    (errors.CertificateRevoked, C.FAILED_PRECONDITION),
    (errors.RevocationUnknown, C.UNAVAILABLE),
    (errors.GrantExhausted, C.FAILED_PRECONDITION),
    (errors.InvalidRequest, C.INVALID_ARGUMENT),
    (errors.DocumentTooLarge, C.INVALID_ARGUMENT),
    (errors.DeadlineExpired, C.DEADLINE_EXCEEDED),
    (errors.JournalError, C.UNAVAILABLE),  # disk full or an I/O error: retry once the disk is back
    (errors.WorkerFailed, C.UNAVAILABLE),  # a worker process died: it was replaced, retry
    (InvalidDocument, C.INVALID_ARGUMENT),
    (SigningError, C.FAILED_PRECONDITION),
    (FormatError, C.INVALID_ARGUMENT),
    (hsm.HsmError, C.UNAVAILABLE),  # the token or its module reported an error (device error): retry
]

_JOB_KINDS = {"InvalidDocument": (C.INVALID_ARGUMENT, "INVALID_DOCUMENT"),
              "SigningError": (C.FAILED_PRECONDITION, "SIGNING_FAILED"),
              "VerificationFailed": (C.INVALID_ARGUMENT, "VERIFICATION_FAILED"),
              "FormatError": (C.INVALID_ARGUMENT, "FORMAT_ERROR"),
              "InvalidOptions": (C.INVALID_ARGUMENT, "INVALID_OPTIONS")}


def classify(e: BaseException) -> tuple[grpc.StatusCode, str, str]:
    """(status code, reason, message) for an exception."""
    if isinstance(e, JobFailed):
        code, reason = _JOB_KINDS.get(e.kind, (C.INTERNAL, "INTERNAL"))
        return code, reason, str(e) if code is not C.INTERNAL else "the document could not be processed"
    if isinstance(e, ValueError):  # hsm and asn1crypto raise it for bad labels and subjects
        return C.INVALID_ARGUMENT, "INVALID_ARGUMENT", str(e)
    for cls, code in _BY_TYPE:
        if isinstance(e, cls):
            return code, getattr(e, "reason", cls.__name__), str(e)
    return C.INTERNAL, "INTERNAL", "internal error in the agent (see its log)"


def detail_for(e: BaseException, reason: str, serial: str = "", key_id: str = "") -> common_pb2.ErrorDetail:
    tries = -1
    if isinstance(e, hsm.PinIncorrect):
        tries = e.remaining
    elif isinstance(e, hsm.PinLocked):
        tries = 0
    return common_pb2.ErrorDetail(reason=reason, pin_tries_left=tries, token_serial=serial, key_id=key_id)


def abort(context: grpc.ServicerContext, e: BaseException, serial: str = "", key_id: str = "") -> NoReturn:
    code, reason, message = classify(e)
    if code is C.INTERNAL:
        log.error("internal error: %s", type(e).__name__, exc_info=e if log.isEnabledFor(logging.DEBUG) else None)
    else:
        log.info("request failed: %s %s", code.name, reason)
    wire_abort(context, code, message, detail_for(e, reason, serial, key_id), getattr(e, "retry_after", None))
