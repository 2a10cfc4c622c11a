"""Peak memory of the agent signing one large PDF (default 200 MB; BENCH_BIG_MB to change).

Reports the peak RSS (VmHWM) of the agent process and of each document worker process after one
SignPdf of the file, next to the file size, plus the wall time of upload + sign + download.  The
upload is spooled to disk in 1 MiB chunks and the result streamed back from disk, so the agent
process itself should stay far below the document size; the worker's peak is what pyHanko needs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import BenchCA, Report

ROOT = Path(__file__).resolve().parent.parent
PIN, SO_PIN, LABEL = "1234", "12345678", "bench-big"
MiB = 1 << 20


def vm_hwm(pid: int) -> float:
    """Peak resident set size of ``pid`` in MiB."""
    m = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    assert m is not None, f"no VmHWM for process {pid}"
    return int(m.group(1)) / 1024


def main() -> None:
    size_mb = int(os.environ.get("BENCH_BIG_MB", "200"))
    state = Path(tempfile.mkdtemp(prefix="signet-bench-big-"))
    agent = None
    try:
        subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(state), LABEL, SO_PIN, PIN],
                       check=True, capture_output=True)
        os.environ["SOFTHSM2_CONF"] = str(state / "softhsm2.conf")
        from scripts.processes import AgentProcess
        from scripts.provision import big_pdf, provision_key

        agent = AgentProcess(state / "agent", agent_settings=f"max_document_bytes = {(size_mb + 16) * MiB}").start()
        stub = agent.stub()
        key = provision_key(stub, LABEL, PIN, BenchCA(state / "ca"))
        src = big_pdf(state / "big.pdf", size_mb * MiB)
        assert agent.proc is not None  # started above
        agent_pid = agent.proc.pid
        base_agent = vm_hwm(agent_pid)
        workers = _document_workers(agent.log())
        t = time.perf_counter()
        res = _sign_to_file(stub, src, key.key_id, state / "signed.pdf")
        elapsed = time.perf_counter() - t
        assert res.document_sha256 == _sha256(src)
        report = Report("agent_bigpdf")
        report.add(f"document size ({size_mb} MB)", src.stat().st_size / MiB, "MiB")
        report.add("agent peak RSS before", base_agent, "MiB")
        report.add("agent peak RSS after", vm_hwm(agent_pid), "MiB")
        for i, pid in enumerate(workers):
            report.add(f"worker {i} peak RSS", vm_hwm(pid), "MiB")
        report.add("upload+sign+download", elapsed, "s")
        report.finish()
    finally:
        if agent is not None and agent.alive:
            agent.stop()
        shutil.rmtree(state, ignore_errors=True)


def _document_workers(log: str) -> list[int]:
    """The pids of the document (signing) workers, from the agent's start-up line
    "... (signing workers: [p1, p2], verification workers: [...])"."""
    line = log.split("signing workers:")[1].splitlines()[0]
    return [int(p) for p in re.findall(r"\d+", line.split("verification workers:")[0])]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(MiB):
            h.update(block)
    return h.hexdigest()


def _sign_to_file(stub: Any, src: Path, key_id: str, out: Path) -> Any:
    """SignPdf writing the result to disk as it arrives (the client must not hold 200 MB either)."""
    from agent.client import file_chunks, receive, upload
    from signet.durable import open_atomic
    from signet.v1 import agent_pb2

    h = agent_pb2.SignPdfHeader(token=agent_pb2.TokenSelector(label=LABEL), key_id=key_id,
                                credential=agent_pb2.PinCredential(pin=PIN), size=src.stat().st_size)
    with open_atomic(out, 0o644) as f:  # chunks written as they arrive; renamed into place at the end
        return receive(stub.SignPdf(upload("header", h, agent_pb2.SignPdfRequest, file_chunks(src))), f)


if __name__ == "__main__":
    main()
