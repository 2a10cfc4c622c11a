"""`make demo` end to end (`python -m scripts.demo`), in a temporary demo state so ``demo-state/`` is left alone.

Runs every stage for real -- SoftHSM token, demo CA, in-process PAdES, the agent driven by the ``signet`` CLI,
the server -- and checks the exit code, the verdict lines each stage prints, and the signed outputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable


def _snapshot(directory: Path) -> list[tuple[str, int]]:
    return sorted((str(p), p.lstat().st_mtime_ns) for p in directory.rglob("*")) if directory.exists() else []


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    state = tmp_path / "demo-state"
    env = {k: v for k, v in os.environ.items() if k not in ("SIGNET_PIN", "SIGNET_AGENT_SOCKET")}
    env["SIGNET_DEMO_STATE"] = str(state)
    before = _snapshot(ROOT / "demo-state")

    p = subprocess.run([PY, "-m", "scripts.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = p.stdout
    assert p.returncode == 0, f"demo failed (exit {p.returncode}):\n{out[-4000:]}\n{p.stderr[-4000:]}"
    assert "DEMO FAILED" not in out + p.stderr

    # stage 1 and the agent stage each end with pdfsig's verdict; the agent stage also with openssl's
    assert out.count("pdfsig verdict: signature valid, total document signed, certificate trusted") == 2
    assert "openssl verdict: CMS signature over the annex verified against the demo root" in out
    assert "CMS Verification successful" in out
    # agent stage: the CLI's own verdicts, then a clean stop
    assert f"VALID: {state / 'out' / 'contract-signed-agent.pdf'}" in out
    assert f"VALID: {state / 'in' / 'annex.txt'}" in out
    assert "NOT VALID" not in out
    assert "grpc.health.v1 Check: SERVING" in out
    assert "exited with 0" in out and "socket removed" in out
    # server stage: Alice and Bob enrolled through their own agent with `signet enroll`, then the closing line
    for name, token in (("Alice Wang 王爱丽", "alice-token"), ("Bob Li 李博", "bob-token")):
        assert f"{name}: enrolled through the agent (signet enroll): P-256 key " in out
        assert f"generated on '{token}', CSR signed by the token" in out
        assert f"enroll --token {token} " in out and f"--tls-dir {state / 'server' / 'agent' / 'tls' / token}" in out
        assert f"{name} (certificate read from '{token}' through the agent)" in out
    assert out.count("--pin-env SIGNET_DEMO_SIGNER_PIN --code-env SIGNET_DEMO_ENROLL_CODE") == 2
    assert out.count("enrollment code sent via outbox") == 2
    assert out.count("enrolled key ") == 2  # the CLI's own line, once per person
    assert out.count("OCSP         good (openssl ocsp, response verify OK)") == 2
    assert "generate_key(ok) create_csr(ok) import_certificate(ok) generate_key(ok) create_csr(ok) " \
           "import_certificate(ok)" in out
    assert out.count("exited with 0; socket removed") == 1  # the signers' agent (the stage's own says "after")
    assert not (state / "server" / "agent" / "run" / "agent.sock").exists()
    assert "(exit 0); log in" in out
    assert out.rstrip().splitlines()[-1].startswith("Demo complete in ")

    for name in ("contract-signed.pdf", "contract-signed-agent.pdf", "annex.txt.p7s"):
        assert (state / "out" / name).stat().st_size > 0, name
    assert not (state / "agent" / "run" / "agent.sock").exists()
    # the override was honoured: nothing written to the repository's demo-state/
    assert _snapshot(ROOT / "demo-state") == before
