"""Shared benchmark plumbing: timing loops, a printed table and JSON lines in bench/results/latest.jsonl."""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "latest.jsonl"


@dataclass
class Metric:
    name: str
    value: float
    unit: str
    baseline: str | None = None
    ratio: float | None = None


def rate(fn: Callable[[], object], threads: int = 1, seconds: float = 2.0, warmup: float = 0.3) -> float:
    """Calls per second of ``fn`` run by ``threads`` threads for ``seconds`` (after a warm-up)."""
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop_at = [0.0]
    t0 = [0.0]

    def arm() -> None:
        # runs once, before any thread leaves the second barrier: nobody can see stop_at == 0
        t0[0] = time.perf_counter()
        stop_at[0] = t0[0] + seconds

    go = threading.Barrier(threads + 1, action=arm)

    def worker(i: int) -> None:
        start.wait()
        end_warm = time.perf_counter() + warmup
        while time.perf_counter() < end_warm:
            fn()
        go.wait()
        n = 0
        while time.perf_counter() < stop_at[0]:
            fn()
            n += 1
        counts[i] = n

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    start.wait()
    go.wait()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0[0]
    return sum(counts) / elapsed


def latencies(fn: Callable[[], object], n: int = 500) -> tuple[float, float]:
    """(p50, p99) in milliseconds over ``n`` sequential calls."""
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t) * 1000)
    xs.sort()
    return statistics.median(xs), xs[min(len(xs) - 1, int(len(xs) * 0.99))]


class Report:
    """Collects metrics, prints a table, appends JSON lines to bench/results/latest.jsonl."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.metrics: list[Metric] = []

    def add(self, name: str, value: float, unit: str, baseline: str | None = None) -> Metric:
        ratio = None
        if baseline is not None:
            base = next(m for m in self.metrics if m.name == baseline)
            ratio = value / base.value if base.value else None
        m = Metric(name, value, unit, baseline, ratio)
        self.metrics.append(m)
        return m

    def finish(self) -> None:
        print(f"\n== {self.title} ==")
        w = max(len(m.name) for m in self.metrics)
        for m in self.metrics:
            r = f"{m.ratio:6.2f}x of {m.baseline}" if m.ratio is not None else ""
            print(f"  {m.name:<{w}}  {m.value:12.1f} {m.unit:<8} {r}")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with open(RESULTS, "a") as f:
            for m in self.metrics:
                f.write(json.dumps({"bench": self.title, "name": m.name, "value": round(m.value, 3),
                                    "unit": m.unit, "baseline": m.baseline,
                                    "ratio": None if m.ratio is None else round(m.ratio, 4),
                                    "pid": os.getpid(), "time": time.time()}) + "\n")
