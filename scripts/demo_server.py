"""`make demo`, server stage: signet-server on its own SoftHSM token, Alice, Bob and Carol verified; Alice and Bob
enrolled on their own tokens, Carol given a remote-signing key on the server token.

Steps (appended to ``scripts.demo.STEPS``): initialise the server in ``demo-state/server`` (configuration from
:func:`scripts.processes.write_server_config`), start it (:class:`scripts.processes.ServerProcess`, log in
``server.log``), create an organisation and two operator certificates, register Alice, Bob and Carol over mutual
TLS, deliver their phone codes through the outbox and enter them, approve them (the second operator: four eyes);
then give Alice and Bob what they have at their own desk: a SoftHSM token in its own directory
(``demo-state/alice/softhsm``) and their own ``signet-agent`` (``demo-state/alice/agent``) that sees only that
token; enrol a key on each token through that person's agent with ``signet enroll --api ...`` (``--send-code``, the
code read from the outbox, then ``--code-env``; PINs and codes only in environment variables; the agent keeps its
TLS files and the enrollment record in its own state directory, where ``signet inbox`` and ``signet envelope`` find
them), read back with ``signet --json keys`` what is on their tokens and check their certificates' OCSP status at
the running server with ``openssl ocsp``. Carol has no token: the second operator (four eyes: not the one who
registered her) has the server generate a key for her on the server token with ``signet-admin remote-key create
CAROL --evidence ... --out demo-state/carol/identity`` (the API files she gets: a TLS client certificate and key,
``identity.json``); the demo shows her certificate (from the signing CA, remote-signing policy and the
server-held-key marker), its OCSP status, and, with ``pkcs11-tool`` logged in to the server token (PIN from an
environment variable), that the key is there, sensitive and never extractable. The envelope stage
(``scripts/demo_envelopes.py``) runs next, on these agents and this server; :data:`SERVER_STOP_STEPS` then stop the
agents and the server (SIGTERM, exit 0). What the stage established goes to ``d.facts["server"]``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.demo_agent import (
    SECRETS,
    STATE,
    DemoFailed,
    Step,
    journal_facts,
    rel,
    say,
    show_output,
    signet_json,
    signet_shown,
    start_agent,
    stop_agent,
    tool,
)
from scripts.processes import (
    ROOT,
    AgentProcess,
    ServerEnv,
    ServerProcess,
    free_port,
    server_cli,
    write_server_config,
)

if TYPE_CHECKING:
    from scripts.demo import Demo

SERVER = STATE / "server"
SERVER_TOKEN = "signet-server"  # noqa: S105 - a token label
PIN_ENV = "SIGNET_DEMO_SERVER_PIN"
SIGNER_PIN_ENV = "SIGNET_DEMO_SIGNER_PIN"  # `signet enroll/keys --pin-env`: the PIN reaches the CLI only through here
CODE_ENV = "SIGNET_DEMO_ENROLL_CODE"  # `signet enroll --code-env`: likewise the one-time code
KEY_LABEL = "contract-signing"
ORGANISATION = "Signet Leasing Ltd."
OWN_POLICY = """[policy]
# the person at their own desk (the local caller, on the Unix socket) may enrol a key on the token (generate it,
# have the token sign the certificate request, import the certificate) and sign with that key -- after the
# confirmation program has shown them what is signed; no other key of the token may sign
default_callers = []
admin_callers = ["local"]

