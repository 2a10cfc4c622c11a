"""Run every benchmark module (bench/<name>_<what>.py), each in its own process, and collect their JSON lines.

Each module's ``main()`` prints a table and appends to bench/results/latest.jsonl, which this
runner empties first.  A separate process per module matters: a module sets SOFTHSM2_CONF for
its own token directory before it loads PKCS#11, which a process can do only once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .common import RESULTS

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"common", "run_all", "grpc_floor"}  # grpc_floor: a server agent_unary drives


def modules() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*_*.py") if p.stem not in NOT_BENCHMARKS and not p.stem.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    """Run all benchmark modules, or those named on the command line."""
    wanted = set(argv if argv is not None else sys.argv[1:])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("")
    failed = []
    for name in modules():
        if wanted and name not in wanted:
            continue
        print(f"-- bench.{name}", flush=True)
        rc = subprocess.run([sys.executable, "-c", f"import bench.{name} as m; m.main()"],
                            cwd=HERE.parent).returncode
        if rc != 0:
            failed.append(name)
    print(f"\nresults: {RESULTS}")
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
