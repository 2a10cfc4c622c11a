"""Crash soak of signet-agent and signet-server: N rounds of mixed load, kill -9 at a random moment, restart,
and checks that every acknowledged operation is durably there.

    python -m tests.soak.soak --rounds N [--seconds-per-round S] [--seed X] [--side agent|server]
                              [--workdir DIR] [--keep] [--json FILE]

Prints one line per round and side (what was acknowledged, how many calls were in flight at the kill, the
restart time, how many acknowledged operations were checked) with any problem under it, then a summary.  Exits
1 when anything acknowledged was lost, a check failed, or a call failed while the process was alive.

Load generators are registered per side with :func:`tests.soak.framework.load_generator`; a feature adds its
operations with a module listed in ``LOAD_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .framework import RoundReport, Side, describe, generators_for, p50, run_round

ROOT = Path(__file__).resolve().parents[2]
LOAD_MODULES = ("tests.soak.agent_load", "tests.soak.server_load", "tests.soak.envelope_load")
SIDES = ("agent", "server")
SO_PIN, USER_PIN = "12345678", "pin-Qx7k"


@dataclass(frozen=True)
class Token:
    label: str
    pin: str


TokenFactory = Callable[[str], Any]  # prefix -> an initialised token with .label and .pin


class SoftHsmDir:
    """A private SoftHSM token directory for a standalone run (SOFTHSM2_CONF is set for this process and the
    agent and server it starts)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        os.environ["SOFTHSM2_CONF"] = str(directory / "softhsm2.conf")
        self._n = itertools.count(1)

    def __call__(self, prefix: str) -> Token:
        label = f"{prefix}-{os.getpid()}-{next(self._n)}"
        subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(self.dir), label, SO_PIN, USER_PIN],
                       check=True, stdout=subprocess.DEVNULL)
        return Token(label, USER_PIN)


@dataclass
class SoakReport:
    seed: int
    rounds: int
    seconds_per_round: float
    sides: tuple[str, ...]
    reports: list[RoundReport] = field(default_factory=list)
    first_start: dict[str, float] = field(default_factory=dict)
    totals: dict[str, Counter[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # outside any round: start, clean stop
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and all(r.ok for r in self.reports)

    def restarts(self, side: str) -> list[float]:
        return [r.restart_seconds for r in self.reports if r.side == side and r.restart_seconds is not None]

    def summary(self) -> list[str]:
        lines = [f"soak: {self.rounds} round(s) x {'+'.join(self.sides)} in {self.elapsed:.0f} s "
                 f"(seed {self.seed}, up to {self.seconds_per_round:g} s of load per round)"]
        for side in self.sides:
            total = self.totals.get(side, Counter())
            mine = [r for r in self.reports if r.side == side]
            times = self.restarts(side)
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(total.items())) or "nothing"
            lines.append(f"  {side}: acknowledged {sum(total.values())} ({kinds})")
            lines.append(f"  {side}: in flight at the kills {sum(r.failed_after_kill for r in mine)}; restart p50 "
                         f"{p50(times):.2f} s, max {max(times, default=float('nan')):.2f} s over {len(times)} "
                         f"restart(s) (first start {self.first_start.get(side, float('nan')):.2f} s)")
        lost = sum(1 for r in self.reports for p in r.problems if p.startswith("LOST"))
        problems = sum(len(r.problems) for r in self.reports) + len(self.problems)
        unexpected = sum(len(r.unexpected) for r in self.reports)
        lines.append(f"  losses {lost}, problems {problems}, failures while alive {unexpected}: "
                     f"{'OK' if self.ok else 'FAILED'}")
        return lines

    def as_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "rounds": self.rounds, "seconds_per_round": self.seconds_per_round,
                "elapsed_seconds": round(self.elapsed, 1), "ok": self.ok, "problems": self.problems,
                "first_start_seconds": self.first_start,
                "acknowledged": {s: dict(c) for s, c in self.totals.items()},
                "restart_seconds": {s: {"p50": p50(self.restarts(s)), "max": max(self.restarts(s), default=None),
                                        "all": self.restarts(s)} for s in self.sides},
                "rounds_detail": [{"side": r.side, "round": r.number, "load_seconds": round(r.load_seconds, 2),
                                   "acked": dict(r.acked), "in_flight_at_kill": r.failed_after_kill,
                                   "restart_seconds": r.restart_seconds, "checked": r.checked,
                                   "problems": r.problems, "unexpected": r.unexpected} for r in self.reports]}


