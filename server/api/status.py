"""ServerError -> gRPC status: code, a message a person can act on, and an ErrorDetail trailer.

Only this module maps errors to codes.  Messages are the domain errors' own (they never hold codes,
PINs, document numbers or keys); anything unexpected becomes INTERNAL with a generic message and is
logged with its type and a stack trace on the server only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc
from signet.v1 import common_pb2

from hsm import HsmError

from .. import errors

log = logging.getLogger(__name__)

ERROR_DETAIL_KEY = "signet-error-bin"
RETRY_AFTER_KEY = "retry-after"
C = grpc.StatusCode

# Checked in order: CA errors inherit from both CaError and one generic class.
_CODES: list[tuple[type[errors.ServerError], grpc.StatusCode]] = [
    (errors.NotFound, C.NOT_FOUND),
    (errors.PermissionDenied, C.PERMISSION_DENIED),
    (errors.InvalidArgument, C.INVALID_ARGUMENT),
    (errors.FailedPrecondition, C.FAILED_PRECONDITION),
    (errors.Unauthenticated, C.UNAUTHENTICATED),
    (errors.RateLimited, C.RESOURCE_EXHAUSTED),
    (errors.AlreadyExists, C.ALREADY_EXISTS),
    (errors.Unavailable, C.UNAVAILABLE),
]


def code_for(error: errors.ServerError) -> grpc.StatusCode:
    for cls, code in _CODES:
        if isinstance(error, cls):
            return code
    return C.INTERNAL


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str, reason: str,
          retry_after: float | None = None) -> NoReturn:
    trailer: list[tuple[str, Any]] = [(ERROR_DETAIL_KEY, common_pb2.ErrorDetail(reason=reason).SerializeToString())]
    if retry_after is not None:
        trailer.append((RETRY_AFTER_KEY, str(max(1, round(retry_after)))))
    context.set_trailing_metadata(tuple(trailer))
    context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


F = TypeVar("F", bound=Callable[..., Any])


def rpc(authenticate: bool = True) -> Callable[[F], F]:
    """Wrap a servicer method: authenticate the caller (``fn(self, request, principal, context)``) unless
    ``authenticate`` is False (``fn(self, request, context)``), and map errors to statuses."""

    def decorate(fn: F) -> F:
        name = fn.__name__

        @functools.wraps(fn)
        def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            try:
                if authenticate:
                    principal = self.auth.principal(context)
                    return fn(self, request, principal, context)
                return fn(self, request, context)
            except errors.ServerError as e:
                code = code_for(e)
                log.info("api %s refused: %s (%s)", name, code.name, e.reason)
                abort(context, code, e.message, e.reason, getattr(e, "retry_after", None))
            except HsmError as e:
                log.error("api %s: server HSM failed: %s", name, type(e).__name__)
                abort(context, C.UNAVAILABLE, "the server's HSM is unavailable; try again later", "HSM_UNAVAILABLE")
            except Exception:
                log.exception("api %s failed", name)
                abort(context, C.INTERNAL, "internal server error", "INTERNAL")

        return wrapper  # type: ignore[return-value]

    return decorate