[[policy.key]]
label = "{key_label}"
callers = ["local"]
usage_limit = 100
confirm = "{confirm}"
"""
# The person's "yes": the agent runs this with the JSON of what is about to be signed (file name, SHA-256, pages,
# signer) on stdin; it keeps that JSON for the demo to show, and approves.
CONFIRM_PROGRAM = """#!/bin/sh
cat > "{directory}/shown-$(date +%s%N).json"
"""


def prc_id(area_birth_seq: str) -> str:
    """Append the ISO 7064 MOD 11-2 check digit to 17 digits (the server's own check)."""
    from server.identity.documents import mod11_2_check

    return area_birth_seq + mod11_2_check(area_birth_seq)


@dataclass
class Signer:
    name: str
    doc: str = field(repr=False)
    phone: str
    email: str
    token_label: str  # "": no token of their own (a remote-signing key on the server token instead)
    pin: str = field(default="", repr=False)
    person_id: str = ""
    agent: AgentProcess | None = None  # their own signet-agent, serving only their own token
    facts: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.token_label:
            self.pin = self.pin or SECRETS.add(f"{self.first}'s PIN", f"{secrets.randbelow(10**6):06d}")

    @property
    def remote(self) -> bool:
        """No token: signs with the key the server holds for them, through the API files in :attr:`identity`."""
        return not self.token_label

    @property
    def identity(self) -> Path:
        """Where `signet-admin remote-key create --out` wrote their API files (``--identity DIR``)."""
        return self.home / "identity"

    @property
    def first(self) -> str:
        return self.name.split()[0]

    @property
    def home(self) -> Path:
        """Their desk: ``demo-state/alice/`` with ``softhsm/`` (their token) and ``agent/`` (their agent)."""
        return STATE / self.first.lower()

    @property
    def tls_dir(self) -> Path:
        """Where `signet enroll` left the agent's TLS files and the enrollment record (the agent's state)."""
        return self.home / "agent" / "state" / "server"

    @property
    def shown_dir(self) -> Path:
        """What the confirmation program was shown, one JSON file per signature."""
        return self.home / "agent" / "shown"

    @property
    def running(self) -> AgentProcess:
        if self.agent is None:
            raise DemoFailed(f"{self.first}'s agent is not running")
        return self.agent


@dataclass
class ServerStage:
    pin: str = field(default_factory=lambda: SECRETS.add("the server token's PIN", secrets.token_hex(6)), repr=False)
    env: ServerEnv | None = None
    server: ServerProcess | None = None
    org: str = ""
    operator: Path = SERVER / "operator"
    reviewer: Path = SERVER / "reviewer"  # a second operator: four eyes, the one who approves
    people: list[Signer] = field(default_factory=lambda: [
        Signer("Alice Wang 王爱丽", "11010519491231002X", "+8613800138000", "alice@example.com", "alice-token"),
        Signer("Bob Li 李博", prc_id("11010519900307457"), "+8613900139000", "bob@example.com", "bob-token"),
        Signer("Carol Zhao 赵卡罗", prc_id("11010819850615123"), "+8613700137000", "carol@example.com", ""),
    ])
    started_at: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def running_env(self) -> ServerEnv:
        if self.env is None:
            raise DemoFailed("the server is not configured")
        return self.env

    @property
    def token_holders(self) -> list[Signer]:
        """Alice and Bob: their own token behind their own agent."""
        return [s for s in self.people if not s.remote]

    @property
    def remote_signers(self) -> list[Signer]:
        """Carol: no token, a key held for her on the server token."""
        return [s for s in self.people if s.remote]

    def person(self, first: str) -> Signer:
        return next(s for s in self.people if s.first == first)


S = ServerStage()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    p = server_cli(S.running_env, *args)
    if p.returncode != 0:
        why = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise DemoFailed(f"{args[0]} {' '.join(args[1:3])} exited with {p.returncode}: {why}")
    return p


def admin_json(*args: str, login: str = "demo-operator") -> Any:
    """`signet-admin --json ARGS` as the demo operator (or ``login``): the parsed answer."""
    return json.loads(_run("server.admin", "--config", str(S.running_env.config), "--json", "--as", login,
                           *args).stdout)


def _new_token(label: str, pin: str, directory: Path = STATE / "softhsm") -> str:
    """A SoftHSM token in ``directory`` (the demo's own by default, which this process then sees too); returns the
    SOFTHSM2_CONF path of that directory."""
    from hsm import module

    p = subprocess.run([str(ROOT / "softhsm-config" / "init-token.sh"), str(directory), label,
                        SECRETS.add(f"the SO PIN of {label!r}", secrets.token_hex(8)), pin], check=True,
                       capture_output=True, text=True)
    if directory == STATE / "softhsm":
        module.load().reinitialize()  # SoftHSM shows new tokens only after C_Finalize/C_Initialize
    return p.stdout.strip().removeprefix("export SOFTHSM2_CONF=")


def _subject_of(pem_file: Path) -> str:
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem_file.read_bytes()).subject.rfc4514_string()


