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
from concurrent.futures import Future
from typing import Any

from signet.v1 import agent_pb2

from . import convert
from .errors import InvalidRequest
from .journal import Ticket
from .rpc import Call, pin_of
from .signing import BatchSkipped, SigningService

Batch = Future[tuple[str, list[bytes], Ticket]]


def sign_stream(signing: SigningService, requests: Iterator[agent_pb2.SignDigestStreamRequest],
                call: Call) -> Iterator[agent_pb2.SignDigestStreamResponse]:
    out: queue.Queue[Any] = queue.Queue(maxsize=4)
    stop = threading.Event()
    failed = threading.Event()  # set by the first batch that fails: no later batch starts signing
    handle = call.grant

    def put(item: Any) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def produce() -> None:
        sel: agent_pb2.TokenSelector | None = None
        hash_name, scheme, pin = "sha256", None, None
        alive: Callable[[], bool] = call.alive
        try:
            for req in requests:
                if stop.is_set() or failed.is_set():
                    return
                if req.HasField("token") or req.key_id:
                    sel = req.token
                    call.serial, call.key_id = sel.serial, req.key_id
                    hash_name, scheme = convert.hash_name(req.hash), convert.scheme(req.scheme)
                    pin = pin_of(req.credential)
                if sel is None:
                    raise InvalidRequest("the first message must select the token and key")
                put((req.request_id, signing.submit_digests(
                    call.caller, failed=failed, serial=sel.serial, label=sel.label, key_id=call.key_id,
                    digests=list(req.digests), hash_name=hash_name, scheme=scheme, pin=pin, handle=handle,
                    alive=alive)))
            put(None)
        except Exception as e:  # noqa: BLE001 - handed to the response side, mapped there
            put(e)

    reader = threading.Thread(target=produce, name="sign-stream", daemon=True)
    reader.start()
    skipped: BatchSkipped | None = None  # a lane may skip a batch before the failure that caused it is read
    try:
        while True:
            item = out.get()
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
            call.serial = serial
            ticket.wait()  # the journal rows are durable before the signatures leave
            yield agent_pb2.SignDigestStreamResponse(request_id=request_id, signatures=sigs)
    finally:
        stop.set()
        while True:  # batches not started yet are not signed at all
            try:
                item = out.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                item[1].cancel()
