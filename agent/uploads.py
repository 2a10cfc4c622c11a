"""Document uploads that no stalled or oversized client can use to freeze the agent.

Python gRPC serves each call on a thread of one pool, and a client-streaming handler holds its thread for as
long as the client takes to send.  So: at most ``document_streams`` uploads (sign and verify) run at once --
one more is refused at once with RESOURCE_EXHAUSTED (:class:`DocumentGate`), never queued -- which leaves the
other threads to unary calls and health checks; and an upload may pause at most ``upload_idle_seconds``
between two messages and take at most ``upload_seconds`` in all (:class:`Upload`, which reads the client's
messages on a helper thread and waits for each with a timeout).  What the header says (caller, token, key,
grant) is checked before the body is read: the handler asks for the header first and checks it before it
asks for any chunk.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import Busy, DocumentTooLarge, InvalidRequest, UploadStalled
from .spool import Spooled

_END = object()


class DocumentGate:
    """A fixed number of document streams at once; one more is refused, not queued."""

    def __init__(self, streams: int) -> None:
        self.streams = streams
        self._sem = threading.BoundedSemaphore(streams)

    @contextmanager
    def admit(self) -> Iterator[None]:
        if not self._sem.acquire(blocking=False):
            raise Busy(f"the agent is already handling {self.streams} documents; retry in a moment")
        try:
            yield
        finally:
            self._sem.release()


class Upload:
    """The messages of one client stream, each waited for with the idle timeout and within the total time."""

    def __init__(self, requests: Iterator[Any], idle: float, total: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.idle = idle
        self._deadline = clock() + total
        self.total = total
        self._q: queue.Queue[Any] = queue.Queue(maxsize=2)  # bounded: at most a few chunks in memory
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(requests,), name="upload-reader", daemon=True)
        self._reader.start()

    def _read(self, requests: Iterator[Any]) -> None:
        try:
            for r in requests:
                if not self._put(r):
                    return
            self._put(_END)
        except Exception as e:  # noqa: BLE001 - the client went away (cancelled): tell the handler
            self._put(e)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def next(self) -> Any:
        """The next message, or None at the end of the stream; UploadStalled after a pause or overall."""
        left = self._deadline - self._clock()
        if left <= 0:
            raise UploadStalled(f"the upload took longer than {self.total:.0f} s; it was cancelled")
        try:
            item = self._q.get(timeout=min(self.idle, left))
        except queue.Empty:
            if self._deadline - self._clock() <= 0:
                raise UploadStalled(f"the upload took longer than {self.total:.0f} s; it was cancelled") from None
            raise UploadStalled(f"the upload paused for more than {self.idle:g} s between two messages; "
                                "it was cancelled") from None
        if item is _END:
            return None
        if isinstance(item, Exception):
            raise UploadStalled("the client stopped sending before the document was complete") from item
        return item

    def header(self, what: str) -> Any:
        first = self.next()
        if first is None or first.WhichOneof("part") != "header":
            raise InvalidRequest(f"the first {what} message must be the header")
        return first.header

    def chunks(self) -> Iterator[bytes]:
        while (r := self.next()) is not None:
            if r.WhichOneof("part") != "chunk":
                raise InvalidRequest("only chunks may follow the header")
            yield r.chunk

    def nothing_more(self) -> None:
        if self.next() is not None:
            raise InvalidRequest("no chunk may follow a header that carries the document")

    def close(self) -> None:
        self._stop.set()


def spool(chunks: Iterator[bytes], dest: Path, limit: int, announced: int = 0) -> Spooled:
    """Write ``chunks`` to ``dest`` (already created, 0600), refusing more than ``limit`` bytes."""
    if announced > limit:
        raise DocumentTooLarge(f"the document is {announced} bytes; this agent accepts at most {limit}")
    h = hashlib.sha256()
    size = 0
    with open(dest, "wb") as f:
        for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise DocumentTooLarge(f"the document is larger than this agent's limit of {limit} bytes")
            h.update(chunk)
            f.write(chunk)
    if announced and size != announced:
        raise InvalidRequest(f"the upload ended after {size} of the {announced} bytes announced")
    return Spooled(dest, size, h.hexdigest())


def inline_document(h: Any, upload: Upload, inline_limit: int, document_limit: int) -> bytes:
    """The document carried whole in the header, checked against the limits; nothing may follow the header."""
    data: bytes = h.document
    size = len(data)
    if size > document_limit:
        raise DocumentTooLarge(f"the document is {size} bytes; this agent accepts at most {document_limit}")
    if size > inline_limit:
        raise InvalidRequest(f"the inline document is {size} bytes; this agent accepts at most {inline_limit} "
                             "inline: send larger documents in chunks after the header")
    if h.size and h.size != size:
        raise InvalidRequest(f"the inline document is {size} bytes; the header announces {h.size}")
    upload.nothing_more()
    return data
