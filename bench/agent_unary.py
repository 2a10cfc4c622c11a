"""Unary SignDigest through a real signet-agent against what it cannot beat, measured in the same run.

Baselines (same machine, same run):

* a bare unary gRPC call to the same agent (``GetInfo``: authentication and a small answer, no token, no
  journal), its latency with 1 client and its rate with 32;
* one fsync of a small write on the journal's disk (the durability every signature waits for);
* raw python-pkcs11 signatures/s with 1 and 2 sessions (the token's own speed).

Measured: ``SignDigest`` latency (p50/p99) and calls/s with 1, 4 and 32 concurrent clients, each client a
thread with its own channel, spread over CLIENT_PROCESSES processes so the client side's GIL is not the
limit.  Targets (issue 9): 1 client p50 <= 1.5x (GetInfo p50 + fsync p50); 32 clients >= 0.5x raw 2 sessions.

Last, the floor (bench/grpc_floor.py): the same clients against a bare gRPC server that does nothing, thread-pool
and ``grpc.aio``, its calls/s printed against P-256's raw 2 sessions: what no handler can exceed on this machine.

Every signature is released only after its journal row is durable; concurrent calls share commits (group
commit, agent/journal.py), which is what lets 32 clients go faster than one fsync per call.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from .common import BenchCA, Report, alternate
from .grpc_floor import KINDS, FloorServer

ROOT = Path(__file__).resolve().parent.parent
PIN, SO_PIN, LABEL = "1234", "12345678", "bench-unary"
SECONDS = float(os.environ.get("BENCH_SECONDS", "2.0"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CLIENT_PROCESSES = int(os.environ.get("BENCH_CLIENT_PROCESSES", "2"))
CLIENTS = (1, 4, 32)


@dataclass(frozen=True)
class Job:
    socket: str
    key_id: str
    grant: str
    threads: int
    method: str  # "SignDigest" or "GetInfo"


def _client(job: Job, out: Any) -> None:
    """One client process: ``job.threads`` threads, each with its own channel, calling ``job.method`` for
    SECONDS; puts (calls, latencies in ms) on ``out``."""
    from agent.client import Target, channel
    from signet.v1 import agent_pb2, agent_pb2_grpc
    from signet.wire import GRANT_METADATA

    threads, method = job.threads, job.method
    md = ((GRANT_METADATA, job.grant),)
    req = agent_pb2.SignDigestRequest(token=agent_pb2.TokenSelector(label=LABEL), key_id=job.key_id,
                                      digest=hashlib.sha256(b"benchmark").digest())
    lat: list[float] = []
    counts = [0] * threads
    start = threading.Barrier(threads)

    def run(i: int) -> None:
        stub = agent_pb2_grpc.AgentServiceStub(channel(Target(socket=Path(job.socket))))

        def call() -> object:
            if method == "GetInfo":
                return stub.GetInfo(agent_pb2.GetInfoRequest())
            return stub.SignDigest(req, metadata=md)

        for _ in range(20):  # warm-up: connection, first lookups
            call()
        start.wait()
        stop = time.perf_counter() + SECONDS
        mine = []
        while (t := time.perf_counter()) < stop:
            call()
            mine.append((time.perf_counter() - t) * 1000)
        counts[i] = len(mine)
        lat.extend(mine)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put((sum(counts), lat))


def load(socket: Path, key_id: str, grant: str, clients: int, method: str = "SignDigest") -> tuple[float, float,
                                                                                                    float]:
    """(calls/s, p50 ms, p99 ms) of ``clients`` concurrent clients."""
    ctx = mp.get_context("spawn")  # grpc and fork do not mix
    procs = min(CLIENT_PROCESSES, clients)
    q = ctx.Queue()
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    ps = [ctx.Process(target=_client, args=(Job(str(socket), key_id, grant, n, method), q)) for n in per]
    for p in ps:
        p.start()
    results = [q.get(timeout=SECONDS * 10 + 60) for _ in ps]
    for p in ps:
        p.join()
    calls = sum(r[0] for r in results)
    lat = sorted(x for r in results for x in r[1])
    return calls / SECONDS, statistics.median(lat), lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def fsync_ms(directory: Path, n: int = 300) -> float:
    """Median ms of rewriting a block and fdatasync-ing it on ``directory``'s disk: what a SQLite WAL commit
    pays once the WAL file has its size (SQLite syncs with fdatasync on Linux)."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b"\0" * 65536)
        os.fsync(fd)
        xs = []
        for i in range(n):
            t = time.perf_counter()
            os.pwrite(fd, b"x" * 200, (i % 16) * 4096)
            os.fdatasync(fd)
            xs.append((time.perf_counter() - t) * 1000)
        return statistics.median(xs)
    finally:
        os.close(fd)
        path.unlink()


