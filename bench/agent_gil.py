"""Why PAdES work runs in worker processes: streaming RSA-2048 signatures/s through the agent while two
clients keep signing PDFs, with document work in 2 worker processes vs. in the agent's own threads.

DESIGN.md measured a signing thread falling from ~1,650 to ~82 sig/s next to one CPU-busy Python
thread; this puts a number on the agent's design choice (pdf_workers).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from .agent_sign import LABEL, PIN, SO_PIN, stream_rate
from .common import BenchCA, Report

ROOT = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("BENCH_SECONDS", "2.0"))


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="signet-bench-gil-"))
    try:
        subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(state), LABEL, SO_PIN, PIN],
                       check=True, capture_output=True)
        os.environ["SOFTHSM2_CONF"] = str(state / "softhsm2.conf")
        from formats.samplepdf import make_contract_pdf
        from scripts.processes import AgentProcess
        from scripts.provision import digest_policy, provision_key, sign_pdf_call
        from signet.v1 import agent_pb2

        pdf = state / "contract.pdf"
        make_contract_pdf(pdf, "Benchmark contract", ["Alice Example", "Bob Example"], pages=3)
        report = Report("agent_gil")
        ca = BenchCA(state / "ca")
        keys: dict[str, str] = {}
        for workers in (2, 0):
            agent = AgentProcess(state / f"agent-{workers}", agent_settings=f"pdf_workers = {workers}",
                                 extra_toml=digest_policy("rsa") + "[unlock]\nmax_signatures = 100000000\n").start()
            try:
                stub = agent.stub()
                if not keys:
                    keys["rsa"] = provision_key(stub, LABEL, PIN, ca, algorithm="rsa-2048", key_label="rsa").key_id
                    keys["p256"] = provision_key(stub, LABEL, PIN, ca, key_label="p256").key_id
                grant = stub.Unlock(agent_pb2.UnlockRequest(token=agent_pb2.TokenSelector(label=LABEL), pin=PIN)).grant
                alone = stream_rate(stub, keys["rsa"], 1, SECONDS, grant=grant)
                stop = threading.Event()
                docs = [0]

                def pdf_client(stub: Any, stop: threading.Event, docs: list[int], grant: str) -> None:
                    while not stop.is_set():
                        sign_pdf_call(stub, pdf, LABEL, keys["p256"], grant=grant)
                        docs[0] += 1

                ts = [threading.Thread(target=pdf_client, args=(stub, stop, docs, grant)) for _ in range(2)]
                for t in ts:
                    t.start()
                busy = stream_rate(stub, keys["rsa"], 1, SECONDS, grant=grant)
                stop.set()
                for t in ts:
                    t.join()
                where = f"{workers} worker processes" if workers else "agent threads"
                report.add(f"rsa2048 stream alone (PDF work in {where})", alone, "sig/s")
                report.add(f"rsa2048 stream + 2 PDF clients ({where})", busy, "sig/s",
                           baseline=f"rsa2048 stream alone (PDF work in {where})")
                report.add(f"PDFs signed meanwhile ({where})", docs[0] / SECONDS, "docs/s")
            finally:
                agent.stop()
        report.finish()
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
