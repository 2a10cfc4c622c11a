"""`make demo`, agent stage: the stage-1 token behind a running ``signet-agent``, driven only with the ``signet`` CLI.

Steps (added to ``scripts.demo.STEPS`` right after stage 1): write an agent configuration in
``demo-state/agent/`` (socket ``run/agent.sock``, journal and counters next to it, a policy that lets the local
caller use the demo key), start ``signet-agent`` and wait for its gRPC health check, then run ``signet tokens``,
``signet unlock`` (PIN from an environment variable), ``signet keys``, ``signet sign`` of the contract (PAdES) and
of a text annex (detached CAdES), ``signet verify`` of both against the demo root, an independent check with
``pdfsig`` and ``openssl cms -verify``, and finally SIGTERM: exit code 0 and the socket removed.  Once the agent
runs, a failing step still stops it (``_stops_agent_on_failure``) before the demo reports the failure.
"""

from __future__ import annotations

import atexit
import functools
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("SIGNET_DEMO_STATE") or ROOT / "demo-state").absolute()
AGENT = STATE / "agent"
OUT = STATE / "out"
TOKEN_LABEL = "signet-demo"  # noqa: S105 - the stage-1 token (scripts.demo.TOKEN_LABEL)
PIN_ENV = "SIGNET_DEMO_PIN"  # the unlock reads the PIN from here; it is never printed or put on a command line
START_TIMEOUT = 30.0
CLI_TIMEOUT = 60.0
SHOW_LINES = 12


class AgentDemoFailed(Exception):
    pass


@dataclass
class AgentDemo:
    """The running agent and the files of this stage."""

    config: Path = AGENT / "agent.toml"
    socket: Path = AGENT / "run" / "agent.sock"
    log: Path = AGENT / "agent.log"
    annex: Path = STATE / "in" / "annex.txt"
    signed_pdf: Path = OUT / "contract-signed-agent.pdf"
    signed_annex: Path = OUT / "annex.txt.p7s"
    proc: subprocess.Popen[bytes] | None = None
    # copied from the stage-1 Demo; only ever handed to `signet unlock` through PIN_ENV
    pin: str = field(default="", repr=False)
    stopped: bool = False
    started_at: float = 0.0


A = AgentDemo()


def say(msg: str) -> None:
    print(f"       {msg}", flush=True)


def rel(p: Path) -> str:
    """``p`` relative to the repository when it is inside it (how the commands are shown), else absolute."""
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def _signet() -> list[str]:
    script = Path(sys.executable).parent / "signet"
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent.cli"]


