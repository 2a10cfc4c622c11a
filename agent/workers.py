"""Document work (PAdES, CAdES, verification) in worker processes, away from the token-feeding threads.

Building a PAdES signature is ~20 ms of pure Python per document; in the agent
process it would hold the GIL against the threads that feed the token (one
busy thread cut a signing thread from ~1,650 to ~82 sig/s, DESIGN.md).  A
worker never touches PKCS#11: it builds the document with a proxy token whose
``sign_digest`` sends the digest back over a pipe, and the agent thread that
owns the conversation signs it through the normal path (policy, deadline,
token) and answers.  ``pdf_workers = 0`` runs the same jobs in the calling
thread instead (for debugging and measuring the difference).
"""

from __future__ import annotations

import asyncio
import io
import logging
import multiprocessing
import queue
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from .errors import WorkerFailed

log = logging.getLogger(__name__)

SignCallback = Callable[[bytes, str], bytes]
T = TypeVar("T")


class JobFailed(Exception):
    """A job ended with an error of kind ``kind`` (InvalidDocument, SigningError, TokenFailed, ...)."""

    REASONS = {"InvalidDocument": "INVALID_DOCUMENT", "SigningError": "SIGNING_FAILED",
               "VerificationFailed": "VERIFICATION_FAILED", "FormatError": "FORMAT_ERROR"}

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.reason = self.REASONS.get(kind, "INTERNAL")


@dataclass
class _KeyView:
    public_key_der: bytes


class _ProxyToken:
    """The part of hsm.Token that formats.TokenSigner uses, forwarding signatures to the agent."""

    label = "agent"

    def __init__(self, spki: bytes, sign: SignCallback | None) -> None:
        self._spki = spki
        self._sign = sign

    def key(self, key_id: object) -> _KeyView:
        return _KeyView(self._spki)

    def sign_digest(self, key_id: object, dgst: bytes, *, hash_name: str = "sha256", scheme: object = None) -> bytes:
        if self._sign is None:
            raise _TokenFailed("no signer")
        return self._sign(dgst, hash_name)


_signers: dict[tuple[bytes, ...], Any] = {}  # per process: building a TokenSigner parses certificates (~1 ms)


def _signer(job: dict[str, Any], sign: SignCallback) -> Any:
    from formats.signer import TokenSigner

    k = (job["key_id"].encode(), job["spki"], job["certificate"], *job["chain"])
    entry = _signers.get(k)
    if entry is None:
        if len(_signers) > 32:
            _signers.clear()
        proxy = _ProxyToken(job["spki"], None)
        entry = _signers[k] = (proxy, TokenSigner(proxy, job["key_id"],  # type: ignore[arg-type]
                                                  certificate=job["certificate"], chain=job["chain"]))
    entry[0]._sign = sign  # one job at a time per process (a pool thread runs inline jobs: see run_job)
    return entry[1]


class _TokenFailed(Exception):
    """The agent reported that the token refused; the agent keeps the real exception."""


_loop = threading.local()  # one event loop per thread, kept: asyncio.run() builds and tears one down per document


def _run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    loop = getattr(_loop, "loop", None)
    if loop is None or loop.is_closed():
        loop = _loop.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coro)


def run_job(job: dict[str, Any], sign: SignCallback) -> Any:
    """Do one job; ``sign(digest, hash_name)`` makes the token signature."""
    import formats
    from formats.signer import TokenSigner

    kind = job["kind"]
    if kind in ("sign_pdf", "sign_detached"):
        if job.get("inline"):  # threads of the agent share nothing: a fresh signer per job
            signer = TokenSigner(_ProxyToken(job["spki"], sign), job["key_id"],  # type: ignore[arg-type]
                                 certificate=job["certificate"], chain=job["chain"])
        else:
            signer = _signer(job, sign)
        if kind == "sign_pdf":
            from formats.pades import async_sign_pdf

            res = _run_coroutine(async_sign_pdf(job["in_path"], job["out_path"], signer,
                                                formats.PdfSignOptions(**job["options"])))
            return {"field_name": res.field_name, "signer_subject": res.signer_subject, "sha256": res.sha256,
                    "size": res.size}
        # a small document comes in the job itself (bytes), a large one as a spool file
        from formats.cades import async_sign_detached

        with io.BytesIO(job["document"]) if "document" in job else open(job["in_path"], "rb") as f:
            p7s = _run_coroutine(async_sign_detached(f, signer, timestamp_url=job.get("timestamp_url")))
        return {"p7s": p7s, "signer_subject": signer.subject}
    if kind == "verify_pdf":
        return formats.verify_pdf(job["path"], trust_roots=job["trust_roots"]).to_dict()
    if kind == "verify_detached":
        with open(job["path"], "rb") as f:
            return formats.verify_detached(f, job["signature"], trust_roots=job["trust_roots"]).to_dict()
    raise ValueError(f"unknown job kind {kind!r}")


