"""`make demo`, server stage: signet-server on its own SoftHSM token, Alice and Bob verified and enrolled.

Steps (appended to ``scripts.demo.STEPS``): initialise the server in ``demo-state/server``, start it, create
an organisation and an operator certificate, register Alice and Bob over mutual TLS, deliver their phone
codes through the outbox and enter them, approve them, enrol a key on each one's own token from the
signer's side (agent.enroll), show their certificates with the OCSP status from the running server, and
stop the server with SIGTERM.
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

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("SIGNET_DEMO_STATE") or ROOT / "demo-state").absolute()  # as scripts.demo
SERVER = STATE / "server"
PIN_ENV = "SIGNET_DEMO_SERVER_PIN"


def say(msg: str) -> None:
    print(f"       {msg}", flush=True)


def _rel(p: Path) -> Path:
    return p.relative_to(ROOT) if p.is_relative_to(ROOT) else p


def prc_id(area_birth_seq: str) -> str:
    """Append the ISO 7064 MOD 11-2 check digit to 17 digits."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return area_birth_seq + "10X98765432"[sum(int(d) * w for d, w in zip(area_birth_seq, weights, strict=True)) % 11]


@dataclass
class Signer:
    name: str
    doc: str = field(repr=False)
    phone: str
    email: str
    token_label: str
    pin: str = field(default_factory=lambda: f"{secrets.randbelow(10**6):06d}", repr=False)
    person_id: str = ""
    result: Any = None


@dataclass
class ServerDemo:
    pin: str = field(default_factory=lambda: secrets.token_hex(6), repr=False)
    ports: dict[str, int] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    org: str = ""
    operator: Path = SERVER / "operator"
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
                              stdout=subprocess.PIPE, stderr=open(SERVER / "server.log", "w"), text=True,  # noqa: SIM115
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


def _grpc() -> Any:
    import grpc

    files = S.operator
    creds = grpc.ssl_channel_credentials((files / "ca.pem").read_bytes(), (files / "operator.key").read_bytes(),
                                         (files / "operator.crt").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{S.ports['api']}", creds)


def step_org(d: Any) -> None:
    S.org = _admin("org", "create", "Signet Leasing Ltd.")["id"]
    op = _admin("operator-cert", "issue", "--org", S.org, "--login", "demo-operator", "--out", str(S.operator))
    say(f"organisation {S.org} 'Signet Leasing Ltd.'")
    say(f"operator TLS certificate {op['serial']} for {op['caller']}")


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
    m = re.search(r"\b(\d{6})\b", body)
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

    ids = pbg.IdentityServiceStub(_grpc())
    for s in S.people:
        ids.ApprovePerson(pb.ApprovePersonRequest(person_id=s.person_id, evidence="resident ID card inspected at "
                                                  "the Beijing branch", reference="KYC-2030-0001"), timeout=30)
        last = ids.ListEvidence(pb.ListEvidenceRequest(person_id=s.person_id), timeout=30).records[-1]
        say(f"{s.name}: {last.kind} by {last.actor} at {last.at.ToDatetime():%H:%M:%S} UTC "
            f"(evidence chain of {last.seq} records, head {last.digest[:12]}…)")


def step_enroll(d: Any) -> None:
    from agent.enroll import enroll
    from agent.serverlink import ServerLink, ServerTarget
    from hsm import Hsm

    hsm = Hsm(pin_state=SERVER / "agent-pin-state.json")
    for s in S.people:
        _new_token(s.token_label, s.pin)
    target = ServerTarget(enroll=f"127.0.0.1:{S.ports['enroll']}", api=f"127.0.0.1:{S.ports['api']}",
                          ca_pem=(SERVER / "state" / "tls" / "ca.pem").read_bytes())
    with ServerLink(target) as link:
        for s in S.people:
            token = hsm.token(label=s.token_label)
            token.login(s.pin)
            link.start_enrollment(s.person_id)
            s.result = enroll(token, link, s.person_id, _code(s.phone), key_label="contract-signing",
                              tls_dir=SERVER / "agents" / s.token_label)
            say(f"{s.name}: P-256 key {s.result.key_id[:12]}… generated on {s.token_label!r}, CSR signed by the "
                f"token, certificate {s.result.serial} + chain stored back on the token")


def step_show(d: Any) -> None:
    from asn1crypto import pem, x509

    files = SERVER / "pki"
    files.mkdir(exist_ok=True)
    for s in S.people:
        r = s.result
        (files / "issuing.pem").write_bytes(pem.armor("CERTIFICATE", r.chain_der[0]))
        (files / "root.pem").write_bytes(pem.armor("CERTIFICATE", r.chain_der[1]))
        leaf = files / f"{s.token_label}.pem"
        leaf.write_bytes(pem.armor("CERTIFICATE", r.certificate_der))
        cert = x509.Certificate.load(r.certificate_der)
        subj = cert.subject.native
        p = subprocess.run(["openssl", "ocsp", "-issuer", str(files / "issuing.pem"), "-cert", str(leaf), "-url",
                            f"http://127.0.0.1:{S.ports['http']}/ocsp", "-CAfile", str(files / "root.pem")],
                           capture_output=True, text=True, timeout=30)
        status = next((ln.split(": ", 1)[1] for ln in p.stdout.splitlines() if ln.startswith(str(leaf))), "?")
        verified = "Response verify OK" in p.stdout + p.stderr
        say(f"{s.name}")
        say(f"  subject      CN={subj['common_name']}, serialNumber={subj['serial_number']}, "
            f"O={subj['organization_name']}, C={subj['country_name']}")
        say(f"  issuer       {cert.issuer.native['common_name']} (serial {r.serial})")
        say(f"  valid        {cert.not_valid_before:%Y-%m-%d} .. {cert.not_valid_after:%Y-%m-%d}; "
            f"EKU {', '.join(cert.extended_key_usage_value.native)}")
        say(f"  OCSP         {status} (openssl ocsp, {'response verify OK' if verified else 'NOT VERIFIED'})")
        if status != "good" or not verified:
            raise RuntimeError(f"OCSP did not report {s.name}'s certificate as good")


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
    ("Keys enrolled on Alice's and Bob's own tokens (agent side)", step_enroll),
    ("Their certificates, with OCSP status from the running server", step_show),
    ("Server stopped cleanly", step_server_stop),
]