def step_server_init(d: Demo) -> None:
    S.started_at = time.perf_counter()
    S.facts = d.facts.setdefault("server", {})
    SERVER.mkdir(parents=True, exist_ok=True, mode=0o700)
    _new_token(SERVER_TOKEN, S.pin)
    S.env = write_server_config(SERVER, SERVER_TOKEN, S.pin, f'[portal]\nlisten = "127.0.0.1:{free_port()}"\n',
                                organisation="Signet Demo Platform", pin_env=PIN_ENV)
    pin_file = SERVER / "pin"  # for `make serve` (0600, in the demo's own 0700 directory)
    pin_file.touch(mode=0o600)
    pin_file.write_text(S.pin)
    say(f"server token {SERVER_TOKEN!r} + {rel(S.env.config)} (demo mode: one-time codes are read from the outbox)")
    cmd = ["signet-server", "init", "--config", rel(S.env.config)]
    say("$ " + " ".join(cmd))
    show_output(_run("server.main", "init", "--config", str(S.env.config)).stdout, limit=6)
    S.facts.update(config=str(S.env.config),
                   ports={"api": S.env.api_port, "enroll": S.env.enroll_port, "http": S.env.http_port},
                   signing_root=_subject_of(S.env.signing_root), tls_root=_subject_of(S.env.ca_pem))
    say(f"signing root: {S.facts['signing_root']}; TLS root: {S.facts['tls_root']}")


def step_server_start(d: Demo) -> None:
    # ServerProcess waits for the ready line (and kills the process itself when it does not come)
    S.server = ServerProcess(S.running_env, log_path=SERVER / "server.log")
    d.running.append(S.server)
    S.facts["ready"] = S.server.ready_line.strip()
    say(f"$ signet-server run --config {rel(S.running_env.config)}   (pid {S.server.proc.pid}, log "
        f"{rel(SERVER / 'server.log')})")
    say(S.facts["ready"])
    say("API: mutual TLS; enrollment: TLS; PKI HTTP: OCSP, CRL, TSA, CA certificates")


def _grpc(files: Path | None = None) -> Any:
    import grpc

    files = files or S.operator
    creds = grpc.ssl_channel_credentials((files / "ca.pem").read_bytes(), (files / "operator.key").read_bytes(),
                                         (files / "operator.crt").read_bytes())
    return grpc.secure_channel(S.running_env.api, creds)


def step_org(d: Demo) -> None:
    S.org = admin_json("org", "create", ORGANISATION)["id"]
    S.facts["organisation"] = {"id": S.org, "name": ORGANISATION}
    say(f"organisation {S.org} {ORGANISATION!r}")
    S.facts["operators"] = []
    for login, out in (("demo-operator", S.operator), ("demo-reviewer", S.reviewer)):
        op = admin_json("operator-cert", "issue", "--org", S.org, "--login", login, "--out", str(out))
        S.facts["operators"].append({"login": login, "serial": op["serial"], "caller": op["caller"]})
        say(f"operator TLS certificate {op['serial']} for {op['caller']} (from the TLS CA, never the signing CA)")
    say("four eyes: demo-operator registers people, demo-reviewer approves them")


