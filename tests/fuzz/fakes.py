"""A grpc.ServicerContext for calling servicer methods in process, and the finding it reports.

``abort()`` records the status and raises :class:`Aborted`, as grpc's does (an exception the handler does not
catch).  The context also checks what a real server would refuse to send: a status that is not a
``grpc.StatusCode`` (or is OK), trailing metadata with an invalid key or a value that is neither ASCII text nor
bytes under a ``-bin`` key.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

import grpc

_KEY = re.compile(r"^[0-9a-z_.\-]+$")
_TEXT = re.compile(r"^[\x20-\x7e]*$")


class Finding(AssertionError):
    """The contract of a target was broken (an INTERNAL status, an unexpected exception, an invalid answer).

    ``key`` names the kind of breach without the input's details (the first part of the finding's signature,
    :func:`tests.fuzz.findings.signature`); it defaults to the message.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key or message


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def check_metadata(metadata: Sequence[tuple[str, Any]] | None) -> None:
    for key, value in metadata or ():
        if not isinstance(key, str) or not _KEY.match(key) or key.startswith("grpc-"):
            raise Finding(f"invalid metadata key {key!r}")
        if key.endswith("-bin"):
            if not isinstance(value, (bytes, str)):
                raise Finding(f"metadata {key}: binary value of type {type(value).__name__}")
        elif not isinstance(value, str) or not _TEXT.match(value):
            raise Finding(f"metadata {key}: value {value!r} is not printable ASCII text")


class FakeContext:
    """What the servicers use of grpc.ServicerContext.  ``active`` False: the client has gone (is_active())."""

    def __init__(self, *, peer: str = "unix:/run/user/0/signet/agent.sock", metadata: Sequence[tuple[str, str]] = (),
                 auth: dict[str, list[bytes]] | None = None, active: bool = True,
                 time_remaining: float | None = 60.0) -> None:
        self._peer = peer
        self._metadata = tuple(metadata)
        self._auth = auth or {}
        self.active = active
        self._time_remaining = time_remaining
        self.code: grpc.StatusCode | None = None
        self.details: str | None = None
        self.trailing: tuple[tuple[str, Any], ...] = ()
        self.callbacks: list[Any] = []

    # -- what the handlers read
    def peer(self) -> str:
        return self._peer

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return self._time_remaining

    def is_active(self) -> bool:
        return self.active

    def add_callback(self, callback: Any) -> bool:
        self.callbacks.append(callback)
        return True

    def leave(self) -> None:
        """The client cancels the call: inactive from now on, and the callbacks run (as grpc runs them)."""
        self.active = False
        callbacks, self.callbacks = self.callbacks, []
        for cb in callbacks:
            cb()

    def peer_identities(self) -> None:
        return None

    def peer_identity_key(self) -> None:
        return None

    # -- what they write
    def set_trailing_metadata(self, metadata: Sequence[tuple[str, Any]]) -> None:
        check_metadata(metadata)
        self.trailing = tuple(metadata)

    def send_initial_metadata(self, metadata: Sequence[tuple[str, Any]]) -> None:
        check_metadata(metadata)

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        if not isinstance(code, grpc.StatusCode) or code is grpc.StatusCode.OK:
            raise Finding(f"abort() with status {code!r}")
        if not isinstance(details, str):
            raise Finding(f"abort() with details of type {type(details).__name__}")
        self.code, self.details = code, details
        raise Aborted(code, details)

    def abort_with_status(self, status: Any) -> None:
        self.abort(status.code, status.details)


def in_memory(handler: type) -> type:
    """``handler`` (an http.server request handler class) over a request held in memory: no socket, no TLS; the
    answer is left in ``server.last_response``."""

    class Memory(handler):  # type: ignore[misc]
        def setup(self) -> None:
            self.rfile = io.BytesIO(self.request)
            self.wfile = io.BytesIO()

        def finish(self) -> None:
            self.server.last_response = self.wfile.getvalue()

    return Memory
