"""The agent side of the worker pipe: one signature per job, a wall-clock limit, memory limits, framed bytes only;
a worker that misbehaves is killed and replaced, and the call fails with a clear error."""

from __future__ import annotations

import pytest

from agent.errors import DocumentTooComplex, WorkerFailed
from agent.jobs import FrameError, SignJob, SignRequest, decode, encode, job_from_frame
from agent.workers import DocumentWorkers
from tests.unit import evil_workers

JOB = SignJob(kind="sign_detached", key_id="00", spki=b"spki", certificate=b"cert", chain=(b"ca",), document=b"doc")


def _pool(entry, **kw):
    return DocumentWorkers(1, entry=entry, **kw)


def test_a_second_signature_request_kills_the_worker_and_fails_the_job():
    signed: list[SignRequest] = []

    def sign(r: SignRequest) -> bytes:
        signed.append(r)
        return b"sig"

    pool = _pool(evil_workers.asks_twice)
    try:
        before = pool.pids()
        with pytest.raises(WorkerFailed, match="signature it may not have"):
            pool.run(JOB, sign)
        assert [r.digest for r in signed] == [b"\x01" * 32]  # the token was asked exactly once
        assert pool.pids() != before and len(pool.pids()) == 1  # killed and replaced
    finally:
        pool.close()


def test_a_job_over_its_wall_clock_limit_is_killed_and_replaced():
    pool = _pool(evil_workers.never_answers, job_seconds=1.0)
    try:
        before = pool.pids()
        with pytest.raises(DocumentTooComplex, match="longer than 1 s"):
            pool.run(JOB, lambda r: b"sig")
        assert pool.pids() != before
    finally:
        pool.close()


def test_a_malformed_frame_is_a_worker_failure_not_a_crash():
    pool = _pool(evil_workers.garbage)
    try:
        with pytest.raises(WorkerFailed):
            pool.run(JOB, lambda r: b"sig")
    finally:
        pool.close()


def test_a_worker_out_of_memory_fails_the_job_and_is_replaced():
    pool = _pool(evil_workers.eats_memory, memory_mib=256)
    try:
        before = pool.pids()
        with pytest.raises(DocumentTooComplex, match="memory"):
            pool.run(JOB, lambda r: b"sig")
        assert pool.pids() != before
    finally:
        pool.close()


def test_the_real_worker_runs_under_its_limits_and_keeps_working():
    """The real worker (spawned, pyHanko imported under RLIMIT_AS) answers a job that fails cleanly and the
    next one too: the limits leave room for real work."""
    from agent.workers import JobFailed

    pool = DocumentWorkers(1, memory_mib=1024)
    try:
        for _ in range(2):
            with pytest.raises(JobFailed) as ei:
                pool.run(SignJob(kind="sign_detached", key_id="00", spki=b"x", certificate=b"not a certificate",
                                 chain=(), document=b"doc"), lambda r: b"sig")
            assert ei.value.reason == "SIGNING_FAILED"
    finally:
        pool.close()


def test_frames_round_trip_and_refuse_anything_malformed():
    frame = JOB.frame()
    kind, fields, blobs = decode(frame)
    assert kind == "job" and job_from_frame(fields, blobs) == JOB
    assert decode(encode("sig", None, {"signature": b"\x00" * 70}))[2]["signature"] == b"\x00" * 70
    for bad in (b"", b"\x00\x00\x00\x05{}", frame[:-1], frame + b"x", b"\xff\xff\xff\xff" + frame[4:],
                b"\x00\x00\x00\x02[]"):
        with pytest.raises(FrameError):
            decode(bad)
    with pytest.raises(FrameError):
        job_from_frame({"kind": "format_disk"}, {})
