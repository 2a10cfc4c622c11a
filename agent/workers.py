"""Document work (PAdES, CAdES, verification) in worker processes, away from the token-feeding threads.

Building a PAdES signature is ~20 ms of pure Python per document; in the agent process it would hold the GIL
against the threads that feed the token (DESIGN.md).  A worker never touches PKCS#11: it builds the document
with a proxy token whose ``sign_digest`` sends the digest back over the pipe, and the agent thread that owns
the conversation signs it through the normal path (policy, confirmation, deadline, token) and answers.

A worker is trusted with nothing it could abuse: the pipe carries framed bytes (:mod:`agent.jobs`), not
pickle; a job may ask for exactly one signature (a second request kills the worker and fails the job);
each job has a wall-clock limit (the agent kills a worker that overruns it) and each worker runs under
RLIMIT_AS and a per-job RLIMIT_CPU, so a hostile document costs bounded memory and time.  A worker that
died or was killed is replaced.  ``processes = 0`` runs the same jobs in the calling thread (debugging and
measuring), with the same one-signature rule.
"""

from __future__ import annotations

import asyncio
import io
import logging
import multiprocessing
import queue
import resource
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any, ClassVar, TypeVar

from .errors import DocumentTooComplex, WorkerFailed
from .jobs import FrameError, Job, JobResult, SignJob, SignRequest, VerifyJob, decode, encode, job_from_frame

log = logging.getLogger(__name__)

SignCallback = Callable[[SignRequest], bytes]
T = TypeVar("T")
MAX_FRAME = 64 * 1024 * 1024  # a result frame: a .p7s or a report, never a document


class JobFailed(Exception):
    """A job ended with an error of kind ``kind`` (InvalidDocument, SigningError, ...)."""

    REASONS: ClassVar[dict[str, str]] = {"InvalidDocument": "INVALID_DOCUMENT", "SigningError": "SIGNING_FAILED",
               "VerificationFailed": "VERIFICATION_FAILED", "FormatError": "FORMAT_ERROR",
               "InvalidOptions": "INVALID_OPTIONS"}

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.reason = self.REASONS.get(kind, "INTERNAL")


class _TokenFailed(Exception):
    """The agent reported that the token refused; the agent keeps the real exception."""


class _KeyView:
    def __init__(self, spki: bytes) -> None:
        self.public_key_der = spki


class _ProxyToken:
    """The part of hsm.Token that formats.TokenSigner uses, forwarding the one signature to the agent."""

    label = "agent"

    def __init__(self, spki: bytes, sign: Callable[[bytes, str], bytes]) -> None:
        self._spki = spki
        self._sign = sign

    def key(self, key_id: object) -> _KeyView:
        return _KeyView(self._spki)

    def sign_digest(self, key_id: object, dgst: bytes, *, hash_name: str = "sha256", scheme: object = None) -> bytes:
        return self._sign(dgst, hash_name)


_loop = threading.local()  # one event loop per thread, kept: asyncio.run() builds and tears one down per document


def _run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    loop = getattr(_loop, "loop", None)
    if loop is None or loop.is_closed():
        loop = _loop.loop = asyncio.new_event_loop()
    return loop.run_until_complete(coro)


def _pages(path: str) -> int | None:
    from formats.pdfinput import open_pdf

    with open_pdf(path, "the document to sign") as (_, reader):
        return int(reader.root["/Pages"]["/Count"])