def _classify(e: BaseException) -> tuple[str, str]:
    from formats.errors import FormatError

    cause: BaseException | None = e
    while cause is not None:  # pyHanko and formats wrap the token's refusal
        if isinstance(cause, _TokenFailed):
            return "TokenFailed", "the token refused to sign"
        cause = cause.__cause__ or cause.__context__
    if isinstance(e, FormatError):
        return type(e).__name__, str(e)
    return "Internal", f"{type(e).__name__} while processing the document"


def worker_main(conn: Connection) -> None:
    """Entry point of a worker process: answer jobs until the pipe closes."""
    logging.basicConfig(level=logging.WARNING)
    import formats.pades  # noqa: F401 - import pyHanko once, before the first job
    import formats.verify  # noqa: F401

    def sign(dgst: bytes, hash_name: str) -> bytes:
        conn.send(("sign", dgst, hash_name))
        answer = conn.recv()
        if answer[0] == "sig":
            return bytes(answer[1])
        raise _TokenFailed("the token refused to sign")

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            conn.send(("ok", run_job(job, sign)))
        except Exception as e:  # noqa: BLE001 - every failure goes back to the agent as a kind + message
            conn.send(("fail", *_classify(e)))


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=worker_main, args=(child,), name="signet-doc-worker", daemon=True)
        self.proc.start()
        child.close()

    def kill(self) -> None:
        try:
            self.conn.close()
        finally:
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join(timeout=5)


class DocumentWorkers:
    """A fixed set of worker processes (or none: jobs run in the calling thread)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._ctx = multiprocessing.get_context("spawn")  # never fork a process that holds PKCS#11 state
        # most recently used first: a sequential client keeps hitting the same warm worker (CPU caches, lazily
        # built pyHanko state) instead of alternating between processes
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        for _ in range(processes):
            self._spawn()

    def _spawn(self) -> None:
        w = _Worker(self._ctx)
        with self._lock:
            self._all.append(w)
        self._idle.put(w)

    def pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._all if w.proc.pid is not None]

    def run(self, job: dict[str, Any], sign: SignCallback | None = None) -> Any:
        """Run ``job``; raises JobFailed (with the job's error kind) or the exception ``sign`` raised."""
        if self.processes == 0:
            return self._run_inline(job, sign)
        w = self._idle.get()
        token_error: BaseException | None = None
        healthy = False
        try:
            w.conn.send(job)
            while True:
                msg = w.conn.recv()
                if msg[0] == "sign":
                    if sign is None:
                        w.conn.send(("err",))
                        continue
                    try:
                        w.conn.send(("sig", sign(bytes(msg[1]), msg[2])))
                    except Exception as e:  # noqa: BLE001 - re-raised below, with its precise type
                        token_error = e
                        w.conn.send(("err",))
                    continue
                healthy = True
                if msg[0] == "ok":
                    return msg[1]
                if token_error is not None:
                    raise token_error
                raise JobFailed(msg[1], msg[2])
        except (EOFError, OSError, BrokenPipeError) as e:
            raise WorkerFailed("a document worker process died; the document was not signed") from e
        finally:
            if healthy:
                self._idle.put(w)
            else:
                with self._lock:
                    self._all.remove(w)
                w.kill()
                self._spawn()

    def _run_inline(self, job: dict[str, Any], sign: SignCallback | None) -> Any:
        token_error: list[BaseException] = []

        def guarded(dgst: bytes, hash_name: str) -> bytes:
            if sign is None:
                raise _TokenFailed("no signer")
            try:
                return sign(dgst, hash_name)
            except Exception as e:
                token_error.append(e)
                raise _TokenFailed("the token refused to sign") from None

        try:
            return run_job({**job, "inline": True}, guarded)
        except Exception as e:  # noqa: BLE001
            if token_error:
                raise token_error[0] from None
            raise JobFailed(*_classify(e)) from e

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for w in workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
            w.proc.join(timeout=2)
            w.kill()