def step_register(d: Demo) -> None:
    from signet.v1 import server_pb2 as pb
    from signet.v1 import server_pb2_grpc as pbg

    ids = pbg.IdentityServiceStub(_grpc())
    S.facts["people"] = []
    for s in S.people:
        p = ids.RegisterPerson(pb.RegisterPersonRequest(legal_name=s.name, document_type="prc_resident_id",
                                                        document_number=s.doc, phone=s.phone, email=s.email),
                               timeout=30).person
        s.person_id = p.id
        ids.StartPhoneVerification(pb.StartPhoneVerificationRequest(person_id=p.id), timeout=30)
        status = pb.PersonStatus.Name(p.status)
        s.facts = {"name": s.name, "person_id": p.id, "token_label": s.token_label or None,
                   "registered_status": status}
        S.facts["people"].append(s.facts)
        say(f"{s.name}: person {p.id}, status {status}; phone code sent to {s.phone}")


def outbox_code(s: Signer, what: str) -> str:
    """The newest unread one-time code for ``s`` from the outbox (signet-admin outbox read), registered as secret."""
    entry = admin_json("outbox", "list", "--to", s.phone, "--unread")[0]
    body = admin_json("outbox", "read", entry["id"])["body"]
    m = re.search(r"\b(\d{8}|\d{6})\b", body)  # enrollment codes have 8 digits, phone codes 6
    if not m:
        raise DemoFailed(f"no code in the outbox message {entry['id']}")
    return SECRETS.add(f"{s.name.split()[0]}'s {what}", m.group(1))


def step_codes(d: Demo) -> None:
    from signet.v1 import server_pb2 as pb
    from signet.v1 import server_pb2_grpc as pbg

    ids = pbg.IdentityServiceStub(_grpc())
    for e in admin_json("outbox", "list", "--unread"):
        say(f"outbox {e['id'][:8]}… to {e['to']}: {e['subject']!r} ({e['topic']})")
    for s in S.people:
        p = ids.ConfirmPhone(pb.ConfirmPhoneRequest(person_id=s.person_id, code=outbox_code(s, "phone code")),
                             timeout=30).person
        s.facts["phone_verified"] = p.HasField("phone_verified_at")
        say(f"{s.name}: code read with `signet-admin outbox read` and entered; phone verified at "
            f"{p.phone_verified_at.ToDatetime():%H:%M:%S} UTC")
        if not s.facts["phone_verified"]:
            raise DemoFailed(f"{s.name}'s phone is not verified after the code was entered")


def step_approve(d: Demo) -> None:
    from signet.v1 import server_pb2 as pb
    from signet.v1 import server_pb2_grpc as pbg

    ids = pbg.IdentityServiceStub(_grpc(S.reviewer))
    for s in S.people:
        ids.ApprovePerson(pb.ApprovePersonRequest(person_id=s.person_id, evidence="resident ID card inspected at "
                                                  "the Beijing branch", reference="KYC-2030-0001"), timeout=30)
        last = ids.ListEvidence(pb.ListEvidenceRequest(person_id=s.person_id), timeout=30).records[-1]
        s.facts["approval"] = {"kind": last.kind, "actor": last.actor, "evidence_records": last.seq}
        say(f"{s.name}: {last.kind} by {last.actor} at {last.at.ToDatetime():%H:%M:%S} UTC "
            f"(evidence chain of {last.seq} records, head {last.digest[:12]}…)")


