"""The wire contract of every Signet gRPC service, for servers and clients alike.

A non-OK status carries a :class:`signet.v1.common_pb2.ErrorDetail` serialized in the trailing metadata key
``signet-error-bin`` (and, for RESOURCE_EXHAUSTED, ``retry-after`` in whole seconds).  Servers build it with
:func:`abort`; clients read it with :func:`detail_of`.  Key algorithm names (as the CLI spells them) live
here too, so that no client needs the hsm layer to name a key type.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

import grpc

from signet.keynames import KEY_ALGORITHM_CHOICES
from signet.v1 import common_pb2

ERROR_DETAIL_KEY = "signet-error-bin"
RETRY_AFTER_KEY = "retry-after"
GRANT_METADATA = "signet-grant"  # request metadata: the unlock grant handle a call uses (agent)

# CLI / config names of key algorithms -> the API enum (hsm.KeyAlgorithm.parse accepts the same names)
KEY_ALGORITHMS: dict[str, common_pb2.KeyAlgorithm.ValueType] = {
    "rsa-2048": common_pb2.KEY_ALGORITHM_RSA_2048,
    "rsa-3072": common_pb2.KEY_ALGORITHM_RSA_3072,
    "rsa-4096": common_pb2.KEY_ALGORITHM_RSA_4096,
    "p256": common_pb2.KEY_ALGORITHM_EC_P256,
    "p384": common_pb2.KEY_ALGORITHM_EC_P384,
}
KEY_ALGORITHM_NAMES: dict[int, str] = {v: k for k, v in KEY_ALGORITHMS.items()}
if set(KEY_ALGORITHMS) != set(KEY_ALGORITHM_CHOICES):  # one list of names: signet.keynames
    raise RuntimeError("signet.wire.KEY_ALGORITHMS and signet.keynames.KEY_ALGORITHM_CHOICES disagree")


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str, detail: common_pb2.ErrorDetail,
          retry_after: float | None = None) -> NoReturn:
    """End the call with ``code``, ``message`` and the ErrorDetail trailer (never returns)."""
    trailer: list[tuple[str, str | bytes]] = [(ERROR_DETAIL_KEY, detail.SerializeToString())]
    if retry_after is not None:
        trailer.append((RETRY_AFTER_KEY, str(max(1, round(retry_after)))))
    context.set_trailing_metadata(tuple(trailer))
    context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover - it always raises


def parse_detail(metadata: Iterable[Any] | None) -> common_pb2.ErrorDetail | None:
    """The ErrorDetail in trailing metadata ((key, value) pairs), if any (an unreadable one counts as none)."""
    for key, value in metadata or ():
        if key == ERROR_DETAIL_KEY:
            try:
                return common_pb2.ErrorDetail.FromString(bytes(value))
            except Exception:  # noqa: BLE001 - a garbled trailer must not hide the status itself
                return None
    return None


def detail_of(error: grpc.RpcError) -> common_pb2.ErrorDetail | None:
    """The ErrorDetail a failed call carried (client side)."""
    trailing = getattr(error, "trailing_metadata", None)
    return parse_detail(trailing() if callable(trailing) else None)


def reason_of(error: grpc.RpcError) -> str:
    """The stable ``ErrorDetail.reason`` of a failed call, or "" when it carried none."""
    detail = detail_of(error)
    return detail.reason if detail is not None else ""


def retry_after_of(error: grpc.RpcError) -> float | None:
    trailing = getattr(error, "trailing_metadata", None)
    for key, value in (trailing() if callable(trailing) else None) or ():
        if key == RETRY_AFTER_KEY:
            try:
                return float(value)
            except ValueError:
                return None
    return None
