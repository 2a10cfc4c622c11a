"""Signatures/s and PAdES documents/s through a real signet-agent, next to raw python-pkcs11 in the same run.

Measured on one SoftHSM token in its own directory:

* raw python-pkcs11, 1 and 2 sessions (the baseline; same mechanisms as hsm/);
* (unary SignDigest has its own benchmark: bench/agent_unary.py);
* SignDigestStream, 1 and 2 streams, batches of 64 digests (and 1 stream of 256-digest batches), 4 batches
  in flight per stream;
* PAdES-B-B ms/document: SignPdf through the agent (document work in its worker processes) next to
  formats.sign_pdf in this process with the same token; the agent call as the `signet` CLI makes it (the
  small PDF inline in the header, the signed PDF inline in the result) and in the chunked framing of
  clients that predate inline transfers.

Every variant runs once per round, rounds alternate (BENCH_ROUNDS, default 3), medians are reported with
their spread.  The client runs in this process, on the same 2 cores as the agent: its CPU time is part of
what the agent figures pay and the raw baseline does not.

Targets (issue 3): streaming >= 0.90x raw 2 sessions; PAdES through the agent <= 1.15x in-process time.

``BENCH_ONLY=pades`` runs only the PAdES part (for measuring document overhead without the digest rates).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from .common import BenchCA, Report, alternate, rate

ROOT = Path(__file__).resolve().parent.parent
PIN, SO_PIN, LABEL = "1234", "12345678", "bench-agent"
SECONDS = float(os.environ.get("BENCH_SECONDS", "2.0"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
BATCH, BIG_BATCH, IN_FLIGHT = 64, 256, 4
ONLY = os.environ.get("BENCH_ONLY", "")


def _softhsm(state: Path) -> None:
    subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(state), LABEL, SO_PIN, PIN],
                   check=True, capture_output=True)
    os.environ["SOFTHSM2_CONF"] = str(state / "softhsm2.conf")


def stream_rate(stub: Any, key_id: str, streams: int, seconds: float, batch: int = BATCH, *,
                grant: str | None = None) -> float:
    """Signatures/s over ``streams`` concurrent SignDigestStream calls with bounded batches in flight
    (presenting the unlock ``grant`` handle when given)."""
    from scripts.provision import with_grant
    from signet.v1 import agent_pb2

    digests = [hashlib.sha256(b"%d" % i).digest() for i in range(batch)]
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

        for r in stub.SignDigestStream(reqs(), metadata=with_grant(grant) if grant else None):
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


def _cpu_seconds(pids: list[int]) -> float:
    """CPU seconds used so far by this process and by ``pids`` (user + system)."""
    t = os.times()
    total = t.user + t.system
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="signet-bench-agent-"))
    agent = None
    try:
        _softhsm(state)
        import formats
        from agent import client
        from bench.hsm_sign import raw_rate
        from formats.samplepdf import make_contract_pdf
        from hsm import Hsm
        from hsm.tokens import find_raw_token
        from scripts.processes import AgentProcess
        from scripts.provision import digest_policy, provision_key, sign_pdf_call
        from signet.v1 import agent_pb2

        # raw digests only for keys a policy rule allows them; one grant (below) for the whole run
        policy = digest_policy("bench-rsa") + digest_policy("bench-p256")
        agent = AgentProcess(state / "agent", agent_settings="pdf_workers = 2",
                             extra_toml=policy + "[unlock]\nmax_signatures = 100000000\nmax_seconds = 3600\n").start()
        stub = agent.stub()
        ca = BenchCA(state / "ca")
        keys = {"rsa2048": provision_key(stub, LABEL, PIN, ca, algorithm="rsa-2048", key_label="bench-rsa"),
                "p256": provision_key(stub, LABEL, PIN, ca, algorithm="p256", key_label="bench-p256")}
        grant = stub.Unlock(agent_pb2.UnlockRequest(token=agent_pb2.TokenSelector(label=LABEL), pin=PIN)).grant

        h = Hsm(pin_state=state / "pins.json")
        tok = h.token(label=LABEL)
        tok.login(PIN)
        with h.module.shared():
            raw_token = find_raw_token(h.module, label=LABEL)
        dgst = hashlib.sha256(b"benchmark document").digest()
        report = Report("agent_sign")
        for name, key in keys.items() if ONLY != "pades" else ():
            kid = bytes.fromhex(key.key_id)

            raw = partial(raw_rate, raw_token, kid, name == "rsa2048", dgst)

            variants: dict[str, Callable[[], float]] = {f"raw {n}": partial(raw, n, SECONDS) for n in (1, 2)}
            variants.update({f"stream {n}": partial(stream_rate, stub, key.key_id, n, SECONDS, grant=grant)
                             for n in (1, 2)})
            variants["stream big"] = partial(stream_rate, stub, key.key_id, 1, SECONDS, BIG_BATCH, grant=grant)
            runs = alternate(variants, ROUNDS)
            report.add(f"{name} raw 1 session", runs["raw 1"], "sig/s")
            report.add(f"{name} raw 2 sessions", runs["raw 2"], "sig/s")
            report.add(f"{name} agent stream 1 (batch {BATCH})", runs["stream 1"], "sig/s",
                       baseline=f"{name} raw 2 sessions")
            report.add(f"{name} agent stream 2 (batch {BATCH})", runs["stream 2"], "sig/s",
                       baseline=f"{name} raw 2 sessions")
            report.add(f"{name} agent stream 1 (batch {BIG_BATCH})", runs["stream big"], "sig/s",
                       baseline=f"{name} raw 2 sessions")

        # PAdES-B-B: in-process pyHanko with the same token vs. SignPdf through the agent, alternating
        key = keys["p256"]
        pdf = state / "contract.pdf"
        make_contract_pdf(pdf, "Benchmark contract", ["Alice Example", "Bob Example"], pages=3)
        signer = formats.TokenSigner(tok, key.key_id)
        n_docs = int(os.environ.get("BENCH_DOCS", "40"))

        assert agent.proc is not None  # started above
        # the agent and its document workers, from "(signing workers: [..], verification workers: [..])"
        workers = agent.log().split("signing workers:")[1].splitlines()[0].split("verification workers:")[0]
        agent_pids = [agent.proc.pid] + [int(x) for x in re.findall(r"\d+", workers)]
        cpu: dict[str, list[float]] = {"inproc": [], "agent": [], "chunked": []}
        signing = client.AgentClient(client.Target(socket=agent.socket))

        def sign_inline(i: int = 0) -> None:
            # as the CLI sends it: inline when small, on a single-threaded channel; the output kept in memory
            header = agent_pb2.SignPdfHeader(token=agent_pb2.TokenSelector(label=LABEL), key_id=key.key_id)
            client.receive(signing.sign_responses("pdf", header, pdf, grant=grant), io.BytesIO())

        def per_doc(fn: Any, pids: list[int]) -> tuple[float, float]:
            """(median wall ms per document, CPU ms per document of this process and ``pids``) over a block."""
            times = []
            c0 = _cpu_seconds(pids)
            for i in range(n_docs):
                t = time.perf_counter()
                fn(i)
                times.append((time.perf_counter() - t) * 1000)
            return statistics.median(times), (_cpu_seconds(pids) - c0) * 1000 / n_docs

        def inproc() -> float:
            opts = formats.PdfSignOptions()
            wall, used = per_doc(lambda i: formats.sign_pdf(pdf, state / f"out-{i % 2}.pdf", signer, opts), [])
            cpu["inproc"].append(used)
            return wall

        def via_agent() -> float:
            wall, used = per_doc(sign_inline, agent_pids)
            cpu["agent"].append(used)
            return wall

        def via_agent_chunked() -> float:
            wall, used = per_doc(lambda i: sign_pdf_call(stub, pdf, LABEL, key.key_id, grant=grant), agent_pids)
            cpu["chunked"].append(used)
            return wall

        inproc(), via_agent(), via_agent_chunked()  # warm-up: workers import pyHanko lazily, signer caches
        runs = alternate({"inproc": inproc, "agent": via_agent, "chunked": via_agent_chunked}, ROUNDS)
        report.add("pades-b-b in-process ms/doc", runs["inproc"], "ms")
        report.add("pades-b-b agent ms/doc", runs["agent"], "ms", baseline="pades-b-b in-process ms/doc")
        report.add("pades-b-b agent chunked ms/doc", runs["chunked"], "ms", baseline="pades-b-b in-process ms/doc")
        # CPU time is what load from elsewhere does not change: client + agent + its workers vs. this process
        report.add("pades-b-b in-process CPU ms/doc", cpu["inproc"][1:], "ms")
        report.add("pades-b-b agent CPU ms/doc (all processes)", cpu["agent"][1:], "ms",
                   baseline="pades-b-b in-process CPU ms/doc")
        report.add("pades-b-b agent chunked CPU ms/doc (all processes)", cpu["chunked"][1:], "ms",
                   baseline="pades-b-b in-process CPU ms/doc")
        report.add("pades-b-b agent 2 clients docs/s", rate(sign_inline, 2, SECONDS), "docs/s")
        tok.logout()
        report.finish()
    finally:
        if agent is not None and agent.alive:
            agent.stop()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
