"""Run fuzz targets in subprocesses and report executions, coverage and findings (``make fuzz``, test_fuzz.py).

    .venv/bin/python -m tests.fuzz.driver [--runs N] [--seconds S] [--jobs J] [TARGET ...]

Each target runs ``python -m tests.fuzz.run`` under libFuzzer with its seed corpus (read only) and a work
corpus in tests/fuzz/work/<target>/ (kept between runs, git-ignored: a long run starts where the last one
stopped).  A crashing, hanging or memory-hungry input is saved in tests/fuzz/findings/<target>/ with its log
(``<artifact>.log``); the run then goes on with what is left of its budget, up to ``--max-findings`` distinct
findings per target.  Figures come from libFuzzer's own output: executions (``stat::number_of_executed_units``,
summed over restarts), ``cov`` (coverage edges of the instrumented Python code) and ``ft`` (features).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .env import ROOT, WORKDIR_ENV
from .known import SEEN_ENV
from .run import SHALLOW_ENV
from .targets import TARGETS

HERE = Path(__file__).resolve().parent
FINDINGS = HERE / "findings"
WORK = HERE / "work"
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable

MAX_RESTARTS = 25  # libFuzzer stops at each finding; the driver starts it again with what is left of the budget
_COV = re.compile(r"cov: (\d+) ft: (\d+)(?: corp: (\d+)/)?")
_EXECS = re.compile(r"stat::number_of_executed_units: (\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_KIND = re.compile(r"ERROR: libFuzzer: ([\w-]+)|==\d+== ERROR: libFuzzer: (.+)")


@dataclass
class Finding:
    target: str
    path: Path
    kind: str  # crash (an exception or a contract Finding), timeout, oom ...
    summary: str  # the exception line, or libFuzzer's error
    log: Path
    signature: str = ""


@dataclass
class Outcome:
    target: str
    executions: int = 0
    cov: int = 0
    ft: int = 0
    corpus: int = 0
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    error: str = ""  # the fuzzer did not run (set-up failed)
    logs: list[Path] = field(default_factory=list)

    @property
    def exec_per_second(self) -> float:
        return self.executions / self.seconds if self.seconds else 0.0


def _summary(output: str) -> tuple[str, str]:
    """(kind, one line) of what ended a libFuzzer run."""
    kind = "crash"
    m = _KIND.search(output)
    if m:
        what = (m.group(1) or m.group(2) or "").strip()
        if "timeout" in what:
            kind = "timeout"
        elif "out-of-memory" in what or "malloc" in what:
            kind = "oom"
    if "=== Uncaught Python exception: ===" in output:
        after = output.split("=== Uncaught Python exception: ===", 1)[1].strip().splitlines()
        return kind, after[0][:300] if after else "uncaught Python exception"
    return kind, (m.group(0).strip() if m else "libFuzzer stopped")[:300]


def _signature(log_text: str) -> str:
    """What the target printed (tests.fuzz.known.signature), else libFuzzer's own verdict (a hang, memory)."""
    sigs = re.findall(r"^signature: (.+)$", log_text, re.M)
    if sigs:
        return sigs[-1].strip()
    kind, line = _summary(log_text)
    generic = re.sub(r"[0-9a-f]{8,}|\d+", "#", line)
    return f"{kind}: {generic}"


@dataclass(frozen=True)
class _Settings:
    found_dir: Path
    corpus: Path
    tmp_parent: Path
    input_timeout: int
    rss_limit_mb: int
    shallow: bool
    seed: int  # libFuzzer -seed (0: a random one)


