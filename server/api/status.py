"""ServerError -> gRPC status: code, a message a person can act on, and the ErrorDetail trailer (signet.wire).

Only this module maps errors to codes.  Messages are the domain errors' own (they never hold codes,
PINs, document numbers or keys); anything unexpected becomes INTERNAL with a generic message and is
logged with its type and a stack trace on the server only.  Servicer methods are wrapped by
:func:`rpc` (the caller is authenticated from its client certificate first) or :func:`rpc_open`
(enrollment: the request authenticates itself with a one-time code).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

import grpc

from hsm import HsmError
from signet.v1 import common_pb2
from signet.wire import abort as wire_abort

from .. import errors
from ..identity import Principal
from ..store import StoreBusy

log = logging.getLogger(__name__)

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


class Authenticated(Protocol):
    """A servicer that can tell who is calling."""

    @property
    def auth(self) -> PrincipalSource: ...


class PrincipalSource(Protocol):
    def principal(self, context: grpc.ServicerContext, rpc: str = "", request: object = None) -> Principal: ...


S = TypeVar("S")
A = TypeVar("A", bound=Authenticated)
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def _mapped(name: str, call: Callable[[], Resp], context: grpc.ServicerContext) -> Resp:
    try:
        return call()
    except errors.ServerError as e:
        code = code_for(e)
        log.info("api %s refused: %s (%s)", name, code.name, e.reason)
        wire_abort(context, code, e.message, common_pb2.ErrorDetail(reason=e.reason),
                   getattr(e, "retry_after", None))
    except HsmError as e:
        log.error("api %s: server HSM failed: %s", name, type(e).__name__)
        wire_abort(context, C.UNAVAILABLE, "the server's HSM is unavailable; try again later",
                   common_pb2.ErrorDetail(reason="HSM_UNAVAILABLE"))
    except StoreBusy as e:
        log.warning("api %s: %s", name, e)
        wire_abort(context, C.UNAVAILABLE, str(e), common_pb2.ErrorDetail(reason="STORE_BUSY"), 1.0)
    except Exception:
        log.exception("api %s failed", name)
        wire_abort(context, C.INTERNAL, "internal server error", common_pb2.ErrorDetail(reason="INTERNAL"))


def rpc_name(servicer: object, method: str) -> str:
    """"Service.Method" of a servicer method, the service named by the generated base class it implements."""
    for base in type(servicer).__mro__:
        if base.__module__.endswith("_pb2_grpc") and base.__name__.endswith("Servicer"):
            return f"{base.__name__.removesuffix('Servicer')}.{method}"
    return method


def rpc(fn: Callable[[A, Req, Principal, grpc.ServicerContext], Resp]
        ) -> Callable[[A, Req, grpc.ServicerContext], Resp]:
    """A servicer method called as ``fn(self, request, principal, context)`` after authenticating the caller (who
    may make this call with this request: :mod:`server.api.stations`)."""

    @functools.wraps(fn)
    def wrapper(self: A, request: Req, context: grpc.ServicerContext) -> Resp:
        return _mapped(fn.__name__, lambda: fn(self, request, self.auth.principal(
            context, rpc_name(self, fn.__name__), request), context), context)

    return wrapper


def rpc_open(fn: Callable[[S, Req, grpc.ServicerContext], Resp]) -> Callable[[S, Req, grpc.ServicerContext], Resp]:
    """A servicer method of a listener without client certificates: errors mapped, nobody authenticated."""

    @functools.wraps(fn)
    def wrapper(self: S, request: Req, context: grpc.ServicerContext) -> Resp:
        return _mapped(fn.__name__, lambda: fn(self, request, context), context)

    return wrapper