def step_own_agents(d: Demo) -> None:
    for s in S.token_holders:
        conf = _new_token(s.token_label, s.pin, s.home / "softhsm")
        confirm = s.home / "agent" / "confirm.sh"
        s.shown_dir.mkdir(parents=True, exist_ok=True)
        confirm.write_text(CONFIRM_PROGRAM.format(directory=s.shown_dir))
        confirm.chmod(0o700)
        say(f"{s.first}'s desk: SoftHSM token {s.token_label!r} in {rel(s.home / 'softhsm')} with a PIN only "
            f"{s.first} knows, and {s.first}'s own signet-agent, which sees only that token")
        tsa = f"{S.running_env.pki_url}/tsa"  # the agent may use the server's TSA: B-T envelope signatures
        s.agent = AgentProcess(s.home / "agent", OWN_POLICY.format(key_label=KEY_LABEL, confirm=confirm),
                               agent_settings=f'log_level = "INFO"\npdf_workers = 0\ntimestamp_urls = ["{tsa}"]',
                               env={"SOFTHSM2_CONF": conf})
        facts = s.facts["agent"] = start_agent(d, s.agent)
        tokens = signet_json(s.agent, "tokens").get("tokens", [])
        for t in tokens:
            say(f"  {t['label']}  serial {t['serial']}")
        facts["tokens"] = [t["label"] for t in tokens]
        if facts["tokens"] != [s.token_label]:
            raise DemoFailed(f"{s.first}'s agent lists {facts['tokens']}, not only {s.token_label!r}")
    say(f"policy of both agents: the local caller may enrol a key labelled {KEY_LABEL!r} and sign with it, each "
        "signature after a confirmation program was shown what is signed (file, SHA-256, pages, signer); Carol has "
        "no token and no agent")


def step_enroll(d: Demo) -> None:
    env = S.running_env
    server = ["--server", env.enroll, "--server-ca", rel(env.ca_pem)]
    for s in S.token_holders:
        who = ["--token", s.token_label, *server, "--person", s.person_id]
        # `signet enroll` prints prose only: the demo reads what it did from the token (next step) and from the
        # enrollment record it writes (enrollment.json, next to the agent's TLS files in its state directory)
        signet_shown(s.running, "enroll", *who, "--send-code")
        code = outbox_code(s, "enrollment code")  # read with signet-admin from the outbox, handed over in CODE_ENV only
        signet_shown(s.running, "enroll", *who, "--pin-env", SIGNER_PIN_ENV, "--code-env", CODE_ENV, "--api",
                     env.api, "--key-label", KEY_LABEL, secrets={SIGNER_PIN_ENV: s.pin, CODE_ENV: code})
        record = json.loads((s.tls_dir / "enrollment.json").read_text())
        if record.get("person_id") != s.person_id or record.get("key_label") != KEY_LABEL \
                or record.get("api") != env.api:
            raise DemoFailed(f"the enrollment record in {rel(s.tls_dir)} is not {s.name}'s {KEY_LABEL!r} key")
        s.facts.update(key_id=record["key_id"], key_label=record["key_label"], certificate_serial=record["serial"])
        say(f"{s.name}: P-256 key {record['key_id'][:12]}… generated on {s.token_label!r}, CSR signed by the token, "
            f"certificate {record['serial']} + chain imported by the agent; its TLS files for the API in "
            f"{rel(s.tls_dir)}")


def _certificate_on_token(s: Signer) -> bytes:
    """The DER certificate next to ``s``'s enrolled key, as the agent reads it from the token."""
    from agent.client import TokenRef

    with s.running.client() as client:
        keys = client.keys(TokenRef(label=s.token_label), s.pin).keys
    der = next((bytes(k.certificate_der) for k in keys if k.key_id == s.facts["key_id"]), b"")
    if not der:
        raise DemoFailed(f"the agent lists no certificate for {s.name}'s key {s.facts['key_id']}")
    return der


def _ocsp(leaf: Path, issuer: Path, root: Path) -> dict[str, Any]:
    """`openssl ocsp` against the running server's responder: the status it reports for ``leaf`` and whether the
    response verified against the signing root."""
    p = tool("openssl", "ocsp", "-issuer", rel(issuer), "-cert", rel(leaf), "-url", f"{S.running_env.pki_url}/ocsp",
             "-CAfile", rel(root))
    status = next((ln.split(": ", 1)[1].strip() for ln in p.stdout.splitlines() if ln.startswith(rel(leaf) + ":")),
                  "")
    return {"status": status, "response_verified": "Response verify OK" in p.stdout + p.stderr,
            "exit_code": p.returncode}


