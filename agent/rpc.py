"""The one wrapper every AgentService method goes through: who is calling, errors to statuses, refusals journalled.

``@rpc("operation")`` wraps a unary-response method ``fn(self, request, call)``; ``@rpc_stream("operation")``
a response-streaming one (a generator).  The handler gets a :class:`Call` -- the caller's identity, the
grant handle it presented, and the token serial / key id it is working on (named in the ErrorDetail and the
journal row if the call fails).  Every failed call gets a journal row with the reason; nothing else here
knows about status codes (agent.status does).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

import grpc

from signet.wire import GRANT_METADATA

from .journal import Journal
from .status import abort, classify

log = logging.getLogger(__name__)

UNIDENTIFIED = "unidentified"


class Call:
    """One RPC as its handler sees it."""

    __slots__ = ("caller", "context", "document_sha256", "key_id", "serial")

    def __init__(self, context: grpc.ServicerContext) -> None:
        self.context = context
        self.caller = UNIDENTIFIED
        self.serial = ""
        self.key_id = ""
        self.document_sha256 = ""

    @property
    def grant(self) -> str | None:
        """The grant handle presented in the request metadata, if any."""
        for key, value in self.context.invocation_metadata() or ():
            if key == GRANT_METADATA:
                return value if isinstance(value, str) else value.decode("ascii", "replace")
        return None

    def alive(self) -> bool:
        remaining = self.context.time_remaining()
        return self.context.is_active() and (remaining is None or remaining > 0)


class Servicer(Protocol):
    journal: Journal

    def identify(self, context: grpc.ServicerContext) -> str: ...


S = TypeVar("S", bound=Servicer)
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def _refused(self: Servicer, operation: str, call: Call, e: BaseException) -> None:
    _, reason, _ = classify(e)
    if reason != "JOURNAL_FAILED":
        self.journal.refusal(operation, call.caller, reason, token_serial=call.serial, key_id=call.key_id,
                             document_sha256=call.document_sha256)


def rpc(operation: str) -> Callable[[Callable[[S, Req, Call], Resp]], Callable[[S, Req, grpc.ServicerContext], Resp]]:
    def decorate(fn: Callable[[S, Req, Call], Resp]) -> Callable[[S, Req, grpc.ServicerContext], Resp]:
        @functools.wraps(fn)
        def wrapper(self: S, request: Req, context: grpc.ServicerContext) -> Resp:
            call = Call(context)
            try:
                call.caller = self.identify(context)
                return fn(self, request, call)
            except Exception as e:  # noqa: BLE001 - every failure becomes a status (agent.status)
                _refused(self, operation, call, e)
                abort(context, e, call.serial, call.key_id)

        return wrapper

    return decorate


def rpc_stream(operation: str) -> Callable[[Callable[[S, Req, Call], Iterator[Resp]]],
                                           Callable[[S, Req, grpc.ServicerContext], Iterator[Resp]]]:
    def decorate(fn: Callable[[S, Req, Call], Iterator[Resp]]) -> Callable[[S, Req, grpc.ServicerContext],
                                                                            Iterator[Resp]]:
        @functools.wraps(fn)
        def wrapper(self: S, request: Req, context: grpc.ServicerContext) -> Iterator[Resp]:
            call = Call(context)
            try:
                call.caller = self.identify(context)
                yield from fn(self, request, call)
            except Exception as e:  # noqa: BLE001 - every failure becomes a status (agent.status)
                _refused(self, operation, call, e)
                abort(context, e, call.serial, call.key_id)

        return wrapper

    return decorate


def pin_of(credential: Any) -> str | None:
    """The per-call PIN of a request's credential field, if one was given."""
    return (credential.pin or None) if credential is not None else None
