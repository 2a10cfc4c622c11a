"""The soak's moving parts: the log of acknowledged operations, the registry of load generators, one round.

A *side* is one real process under load (the agent, the server) with what it takes to start, kill -9, restart
and inspect it.  A *load generator* belongs to a side and is registered under a name with
:func:`load_generator`; later features add theirs the same way (a new module listed in
``tests.soak.soak.LOAD_MODULES``).  A generator's ``run(stop, acked)`` performs operations against the live
process until ``stop`` is set and calls ``acked.ack(...)`` for an operation only after the process answered OK,
with enough identity to find it again (the digest signed, the person id, the certificate serial).  After the
restart its ``check(state)`` returns what is missing: every operation acknowledged in this or any earlier round
must still be there.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import statistics
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc


@dataclass(frozen=True)
class Ack:
    """One operation the process answered OK: ``kind`` (what), ``key`` (its identity), extra ``data``."""

    kind: str
    key: str
    round: int
    data: dict[str, Any]


@dataclass(frozen=True)
class Failure:
    kind: str
    what: str
    round: int
    before_kill: bool  # nothing should fail while the process is alive and the load stays within its limits


def describe(e: BaseException) -> str:
    """A short, specific description of a failed call (status code, server reason, message)."""
    if isinstance(e, grpc.RpcError) and isinstance(e, grpc.Call):
        return f"{e.code().name}: {e.details()}"
    code, reason = getattr(e, "code", None), getattr(e, "reason", None)
    if isinstance(code, str):  # agent.serverlink.ServerRefused
        return f"{code} {reason or ''}: {getattr(e, 'message', e)}"
    return f"{type(e).__name__}: {e}"


class AckLog:
    """Thread-safe record of acknowledged operations and failed calls, across all rounds of one side."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._acks: list[Ack] = []
        self._failures: list[Failure] = []
        self.round = 0
        self._killed = False

    def start_round(self, number: int) -> None:
        with self._lock:
            self.round = number
            self._killed = False

    def mark_killed(self) -> None:
        with self._lock:
            self._killed = True

    @property
    def killed(self) -> bool:
        return self._killed

    def ack(self, kind: str, key: str, **data: Any) -> None:
        """Record an acknowledged operation (call only after the RPC returned OK)."""
        with self._lock:
            self._acks.append(Ack(kind, key, self.round, data))

    def failed(self, kind: str, e: BaseException) -> None:
        with self._lock:
            self._failures.append(Failure(kind, describe(e), self.round, not self._killed))

    def of(self, *kinds: str, round: int | None = None) -> list[Ack]:  # the round's number
        with self._lock:
            return [a for a in self._acks if (not kinds or a.kind in kinds) and (round is None or a.round == round)]

    def counts(self, round: int | None = None) -> Counter[str]:
        with self._lock:
            return Counter(a.kind for a in self._acks if round is None or a.round == round)

    def failures(self, round: int | None = None) -> list[Failure]:
        with self._lock:
            return [f for f in self._failures if round is None or f.round == round]


class LoadGenerator(Protocol):
    """Operations of one kind against a live process; ``threads`` copies of ``run`` go at once."""

    name: str
    threads: int

    def run(self, stop: threading.Event, acked: AckLog) -> None: ...

    def check(self, state: Any) -> list[str]:
        """After the restart: one line per acknowledged operation that is not durably there (empty: all are)."""
        ...


class Side(Protocol):
    """One process under load: start, kill -9, restart, and what the checks read afterwards."""

    name: str
    acked: AckLog

    def start(self) -> float: ...

    def begin_round(self, number: int) -> None: ...

    def kill(self) -> None: ...

    def restart(self) -> float: ...

    def state(self) -> Any: ...

    def invariants(self, state: Any) -> list[str]:
        """Checks not tied to one generator: integrity_check, leftover files, orphaned processes."""
        ...

    def round_info(self) -> dict[str, Any]:
        """Figures worth printing with the round (what the kill left behind, for instance)."""
        ...

    def close(self) -> None: ...


Factory = Callable[[Any], LoadGenerator]
_REGISTRY: dict[str, dict[str, Factory]] = {}


def load_generator(side: str, name: str) -> Callable[[Factory], Factory]:
    """Register ``factory(side_object) -> LoadGenerator`` as load ``name`` of ``side`` ("agent", "server", ...)."""
    def register(factory: Factory) -> Factory:
        per_side = _REGISTRY.setdefault(side, {})
        if name in per_side:
            raise ValueError(f"load generator {side}/{name} registered twice")
        per_side[name] = factory
        return factory

    return register


def registered(side: str) -> list[str]:
    return sorted(_REGISTRY.get(side, {}))


def generators_for(side: str, ctx: Any, only: set[str] | None = None) -> list[LoadGenerator]:
    factories = _REGISTRY.get(side, {})
    return [f(ctx) for name, f in sorted(factories.items()) if only is None or name in only]


