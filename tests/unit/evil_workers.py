"""Document workers that misbehave, for tests of the agent side of the pipe (run in spawned processes)."""

from __future__ import annotations

import time
from multiprocessing.connection import Connection

from agent.jobs import decode, encode


def _job(conn: Connection) -> bool:
    try:
        kind, _, _ = decode(conn.recv_bytes())
    except (EOFError, OSError):
        return False
    return kind == "job"


def asks_twice(conn: Connection, memory: int, seconds: float) -> None:
    """Asks for a second signature after the first one was granted."""
    while _job(conn):
        for digest in (b"\x01" * 32, b"\x02" * 32):
            conn.send_bytes(encode("sign", {"hash": "sha256", "pages": None}, {"digest": digest}))
            decode(conn.recv_bytes())
        conn.send_bytes(encode("ok", {"field_name": "x"}))


def never_answers(conn: Connection, memory: int, seconds: float) -> None:
    while _job(conn):
        time.sleep(3600)


def garbage(conn: Connection, memory: int, seconds: float) -> None:
    while _job(conn):
        conn.send_bytes(b"\x00\x00\x00\x10not json at all!")


def eats_memory(conn: Connection, memory: int, seconds: float) -> None:
    """Runs the real worker's limits, then allocates past them: the worker answers TooComplex and exits."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    while _job(conn):
        try:
            hog = bytearray(memory * 2)
            conn.send_bytes(encode("ok", {"size": len(hog)}))
        except MemoryError:
            conn.send_bytes(encode("fail", {"kind": "TooComplex", "message": "the document needs more memory"}))
            return
