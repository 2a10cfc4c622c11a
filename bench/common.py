"""Shared benchmark plumbing: timing loops, alternating rounds, a printed table and JSON lines.

Every figure is the median of ``BENCH_ROUNDS`` rounds in which the measured variants take turns
(raw baseline, then the path under test, then the baseline again...), so that load from elsewhere on
the machine hits all of them alike; the table shows the spread (min..max) and the load average at the
start and the end, and the JSON lines (bench/results/latest.jsonl) carry the same.
"""

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
    samples: tuple[float, ...] = ()
    quiet: bool = False  # in the JSON lines only (a module prints its own table of them)


def alternate(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run every variant once per round, in the given order, ``rounds`` times; the measurements per name."""
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            runs[name].append(fn())
    return runs


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


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


def percentiles(values: list[float], qs: tuple[int, ...]) -> tuple[float, ...]:
    """The ``qs`` percentiles of ``values`` (nearest rank; nan when there are none)."""
    xs = sorted(values)
    if not xs:
        return tuple(float("nan") for _ in qs)
    return tuple(xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs)) - 1))] for q in qs)


class Report:
    """Collects metrics, prints a table, appends JSON lines to bench/results/latest.jsonl."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.metrics: list[Metric] = []
        self.load_start = load()
        if os.getloadavg()[0] >= 1.0:  # a 1-minute average: it includes the benchmark that ran just before
            print(f"note: load average {self.load_start} at the start of {title} (figures are noisier above 1)",
                  flush=True)

    def add(self, name: str, value: float | list[float], unit: str, baseline: str | None = None, *,
            quiet: bool = False) -> Metric:
        """A figure (a list of per-round measurements is reported as its median, with its spread); a ``quiet``
        one is not printed in the table, only written to the JSON lines."""
        samples: tuple[float, ...] = ()
        if isinstance(value, list):
            samples = tuple(value)
            value = statistics.median(value)
        ratio = None
        if baseline is not None:
            base = next(m for m in self.metrics if m.name == baseline)
            ratio = value / base.value if base.value else None
        m = Metric(name, value, unit, baseline, ratio, samples, quiet)
        self.metrics.append(m)
        return m

    def finish(self) -> None:
        load_end = load()
        print(f"\n== {self.title} == (load average {self.load_start} at start, {load_end} at end)")
        shown = [m for m in self.metrics if not m.quiet]
        w = max(len(m.name) for m in shown)
        for m in shown:
            spread = f"[{min(m.samples):.1f}..{max(m.samples):.1f}]" if len(m.samples) > 1 else ""
            r = f"{m.ratio:6.2f}x of {m.baseline}" if m.ratio is not None else ""
            print(f"  {m.name:<{w}}  {m.value:12.1f} {m.unit:<8} {spread:<22} {r}")
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with open(RESULTS, "a") as f:
            for m in self.metrics:
                f.write(json.dumps({"bench": self.title, "name": m.name, "value": round(m.value, 3),
                                    "unit": m.unit, "baseline": m.baseline,
                                    "ratio": None if m.ratio is None else round(m.ratio, 4),
                                    "rounds": [round(x, 3) for x in m.samples],
                                    "load": [self.load_start, load_end],
                                    "pid": os.getpid(), "time": time.time()}) + "\n")


class BenchCA:
    """A throwaway CA (scripts.demo_ca) for the keys a benchmark certifies through the agent's API."""

    def __init__(self, directory: Path) -> None:
        from scripts.demo_ca import DemoCA

        self._ca = DemoCA(directory, "Signet Benchmark Root CA")

    @property
    def root_der(self) -> bytes:
        return self._ca.root_der

    def issue_from_csr(self, csr_der: bytes) -> bytes:
        return self._ca.issue(csr_der)