def measure_floor(state: Path) -> dict[tuple[str, int], list[tuple[float, float, float]]]:
    """(calls/s, p50, p99) of GetInfo on a bare server (bench/grpc_floor.py), thread-pool and aio, 1 and 32 clients,
    in alternating rounds: the most any unary call can reach here."""
    out: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    for _ in range(ROUNDS):
        for kind in KINDS:
            with FloorServer(kind, state / f"floor-{kind}.sock") as server:
                for n in (1, 32):
                    out.setdefault((kind, n), []).append(load(server.socket, "", "", n, "GetInfo"))
    return out


def main() -> None:
    state = Path(tempfile.mkdtemp(prefix="signet-bench-unary-"))
    agent = None
    try:
        subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(state), LABEL, SO_PIN, PIN],
                       check=True, capture_output=True)
        os.environ["SOFTHSM2_CONF"] = str(state / "softhsm2.conf")
        from bench.hsm_sign import raw_rate
        from hsm import Hsm
        from hsm.tokens import find_raw_token
        from scripts.processes import AgentProcess
        from scripts.provision import digest_policy, provision_key
        from signet.v1 import agent_pb2

        agent = AgentProcess(state / "agent", extra_toml=digest_policy("unary-p256") + digest_policy("unary-rsa")
                             + "[unlock]\nmax_signatures = 100000000\nmax_seconds = 3600\n").start()
        stub = agent.stub()
        ca = BenchCA(state / "ca")
        keys = {"p256": provision_key(stub, LABEL, PIN, ca, algorithm="p256", key_label="unary-p256"),
                "rsa2048": provision_key(stub, LABEL, PIN, ca, algorithm="rsa-2048", key_label="unary-rsa")}
        grant = stub.Unlock(agent_pb2.UnlockRequest(token=agent_pb2.TokenSelector(label=LABEL), pin=PIN)).grant
        h = Hsm(pin_state=state / "pins.json")
        h.token(label=LABEL).login(PIN)
        with h.module.shared():
            raw_token = find_raw_token(h.module, label=LABEL)
        dgst = hashlib.sha256(b"benchmark").digest()
        journal_dir = agent.state

        report = Report("agent_unary")
        for name, key in keys.items():
            kid = bytes.fromhex(key.key_id)

            raw = partial(raw_rate, raw_token, kid, name == "rsa2048", dgst)

            lines: dict[str, list[tuple[float, float, float]]] = {}

            def measure(label: str, clients: int, method: str, key_id: str = key.key_id,
                        lines: dict[str, list[tuple[float, float, float]]] = lines) -> float:
                r = load(agent.socket, key_id, grant, clients, method)
                lines.setdefault(label, []).append(r)
                return r[0]

            variants: dict[str, Any] = {"raw 1": partial(raw, 1, SECONDS), "raw 2": partial(raw, 2, SECONDS),
                                        "fsync": partial(fsync_ms, journal_dir)}
            variants.update({f"getinfo {n}": partial(measure, f"getinfo {n}", n, "GetInfo") for n in (1, 32)})
            variants.update({f"unary {n}": partial(measure, f"unary {n}", n, "SignDigest") for n in CLIENTS})
            runs = alternate(variants, ROUNDS)

            def col(label: str, i: int, lines: dict[str, list[tuple[float, float, float]]] = lines) -> list[float]:
                return [r[i] for r in lines[label]]

            report.add(f"{name} raw 1 session", runs["raw 1"], "sig/s")
            report.add(f"{name} raw 2 sessions", runs["raw 2"], "sig/s")
            report.add(f"{name} fsync on the journal disk", runs["fsync"], "ms")
            report.add(f"{name} GetInfo 1 client p50", col("getinfo 1", 1), "ms")
            report.add(f"{name} GetInfo p50 + fsync", [a + b for a, b in zip(col("getinfo 1", 1), runs["fsync"],
                                                                               strict=True)], "ms")
            report.add(f"{name} GetInfo 32 clients", col("getinfo 32", 0), "calls/s")
            report.add(f"{name} SignDigest 1 client p50", col("unary 1", 1), "ms",
                       baseline=f"{name} GetInfo p50 + fsync")
            for n in CLIENTS:
                report.add(f"{name} SignDigest {n} clients", col(f"unary {n}", 0), "sig/s",
                           baseline=f"{name} raw 2 sessions")
                report.add(f"{name} SignDigest {n} clients p50", col(f"unary {n}", 1), "ms")
                report.add(f"{name} SignDigest {n} clients p99", col(f"unary {n}", 2), "ms")
        floor = measure_floor(state)
        for kind in KINDS:
            report.add(f"bare gRPC {kind} 1 client p50", [r[1] for r in floor[(kind, 1)]], "ms")
            for n in (1, 32):
                report.add(f"bare gRPC {kind} {n} clients", [r[0] for r in floor[(kind, n)]], "calls/s",
                           baseline="p256 raw 2 sessions")
        report.finish()
    except BaseException:
        if agent is not None:  # what the agent saw, before its directory goes
            print("agent log (last 40 lines):\n" + "\n".join(agent.log().splitlines()[-40:]), flush=True)
        raise
    finally:
        if agent is not None:
            agent.stop()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