def step_show(d: Demo) -> None:
    import urllib.request

    from asn1crypto import pem, x509

    env = S.running_env
    files = SERVER / "pki"
    files.mkdir(exist_ok=True)
    # the signing CA is published by the PKI listener; the signing root came with each enrollment
    with urllib.request.urlopen(f"{env.pki_url}/ca/signing-ca.crt", timeout=30) as resp:  # noqa: S310 - our server
        issuing = x509.Certificate.load(resp.read())
    (files / "issuing.pem").write_bytes(pem.armor("CERTIFICATE", issuing.dump()))
    for s in S.token_holders:
        say(f"{s.name}: what {s.token_label!r} holds, read through the agent")
        keys = signet_json(s.running, "keys", "--token", s.token_label, "--pin-env", SIGNER_PIN_ENV,
                           secrets={SIGNER_PIN_ENV: s.pin}).get("keys", [])
        for k in keys:
            say(f"  {k['key_id']}  {k['label']}  {k.get('certificate_subject') or '(no certificate)'}")
        mine = [k for k in keys if k.get("label") == KEY_LABEL]
        if len(mine) != 1 or mine[0]["key_id"] != s.facts["key_id"]:
            raise DemoFailed(f"`signet keys` on {s.token_label!r} does not show the enrolled key {s.facts['key_id']}")
        s.facts["certificate_subject"] = mine[0].get("certificate_subject", "")

        der = _certificate_on_token(s)
        cert = x509.Certificate.load(der)
        if cert.serial_number != int(s.facts["certificate_serial"], 16):
            raise DemoFailed(f"the certificate on {s.token_label!r} is not the one the server issued")
        leaf = files / f"{s.token_label}.pem"
        leaf.write_bytes(pem.armor("CERTIFICATE", der))
        root = files / "root.pem"
        root.write_bytes((s.tls_dir / "signing-root.pem").read_bytes())
        subj = cert.subject.native
        s.facts.update(subject={k: subj.get(k, "") for k in ("common_name", "serial_number", "organization_name",
                                                              "country_name")},
                       issuer=cert.issuer.native.get("common_name", ""),
                       not_before=cert.not_valid_before.isoformat(), not_after=cert.not_valid_after.isoformat(),
                       eku=list(cert.extended_key_usage_value.native or []))
        say(f"  its certificate (written to {rel(leaf)}):")
        say(f"    subject  CN={subj['common_name']}, serialNumber={subj['serial_number']}, "
            f"O={subj['organization_name']}, C={subj['country_name']}")
        say(f"    issuer   {s.facts['issuer']}; serial {s.facts['certificate_serial']}")
        say(f"    valid    {cert.not_valid_before:%Y-%m-%d} .. {cert.not_valid_after:%Y-%m-%d}; "
            f"EKU {', '.join(s.facts['eku'])}")
        ocsp = s.facts["ocsp"] = _ocsp(leaf, files / "issuing.pem", root)
        say(f"OCSP verdict for {s.name}: {ocsp['status'] or 'none'}; the response "
            f"{'verified' if ocsp['response_verified'] else 'did NOT verify'} against the signing root")
        if ocsp["status"] != "good" or not ocsp["response_verified"]:
            raise DemoFailed(f"OCSP did not report {s.name}'s certificate as good")