def repeat(stop: threading.Event, acked: AckLog, kind: str, step: Callable[[], None]) -> None:
    """Call ``step`` until ``stop``; a failed call is recorded (with whether the process was still alive)."""
    while not stop.is_set():
        try:
            step()
        except Exception as e:  # every failure is recorded and judged by the round
            acked.failed(kind, e)
            stop.wait(0.05)


# -- processes ---------------------------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def orphans_of_kill(pids: list[int], wait: float = 5.0) -> list[str]:
    """Children of a killed process still alive ``wait`` seconds later (then killed, so rounds stay apart)."""
    deadline = time.monotonic() + wait
    left = [p for p in pids if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if _alive(p)]
    problems = [f"process {p} ({_cmdline(p)[:120]}) outlived the killed parent by {wait:.0f} s" for p in left]
    for p in left:
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)
    return problems


def leftover_files(directory: Path, patterns: tuple[str, ...] = ("*.tmp", ".pinguard-*")) -> list[str]:
    return sorted(str(p.relative_to(directory)) for pat in patterns for p in directory.rglob(pat))


def integrity(path: Path) -> list[str]:
    """``PRAGMA integrity_check`` and ``foreign_key_check`` of a SQLite file, read-only."""
    import sqlite3

    if not path.exists():
        return [f"{path.name}: missing"]
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()
    problems = [] if rows == ["ok"] else [f"{path.name}: integrity_check: {'; '.join(map(str, rows[:5]))}"]
    if fk:
        problems.append(f"{path.name}: foreign_key_check: {fk[:5]}")
    return problems


@contextlib.contextmanager
def read_only(path: Path, sealer: Any = None) -> Iterator[Any]:
    """A read-only connection; with the server's ``server.store.fields.FieldSealer``, sealed fields read opened."""
    import sqlite3

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    if sealer is None:
        conn.row_factory = sqlite3.Row
    else:
        from server.store.fields import is_sealed

        conn.row_factory = lambda cur, row: sqlite3.Row(cur, tuple(sealer.open(v) if is_sealed(v) else v for v in row))
    try:
        yield conn
    finally:
        conn.close()


# -- one round ---------------------------------------------------------------------------------------------------
@dataclass
class RoundReport:
    side: str
    number: int
    load_seconds: float = 0.0
    acked: Counter[str] = field(default_factory=Counter)
    failed_after_kill: int = 0
    unexpected: list[str] = field(default_factory=list)  # failures while the process was alive
    restart_seconds: float | None = None
    checked: int = 0
    check_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unexpected

    def line(self, rounds: int) -> str:
        acked = " ".join(f"{k}={v}" for k, v in sorted(self.acked.items())) or "nothing"
        restart = "-" if self.restart_seconds is None else f"{self.restart_seconds:.2f} s"
        info = "".join(f" | {k} {v}" for k, v in self.info.items())
        verdict = "ok" if self.ok else f"{len(self.problems)} problem(s), {len(self.unexpected)} unexpected failure(s)"
        return (f"round {self.number}/{rounds} {self.side:6s} killed after {self.load_seconds:4.1f} s | acked {acked} "
                f"| in flight at kill {self.failed_after_kill}{info} | restart {restart} | checked {self.checked} "
                f"acked in {self.check_seconds:.1f} s: {verdict}")


def run_round(side: Side, generators: list[LoadGenerator], number: int, seconds: float,
              rng: random.Random) -> RoundReport:
    """Load, kill -9 at a random moment, restart, check everything acknowledged so far."""
    rep = RoundReport(side.name, number)
    acked = side.acked
    acked.start_round(number)
    side.begin_round(number)
    stop = threading.Event()
    crashed: list[str] = []

    def guarded(g: LoadGenerator) -> None:
        try:
            g.run(stop, acked)
        except Exception:  # a bug in a generator must show, not end the soak silently
            crashed.append(f"generator {g.name} crashed: {traceback.format_exc(limit=5)}")

    threads = [threading.Thread(target=guarded, args=(g,), name=f"soak-{side.name}-{g.name}-{i}", daemon=True)
               for g in generators for i in range(g.threads)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(rng.uniform(0.3, 1.0) * seconds)
    acked.mark_killed()
    side.kill()
    rep.load_seconds = time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join(timeout=120)
        if t.is_alive():
            rep.problems.append(f"{t.name} did not stop within 120 s of the kill")
    rep.problems += crashed
    rep.acked = acked.counts(number)
    fails = acked.failures(number)
    rep.failed_after_kill = sum(1 for f in fails if not f.before_kill)
    rep.unexpected = [f"{f.kind}: {f.what}" for f in fails if f.before_kill]
    try:
        rep.restart_seconds = side.restart()
    except Exception as e:  # a process that does not come back is the worst finding
        rep.problems.append(f"restart failed: {describe(e)}")
        return rep
    t1 = time.monotonic()
    try:
        state = side.state()
        rep.problems += side.invariants(state)
        for g in generators:
            rep.problems += g.check(state)
    except Exception:
        rep.problems.append(f"check crashed: {traceback.format_exc(limit=5)}")
    rep.checked = len(acked.of())
    rep.info = side.round_info()
    rep.check_seconds = time.monotonic() - t1
    return rep


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
