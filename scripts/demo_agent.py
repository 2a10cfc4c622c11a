"""`make demo`, agent stage: the stage-1 token behind a running ``signet-agent``, driven only with the ``signet`` CLI.

Steps (added to ``scripts.demo.STEPS`` right after stage 1): an agent in ``demo-state/agent/`` (a
:class:`scripts.processes.AgentProcess`: socket ``run/agent.sock``, journal and counters in ``state/``, a policy
that lets the local caller use the demo key), started and asked for its gRPC health; then ``signet tokens``,
``signet unlock`` (PIN from an environment variable), ``signet keys``, ``signet sign`` of the contract (PAdES) and
of a text annex (detached CAdES), ``signet verify`` of both against the demo root, an independent check with
``pdfsig`` and ``openssl cms -verify``, and finally ``signet lock`` and SIGTERM: exit code 0 and the socket removed.
Every ``signet`` call whose answer the demo uses runs with ``--json`` and is read with :func:`json.loads`; what the
human sees is a short account made from that answer.  What the stage established goes to ``d.facts["agent"]``.

The first part of this module holds what the stages share (``scripts.demo`` imports it from here): printing,
the secrets registry that keeps PINs and one-time codes out of the output and the facts, running ``signet`` and
the independent tools.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts import processes
from scripts.processes import AgentProcess

if TYPE_CHECKING:
    from scripts.demo import Demo

ROOT = processes.ROOT
STATE = Path(os.environ.get("SIGNET_DEMO_STATE") or ROOT / "demo-state").absolute()  # tests use their own
OUT = STATE / "out"
TOKEN_LABEL = "signet-demo"  # noqa: S105 - a token label, not a PIN (the stage-1 token)
PIN_ENV = "SIGNET_DEMO_PIN"  # the unlock reads the PIN from here; it is never printed or put on a command line
CLI_TIMEOUT = 60.0
SHOW_LINES = 12


# -- shared by the stages ----------------------------------------------------------------------------------------
class DemoFailed(Exception):
    """A step did not establish what it set out to; the message says what was seen instead."""


class Secrets:
    """Every PIN, SO PIN and one-time code the demo handles, so that none is ever printed or written to the facts.

    Short numeric secrets (6-digit PINs and codes) count as present only as a whole word: a code that happens to
    occur inside a 32-digit hex serial has not leaked.
    """

    def __init__(self) -> None:
        self._items: list[tuple[str, str]] = []  # (what, value)

    def add(self, what: str, value: str) -> str:
        """Register ``value`` (described as ``what``, e.g. "Alice's PIN") and return it."""
        if value:
            self._items.append((what, value))
        return value

    def found_in(self, text: str) -> list[str]:
        """The descriptions of the registered secrets that occur in ``text``."""
        return [what for what, value in self._items if _occurs(value, text)]

    def redact(self, text: str) -> str:
        for what, value in self._items:
            if _occurs(value, text):
                text = text.replace(value, f"[{what} withheld]")
        return text

    def as_json(self) -> bytes:
        return json.dumps([{"what": w, "value": v} for w, v in self._items], indent=2, ensure_ascii=False).encode()


def _occurs(value: str, text: str) -> bool:
    if len(value) >= 10:
        return value in text
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])", text) is not None


SECRETS = Secrets()


def say(msg: str) -> None:
    """Print one line of the human account; refuses (DemoFailed) a line that holds a registered secret."""
    leaked = SECRETS.found_in(msg)
    if leaked:
        raise DemoFailed(f"refusing to print a line that holds {', '.join(leaked)}")
    print(f"       {msg}", flush=True)


def rel(p: Path | str) -> str:
    """``p`` relative to the repository when inside it (how paths are shown and passed to tools run there)."""
    path = Path(p)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def show_output(text: str, limit: int = SHOW_LINES) -> None:
    lines = text.splitlines()
    for line in lines[:limit]:
        say("  " + line.expandtabs(2))
    if len(lines) > limit:
        say(f"  ... ({len(lines) - limit} more lines)")


def _cli_env(agent: AgentProcess, secrets: dict[str, str] | None) -> dict[str, str]:
    # `signet unlock` keeps the grant handle here and `signet sign` presents it (like ssh-agent's socket variable);
    # PINs and codes reach the CLI only as named environment variables (``secrets``), never argv
    return {"SIGNET_GRANT_DIR": str(agent.dir / "grants"), **(secrets or {})}


def signet_json(agent: AgentProcess, *args: str, secrets: dict[str, str] | None = None, expect: int = 0) -> Any:
    """``signet --socket SOCK --json ARGS`` against ``agent``: shows the command, checks the exit code and returns
    the parsed JSON answer.  ``secrets`` (variable -> value) are added to the CLI's environment only."""
    shown = ["signet", "--socket", rel(agent.socket), "--json", *args]
    say("$ " + shlex.join(shown))
    p = processes.signet(agent, "--json", *args, env=_cli_env(agent, secrets), timeout=CLI_TIMEOUT)
    if p.returncode != expect:
        why = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise DemoFailed(f"`{shlex.join(shown)}` exited with {p.returncode} (expected {expect}): {why}")
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        raise DemoFailed(f"`{shlex.join(shown)}` did not print JSON ({e})") from None