def _make_side(name: str, workdir: Path, make_token: TokenFactory, rng: random.Random) -> Side:
    if name == "agent":
        from .agent_load import AgentSide

        return AgentSide(workdir / "agent", make_token("soak-agent"), random.Random(rng.random()))
    if name == "server":
        from .server_load import ServerSide

        return ServerSide(workdir / "server", make_token("soak-server"), make_token("soak-user"),
                          random.Random(rng.random()))
    raise ValueError(f"unknown side {name!r} (known: {', '.join(SIDES)})")


def _start(name: str, workdir: Path, make_token: TokenFactory, rng: random.Random) -> tuple[Side, float]:
    side = _make_side(name, workdir, make_token, rng)
    try:
        return side, side.start()
    except BaseException:
        side.kill()  # whatever came up
        raise


def _print_round(rep: RoundReport, rounds: int, out: Callable[[str], None]) -> None:
    out(rep.line(rounds))
    for p in rep.unexpected[:10] + rep.problems[:30]:
        out(f"    {p}")
    if len(rep.problems) > 30:
        out(f"    ... and {len(rep.problems) - 30} more")


def run_soak(workdir: Path, *, rounds: int, seconds: float, seed: int, make_token: TokenFactory,
             sides: Sequence[str] = SIDES, out: Callable[[str], None] = print) -> SoakReport:
    """Run ``rounds`` rounds on each side in turn (same processes throughout); see the module docstring."""
    for m in LOAD_MODULES:
        importlib.import_module(m)
    t0 = time.monotonic()
    rng = random.Random(seed)
    report = SoakReport(seed, rounds, seconds, tuple(sides))
    started: dict[str, tuple[Side, list[Any]]] = {}
    try:
        for name in sides:
            side, report.first_start[name] = _start(name, workdir, make_token, rng)
            started[name] = (side, generators_for(name, side))
            out(f"{name}: started in {report.first_start[name]:.2f} s; load: "
                + ", ".join(f"{g.name} x{g.threads}" for g in started[name][1]))
        alive = list(started)
        for n in range(1, rounds + 1):
            for name in list(alive):
                side, gens = started[name]
                rep = run_round(side, gens, n, seconds, rng)
                report.reports.append(rep)
                _print_round(rep, rounds, out)
                if rep.restart_seconds is None:  # it did not come back: nothing more to learn from this side
                    alive.remove(name)
                    side.kill()
    finally:
        for name, (side, _) in started.items():
            report.totals[name] = side.acked.counts()
            try:
                side.close()
            except Exception as e:  # a clean stop after the soak is part of the verdict
                report.problems.append(f"{name}: clean stop failed: {describe(e)}")
        report.elapsed = time.monotonic() - t0
    for p in report.problems:
        out(f"  {p}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.soak.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds-per-round", type=float, default=4.0,
                   help="the kill comes at a random moment within 30-100 %% of this much load (default 4)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    p.add_argument("--side", action="append", choices=SIDES, help="only this side (repeatable; default both)")
    p.add_argument("--workdir", type=Path, help="keep processes' state here (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the working directory even when all is well")
    p.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = p.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="signet-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    make_token = SoftHsmDir(workdir / "softhsm")  # before anything loads the PKCS#11 module
    report = run_soak(workdir, rounds=args.rounds, seconds=args.seconds_per_round, seed=seed,
                      make_token=make_token, sides=tuple(args.side or SIDES))
    for line in report.summary():
        print(line)
    if args.json:
        args.json.write_text(json.dumps(report.as_json(), indent=2))
    if report.ok and not args.keep and not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"state kept in {workdir}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