def _server_token_key(label_prefix: str) -> dict[str, Any]:
    """The private key whose label starts with ``label_prefix`` as ``pkcs11-tool`` sees it, logged in to the server
    token (the PIN in an environment variable: ``--pin env:VAR``); its access flags as booleans."""
    from hsm.module import find_module_path

    cmd = ["pkcs11-tool", "--module", find_module_path(), "--token-label", SERVER_TOKEN, "--login", "--pin",
           f"env:{PIN_ENV}", "-O", "--type", "privkey"]
    say("$ " + " ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60,
                       env={**os.environ, PIN_ENV: S.pin})
    if p.returncode != 0:
        raise DemoFailed(f"pkcs11-tool exited with {p.returncode}: {p.stderr.strip()[-200:]}")
    blocks: list[list[str]] = []
    for line in p.stdout.splitlines():
        if line and not line.startswith(" "):
            blocks.append([line])
        elif blocks:
            blocks[-1].append(line)
    mine = [b for b in blocks if any(ln.split(":", 1)[-1].strip().startswith(label_prefix) for ln in b
                                     if ln.strip().startswith("label:"))]
    if len(mine) != 1:
        raise DemoFailed(f"pkcs11-tool lists {len(mine)} private keys labelled {label_prefix}… on {SERVER_TOKEN!r}")
    [block] = mine
    for line in block:
        say("  " + line.strip())
    fields = {ln.strip().split(":", 1)[0]: ln.split(":", 1)[1].strip() for ln in block[1:] if ":" in ln}
    access = {a.strip() for a in fields.get("Access", "").split(",")}
    return {"token": SERVER_TOKEN, "object": block[0].strip(), "label": fields.get("label", ""),
            "sensitive": "sensitive" in access, "always_sensitive": "always sensitive" in access,
            "never_extractable": "never extractable" in access, "extractable": "extractable" in access,
            "local": "local" in access}


def step_remote_key(d: Demo) -> None:
    from asn1crypto import pem, x509

    from formats.policy import REMOTE_KEY_MARKER, certificate_policies
    from signet.v1 import server_pb2 as pb
    from signet.v1 import server_pb2_grpc as pbg

    for s in S.remote_signers:
        evidence = "resident ID card inspected at the Beijing branch; no token of her own"
        say(f"$ signet-admin --config {rel(S.running_env.config)} --json --as demo-reviewer remote-key create "
            f"{s.person_id} --evidence {evidence!r} --out {rel(s.identity)}")
        made = admin_json("remote-key", "create", s.person_id, "--evidence", evidence, "--out", str(s.identity),
                          login="demo-reviewer")  # four eyes: not demo-operator, who registered her
        csc = json.loads((s.identity / "csc.json").read_text())
        SECRETS.add(f"{s.first}'s CSC client secret", str(csc.get("client_secret", "")))
        files = {f.name: f"{f.stat().st_mode & 0o777:04o}" for f in sorted(s.identity.iterdir())}
        identity = json.loads((s.identity / "identity.json").read_text())
        say(f"  key {made['key_id'][:12]}… on the server token, certificate {made['serial']}, API (TLS) "
            f"certificate {made['tls_serial']}")
        say(f"  {rel(s.identity)}: " + ", ".join(f"{n} ({m})" for n, m in files.items())
            + f"; identity.json names person {identity['person_id']} and the API {identity['api']}")
        if identity.get("person_id") != s.person_id or identity.get("remote_key_serial") != made["serial"]:
            raise DemoFailed(f"identity.json in {rel(s.identity)} is not {s.name}'s")
        with _grpc(S.reviewer) as ch:
            certs = pbg.CertificateServiceStub(ch).ListCertificates(
                pb.ListCertificatesRequest(person_id=s.person_id), timeout=30).certificates
        der = next((bytes(c.certificate_der) for c in certs if c.serial == made["serial"]), b"")
        if not der:
            raise DemoFailed(f"the server lists no certificate {made['serial']} for {s.name}")
        cert = x509.Certificate.load(der)
        leaf = SERVER / "pki" / f"{s.first.lower()}-remote.pem"
        leaf.write_bytes(pem.armor("CERTIFICATE", der))
        subj = cert.subject.native
        policies = certificate_policies(cert)
        say(f"  {s.name}'s certificate (written to {rel(leaf)}):")
        say(f"    subject  CN={subj['common_name']}, serialNumber={subj['serial_number']}, "
            f"O={subj['organization_name']}, C={subj['country_name']}")
        say(f"    issuer   {cert.issuer.native.get('common_name', '')}; valid {cert.not_valid_before:%Y-%m-%d} .. "
            f"{cert.not_valid_after:%Y-%m-%d}")
        say(f"    policies {', '.join(policies)} (remote signing; {REMOTE_KEY_MARKER}: the key is held on the "
            "server token)")
        key = _server_token_key(f"signet-remote-{s.person_id}")
        s.facts["remote_key"] = {
            "key_id": made["key_id"], "certificate_serial": made["serial"], "tls_serial": made["tls_serial"],
            "operator": "demo-reviewer", "identity_dir": str(s.identity), "files": files, "api": identity["api"],
            "subject": {k: subj.get(k, "") for k in ("common_name", "serial_number", "organization_name",
                                                    "country_name")},
            "certificate_subject": _subject_of(leaf), "issuer": cert.issuer.native.get("common_name", ""),
            "not_before": cert.not_valid_before.isoformat(), "not_after": cert.not_valid_after.isoformat(),
            "policies": policies, "server_held_marker": REMOTE_KEY_MARKER in policies, "on_server_token": key}
        say(f"  the key on {SERVER_TOKEN!r}: {key['object']}, label {key['label']}, "
            f"{'sensitive' if key['sensitive'] else 'NOT sensitive'}, "
            f"{'never extractable' if key['never_extractable'] else 'EXTRACTABLE'}")
        ocsp = s.facts["remote_key"]["ocsp"] = _ocsp(leaf, SERVER / "pki" / "issuing.pem", SERVER / "pki" / "root.pem")
        say(f"OCSP verdict for {s.name}'s remote key: {ocsp['status'] or 'none'}; the response "
            f"{'verified' if ocsp['response_verified'] else 'did NOT verify'} against the signing root")
        if not (key["sensitive"] and key["never_extractable"]) or key["extractable"]:
            raise DemoFailed(f"{s.name}'s key on the server token is not sensitive and non-extractable: {key}")
        if REMOTE_KEY_MARKER not in policies or subj.get("common_name") != s.name:
            raise DemoFailed(f"{s.name}'s remote-key certificate does not name her or lacks the server-held marker")
        if ocsp["status"] != "good" or not ocsp["response_verified"]:
            raise DemoFailed(f"OCSP did not report {s.name}'s remote-key certificate as good")


