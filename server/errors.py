"""Errors raised by the server's domain code; only the gRPC edge maps them to status codes.

Each class carries a stable machine-readable ``reason`` (the ``ErrorDetail.reason`` of
``proto/signet/v1/common.proto``) and a message a person can act on.  Messages never
contain secrets: no one-time codes, document numbers, keys or PINs.

Mapping for the API layer (grpc.StatusCode):

=====================  ====================
NotFound               NOT_FOUND
PermissionDenied       PERMISSION_DENIED
InvalidArgument        INVALID_ARGUMENT
FailedPrecondition     FAILED_PRECONDITION
Unauthenticated        UNAUTHENTICATED
RateLimited            RESOURCE_EXHAUSTED (``retry_after`` seconds as metadata)
AlreadyExists          ALREADY_EXISTS
Unavailable            UNAVAILABLE (an upstream: SMTP, webhook, identity provider)
=====================  ====================
"""

from __future__ import annotations


class ServerError(Exception):
    """Base class of every error raised by server domain code."""

    reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class NotFound(ServerError):
    """The object does not exist, or exists in another organisation (indistinguishable on purpose)."""

    reason = "NOT_FOUND"


class PermissionDenied(ServerError):
    """The caller is known but its role does not allow the operation."""

    reason = "PERMISSION_DENIED"


class InvalidArgument(ServerError):
    """A request field is malformed (bad document number, phone, e-mail ...)."""

    reason = "INVALID_ARGUMENT"


class FailedPrecondition(ServerError):
    """The object is not in a state that allows the operation (e.g. approve before phone verification)."""

    reason = "FAILED_PRECONDITION"


class Unauthenticated(ServerError):
    """A credential presented with the request (one-time code, signature) was refused."""

    reason = "UNAUTHENTICATED"


class RateLimited(ServerError):
    """Too many requests; ``retry_after`` says how many seconds to wait."""

    reason = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class AlreadyExists(ServerError):
    reason = "ALREADY_EXISTS"


class Unavailable(ServerError):
    """An upstream service (SMTP relay, webhook, identity provider) failed or gave an unusable answer."""

    reason = "UNAVAILABLE"
