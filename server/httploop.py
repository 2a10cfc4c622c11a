"""The connection loop of the PKI HTTP listener: sockets, deadlines, caps and the rate limit.

One selector thread does all socket I/O; a request goes to a worker thread only once it has arrived whole
(headers and Content-Length body), so a slow client holds a socket, never a worker.  Every request has one
deadline from the moment the listener starts waiting for it (accept, or the end of the previous response):
past it the client gets 408 and is closed, however it dribbles its bytes.  Responses are written with a
deadline too.  Open connections are capped overall and per client address; over a cap, and when every
worker is busy and as many requests wait, the answer is 503 and a close, never an unbounded queue.  An
optional per-address rate limit answers 429 with Retry-After.  What a request means is the subclass's
business (:class:`server.http.PkiHttpServer`).
"""

from __future__ import annotations

import collections
import logging
import math
import re
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from .errors import RateLimited
from .ratelimit import SlidingWindow

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024
LINGER_SECONDS = 2.0  # after a final response: wait this long for the client's FIN, so it reads the answer
_TICK = 0.1  # deadlines are checked this often
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def canned(status: HTTPStatus, text: str, retry_after: float | None = None) -> bytes:
    """A complete response with ``Connection: close`` that the selector thread sends itself."""
    body = (text + "\n").encode()
    head = [f"HTTP/1.1 {status.value} {status.phrase}", "Server: signet-pki", "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}", "Cache-Control: no-store", "Connection: close"]
    if retry_after is not None:
        head.append(f"Retry-After: {max(1, math.ceil(retry_after))}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass(frozen=True)
class _Frame:
    """Where the request at the start of a buffer ends: ``end`` None while its body is still missing."""

    end: int | None
    close: bool = False  # framing we do not trust (Transfer-Encoding, a bad length): answer, then close
    expect_continue: bool = False
    error: tuple[HTTPStatus, str] | None = None


def frame(buf: bytes | bytearray, max_body: int) -> _Frame | None:
    """None until the head has arrived; then how much of ``buf`` is the first request."""
    m = _HEAD_END.search(buf)
    if m is None:
        return _Frame(None, error=(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "the request head is too large")) \
            if len(buf) > MAX_HEAD_BYTES else None
    lengths: set[bytes] = set()
    chunked = expect = False
    for line in bytes(buf[:m.start()]).split(b"\n")[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            lengths.add(value)
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
    if len(lengths) > 1:
        return _Frame(None, error=(HTTPStatus.BAD_REQUEST, "conflicting Content-Length headers"))
    length = lengths.pop() if lengths else b"0"
    if chunked or not length.isdigit() or int(length) > max_body:
        return _Frame(len(buf), close=True)  # the handler answers 411 or 413 without reading a body
    end = m.end() + int(length)
    return _Frame(end) if len(buf) >= end else _Frame(None, expect_continue=expect)


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    address: Any
    deadline: float
    state: str = "read"  # read -> work -> write -> read (keep-alive) | linger -> closed
    inbuf: bytearray = field(default_factory=bytearray)
    out: memoryview = field(default_factory=lambda: memoryview(b""))
    close_after: bool = False
    continue_sent: bool = False
    served: int = 0
    mask: int = 0

    @property
    def host(self) -> str:
        return str(self.address[0])


class HttpLoop:
    """The listener loop; a subclass answers a complete request in :meth:`handle` (on a worker thread).

    ``max_connections`` requests are served at once and as many may wait for a worker; ``max_open``
    sockets may be open in all (reading, waiting, writing), ``max_per_client`` from one address.
    ``rate_per_minute`` 0 is no rate limit.  ``clock`` (monotonic seconds) drives deadlines and the limit.
    """

    def __init__(self, address: tuple[str, int], *, max_body: int = MAX_BODY_BYTES, max_connections: int = 64,
                 request_deadline: float = 10.0,
                 rate_per_minute: int = 0, max_per_client: int = 16, max_open: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_connections < 1 or max_per_client < 1 or max_open < 1 or request_deadline <= 0:
            raise ValueError("connection limits and the request deadline must be positive")
        self.max_body = max_body
        self.max_connections = max_connections
        self.request_deadline = request_deadline
        self.max_per_client = max_per_client
        self.max_open = max_open
        self._clock = clock
        self._limiter = SlidingWindow(rate_per_minute, 60.0, clock=clock) if rate_per_minute > 0 else None
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._listener = socket.create_server(address, family=family, backlog=128)
        self._listener.setblocking(False)
        self.server_address: tuple[Any, ...] = self._listener.getsockname()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._pool = ThreadPoolExecutor(max_workers=max_connections, thread_name_prefix="pki-http-worker")
        self._conns: set[_Conn] = set()
        self._per_host: dict[str, int] = {}
        self._done: collections.deque[tuple[_Conn, bytes, bool]] = collections.deque()
        self._in_flight = 0
        self._counts = dict.fromkeys(("accepted", "served", "timed_out", "refused_busy", "refused_client",
                                      "rate_limited"), 0)
        self._stopping = False
        self._thread: threading.Thread | None = None

    def handle(self, request: bytes, address: Any) -> tuple[bytes, bool]:
        """The response to one complete request, and whether to close the connection after it."""
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def stats(self) -> dict[str, int]:
        """Counters since start, and the connections open now by state (for tests and operators)."""
        conns = list(self._conns)  # one C-level copy under the GIL: safe against the selector thread
        out = dict(self._counts, open=len(conns), in_flight=self._in_flight)
        for state in ("read", "work", "write", "linger"):
            out[state] = sum(1 for c in conns if c.state == state)
        return out

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="pki-http", daemon=True)
        self._thread.start()
        log.info("PKI HTTP listening on %s", self.base_url)

    def stop(self) -> None:
        self._stopping = True
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        else:
            self._close_all()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # the selector thread

    def _serve(self) -> None:
        next_sweep = self._clock()
        try:
            while not self._stopping:
                for key, mask in self._sel.select(timeout=_TICK):
                    self._event(key.data, mask)
                self._finish_work()
                now = self._clock()
                if now >= next_sweep:
                    self._sweep(now)
                    next_sweep = now + _TICK
        except Exception:
            log.exception("the PKI HTTP listener failed")
        finally:
            self._close_all()

    def _event(self, data: Any, mask: int) -> None:
        try:
            if data == "listen":
                self._accept()
            elif data == "wake":
                self._drain_wake()
            elif mask & selectors.EVENT_READ:
                self._on_read(data)
            elif mask & selectors.EVENT_WRITE:
                self._on_write(data)
        except Exception:  # one connection's trouble must not end the listener
            log.exception("PKI HTTP connection failed")
            if isinstance(data, _Conn):
                self._close(data)

    def _close_all(self) -> None:
        for conn in list(self._conns):
            self._close(conn)
        self._sel.close()
        for s in (self._listener, self._wake_r, self._wake_w):
            s.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a full pipe wakes the selector all the same; a closed one means it has stopped

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _watch(self, conn: _Conn, mask: int) -> None:
        if mask == conn.mask:
            return
        if conn.mask == 0:
            self._sel.register(conn.sock, mask, conn)
        elif mask == 0:
            self._sel.unregister(conn.sock)
        else:
            self._sel.modify(conn.sock, mask, conn)
        conn.mask = mask

    def _accept(self) -> None:
        for _ in range(64):  # then let the others have a turn
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # e.g. out of file descriptors: the next tick tries again
                log.warning("PKI HTTP accept failed: %s", e)
                return
            if len(self._conns) >= 2 * self.max_open:  # refusals linger too: past this, not even a 503
                self._counts["refused_busy"] += 1
                sock.close()
                continue
            sock.setblocking(False)
            conn = _Conn(sock, address, self._clock() + self.request_deadline)
            self._conns.add(conn)
            self._per_host[conn.host] = self._per_host.get(conn.host, 0) + 1
            self._counts["accepted"] += 1
            if len(self._conns) > self.max_open:
                self._counts["refused_busy"] += 1
                self._reply(conn, canned(HTTPStatus.SERVICE_UNAVAILABLE, "the server is busy; retry later", 1))
            elif self._per_host[conn.host] > self.max_per_client:
                self._counts["refused_client"] += 1
                self._reply(conn, canned(HTTPStatus.SERVICE_UNAVAILABLE,
                                         "too many connections from this address; retry later", 1))
            else:
                self._watch(conn, selectors.EVENT_READ)

    def _on_read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
        elif conn.state == "read":
            conn.inbuf += data
            self._next_request(conn)
        # in "linger" what arrives is dropped

    def _next_request(self, conn: _Conn) -> None:
        while conn.inbuf and conn.inbuf[0] in b"\r\n":  # RFC 9112 2.2: empty lines before a request are ignored
            del conn.inbuf[:1]
        f = frame(conn.inbuf, self.max_body)
        if f is None:
            return
        if f.error is not None:
            self._reply(conn, canned(*f.error))
            return
        if f.end is None:
            if f.expect_continue and not conn.continue_sent:
                conn.continue_sent = True
                try:
                    conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                except OSError:
                    pass  # the client sends its body anyway after a while, or the deadline ends it
            return
        request = bytes(conn.inbuf[:f.end])
        del conn.inbuf[:f.end]
        conn.close_after = f.close
        if self._limiter is not None:
            try:
                self._limiter.hit(conn.host)
            except RateLimited as e:
                self._counts["rate_limited"] += 1
                self._reply(conn, canned(HTTPStatus.TOO_MANY_REQUESTS, str(e), e.retry_after))
                return
        if self._in_flight >= 2 * self.max_connections:
            self._counts["refused_busy"] += 1
            self._reply(conn, canned(HTTPStatus.SERVICE_UNAVAILABLE, "the server is busy; retry later", 1))
            return
        self._watch(conn, 0)
        conn.state = "work"
        self._in_flight += 1
        self._pool.submit(self._work, conn, request)

    def _work(self, conn: _Conn, request: bytes) -> None:
        """On a worker thread: run the handler, hand the response back to the selector thread."""
        try:
            out, close = self.handle(request, conn.address)
        except Exception:
            log.exception("PKI HTTP request from %s failed", conn.host)
            out, close = canned(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error"), True
        self._done.append((conn, out, close))
        self._wake()

    def _finish_work(self) -> None:
        while self._done:
            conn, out, close = self._done.popleft()
            self._in_flight -= 1
            if conn.state != "work":
                continue  # closed meanwhile
            conn.served += 1
            self._counts["served"] += 1
            conn.close_after = conn.close_after or close
            try:
                self._send(conn, out, self.request_deadline)
            except Exception:
                log.exception("PKI HTTP connection failed")
                self._close(conn)

    def _reply(self, conn: _Conn, response: bytes) -> None:
        """A listener-made final answer (408, 429, 503, ...): send it, then close."""
        conn.close_after = True
        self._send(conn, response, LINGER_SECONDS)

    def _send(self, conn: _Conn, data: bytes, seconds: float) -> None:
        conn.state = "write"
        conn.out = memoryview(data)
        conn.deadline = self._clock() + seconds
        self._on_write(conn)  # most answers fit the socket buffer: no selector round trip

    def _on_write(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if conn.out:
            self._watch(conn, selectors.EVENT_WRITE)
        elif conn.close_after:
            conn.state = "linger"
            conn.deadline = self._clock() + LINGER_SECONDS
            try:
                conn.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._close(conn)
                return
            self._watch(conn, selectors.EVENT_READ)
        else:
            conn.deadline = self._clock() + self.request_deadline  # before the state: stats() readers rely on it
            conn.continue_sent = False
            conn.state = "read"
            self._watch(conn, selectors.EVENT_READ)
            if conn.inbuf:
                self._next_request(conn)  # pipelined

    def _sweep(self, now: float) -> None:
        for conn in [c for c in self._conns if c.state != "work" and c.deadline <= now]:
            if conn.state == "read" and (conn.inbuf or conn.served == 0):
                self._counts["timed_out"] += 1
                log.info("PKI HTTP client %s cut off: no whole request within %g s", conn.host,
                         self.request_deadline)
                self._reply(conn, canned(HTTPStatus.REQUEST_TIMEOUT,
                                         f"the request did not arrive within {self.request_deadline:g} s"))
            else:
                self._close(conn)  # idle keep-alive, a client not reading its answer, or linger over

    def _close(self, conn: _Conn) -> None:
        if conn not in self._conns:
            return
        try:
            self._watch(conn, 0)
        except (KeyError, ValueError, OSError):
            pass  # not registered after all: closing is what matters
        conn.sock.close()
        conn.state = "closed"
        self._conns.discard(conn)
        left = self._per_host[conn.host] - 1
        if left:
            self._per_host[conn.host] = left
        else:
            del self._per_host[conn.host]