def signet_shown(agent: AgentProcess, *args: str, secrets: dict[str, str] | None = None) -> None:
    """A ``signet`` command whose answer the demo does not read (it establishes the result another way): shown
    with its output, exit code checked."""
    shown = ["signet", "--socket", rel(agent.socket), *args]
    say("$ " + shlex.join(shown))
    p = processes.signet(agent, *args, env=_cli_env(agent, secrets), timeout=CLI_TIMEOUT)
    show_output(p.stdout + p.stderr)
    if p.returncode != 0:
        raise DemoFailed(f"`{shlex.join(shown)}` exited with {p.returncode}")


def tool(*cmd: str) -> subprocess.CompletedProcess[str]:
    """An independent tool (pdfsig, openssl) run from the repository, shown with its output (shortened)."""
    say("$ " + shlex.join(cmd))
    p = subprocess.run(list(cmd), capture_output=True, text=True, cwd=ROOT, timeout=CLI_TIMEOUT)
    show_output(p.stdout + p.stderr)
    return p


PDFSIG_VERDICT = {"signature_valid": "Signature is Valid.", "total_document_signed": "Total document signed",
                  "certificate_trusted": "Certificate is Trusted."}


def pdfsig(nssdb: Path, pdf: Path) -> dict[str, bool]:
    """``pdfsig`` against ``nssdb``: its verdict as booleans (it exits 0 even for a broken signature, so the
    verdict is read from its report); DemoFailed unless all hold."""
    p = tool("pdfsig", "-nssdir", f"sql:{rel(nssdb)}", rel(pdf))
    verdict = {k: p.returncode == 0 and line in p.stdout for k, line in PDFSIG_VERDICT.items()}
    missing = [PDFSIG_VERDICT[k] for k, ok in verdict.items() if not ok]
    if missing:
        raise DemoFailed(f"pdfsig did not report: {', '.join(missing)}")
    say("pdfsig verdict: signature valid, total document signed, certificate trusted")
    return verdict


def journal_facts(agent: AgentProcess) -> list[dict[str, Any]]:
    """The agent's journal as (operation, outcome) records, oldest first; shown on one line."""
    events = [{"operation": e["operation"], "outcome": e["outcome"]} for e in agent.journal()]
    say(f"journal {rel(agent.state / 'journal.db')}: {len(events)} records: "
        + " ".join(f"{e['operation']}({e['outcome']})" for e in events))
    return events


def start_agent(d: Demo, agent: AgentProcess) -> dict[str, Any]:
    """Start ``agent`` (stopped again by ``scripts.demo.main`` if a later step fails), ask its health; the facts."""
    d.running.append(agent)
    agent.start()
    assert agent.proc is not None
    status = agent.health()
    mode = agent.socket.stat().st_mode & 0o777
    say(f"$ signet-agent --config {rel(agent.config)}   (pid {agent.proc.pid}, log {rel(agent.log_path)})")
    say(f"ready after {agent.started_in:.1f} s; grpc.health.v1 Check: {status}; socket {rel(agent.socket)} "
        f"mode {mode:04o}")
    if status != "SERVING":
        raise DemoFailed(f"the agent's health check answered {status or 'nothing'}, not SERVING")
    return {"config": str(agent.config), "socket": str(agent.socket), "socket_mode": f"{mode:04o}",
            "health": status, "ready_seconds": round(agent.started_in, 2)}


