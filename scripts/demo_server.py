"""`make demo`, server stage: signet-server on its own SoftHSM token, Alice and Bob verified and enrolled.

Steps (appended to ``scripts.demo.STEPS``): initialise the server in ``demo-state/server``, start it, create
an organisation and an operator certificate, register Alice and Bob over mutual TLS, deliver their phone
codes through the outbox and enter them, approve them, create Alice's and Bob's own SoftHSM tokens and start
one ``signet-agent`` for them (``demo-state/server/agent/``), enrol a key on each token through that agent with
``signet enroll`` (``--send-code``, the code read from the outbox, then ``--code-env``; PINs and codes only in
environment variables), show their certificates as the agent holds them with the OCSP status from the running
server, stop the agent (SIGTERM, exit 0; also when one of these steps fails) and then the server.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.demo_agent import AgentDemo, AgentDemoFailed, rel, signet, start_agent, stop_agent, stops_agent_on_failure

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("SIGNET_DEMO_STATE") or ROOT / "demo-state").absolute()  # as scripts.demo
SERVER = STATE / "server"
PIN_ENV = "SIGNET_DEMO_SERVER_PIN"
SIGNERS_AGENT = SERVER / "agent"  # the signet-agent holding Alice's and Bob's tokens
SIGNER_PIN_ENV = "SIGNET_DEMO_SIGNER_PIN"  # `signet enroll --pin-env`: the PIN reaches the CLI only through here
CODE_ENV = "SIGNET_DEMO_ENROLL_CODE"  # `signet enroll --code-env`: likewise the one-time code
KEY_LABEL = "contract-signing"


def say(msg: str) -> None:
    print(f"       {msg}", flush=True)


def _rel(p: Path) -> Path:
    return p.relative_to(ROOT) if p.is_relative_to(ROOT) else p


def prc_id(area_birth_seq: str) -> str:
    """Append the ISO 7064 MOD 11-2 check digit to 17 digits (the server's own check)."""
    from server.identity.documents import mod11_2_check

    return area_birth_seq + mod11_2_check(area_birth_seq)


@dataclass(frozen=True)
class Enrolled:
    """What `signet enroll` reported."""

    key_id: str
    key_label: str
    serial: str
    subject: str
    tls_dir: Path


ENROLLED = re.compile(r"^enrolled key (\S+) \((.*)\): certificate (\S+) for (.*); agent TLS files in (.+)$", re.M)


@dataclass
class Signer:
    name: str
    doc: str = field(repr=False)
    phone: str
    email: str
    token_label: str
    pin: str = field(default_factory=lambda: f"{secrets.randbelow(10**6):06d}", repr=False)
    person_id: str = ""
    result: Enrolled | None = None

    @property
    def tls_dir(self) -> Path:
        return SIGNERS_AGENT / "tls" / self.token_label


@dataclass
class ServerDemo:
    pin: str = field(default_factory=lambda: secrets.token_hex(6), repr=False)
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    org: str = ""
    operator: Path = SERVER / "operator"
    reviewer: Path = SERVER / "reviewer"  # a second operator: four eyes, the one who approves
    people: list[Signer] = field(default_factory=lambda: [
        Signer("Alice Wang 王爱丽", "11010519491231002X", "+8613800138000", "alice@example.com", "alice-token"),
        Signer("Bob Li 李博", prc_id("11010519900307457"), "+8613900139000", "bob@example.com", "bob-token"),
    ])

    @property
    def config(self) -> Path:
        return SERVER / "server.toml"

    def env(self) -> dict[str, str]:
        import os

        return {**os.environ, PIN_ENV: self.pin}


S = ServerDemo()
AG = AgentDemo(config=SIGNERS_AGENT / "agent.toml", socket=SIGNERS_AGENT / "run" / "agent.sock",
               log=SIGNERS_AGENT / "agent.log")
_with_agent = stops_agent_on_failure(AG)  # once it runs, a failing step stops the signers' agent first


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=S.env(), cwd=ROOT,
                       timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"{args[0]} {' '.join(args[1:3])} failed: {p.stderr.strip().splitlines()[-1:]}")
    return p


def _admin(*args: str) -> Any:
    return json.loads(_run("server.admin", "--config", str(S.config), "--json", "--as", "demo-operator", *args).stdout)


def _new_token(label: str, pin: str) -> None:
    from hsm import module

    subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(STATE / "softhsm"), label,
                    secrets.token_hex(8), pin], check=True, capture_output=True)
    module.load().reinitialize()  # SoftHSM shows new tokens only after C_Finalize/C_Initialize


