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


ORPHAN = """
import datetime as dt
import multiprocessing as mp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from agent.jobs import SignJob, decode
from agent.workers import worker_main

key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Orphan")])
now = dt.datetime.now(dt.UTC)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())).public_bytes(serialization.Encoding.DER)
spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

ctx = mp.get_context("spawn")
parent, child = ctx.Pipe(duplex=True)
proc = ctx.Process(target=worker_main, args=(child, 1 << 30, 30.0))
proc.start()
child.close()
job = SignJob(kind="sign_detached", key_id="00", spki=spki, certificate=cert, chain=(), document=b"doc")
parent.send_bytes(job.frame())
kind, _, _ = decode(parent.recv_bytes())
print("worker asked:", kind, flush=True)
parent.close()  # the agent is gone (killed) while the worker waits for its signature
proc.join(30)
print("worker exit:", proc.exitcode, flush=True)
"""


def test_a_worker_whose_agent_died_exits_quietly():
    """A worker waiting for its signature when the agent is killed exits 0 without a traceback in the log."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    p = subprocess.run([sys.executable, "-c", ORPHAN], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       check=False)
    assert "worker asked: sign" in p.stdout, p.stdout + p.stderr
    assert "worker exit: 0" in p.stdout
    assert "Traceback" not in p.stderr, p.stderr