def stop_agent(d: Demo, agent: AgentProcess, pins: list[str]) -> dict[str, Any]:
    """SIGTERM ``agent`` and wait; DemoFailed unless it exits 0, removes its socket and never logged a PIN."""
    assert agent.proc is not None
    pid = agent.proc.pid
    t0 = time.perf_counter()
    rc = agent.stop()
    d.running.remove(agent)
    removed = not agent.socket.exists()
    log = agent.log()
    pin_logged = any(_occurs(pin, log) for pin in pins)
    say(f"SIGTERM -> pid {pid} exited with {rc} after {time.perf_counter() - t0:.1f} s; "
        f"socket {'removed' if removed else 'still there'}; PIN in its log: {'YES' if pin_logged else 'no'}")
    if rc != 0:
        raise DemoFailed(f"signet-agent exited with {rc}; see {rel(agent.log_path)}")
    if not removed:
        raise DemoFailed(f"signet-agent left its socket {rel(agent.socket)} behind")
    if pin_logged:
        raise DemoFailed(f"a PIN appears in {rel(agent.log_path)}")
    return {"exit_code": rc, "socket_removed": removed, "pin_in_log": pin_logged}


def verify_account(answer: dict[str, Any]) -> None:
    """The human verdict made from a ``signet --json verify`` answer."""
    say(f"  {'VALID' if answer.get('valid') else 'NOT VALID'} (document sha256 "
        f"{str(answer.get('document_sha256', ''))[:16]}...)")
    for sig in answer.get("signatures", []):
        checks = ", ".join(f"{k}={sig.get(k)}" for k in ("intact", "trusted", "coverage", "modification_level")
                           if sig.get(k) not in (None, ""))
        say(f"  {sig.get('field_name') or 'signature'} by {sig.get('signer_subject')}: "
            f"{'valid' if sig.get('valid') else 'NOT valid'}; {checks}")
        for line in [*sig.get("problems", []), *sig.get("warnings", [])]:
            say(f"    note: {line}")
    for line in [*answer.get("problems", []), *answer.get("warnings", [])]:
        say(f"  note: {line}")


# -- the agent stage -------------------------------------------------------------------------------------------
AGENT_DIR = STATE / "agent"
POLICY = """[unlock]
max_seconds = 120
max_signatures = 10
allow_per_call_pin = false

[policy]
default_callers = []
admin_callers = ["local"]

[[policy.key]]
key_id = "{key_id}"
callers = ["local"]
usage_limit = 100
"""


@dataclass
class AgentStage:
    """The running agent and the files of this stage."""

    agent: AgentProcess | None = None
    annex: Path = STATE / "in" / "annex.txt"
    signed_pdf: Path = OUT / "contract-signed-agent.pdf"
    signed_annex: Path = OUT / "annex.txt.p7s"
    started_at: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> AgentProcess:
        if self.agent is None:
            raise DemoFailed("the agent is not running")
        return self.agent


A = AgentStage()


def step_agent_config(d: Demo) -> None:
    A.started_at = time.perf_counter()
    A.facts = d.facts.setdefault("agent", {})
    A.agent = AgentProcess(AGENT_DIR, POLICY.format(key_id=d.key_id), agent_settings='log_level = "INFO"\n'
                                                                                     "pdf_workers = 1")
    A.annex.write_text("Annex A to the Equipment Lease Agreement\n\n"
                       "1. Leased equipment: 3 x CNC milling machine, model SL-500.\n"
                       "2. Monthly rent: CNY 12,000 per machine, due on the 5th of each month.\n")
    say(f"{rel(A.agent.config)}: socket {rel(A.agent.socket)}, journal and usage counters in "
        f"{rel(A.agent.state)}/")
    say(f"policy: only the local caller (Unix socket, 0600) may use key {d.key_id[:16]}..., at most 100 "
        "signatures; unlock at most 120 s / 10 signatures; no per-call PINs")


def step_agent_start(d: Demo) -> None:
    A.facts.update(start_agent(d, A.running))


def step_agent_unlock(d: Demo) -> None:
    agent = A.running
    tokens = signet_json(agent, "tokens").get("tokens", [])
    for t in tokens:
        say(f"  {t['label']}  serial {t['serial']}  {t['manufacturer']} {t['model']}")
    A.facts["tokens"] = [t["label"] for t in tokens]
    if TOKEN_LABEL not in A.facts["tokens"]:
        raise DemoFailed(f"`signet tokens` does not list {TOKEN_LABEL!r}")
    unlock = signet_json(agent, "unlock", "--token", TOKEN_LABEL, "--pin-env", PIN_ENV, "--ttl", "120",
                         "--max-signatures", "4", secrets={PIN_ENV: d.pin})
    expires = time.strftime("%H:%M:%S", time.localtime(int(unlock["expires_at"])))
    say(f"  token {unlock['token_serial']} unlocked until {expires} for {unlock['signatures_left']} signature(s); "
        "the grant handle is kept in the grant directory, never printed")
    A.facts["unlock"] = unlock
    keys = signet_json(agent, "keys", "--token", TOKEN_LABEL).get("keys", [])
    for k in keys:
        say(f"  {k['key_id']}  {k['label']}  {k.get('certificate_subject') or '(no certificate)'}")
    A.facts["keys"] = [k["key_id"] for k in keys]
    if d.key_id not in A.facts["keys"]:
        raise DemoFailed(f"`signet keys` does not list the demo key {d.key_id}")