def _libfuzzer(name: str, st: _Settings, left_runs: int, left_seconds: int, seen: set[str]) -> str:
    """One libFuzzer process over ``name`` (until its budget ends or it finds something): its output."""
    target = TARGETS[name]
    workdir = Path(tempfile.mkdtemp(prefix=f"signet-fuzz-{name}-", dir=st.tmp_parent))
    args = [PYTHON, "-m", "tests.fuzz.run", name, str(st.corpus), *(str(p) for p in target.seeds if p.is_dir()),
            f"-artifact_prefix={st.found_dir}/", f"-max_len={target.max_len}", f"-timeout={st.input_timeout}",
            f"-rss_limit_mb={st.rss_limit_mb}", "-print_final_stats=1", f"-runs={left_runs}", f"-seed={st.seed}"]
    if left_seconds:
        args.append(f"-max_total_time={left_seconds}")
    env = {**os.environ, WORKDIR_ENV: str(workdir), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    if st.shallow:
        env[SHALLOW_ENV] = "1"
    if seen:
        env[SEEN_ENV] = "\n".join(sorted(seen))
    try:
        proc = subprocess.run(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              check=False, timeout=(left_seconds + 600) if left_seconds else None)
        return proc.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        return (e.stdout or b"").decode("utf-8", "replace") + "\n(killed: the run overran its budget)\n"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _count(out: Outcome, text: str) -> bool:
    """Add one run's figures to ``out``; False when it executed nothing (set-up failed)."""
    execs = [int(x) for x in _EXECS.findall(text)]
    out.executions += execs[-1] if execs else 0
    cov = _COV.findall(text)
    if cov:
        out.cov, out.ft = max(out.cov, int(cov[-1][0])), max(out.ft, int(cov[-1][1]))
        out.corpus = int(cov[-1][2] or out.corpus)
    return bool(execs or cov)


def run_target(name: str, *, runs: int = 0, seconds: int = 0, jobs_dir: Path | None = None,
               findings_dir: Path = FINDINGS, work_dir: Path = WORK, input_timeout: int = 60,
               rss_limit_mb: int = 3072, max_findings: int = 3, quiet: bool = True, shallow: bool = False,
               log_dir: Path | None = None, seed: int = 0) -> Outcome:
    """Fuzz ``name`` for ``runs`` executions and/or ``seconds`` (0: no limit on that axis; not both 0).

    Crashing inputs and their logs go to ``findings_dir/name``, the full output of each libFuzzer run to
    ``log_dir`` (default: the findings directory too); ``shallow`` instruments our packages only; ``seed``
    fixes libFuzzer's random seed (CI: the same mutations every time, as far as the time budget goes).
    """
    if not runs and not seconds:
        raise ValueError("give runs or seconds")
    st = _Settings(findings_dir / name, work_dir / name, jobs_dir or Path(tempfile.gettempdir()), input_timeout,
                   rss_limit_mb, shallow, seed)
    logs = log_dir or st.found_dir
    for d in (st.found_dir, st.corpus, logs):
        d.mkdir(parents=True, exist_ok=True)
    out = Outcome(name)
    signatures: set[str] = set()
    started = time.monotonic()
    for _ in range(MAX_RESTARTS):
        left_runs = runs - out.executions if runs else -1
        left_seconds = max(1, int(seconds - (time.monotonic() - started))) if seconds else 0
        if (runs and left_runs <= 0) or (seconds and time.monotonic() - started >= seconds):
            break
        text = _libfuzzer(name, st, left_runs, left_seconds, signatures)
        log_path = logs / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        log_path.write_text(text)
        out.logs.append(log_path)
        ran = _count(out, text)
        artifacts = _ARTIFACT.findall(text)
        if not artifacts:
            if not ran:
                out.error = text[-3000:]
            elif not quiet:
                print(f"[{name}] {out.executions} executions, cov {out.cov} ft {out.ft}", flush=True)
            break
        artifact = Path(artifacts[-1])
        kind, line = _summary(text)
        sig = _signature(text)
        artifact.with_name(artifact.name + ".log").write_text(text[-20000:])
        if sig not in signatures:
            signatures.add(sig)
            out.findings.append(Finding(name, artifact, kind, line, artifact.with_name(artifact.name + ".log"), sig))
            if not quiet:
                print(f"[{name}] FINDING ({kind}) {sig}\n    {line}\n    input: {artifact}", flush=True)
        elif kind != "crash":  # a repeated hang or out-of-memory: the target cannot skip it; stop here
            break
        if len(out.findings) >= max_findings:
            break
    out.seconds = time.monotonic() - started
    return out


def report(outcomes: list[Outcome]) -> str:
    rows = [f"{'target':<16}{'executions':>12}{'exec/s':>9}{'cov':>7}{'ft':>8}{'corpus':>8}{'time':>9}  findings"]
    for o in outcomes:
        status = "setup failed (see log)" if o.error else (str(len(o.findings)) if o.findings else "none")
        rows.append(f"{o.target:<16}{o.executions:>12,}{o.exec_per_second:>9.0f}{o.cov:>7}{o.ft:>8}{o.corpus:>8}"
                    f"{o.seconds:>8.0f}s  {status}")
    for o in outcomes:
        for f in o.findings:
            rows.append(f"\n{f.target}: {f.kind}: {f.signature}\n    {f.summary}\n    input: {f.path}\n"
                        f"    log:   {f.log}\n"
                        f"    replay: {PYTHON} -m tests.fuzz.run {f.target} --replay {f.path}")
        if o.error:
            rows.append(f"\n{o.target}: the fuzzer did not start; last output:\n{o.error}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="*", help=f"default: all ({', '.join(TARGETS)})")
    p.add_argument("--runs", type=int, default=int(os.environ.get("FUZZ_RUNS") or 1_000_000),
                   help="executions per target (FUZZ_RUNS; default 1,000,000; 0: no limit)")
    p.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS") or 0),
                   help="time limit per target (FUZZ_SECONDS; default none)")
    p.add_argument("--jobs", type=int, default=int(os.environ.get("FUZZ_JOBS") or 2),
                   help="targets fuzzed at once (FUZZ_JOBS; default 2)")
    p.add_argument("--max-findings", type=int, default=3, help="distinct findings per target before it stops")
    p.add_argument("--timeout", type=int, default=60, help="seconds one input may take before it is a hang")
    a = p.parse_args(argv)
    names = a.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        p.error(f"unknown target(s) {unknown}; targets: {', '.join(TARGETS)}")
    if not a.runs and not a.seconds:
        p.error("give --runs or --seconds (FUZZ_RUNS / FUZZ_SECONDS)")
    print(f"fuzzing {len(names)} target(s), {a.jobs} at a time: "
          f"{f'{a.runs:,} executions' if a.runs else ''}{' or ' if a.runs and a.seconds else ''}"
          f"{f'{a.seconds} s' if a.seconds else ''} each; findings go to {FINDINGS.relative_to(ROOT)}/", flush=True)
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
        outcomes = list(pool.map(lambda n: run_target(n, runs=a.runs, seconds=a.seconds, quiet=False,
                                                      max_findings=a.max_findings, input_timeout=a.timeout),
                                 names))
    print(report(outcomes), flush=True)
    return 1 if any(o.findings or o.error for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