def run_job(job: Job, sign: SignCallback) -> JobResult:
    """Do one job; ``sign(request)`` makes the token signature (at most once)."""
    import formats
    from formats.signer import TokenSigner

    if isinstance(job, VerifyJob):
        roots = list(job.trust_roots)
        if job.kind == "verify_pdf":
            report = formats.verify_pdf(job.path, roots, revocation=job.revocation, fetch_timeout=job.fetch_timeout)
        else:
            with open(job.path, "rb") as f:
                report = formats.verify_detached(f, job.signature or b"", roots, revocation=job.revocation,
                                                 fetch_timeout=job.fetch_timeout)
        return JobResult(report.to_dict())
    pages = _pages(job.in_path) if job.count_pages and job.kind == "sign_pdf" and job.in_path else None
    proxy = _ProxyToken(job.spki, lambda dgst, hash_name: sign(SignRequest(dgst, hash_name, pages)))
    signer = TokenSigner(proxy, job.key_id, certificate=job.certificate, chain=list(job.chain))  # type: ignore[arg-type]  # the proxy has what TokenSigner uses
    if job.kind == "sign_pdf":
        from formats.pades import async_sign_pdf

        if job.in_path is None or job.out_path is None:
            raise FrameError("a PDF job needs in_path and out_path")
        res = _run_coroutine(async_sign_pdf(job.in_path, job.out_path, signer,
                                            formats.PdfSignOptions(**job.pdf_options)))
        return JobResult({"field_name": res.field_name, "signer_subject": res.signer_subject, "sha256": res.sha256,
                          "size": res.size})
    from formats.cades import async_sign_detached

    with io.BytesIO(job.document) if job.document is not None else open(job.in_path or "", "rb") as f:
        p7s = _run_coroutine(async_sign_detached(f, signer, timestamp_url=job.timestamp_url))
    return JobResult({"signer_subject": signer.subject}, p7s)


def _classify(e: BaseException) -> tuple[str, str]:
    from formats.errors import FormatError

    cause: BaseException | None = e
    while cause is not None:  # pyHanko and formats wrap the token's refusal
        if isinstance(cause, _TokenFailed):
            return "TokenFailed", "the token refused to sign"
        cause = cause.__cause__ or cause.__context__
    if isinstance(e, MemoryError):
        return "TooComplex", "the document needs more memory than a worker may use"
    if isinstance(e, FormatError | FrameError):
        return type(e).__name__, str(e)
    return "Internal", f"{type(e).__name__} while processing the document"


def worker_main(conn: Connection, memory_bytes: int, job_seconds: float) -> None:
    """Entry point of a worker process: answer jobs until the pipe closes."""
    from formats import tlscontext
    from signet import logs

    logs.setup(logging.WARNING)
    tlscontext.install()  # one TLS context for the timestamp requests of every job, not one per request
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the agent decides when workers stop
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    import formats.cades  # import pyHanko once, before the first job
    import formats.pades
    import formats.verify  # noqa: F401

    def sign(request: SignRequest) -> bytes:
        conn.send_bytes(encode("sign", {"hash": request.hash_name, "pages": request.pages},
                               {"digest": request.digest}))
        kind, _, blobs = decode(conn.recv_bytes(MAX_FRAME))
        if kind == "sig":
            return blobs["signature"]
        raise _TokenFailed("the token refused to sign")

    while True:
        try:
            frame = conn.recv_bytes(MAX_FRAME)
        except (EOFError, OSError):
            return
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = int(used.ru_utime + used.ru_stime + job_seconds) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))
        try:
            kind, fields, blobs = decode(frame)
            if kind == "stop":
                return
            result = run_job(job_from_frame(fields, blobs), sign)
            conn.send_bytes(encode("ok", result.fields, {"p7s": result.p7s} if result.p7s is not None else None))
        except Exception as e:  # noqa: BLE001 - every failure goes back to the agent as a kind + message
            what, message = _classify(e)
            try:
                conn.send_bytes(encode("fail", {"kind": what, "message": message}))
            except OSError:  # the agent is gone (killed mid-job): nobody to tell, nothing to clean
                return
            if what == "TooComplex":
                return  # a worker that ran out of memory is replaced, not reused


WorkerEntry = Callable[[Connection, int, float], None]


