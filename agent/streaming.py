"""SignDigestStream: a reader thread hands each batch to a signing lane and reads on; the call's thread answers
in order.

Batches of one stream (and of all streams) share the agent's ``sign_threads`` lanes, so the token's sessions
stay busy while responses are sent and journal rows synced; a response leaves only after its journal rows are
durable.  After a failure no further batch starts signing (one already running on the other lane may finish:
its signatures are counted and journalled, but never sent).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from signet.v1 import agent_pb2

from . import convert
from .errors import InvalidRequest
from .rpc import Call, pin_of
from .signing import BatchSkipped, SigningService


def sign_stream(signing: SigningService, requests: Iterator[agent_pb2.SignDigestStreamRequest],
                call: Call) -> Iterator[agent_pb2.SignDigestStreamResponse]:
    yield from _DigestStream(signing, requests, call).responses()


class _DigestStream:
    """One SignDigestStream call: ``_produce`` (a reader thread) submits batches in order, ``responses`` answers."""

    def __init__(self, signing: SigningService, requests: Iterator[agent_pb2.SignDigestStreamRequest],
                 call: Call) -> None:
        self.signing, self.requests, self.call = signing, requests, call
        self.out: queue.Queue[Any] = queue.Queue(maxsize=4)
        self.stop = threading.Event()
        self.failed = threading.Event()  # set by the first batch that fails: no later batch starts signing

    def _put(self, item: Any) -> None:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _produce(self) -> None:
        call = self.call
        sel: agent_pb2.TokenSelector | None = None
        hash_name, scheme, pin = "sha256", None, None
        alive: Callable[[], bool] = call.alive
        try:
            for req in self.requests:
                if self.stop.is_set() or self.failed.is_set():
                    return
                if req.HasField("token") or req.key_id:
                    sel = req.token
                    call.serial, call.key_id = sel.serial, req.key_id
                    hash_name, scheme = convert.hash_name(req.hash), convert.scheme(req.scheme)
                    pin = pin_of(req.credential)
                if sel is None:
                    raise InvalidRequest("the first message must select the token and key")
                self._put((req.request_id, self.signing.submit_digests(
                    call.caller, failed=self.failed, serial=sel.serial, label=sel.label, key_id=call.key_id,
                    digests=list(req.digests), hash_name=hash_name, scheme=scheme, pin=pin, handle=call.grant,
                    alive=alive)))
            self._put(None)
        except Exception as e:  # noqa: BLE001 - handed to the response side, mapped there
            self._put(e)

    def _drain(self) -> None:
        """Batches not started yet are not signed at all."""
        self.stop.set()
        while True:
            try:
                item = self.out.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                item[1].cancel()

    def responses(self) -> Iterator[agent_pb2.SignDigestStreamResponse]:
        threading.Thread(target=self._produce, name="sign-stream", daemon=True).start()
        skipped: BatchSkipped | None = None  # a lane may skip a batch before the failure that caused it is read
        try:
            while True:
                item = self.out.get()
                if item is None:
                    if skipped is not None:
                        raise skipped
                    return
                if isinstance(item, Exception):
                    raise item
                request_id, batch = item
                try:
                    serial, sigs, ticket = batch.result()
                except BatchSkipped as e:
                    skipped = skipped or e
                    continue  # the batch that failed comes later in the stream: its error is the one to report
                if skipped is not None:
                    continue  # after a skipped batch nothing more is sent (the call fails)
                self.call.serial = serial
                ticket.wait()  # the journal rows are durable before the signatures leave
                yield agent_pb2.SignDigestStreamResponse(request_id=request_id, signatures=sigs)
        finally:
            self._drain()