def step_server_init(d: Any) -> None:
    SERVER.mkdir(parents=True, exist_ok=True, mode=0o700)
    _new_token("signet-server", S.pin)
    S.ports = {"api": _free_port(), "enroll": _free_port(), "http": _free_port()}
    S.config.write_text(f"""# signet-server configuration for `make demo`
[server]
state_dir = "state"
organisation = "Signet Demo Platform"
country = "CN"
key_family = "ec"
# demo: one-time codes are read from the outbox; production refuses that (codes must leave the server)
mode = "demo"

[hsm]
token_label = "signet-server"
pin_env = "{PIN_ENV}"

[grpc]
listen = "127.0.0.1:{S.ports['api']}"
enroll_listen = "127.0.0.1:{S.ports['enroll']}"

[http]
listen = "127.0.0.1:{S.ports['http']}"

[otp]
# demo only: the phone code and the enrollment code go to the same phone within a minute
min_interval_seconds = 0
""")
    out = _run("server.main", "init", "--config", str(S.config)).stdout
    created = out.split("created:")[1].splitlines()[0].strip()
    say(f"server token 'signet-server' + {_rel(S.config)}")
    say(f"created: {created}")


def _pump(stream: Any, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


def step_server_start(d: Any) -> None:
    S.proc = subprocess.Popen([sys.executable, "-m", "server.main", "run", "--config", str(S.config)],
                              stdout=subprocess.PIPE, stderr=open(SERVER / "server.log", "w"), text=True,
                              env=S.env(), cwd=ROOT)
    atexit.register(_kill)
    assert S.proc.stdout is not None
    line = S.proc.stdout.readline()
    if not line.startswith("signet-server ready"):
        raise RuntimeError(f"signet-server did not start; see {SERVER / 'server.log'}")
    threading.Thread(target=_pump, args=(S.proc.stdout, []), daemon=True).start()
    say(line.strip())
    say("API: mutual TLS; enrollment: TLS; PKI HTTP: OCSP, CRL, TSA, CA certificates")


def _kill() -> None:
    if S.proc is not None and S.proc.poll() is None:
        S.proc.kill()


def _grpc(files: Path | None = None) -> Any:
    import grpc

    files = files or S.operator
    creds = grpc.ssl_channel_credentials((files / "ca.pem").read_bytes(), (files / "operator.key").read_bytes(),
                                         (files / "operator.crt").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{S.ports['api']}", creds)


def step_org(d: Any) -> None:
    S.org = _admin("org", "create", "Signet Leasing Ltd.")["id"]
    op = _admin("operator-cert", "issue", "--org", S.org, "--login", "demo-operator", "--out", str(S.operator))
    rv = _admin("operator-cert", "issue", "--org", S.org, "--login", "demo-reviewer", "--out", str(S.reviewer))
    say(f"organisation {S.org} 'Signet Leasing Ltd.'")
    say(f"operator TLS certificates (TLS CA, never the signing CA): {op['serial']} for {op['caller']}")
    say(f"  and {rv['serial']} for {rv['caller']} (four eyes: who registers a person never approves them)")


def step_register(d: Any) -> None:
    from signet.v1 import server_pb2 as pb
    from signet.v1 import server_pb2_grpc as pbg

    ids = pbg.IdentityServiceStub(_grpc())
    for s in S.people:
        p = ids.RegisterPerson(pb.RegisterPersonRequest(legal_name=s.name, document_type="prc_resident_id",
                                                        document_number=s.doc, phone=s.phone, email=s.email),
                               timeout=30).person
        s.person_id = p.id
        ids.StartPhoneVerification(pb.StartPhoneVerificationRequest(person_id=p.id), timeout=30)
        say(f"{s.name}: person {p.id}, status {pb.PersonStatus.Name(p.status)}; phone code sent to {s.phone}")


def _code(phone: str) -> str:
    entry = _admin("outbox", "list", "--to", phone, "--unread")[0]
    body = _admin("outbox", "read", entry["id"])["body"]
    m = re.search(r"\b(\d{8}|\d{6})\b", body)  # enrollment codes have 8 digits, phone codes 6
    if not m:
        raise RuntimeError("no code in the outbox message")
    return m.group(1)


def step_codes(d: Any) -> None:
    from signet.v1 import server_pb2 as pb
    from signet.v1 import server_pb2_grpc as pbg

    ids = pbg.IdentityServiceStub(_grpc())
    for e in _admin("outbox", "list", "--unread"):
        say(f"outbox {e['id'][:8]}… to {e['to']}: {e['subject']!r} ({e['topic']})")
    for s in S.people:
        p = ids.ConfirmPhone(pb.ConfirmPhoneRequest(person_id=s.person_id, code=_code(s.phone)), timeout=30).person
        say(f"{s.name}: code read with `signet-admin outbox read` and entered; phone verified at "
            f"{p.phone_verified_at.ToDatetime():%H:%M:%S} UTC")


def step_approve(d: Any) -> None:
    from signet.v1 import server_pb2 as pb
    from signet.v1 import server_pb2_grpc as pbg

    ids = pbg.IdentityServiceStub(_grpc(S.reviewer))
    for s in S.people:
        ids.ApprovePerson(pb.ApprovePersonRequest(person_id=s.person_id, evidence="resident ID card inspected at "
                                                  "the Beijing branch", reference="KYC-2030-0001"), timeout=30)
        last = ids.ListEvidence(pb.ListEvidenceRequest(person_id=s.person_id), timeout=30).records[-1]
        say(f"{s.name}: {last.kind} by {last.actor} at {last.at.ToDatetime():%H:%M:%S} UTC "
            f"(evidence chain of {last.seq} records, head {last.digest[:12]}…)")


@_with_agent
def step_signers_agent(d: Any) -> None:
    for s in S.people:  # before the agent starts: it serves the tokens it finds in the SoftHSM directory
        _new_token(s.token_label, s.pin)
    (SIGNERS_AGENT / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    AG.config.write_text("""# signet-agent for Alice's and Bob's tokens in `make demo` (paths relative to this file)
[agent]
socket = "run/agent.sock"
state_dir = "."
log_level = "INFO"
pdf_workers = 0

[policy]
# the local caller may generate keys, have the token sign certificate requests and import certificates
# (signet enroll); nobody may sign documents with these keys through this agent yet
default_callers = []
admin_callers = ["local"]
""")
    say(f"SoftHSM tokens {', '.join(repr(s.token_label) for s in S.people)} initialised, each with its own PIN")
    status, took = start_agent(AG)
    assert AG.proc is not None
    say(f"$ signet-agent --config {rel(AG.config)}   (pid {AG.proc.pid}, log {rel(AG.log)})")
    say(f"grpc.health.v1 Check: {status} after {took:.1f} s; socket {rel(AG.socket)}")
    p = signet("tokens", agent=AG)
    missing = [s.token_label for s in S.people if s.token_label not in p.stdout]
    if missing:
        raise AgentDemoFailed(f"`signet tokens` does not list {', '.join(missing)}")


@_with_agent
def step_enroll(d: Any) -> None:
    server = ["--server", f"127.0.0.1:{S.ports['enroll']}", "--server-ca", rel(SERVER / "state" / "tls" / "ca.pem")]
    for s in S.people:
        who = ["--token", s.token_label, *server, "--person", s.person_id]
        signet("enroll", *who, "--send-code", agent=AG)
        code = _code(s.phone)  # read with signet-admin from the outbox, handed over in CODE_ENV only
        p = signet("enroll", *who, "--pin-env", SIGNER_PIN_ENV, "--code-env", CODE_ENV, "--api",
                   f"127.0.0.1:{S.ports['api']}", "--tls-dir", rel(s.tls_dir), "--key-label", KEY_LABEL, agent=AG,
                   secrets={SIGNER_PIN_ENV: s.pin, CODE_ENV: code})
        m = ENROLLED.search(p.stdout)
        if not m:
            raise AgentDemoFailed(f"`signet enroll` for {s.name} did not report an enrolled key")
        s.result = Enrolled(m[1], m[2], m[3], m[4], ROOT / m[5])  # the CLI ran in ROOT
        say(f"{s.name}: enrolled through the agent (signet enroll): P-256 key {m[1][:12]}… generated on "
            f"{s.token_label!r}, CSR signed by the token, certificate {m[3]} + chain imported by the agent")


def _on_token(s: Signer) -> bytes:
    """The certificate next to ``s``'s enrolled key, as the agent lists it (gRPC ListKeys over its socket)."""
    from agent.client import Target, channel
    from signet.v1 import agent_pb2, agent_pb2_grpc

    assert s.result is not None
    with channel(Target(socket=AG.socket)) as ch:
        keys = agent_pb2_grpc.AgentServiceStub(ch).ListKeys(agent_pb2.ListKeysRequest(
            token=agent_pb2.TokenSelector(label=s.token_label), credential=agent_pb2.PinCredential(pin=s.pin)),
            timeout=30).keys
    der = next((bytes(k.certificate_der) for k in keys if k.key_id == s.result.key_id), b"")
    if not der:
        raise AgentDemoFailed(f"the agent lists no certificate for {s.name}'s key {s.result.key_id}")
    return der


@_with_agent
def step_show(d: Any) -> None:
    import urllib.request

    from asn1crypto import pem, x509

    files = SERVER / "pki"
    files.mkdir(exist_ok=True)
    for s in S.people:
        r = s.result
        assert r is not None
        der = _on_token(s)
        # the signing root came with the enrollment; the signing CA is published by the PKI listener
        with urllib.request.urlopen(f"http://127.0.0.1:{S.ports['http']}/ca/signing-ca.crt", timeout=30) as resp:
            (files / "issuing.pem").write_bytes(pem.armor("CERTIFICATE", resp.read()))
        (files / "root.pem").write_bytes((r.tls_dir / "signing-root.pem").read_bytes())
        leaf = files / f"{s.token_label}.pem"
        leaf.write_bytes(pem.armor("CERTIFICATE", der))
        cert = x509.Certificate.load(der)
        subj = cert.subject.native
        p = subprocess.run(["openssl", "ocsp", "-issuer", str(files / "issuing.pem"), "-cert", str(leaf), "-url",
                            f"http://127.0.0.1:{S.ports['http']}/ocsp", "-CAfile", str(files / "root.pem")],
                           capture_output=True, text=True, timeout=30)
        status = next((ln.split(": ", 1)[1] for ln in p.stdout.splitlines() if ln.startswith(str(leaf))), "?")
        verified = "Response verify OK" in p.stdout + p.stderr
        say(f"{s.name} (certificate read from {s.token_label!r} through the agent)")
        say(f"  subject      CN={subj['common_name']}, serialNumber={subj['serial_number']}, "
            f"O={subj['organization_name']}, C={subj['country_name']}")
        say(f"  issuer       {cert.issuer.native['common_name']} (serial {r.serial})")
        say(f"  valid        {cert.not_valid_before:%Y-%m-%d} .. {cert.not_valid_after:%Y-%m-%d}; "
            f"EKU {', '.join(cert.extended_key_usage_value.native)}")
        say(f"  OCSP         {status} (openssl ocsp, {'response verify OK' if verified else 'NOT VERIFIED'})")
        if status != "good" or not verified:
            raise RuntimeError(f"OCSP did not report {s.name}'s certificate as good")


@_with_agent
def step_signers_agent_stop(d: Any) -> None:
    assert AG.proc is not None
    pid = AG.proc.pid
    rc = stop_agent("end of the enrollment", AG)
    say(f"SIGTERM -> pid {pid} exited with {rc}; socket {'still there' if AG.socket.exists() else 'removed'}")
    if rc != 0:
        raise AgentDemoFailed(f"the signers' signet-agent exited with {rc}; see {rel(AG.log)}")
    if AG.socket.exists():
        raise AgentDemoFailed(f"the signers' signet-agent left its socket {rel(AG.socket)} behind")
    log = AG.log.read_text(errors="replace")
    if any(s.pin in log for s in S.people):
        raise AgentDemoFailed(f"a PIN appears in {rel(AG.log)}")
    from agent.journal import read

    events = read(SIGNERS_AGENT / "journal.db")
    ops = " ".join(f"{e['operation']}({e['outcome']})" for e in events)
    say(f"journal {rel(SIGNERS_AGENT / 'journal.db')}: {len(events)} records: {ops}")


def step_server_stop(d: Any) -> None:
    assert S.proc is not None
    S.proc.send_signal(signal.SIGTERM)
    rc = S.proc.wait(timeout=30)
    if rc != 0:
        raise RuntimeError(f"signet-server exited with {rc}; see {SERVER / 'server.log'}")
    say(f"SIGTERM -> listeners drained, store closed, token logged out (exit {rc}); log in "
        f"{_rel(SERVER / 'server.log')}")


SERVER_STEPS = [
    ("Server initialised: keys on its own SoftHSM token, TLS from its CA", step_server_init),
    ("Server started", step_server_start),
    ("Organisation and operator certificate (signet-admin)", step_org),
    ("Alice and Bob registered by the operator over mutual TLS", step_register),
    ("Phone codes read from the outbox and entered", step_codes),
    ("Real-name approval recorded with evidence", step_approve),
    ("Alice's and Bob's own tokens, served by their signet-agent", step_signers_agent),
    ("Keys enrolled on their tokens through the agent (signet enroll)", step_enroll),
    ("Their certificates from the agent, with OCSP status from the running server", step_show),
    ("Signers' agent stopped cleanly", step_signers_agent_stop),
    ("Server stopped cleanly", step_server_stop),
]
