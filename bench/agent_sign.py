"""Signatures/s and PAdES documents/s through a real signet-agent, next to raw python-pkcs11 in the same run.

Measured on one SoftHSM token in its own directory:

* raw python-pkcs11, 1 and 2 sessions (the baseline; same mechanisms as hsm/);
* SignDigest (unary), 1 and 4 client threads, with p50/p99 latency;
* SignDigestStream, 1 and 2 streams, batches of 64 digests, 4 batches in flight per stream;
* PAdES-B-B ms/document: SignPdf through the agent (document work in its worker processes) next to
  formats.sign_pdf in this process with the same token.

Targets (issue 3): streaming >= 0.90x raw 2 sessions; PAdES through the agent <= 1.15x in-process time.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .common import Report, latencies, rate

ROOT = Path(__file__).resolve().parent.parent
PIN, SO_PIN, LABEL = "1234", "12345678", "bench-agent"
SECONDS = float(os.environ.get("BENCH_SECONDS", "2.0"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BATCH, IN_FLIGHT = 64, 4


def _softhsm(state: Path) -> None:
    subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(state), LABEL, SO_PIN, PIN],
                   check=True, capture_output=True)
    os.environ["SOFTHSM2_CONF"] = str(state / "softhsm2.conf")


def stream_rate(stub: Any, key_id: str, streams: int, seconds: float) -> float:
    """Signatures/s over ``streams`` concurrent SignDigestStream calls with bounded batches in flight."""
    from signet.v1 import agent_pb2

    digests = [hashlib.sha256(b"%d" % i).digest() for i in range(BATCH)]
    counts = [0] * streams
    stop = threading.Event()
    measuring = threading.Event()

    def one(i: int) -> None:
        window = threading.Semaphore(IN_FLIGHT)

        def reqs():
            first = True
            while not stop.is_set():
                window.acquire()
                yield agent_pb2.SignDigestStreamRequest(
                    token=agent_pb2.TokenSelector(label=LABEL) if first else None,
                    key_id=key_id if first else "", digests=digests)
                first = False

        for r in stub.SignDigestStream(reqs()):
            window.release()
            if measuring.is_set() and not stop.is_set():
                counts[i] += len(r.signatures)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # warm-up
    measuring.set()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - t0
    for t in threads:
        t.join()
    return sum(counts) / elapsed


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="signet-bench-agent-"))
    agent = None
    try:
        _softhsm(state)
        from signet.v1 import agent_pb2

        import formats
        from bench.hsm_sign import _raw_signer
        from formats.samplepdf import make_contract_pdf
        from hsm import Hsm
        from hsm.tokens import find_raw_token
        from tests.e2e.agent_harness import AgentProcess, provision_key, sign_pdf_call
        from tests.pki import make_ca

        agent = AgentProcess(state / "agent", agent_settings="pdf_workers = 2",
                             extra_toml="[unlock]\nmax_signatures = 100000000\nmax_seconds = 3600\n").start()
        stub = agent.stub()
        ca = make_ca()
        keys = {"rsa2048": provision_key(stub, LABEL, PIN, ca, algorithm="rsa-2048", key_label="bench-rsa"),
                "p256": provision_key(stub, LABEL, PIN, ca, algorithm="p256", key_label="bench-p256")}
        stub.Unlock(agent_pb2.UnlockRequest(token=agent_pb2.TokenSelector(label=LABEL), pin=PIN))

        h = Hsm(pin_state=state / "pins.json")
        tok = h.token(label=LABEL)
        tok.login(PIN)
        with h.module.shared():
            raw_token = find_raw_token(h.module, label=LABEL)
        dgst = hashlib.sha256(b"benchmark document").digest()
        report = Report("agent_sign")
        for name, key in keys.items():
            kid = bytes.fromhex(key.key_id)
            req = agent_pb2.SignDigestRequest(token=agent_pb2.TokenSelector(label=LABEL), key_id=key.key_id,
                                              digest=dgst)
            runs: dict[str, list[float]] = {}
            for _ in range(ROUNDS):  # interleaved rounds, medians reported
                for n in (1, 2):
                    signer = _raw_signer(raw_token, kid, name == "rsa2048", dgst)
                    runs.setdefault(f"raw {n}", []).append(rate(signer, n, SECONDS))
                    signer.close()
                for n in (1, 4):
                    runs.setdefault(f"unary {n}", []).append(rate(lambda r=req: stub.SignDigest(r), n, SECONDS))
                for n in (1, 2):
                    runs.setdefault(f"stream {n}", []).append(stream_rate(stub, key.key_id, n, SECONDS))
            med = {k: statistics.median(v) for k, v in runs.items()}
            report.add(f"{name} raw 1 session", med["raw 1"], "sig/s")
            report.add(f"{name} raw 2 sessions", med["raw 2"], "sig/s")
            report.add(f"{name} agent unary 1 client", med["unary 1"], "sig/s", baseline=f"{name} raw 1 session")
            report.add(f"{name} agent unary 4 clients", med["unary 4"], "sig/s", baseline=f"{name} raw 2 sessions")
            report.add(f"{name} agent stream 1", med["stream 1"], "sig/s", baseline=f"{name} raw 2 sessions")
            report.add(f"{name} agent stream 2", med["stream 2"], "sig/s", baseline=f"{name} raw 2 sessions")
            p50, p99 = latencies(lambda r=req: stub.SignDigest(r), 300)
            report.add(f"{name} agent unary p50", p50, "ms")
            report.add(f"{name} agent unary p99", p99, "ms")

        # PAdES-B-B: in-process pyHanko with the same token vs. SignPdf through the agent
        key = keys["p256"]
        pdf = state / "contract.pdf"
        make_contract_pdf(pdf, "Benchmark contract", ["Alice Example", "Bob Example"], pages=3)
        signer = formats.TokenSigner(tok, key.key_id)
        n_docs = int(os.environ.get("BENCH_DOCS", "40"))
        inproc, via_agent = [], []
        for _ in range(ROUNDS):
            t = time.perf_counter()
            for i in range(n_docs):
                formats.sign_pdf(pdf, state / f"out-{i % 2}.pdf", signer, formats.PdfSignOptions())
            inproc.append((time.perf_counter() - t) * 1000 / n_docs)
            t = time.perf_counter()
            for _ in range(n_docs):
                sign_pdf_call(stub, pdf, LABEL, key.key_id)
            via_agent.append((time.perf_counter() - t) * 1000 / n_docs)
        report.add("pades-b-b in-process ms/doc", statistics.median(inproc), "ms")
        report.add("pades-b-b agent ms/doc", statistics.median(via_agent), "ms",
                   baseline="pades-b-b in-process ms/doc")
        report.add("pades-b-b agent 2 clients docs/s",
                   rate(lambda: sign_pdf_call(stub, pdf, LABEL, key.key_id), 2, SECONDS), "docs/s")
        tok.logout()
        report.finish()
    finally:
        if agent is not None and agent.alive:
            agent.stop()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
