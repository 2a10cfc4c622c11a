"""Start-up of the `signet` CLI against a bare ``import grpc, google.protobuf`` in the same venv.

The CLI is a thin client: it must not load PKCS#11, pyHanko or cryptography to print its help or to start a
command (issue target: within 1.6x of the bare import).  Each round runs both, alternately, as fresh
processes; the figure per round is the fastest of a few runs (start-up noise is all upward).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from .common import Report, alternate

ROOT = Path(__file__).resolve().parent.parent
ROUNDS, RUNS = 7, 3
NO_AGENT = "/nonexistent/signet/agent.sock"


def _fastest(argv: list[str], expect: int = 0) -> float:
    best = float("inf")
    for _ in range(RUNS):
        t = time.perf_counter()
        rc = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            check=False).returncode
        if rc != expect:
            raise RuntimeError(f"{argv} exited with {rc}, expected {expect}")
        best = min(best, time.perf_counter() - t)
    return best * 1000


def heavy_modules() -> list[str]:
    """Modules of the PKCS#11, PDF and X.509 stacks that a `signet` command imported (should be none)."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "agent.cli", "--socket", NO_AGENT, "info"],
                         cwd=ROOT, capture_output=True, text=True, check=False).stderr
    names = {line.split("|")[-1].strip() for line in out.splitlines() if line.startswith("import time:")}
    return sorted(n for n in names if n.split(".")[0] in {"pkcs11", "hsm", "pyhanko", "formats", "cryptography"})


def main() -> None:
    py = sys.executable
    runs = alternate({
        "bare grpc+protobuf import": lambda: _fastest([py, "-c", "import grpc, google.protobuf"]),
        "signet --help": lambda: _fastest([py, "-m", "agent.cli", "--help"]),
        "signet sign --help": lambda: _fastest([py, "-m", "agent.cli", "sign", "--help"]),
        # a whole command's start-up: the client and the stubs loaded, then "agent unreachable" (exit 8)
        "signet info (no agent)": lambda: _fastest([py, "-m", "agent.cli", "--socket", NO_AGENT, "info"], 8),
    }, ROUNDS)
    rep = Report("signet CLI start-up")
    rep.add("bare grpc+protobuf import", runs["bare grpc+protobuf import"], "ms")
    rep.add("signet --help", runs["signet --help"], "ms", baseline="bare grpc+protobuf import")
    rep.add("signet sign --help", runs["signet sign --help"], "ms", baseline="bare grpc+protobuf import")
    rep.add("signet info (no agent)", runs["signet info (no agent)"], "ms", baseline="bare grpc+protobuf import")
    rep.finish()
    heavy = heavy_modules()
    print("  heavy modules imported by a `signet` command: " + (", ".join(heavy) if heavy else "none"))


if __name__ == "__main__":
    main()