def _sign_account(answer: dict[str, Any]) -> None:
    say(f"  -> {rel(answer['output'])} ({answer['format']}, field {answer.get('field_name') or '-'}, "
        f"{answer['output_size']} bytes, sha256 {answer['output_sha256'][:16]}...)")


def step_agent_sign(d: Demo) -> None:
    agent = A.running
    key = ["--token", TOKEN_LABEL, "--key", d.key_id]
    t0 = time.perf_counter()
    contract = signet_json(agent, "sign", rel(d.contract), "-o", rel(A.signed_pdf), *key, "--reason",
                           "I agree to the terms of this contract", "--location", "Beijing", "--visible",
                           "1,320,520,560,580")
    _sign_account(contract)
    annex = signet_json(agent, "sign", rel(A.annex), "-o", rel(A.signed_annex), *key)
    _sign_account(annex)
    A.facts["sign"] = {"contract": contract, "annex": annex}
    for what, answer, path in (("contract", contract, A.signed_pdf), ("annex", annex, A.signed_annex)):
        if Path(ROOT / answer["output"]).resolve() != path.resolve() or not path.stat().st_size:
            raise DemoFailed(f"`signet sign` of the {what} did not write {rel(path)}")
    say(f"both signed through the agent in {time.perf_counter() - t0:.1f} s (PIN given once, at unlock)")


def step_agent_verify(d: Demo) -> None:
    agent = A.running
    root = rel(d.ca.root_pem_path)
    A.facts["verify"] = {}
    # the demo CA publishes no CRL or OCSP: --offline, and the verdict says revocation was not checked
    for what, args in (("contract", [rel(A.signed_pdf)]), ("annex", [rel(A.annex), "--sig", rel(A.signed_annex)])):
        answer = signet_json(agent, "verify", "--offline", *args, "--trust", root)
        verify_account(answer)
        A.facts["verify"][what] = answer
        sigs = answer.get("signatures", [])
        if not answer.get("valid") or not sigs or not all(s.get("trusted") for s in sigs):
            raise DemoFailed(f"`signet verify` of the {what} did not report a valid, trusted signature")


def step_agent_independent(d: Demo) -> None:
    A.facts["pdfsig"] = pdfsig(d.nssdb, A.signed_pdf)
    p = tool("openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", rel(A.signed_annex), "-content",
             rel(A.annex), "-CAfile", rel(d.ca.root_pem_path), "-out", os.devnull)
    ok = p.returncode == 0 and "Verification successful" in p.stderr
    A.facts["openssl_cms_verify"] = {"ok": ok, "exit_code": p.returncode}
    if not ok:
        raise DemoFailed(f"openssl cms -verify failed (exit {p.returncode})")
    say("openssl verdict: CMS signature over the annex verified against the demo root")


def step_agent_stop(d: Demo) -> None:
    agent = A.running
    lock = signet_json(agent, "lock", "--token", TOKEN_LABEL)
    say("  locked" + (" (token logged out)" if lock.get("logged_out") else ""))
    A.facts["lock"] = lock
    A.facts.update(stop_agent(d, agent, [d.pin]))
    A.facts["journal"] = journal_facts(agent)
    A.facts["duration_seconds"] = round(time.perf_counter() - A.started_at, 2)
    say(f"agent stage: {A.facts['duration_seconds']:.1f} s")


Step = Callable[["Demo"], None]
AGENT_STEPS: list[tuple[str, Step]] = [
    ("Agent configured: socket, journal and key policy in demo-state/agent", step_agent_config),
    ("Agent started", step_agent_start),
    ("signet tokens, unlock (PIN from an environment variable), keys", step_agent_unlock),
    ("Contract (PAdES) and annex (detached CAdES) signed through the agent", step_agent_sign),
    ("Both verified by the agent against the demo root (signet verify --offline)", step_agent_verify),
    ("Both verified independently (pdfsig, openssl cms)", step_agent_independent),
    ("Agent locked and stopped cleanly", step_agent_stop),
]