class _Worker:
    def __init__(self, ctx: Any, memory_bytes: int, job_seconds: float, entry: WorkerEntry) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=entry, args=(child, memory_bytes, job_seconds),
                                name="signet-doc-worker", daemon=True)
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

    def __init__(self, processes: int, *, job_seconds: float = 120.0, memory_mib: int = 1024,
                 name: str = "document", entry: WorkerEntry = worker_main) -> None:
        """``entry`` is the worker processes' main function (tests give misbehaving ones)."""
        self.processes = processes
        self.entry = entry
        self.job_seconds = job_seconds
        self.memory_bytes = memory_mib * 1024 * 1024
        self.name = name
        self._ctx = multiprocessing.get_context("spawn")  # never fork a process that holds PKCS#11 state
        # most recently used first: a sequential client keeps hitting the same warm worker
        self._idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        for _ in range(processes):
            self._spawn()

    def _spawn(self) -> None:
        w = _Worker(self._ctx, self.memory_bytes, self.job_seconds, self.entry)
        with self._lock:
            self._all.append(w)
        self._idle.put(w)

    def pids(self) -> list[int]:
        with self._lock:
            return [w.proc.pid for w in self._all if w.proc.pid is not None]

    def run(self, job: Job, sign: SignCallback | None = None) -> JobResult:
        """Run ``job``; raises JobFailed (the job's error), DocumentTooComplex (over its limits), WorkerFailed,
        or the exception ``sign`` raised."""
        if self.processes == 0:
            return self._run_inline(job, sign)
        w = self._idle.get()
        state = {"healthy": False}  # set by _converse once the worker has answered as a worker should
        try:
            return self._converse(w, job, sign, state)
        finally:
            if state["healthy"]:
                self._idle.put(w)
            else:
                with self._lock:
                    self._all.remove(w)
                w.kill()
                self._spawn()

    def _converse(self, w: _Worker, job: Job, sign: SignCallback | None, state: dict[str, bool]) -> JobResult:
        deadline = time.monotonic() + self.job_seconds
        token_error: BaseException | None = None
        signed = False
        try:
            w.conn.send_bytes(job.frame())
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not w.conn.poll(left):
                    log.warning("%s worker %s went over %.0f s; replaced", self.name, w.proc.pid, self.job_seconds)
                    raise DocumentTooComplex(f"the document took longer than {self.job_seconds:.0f} s to process; "
                                             "nothing was signed")
                kind, fields, blobs = decode(w.conn.recv_bytes(MAX_FRAME))
                if kind == "sign":
                    if signed or sign is None or not isinstance(job, SignJob):
                        log.error("%s worker %s asked for an unexpected signature; stopped", self.name, w.proc.pid)
                        raise WorkerFailed("a document worker asked for a signature it may not have; it was stopped "
                                           "and the document was not signed")
                    signed = True
                    started = time.monotonic()
                    try:
                        answer = encode("sig", None, {"signature": sign(SignRequest(
                            blobs["digest"], str(fields["hash"]),
                            int(fields["pages"]) if fields.get("pages") is not None else None))})
                    except Exception as e:  # noqa: BLE001 - re-raised below, with its precise type
                        token_error = e
                        answer = encode("err")
                    deadline += time.monotonic() - started  # the signer's confirmation is not document work
                    w.conn.send_bytes(answer)
                    continue
                if kind == "ok":
                    state["healthy"] = True
                    return JobResult(fields, blobs.get("p7s"))
                if kind == "fail":
                    what, message = str(fields.get("kind")), str(fields.get("message"))
                    if what == "TooComplex":
                        raise DocumentTooComplex(f"{message}; nothing was signed")
                    state["healthy"] = True
                    if token_error is not None:
                        raise token_error
                    raise JobFailed(what, message)
                raise FrameError(f"unexpected {kind!r} from a worker")
        except (EOFError, OSError, FrameError) as e:
            if w.proc.exitcode is None:
                w.proc.join(timeout=1)
            if w.proc.exitcode in (-signal.SIGXCPU, -signal.SIGKILL):
                raise DocumentTooComplex("the document needed more time or memory than a worker may use; "
                                         "nothing was signed") from e
            raise WorkerFailed("a document worker process died; the document was not signed") from e

    def _run_inline(self, job: Job, sign: SignCallback | None) -> JobResult:
        token_error: list[BaseException] = []
        calls = 0

        def guarded(request: SignRequest) -> bytes:
            nonlocal calls
            calls += 1
            if sign is None or calls > 1:
                raise _TokenFailed("a job may make exactly one signature")
            try:
                return sign(request)
            except Exception as e:  # noqa: BLE001 - kept, re-raised by the caller with its own type
                token_error.append(e)
                raise _TokenFailed("the token refused to sign") from None

        try:
            return run_job(job, guarded)
        except Exception as e:  # the token's own error, else classified like a worker's
            if token_error:
                raise token_error[0] from None
            raise JobFailed(*_classify(e)) from e

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for w in workers:
            try:
                w.conn.send_bytes(encode("stop"))
            except OSError:
                pass
            w.proc.join(timeout=2)
            w.kill()
