"""`make serve`: the demo's server (its portal included) and Alice's agent, on the state `make demo` left, kept
running until Ctrl-C, so that a person can open the portal link in a browser (the link is printed).

    python -m scripts.serve          # SIGNET_DEMO_STATE picks another demo state (tests)

The server token's PIN is read from ``demo-state/server/pin`` (0600), which the demo wrote; nothing else is
created.  Each process's log stays in its own directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from scripts.processes import PY, ROOT, ServerEnv, ServerProcess

STATE = Path(os.environ.get("SIGNET_DEMO_STATE") or ROOT / "demo-state").absolute()
PIN_ENV = "SIGNET_DEMO_SERVER_PIN"  # the variable the demo's server.toml names (scripts.demo_server.PIN_ENV)


def main() -> int:
    server_dir, alice = STATE / "server", STATE / "alice"
    needed = [server_dir / "server.toml", server_dir / "pin", STATE / "softhsm" / "softhsm2.conf",
              alice / "agent" / "agent.toml", alice / "softhsm" / "softhsm2.conf"]
    missing = [str(p.relative_to(STATE)) for p in needed if not p.exists()]
    if missing:
        print(f"make serve: no demo state in {STATE} ({', '.join(missing)} missing): run `make demo` first",
              file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    os.environ["SOFTHSM2_CONF"] = str(STATE / "softhsm" / "softhsm2.conf")
    env = ServerEnv(server_dir, server_dir / "server.toml", "signet-server", (server_dir / "pin").read_text().strip(),
                    pin_env=PIN_ENV)
    server = ServerProcess(env, log_path=server_dir / "server.log")
    ready = alice / "agent" / "ready"
    ready.unlink(missing_ok=True)
    with open(alice / "agent" / "agent.log", "ab") as log:
        agent = subprocess.Popen([PY, "-m", "agent.main", "--config", str(alice / "agent" / "agent.toml"),
                                  "--ready-file", str(ready)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                 env={**os.environ, "SOFTHSM2_CONF": str(alice / "softhsm" / "softhsm2.conf")})
    try:
        deadline = time.monotonic() + 90
        while not ready.exists():
            if agent.poll() is not None or time.monotonic() > deadline or stop.is_set():
                print(f"make serve: Alice's agent did not start (see {alice / 'agent' / 'agent.log'})",
                      file=sys.stderr)
                return 1
            time.sleep(0.1)
        print(server.ready_line.strip(), flush=True)
        link = STATE / "out" / "portal-link.txt"
        if link.exists():
            print(f"portal link of Carol's notice (open it in a browser; trust {env.ca_pem} for its TLS): "
                  f"{link.read_text().strip()}", flush=True)
        print(f"Alice's agent: {alice / 'agent' / 'run' / 'agent.sock'}; Ctrl-C stops both", flush=True)
        print("serving", flush=True)
        stop.wait()
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
        server.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
