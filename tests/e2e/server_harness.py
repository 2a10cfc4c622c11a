"""Test harness for signet-server: a real `signet-server` subprocess on a real SoftHSM token, real TLS on
127.0.0.1, `signet-admin` as a subprocess, and gRPC clients with the certificates it issues.

Imported by tests/e2e/test_server_*.py; nothing here fakes the server, the token or the network.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
PIN_ENV = "SIGNET_TEST_SERVER_PIN"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerEnv:
    dir: Path
    config: Path
    token_label: str
    pin: str = field(repr=False)
    api_port: int = 0
    enroll_port: int = 0
    http_port: int = 0

    @property
    def state(self) -> Path:
        return self.dir / "state"

    @property
    def ca_pem(self) -> Path:
        return self.state / "tls" / "ca.pem"

    @property
    def api(self) -> str:
        return f"127.0.0.1:{self.api_port}"

    @property
    def enroll(self) -> str:
        return f"127.0.0.1:{self.enroll_port}"

    @property
    def pki_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, PIN_ENV: self.pin}


def write_config(directory: Path, token_label: str, pin: str, extra: str = "") -> ServerEnv:
    directory.mkdir(parents=True, exist_ok=True)
    env = ServerEnv(directory, directory / "server.toml", token_label, pin, free_port(), free_port(), free_port())
    env.config.write_text(f"""
[server]
state_dir = "state"
organisation = "Signet Test Platform"
country = "CN"
key_family = "ec"
log_level = "INFO"

[hsm]
token_label = "{token_label}"
pin_env = "{PIN_ENV}"

[grpc]
listen = "127.0.0.1:{env.api_port}"
enroll_listen = "127.0.0.1:{env.enroll_port}"
workers = 4

[http]
listen = "127.0.0.1:{env.http_port}"

[otp]
min_interval_seconds = 0
hourly_limit = 50
{extra}
""")
    return env


def cli(env: ServerEnv, module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", module, *args], capture_output=True, text=True, timeout=timeout,
                          env=env.env(), cwd=ROOT)


def server_init(env: ServerEnv) -> subprocess.CompletedProcess[str]:
    return cli(env, "server.main", "init", "--config", str(env.config))


def admin(env: ServerEnv, *args: str, login: str = "op-admin") -> Any:
    """Run signet-admin --json; returns the parsed output, raises AssertionError with stderr on failure."""
    p = cli(env, "server.admin", "--config", str(env.config), "--json", "--as", login, *args)
    if p.returncode != 0:
        raise AssertionError(f"signet-admin {' '.join(args[:2])} failed ({p.returncode}): {p.stderr}")
    return json.loads(p.stdout)


def latest_code(env: ServerEnv, phone: str) -> str:
    """The 6-digit code of the newest outbox message to ``phone`` (read with signet-admin outbox read)."""
    entries = admin(env, "outbox", "list", "--to", phone)
    body = admin(env, "outbox", "read", entries[0]["id"])["body"]
    m = re.search(r"\b(\d{6})\b", body)
    assert m, "no code in the outbox message"
    return m.group(1)


class ServerProcess:
    """`signet-server run` as a subprocess; ``stop()`` sends SIGTERM and checks the clean exit."""

    def __init__(self, env: ServerEnv) -> None:
        self.env = env
        self.proc = subprocess.Popen([PY, "-m", "server.main", "run", "--config", str(env.config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env.env(), cwd=ROOT)
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr_lines.append), daemon=True).start()
        try:
            line = self.stdout.get(timeout=60)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError("signet-server did not report ready: " + "".join(self.stderr_lines[-20:])) from None
        if not line.startswith("signet-server ready"):
            self.proc.kill()
            raise AssertionError(f"unexpected first line {line!r}: " + "".join(self.stderr_lines[-20:]))
        self.ready_line = line

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        rest = []
        while not self.stdout.empty():
            rest.append(self.stdout.get())
        assert rc == 0, f"signet-server exited {rc}: " + "".join(self.stderr_lines[-20:])
        assert any("signet-server stopped" in r for r in rest), rest
        return rc

    @property
    def log(self) -> str:
        return "".join(self.stderr_lines)


@dataclass(frozen=True)
class ClientFiles:
    cert: Path
    key: Path
    ca: Path


def operator_cert(env: ServerEnv, org: str, login: str, out: Path) -> ClientFiles:
    admin(env, "operator-cert", "issue", "--org", org, "--login", login, "--out", str(out))
    return ClientFiles(out / "operator.crt", out / "operator.key", out / "ca.pem")


def channel(env: ServerEnv, client: ClientFiles | None, *, target: str | None = None,
            ca: bytes | None = None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca or env.ca_pem.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None)
    return grpc.secure_channel(target or env.api, creds)


def reason(e: grpc.RpcError) -> str:
    from signet.v1 import common_pb2

    for key, value in e.trailing_metadata() or ():
        if key == "signet-error-bin":
            return common_pb2.ErrorDetail.FromString(value).reason
    return ""


def openssl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    if check and p.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {p.stdout}{p.stderr}")
    return p


# -- a running server with two organisations and an operator certificate for each --------------------------------
@dataclass
class Running:
    env: ServerEnv
    server: ServerProcess
    org_a: str
    org_b: str
    op_a: ClientFiles
    op_b: ClientFiles
    org_a_name: str = "Acme Leasing Ltd"


def start_running(directory: Path, token_label: str, pin: str) -> Running:
    env = write_config(directory, token_label, pin)
    p = server_init(env)
    assert p.returncode == 0, p.stderr
    server = ServerProcess(env)
    try:
        org_a = admin(env, "org", "create", "Acme Leasing Ltd")["id"]
        org_b = admin(env, "org", "create", "Other Corp")["id"]
        op_a = operator_cert(env, org_a, "alice-op", directory / "op-a")
        op_b = operator_cert(env, org_b, "bob-op", directory / "op-b")
    except BaseException:
        server.proc.kill()
        raise
    return Running(env, server, org_a, org_b, op_a, op_b)


def prc_id(birth: str, seq: str) -> str:
    """A PRC resident ID number with a correct ISO 7064 MOD 11-2 check digit (area 110105, Beijing)."""
    body = "110105" + birth + seq
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def register_verified(r: Running, ch: grpc.Channel, name: str, doc: str, phone: str, email: str,
                      approve: bool = True) -> str:
    """Register a person over gRPC as operator A, confirm the phone with the code from the outbox, approve."""
    from signet.v1 import server_pb2 as pb
    from signet.v1 import server_pb2_grpc as pbg

    ids = pbg.IdentityServiceStub(ch)
    person = ids.RegisterPerson(pb.RegisterPersonRequest(legal_name=name, document_type="prc_resident_id",
                                                         document_number=doc, phone=phone, email=email),
                                timeout=30).person
    ch_ = ids.StartPhoneVerification(pb.StartPhoneVerificationRequest(person_id=person.id), timeout=30).challenge
    ids.ConfirmPhone(pb.ConfirmPhoneRequest(person_id=person.id, code=latest_code(r.env, phone),
                                            code_id=ch_.code_id), timeout=30)
    if approve:
        ids.ApprovePerson(pb.ApprovePersonRequest(person_id=person.id, evidence="ID card inspected at the branch",
                                                  reference="ticket-7"), timeout=30)
    return person.id