def _env(pin: str | None = None, secrets: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of an agent or CLI process: ``pin`` in PIN_ENV and ``secrets`` (name -> value) added,
    no inherited PIN variables.  The only way PINs and one-time codes reach a process: never argv, never printed."""
    extra = {**({PIN_ENV: pin} if pin is not None else {}), **(secrets or {})}
    env = {k: v for k, v in os.environ.items() if k not in ("SIGNET_PIN", PIN_ENV, *extra)}
    # `signet unlock` keeps the grant handle here, `signet sign` presents it (like ssh-agent's socket variable)
    return {**env, "SIGNET_GRANT_DIR": str(AGENT / "grants"), **extra}


def _show(cmd: list[str], p: subprocess.CompletedProcess[str]) -> None:
    say("$ " + shlex.join(cmd))
    lines = (p.stdout + p.stderr).splitlines()
    for line in lines[:SHOW_LINES]:
        say("  " + line)
    if len(lines) > SHOW_LINES:
        say(f"  ... ({len(lines) - SHOW_LINES} more lines)")


def signet(*args: str, pin: str | None = None, expect: int = 0, agent: AgentDemo = A,
           secrets: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``signet --socket SOCK ARGS`` against ``agent`` from the repository, show it (shortened), and check its
    exit code.  ``pin`` goes to PIN_ENV, ``secrets`` (name -> value) to their variables: environment only."""
    cmd = ["signet", "--socket", rel(agent.socket), *args]
    p = subprocess.run([*_signet(), *cmd[1:]], capture_output=True, text=True, cwd=ROOT, env=_env(pin, secrets),
                       timeout=CLI_TIMEOUT)
    _show(cmd, p)
    if p.returncode != expect:
        raise AgentDemoFailed(f"`{shlex.join(cmd)}` exited with {p.returncode} (expected {expect})")
    return p


def _tool(*cmd: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(list(cmd), capture_output=True, text=True, cwd=ROOT, timeout=CLI_TIMEOUT)
    _show(list(cmd), p)
    return p


# -- agent process -----------------------------------------------------------------------------------------------
def _health(agent: AgentDemo = A) -> str:
    """The agent's grpc.health.v1 status over its socket ("" while it does not answer)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from agent.client import Target, channel

    with channel(Target(socket=agent.socket)) as ch:
        try:
            r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
        except grpc.RpcError:
            return ""
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(r.status))


def stop_agent(reason: str, agent: AgentDemo = A) -> int:
    """SIGTERM the agent and wait for it; returns its exit code (killed after 30 s, then -9)."""
    proc = agent.proc
    if proc is None or agent.stopped:
        return 0
    agent.stopped = True
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            say(f"agent did not stop within 30 s after SIGTERM ({reason}); killing it")
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def _kill_at_exit(agent: AgentDemo = A) -> None:
    if agent.proc is not None and agent.proc.poll() is None:
        agent.proc.kill()


def start_agent(agent: AgentDemo) -> tuple[str, float]:
    """Start ``signet-agent --config agent.config`` (log in agent.log) and wait until its health check says SERVING;
    returns that status and the seconds it took."""
    agent.log.unlink(missing_ok=True)
    with open(agent.log, "wb") as log:
        agent.proc = subprocess.Popen([sys.executable, "-m", "agent.main", "--config", str(agent.config)], cwd=ROOT,
                                      stdout=log, stderr=subprocess.STDOUT, env={**_env(), "PYTHONUNBUFFERED": "1"})
    agent.stopped = False
    atexit.register(_kill_at_exit, agent)
    t0 = time.perf_counter()
    status = ""
    while status != "SERVING":
        if agent.proc.poll() is not None:
            tail = agent.log.read_text(errors="replace").splitlines()[-5:]
            raise AgentDemoFailed(f"signet-agent exited with {agent.proc.returncode}: {' | '.join(tail)}")
        if time.perf_counter() - t0 > START_TIMEOUT:
            raise AgentDemoFailed(f"signet-agent not healthy after {START_TIMEOUT:.0f} s; see {rel(agent.log)}")
        time.sleep(0.05)
        status = _health(agent) if agent.socket.exists() else ""
    return status, time.perf_counter() - t0


Step = Callable[[Any], None]


def stops_agent_on_failure(agent: AgentDemo) -> Callable[[Step], Step]:
    """Once ``agent`` runs, a step that fails stops it (SIGTERM, wait) before the failure is reported."""

    def wrap(fn: Step) -> Step:
        @functools.wraps(fn)
        def run(d: Any) -> None:
            try:
                fn(d)
            except BaseException:
                rc = stop_agent("a step failed", agent)
                if agent.proc is not None:
                    say(f"agent stopped after the failure (exit {rc}); its log: {rel(agent.log)}")
                raise

        return run

    return wrap


_stops_agent_on_failure = stops_agent_on_failure(A)


# -- steps ---------------------------------------------------------------------------------------------------------
def step_agent_config(d: Any) -> None:
    A.started_at = time.perf_counter()
    (AGENT / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    A.pin = d.pin
    A.config.write_text(f"""# signet-agent configuration for `make demo` (paths relative to this file)
[agent]
socket = "run/agent.sock"
state_dir = "."
log_level = "INFO"
pdf_workers = 1

[unlock]
max_seconds = 120
max_signatures = 10
allow_per_call_pin = false

[policy]
default_callers = []
admin_callers = ["local"]

[[policy.key]]
key_id = "{d.key_id}"
callers = ["local"]
usage_limit = 100
""")
    A.annex.write_text("Annex A to the Equipment Lease Agreement\n\n"
                       "1. Leased equipment: 3 x CNC milling machine, model SL-500.\n"
                       "2. Monthly rent: CNY 12,000 per machine, due on the 5th of each month.\n")
    say(f"{rel(A.config)}: socket {rel(A.socket)}, journal and usage counters in {rel(AGENT)}/")
    say(f"policy: only the local caller (Unix socket, 0600) may use key {d.key_id[:16]}..., at most 100 "
        "signatures; unlock at most 120 s / 10 signatures; no per-call PINs")


@_stops_agent_on_failure
def step_agent_start(d: Any) -> None:
    status, took = start_agent(A)
    assert A.proc is not None
    mode = A.socket.stat().st_mode & 0o777
    say(f"$ signet-agent --config {rel(A.config)}   (pid {A.proc.pid}, log {rel(A.log)})")
    say(f"grpc.health.v1 Check: {status} after {took:.1f} s; socket mode {mode:04o}")


@_stops_agent_on_failure
def step_agent_unlock(d: Any) -> None:
    p = signet("tokens")
    if TOKEN_LABEL not in p.stdout:
        raise AgentDemoFailed(f"`signet tokens` does not list {TOKEN_LABEL!r}")
    signet("unlock", "--token", TOKEN_LABEL, "--pin-env", PIN_ENV, "--ttl", "120", "--max-signatures", "4",
           pin=A.pin)
    p = signet("keys", "--token", TOKEN_LABEL)
    if d.key_id not in p.stdout:
        raise AgentDemoFailed(f"`signet keys` does not list the demo key {d.key_id}")


@_stops_agent_on_failure
def step_agent_sign(d: Any) -> None:
    key = ["--token", TOKEN_LABEL, "--key", d.key_id]
    t0 = time.perf_counter()
    signet("sign", rel(d.contract), "-o", rel(A.signed_pdf), *key, "--reason", "I agree to the terms of this contract",
           "--location", "Beijing", "--visible", "1,320,520,560,580")
    signet("sign", rel(A.annex), "-o", rel(A.signed_annex), *key)
    say(f"both signed through the agent in {time.perf_counter() - t0:.1f} s (PIN given once, at unlock)")


@_stops_agent_on_failure
def step_agent_verify(d: Any) -> None:
    root = rel(d.ca.root_pem_path)
    # the demo CA publishes no CRL or OCSP: --offline, and the verdict says revocation was not checked
    for args in ([rel(A.signed_pdf)], [rel(A.annex), "--sig", rel(A.signed_annex)]):
        p = signet("verify", "--offline", *args, "--trust", root)
        if not p.stdout.startswith("VALID:") or "trusted=True" not in p.stdout:
            raise AgentDemoFailed(f"`signet verify {args[0]}` did not report a valid, trusted signature")


@_stops_agent_on_failure
def step_agent_independent(d: Any) -> None:
    p = _tool("pdfsig", "-nssdir", f"sql:{rel(d.nssdb)}", rel(A.signed_pdf))
    need = ["Signature is Valid.", "Total document signed", "Certificate is Trusted."]
    missing = [n for n in need if n not in p.stdout]  # pdfsig exits 0 even for a broken signature
    if missing:
        raise AgentDemoFailed(f"pdfsig did not report: {', '.join(missing)}")
    say("pdfsig verdict: signature valid, total document signed, certificate trusted")
    p = _tool("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", rel(A.signed_annex), "-content",
              rel(A.annex), "-CAfile", rel(d.ca.root_pem_path), "-out", os.devnull)
    if p.returncode != 0 or "Verification successful" not in p.stderr:
        raise AgentDemoFailed(f"openssl cms -verify failed (exit {p.returncode})")
    say("openssl verdict: CMS signature over the annex verified against the demo root")


@_stops_agent_on_failure
def step_agent_stop(d: Any) -> None:
    signet("lock", "--token", TOKEN_LABEL)
    assert A.proc is not None
    pid = A.proc.pid
    t0 = time.perf_counter()
    rc = stop_agent("end of the agent stage")
    say(f"SIGTERM -> pid {pid} exited with {rc} after {time.perf_counter() - t0:.1f} s; "
        f"socket {'still there' if A.socket.exists() else 'removed'}")
    if rc != 0:
        raise AgentDemoFailed(f"signet-agent exited with {rc}; see {rel(A.log)}")
    if A.socket.exists():
        raise AgentDemoFailed(f"signet-agent left its socket {rel(A.socket)} behind")
    if A.pin and A.pin in A.log.read_text(errors="replace"):
        raise AgentDemoFailed(f"the PIN appears in {rel(A.log)}")
    from agent.journal import read

    events = read(AGENT / "journal.db")
    ops = " ".join(f"{e['operation']}({e['outcome']})" for e in events)
    say(f"journal {rel(AGENT / 'journal.db')}: {len(events)} records: {ops}")
    say(f"agent stage: {time.perf_counter() - A.started_at:.1f} s")


AGENT_STEPS: list[tuple[str, Step]] = [
    ("Agent configured: socket, journal and key policy in demo-state/agent", step_agent_config),
    ("Agent started", step_agent_start),
    ("signet tokens, unlock (PIN from an environment variable), keys", step_agent_unlock),
    ("Contract (PAdES) and annex (detached CAdES) signed through the agent", step_agent_sign),
    ("Both verified by the agent against the demo root (signet verify --offline)", step_agent_verify),
    ("Both verified independently (pdfsig, openssl cms)", step_agent_independent),
    ("Agent locked and stopped cleanly", step_agent_stop),
]