def step_own_agents_stop(d: Demo) -> None:
    for s in S.token_holders:
        facts = s.facts["agent"]
        facts.update(stop_agent(d, s.running, [s.pin]))
        facts["journal"] = journal_facts(s.running)


def step_server_stop(d: Demo) -> None:
    if S.server is None:
        raise DemoFailed("the server is not running")
    pid = S.server.proc.pid
    rc = S.server.stop()  # ProcessFailed unless it exits 0 after saying it stopped
    d.running.remove(S.server)
    S.facts["exit_code"] = rc
    S.facts["duration_seconds"] = round(time.perf_counter() - S.started_at, 2)
    say(f"SIGTERM -> pid {pid}: listeners drained, store closed, token logged out (exit {rc}); log in "
        f"{rel(SERVER / 'server.log')}")
    say(f"server stage: {S.facts['duration_seconds']:.1f} s")


SERVER_STEPS: list[tuple[str, Step]] = [
    ("Server initialised: keys on its own SoftHSM token, TLS from its CA", step_server_init),
    ("Server started", step_server_start),
    ("Organisation and operator certificates (signet-admin)", step_org),
    ("Alice, Bob and Carol registered by the operator over mutual TLS", step_register),
    ("Phone codes read from the outbox and entered", step_codes),
    ("Real-name approval recorded with evidence", step_approve),
    ("Alice's and Bob's own tokens, each behind their own signet-agent", step_own_agents),
    ("Keys enrolled on their tokens through their agents (signet enroll)", step_enroll),
    ("Their keys and certificates from their agents, with OCSP status from the running server", step_show),
    ("Carol, who has no token: a remote-signing key for her on the server token (signet-admin)", step_remote_key),
]
SERVER_STOP_STEPS: list[tuple[str, Step]] = [  # after the envelope stage
    ("Alice's and Bob's agents stopped cleanly", step_own_agents_stop),
    ("Server stopped cleanly", step_server_stop),
]
