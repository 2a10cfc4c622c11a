"""Test harness for the agent: a real `signet-agent` subprocess, mTLS test certificates, token set-up via the API.

Imported by tests/e2e/test_agent_*.py and bench/agent_sign.py; nothing here fakes the agent or the token.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable


# -- mutual TLS test PKI -------------------------------------------------------------------------------------------
@dataclass
class TlsFiles:
    dir: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # CN -> (cert, key)


def _write_key(path: Path, key: Any) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(path, 0o600)


def make_tls(directory: Path, clients: tuple[str, ...] = ("kiosk-1", "intruder")) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1/localhost and one client certificate per CN."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Signet Test Agent CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))

    def leaf(cn: str, server: bool) -> tuple[x509.Certificate, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                   else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if server:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                             x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                critical=False)
        return b.sign(ca_key, hashes.SHA256()), key

    files = TlsFiles(directory, directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert, key = leaf("localhost", True)
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(files.server_key, key)
    for cn in clients:
        cert, key = leaf(cn, False)
        c, k = directory / f"{cn}.pem", directory / f"{cn}.key"
        c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(k, key)
        files.clients[cn] = (c, k)
    return files


# -- the agent process -----------------------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AgentProcess:
    """`python -m agent.main --config FILE` in ``directory``; stop() asserts a clean exit."""

    def __init__(self, directory: Path, extra_toml: str = "", *, tls: TlsFiles | None = None,
                 agent_settings: str = "") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket = self.dir / "run" / "agent.sock"
        self.state = self.dir / "state"
        self.log_path = self.dir / "agent.log"
        self.port: int | None = None
        lines = ["[agent]", f'socket = "{self.socket}"', f'state_dir = "{self.state}"',
                 "token_poll_seconds = 0.5", agent_settings, ""]
        if tls is not None:
            self.port = free_port()
            lines += ["[tcp]", f'listen = "127.0.0.1:{self.port}"', f'certificate = "{tls.server_cert}"',
                      f'private_key = "{tls.server_key}"', f'client_ca = "{tls.ca_cert}"', ""]
        self.config = self.dir / "agent.toml"
        self.config.write_text("\n".join(lines) + "\n" + extra_toml)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> AgentProcess:
        ready = self.dir / "ready"
        ready.unlink(missing_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([PY, "-m", "agent.main", "--config", str(self.config), "--ready-file",
                                      str(ready)], cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"agent did not become ready:\n{self.log()}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return int(self.proc.returncode)

    def channel(self) -> grpc.Channel:
        from agent.client import Target, channel

        return channel(Target(socket=self.socket))

    def stub(self) -> Any:
        from signet.v1 import agent_pb2_grpc

        return agent_pb2_grpc.AgentServiceStub(self.channel())

    def tls_stub(self, tls: TlsFiles, cn: str | None) -> Any:
        from signet.v1 import agent_pb2_grpc

        from agent.client import Target, channel

        cert, key = tls.clients[cn] if cn else (None, None)
        t = Target(tcp=f"127.0.0.1:{self.port}", cert=cert, key=key, ca=tls.ca_cert)
        return agent_pb2_grpc.AgentServiceStub(channel(t))

    def journal(self) -> list[dict[str, Any]]:
        from agent.journal import read

        return read(self.state / "journal.db")


def cli(agent: AgentProcess, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    """Run `signet` (python -m agent.cli) against ``agent``'s socket."""
    return subprocess.run([PY, "-m", "agent.cli", "--socket", str(agent.socket), *args], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, input=stdin,
                          timeout=120)


# -- token set-up through the API --------------------------------------------------------------------------------------
@dataclass
class SignerKey:
    label: str
    serial: str
    key_id: str
    certificate_der: bytes


def provision_key(stub: Any, token_label: str, pin: str, ca: Any, *, algorithm: str = "p256",
                  key_label: str = "signing", cn: str = "Alice Example") -> SignerKey:
    """Unlock-free set-up with a per-call PIN: generate a key, CSR, issue with ``ca``, import cert + root."""
    from signet.v1 import agent_pb2, common_pb2

    algo = {"p256": common_pb2.KEY_ALGORITHM_EC_P256, "rsa-2048": common_pb2.KEY_ALGORITHM_RSA_2048}[algorithm]
    sel = agent_pb2.TokenSelector(label=token_label)
    cred = agent_pb2.PinCredential(pin=pin)
    key = stub.GenerateKey(agent_pb2.GenerateKeyRequest(token=sel, algorithm=algo, label=key_label,
                                                        credential=cred)).key
    csr = stub.CreateCertificateRequest(agent_pb2.CreateCertificateRequestRequest(
        token=sel, key_id=key.key_id, subject={"common_name": cn, "country_name": "CN",
                                               "organization_name": "Signet Test"},
        emails=["alice@example.com"], credential=cred)).csr_der
    cert = ca.issue_from_csr(csr)
    stub.ImportCertificate(agent_pb2.ImportCertificateRequest(token=sel, key_id=key.key_id, certificate_der=cert,
                                                              chain_der=[ca.root_der], credential=cred))
    return SignerKey(token_label, key.token_serial, key.key_id, cert)


# -- documents ---------------------------------------------------------------------------------------------------
def big_pdf(path: Path, size: int, title: str = "Large contract") -> Path:
    """A valid PDF of about ``size`` bytes: a sample contract plus an incremental update adding one big stream.

    Written in 1 MiB pieces, so making a 200 MB file does not need 200 MB of memory.
    """
    import re

    from formats.samplepdf import contract_pdf_bytes

    base = contract_pdf_bytes(title, ["Alice Example", "Bob Example"], pages=2)
    n_objs = int(re.search(rb"/Size (\d+)", base).group(1))  # type: ignore[union-attr]
    prev = int(re.findall(rb"startxref\n(\d+)", base)[-1])
    payload = max(0, size - len(base) - 400)
    with open(path, "wb") as f:
        f.write(base)
        obj_at = f.tell()
        f.write(b"%d 0 obj\n<< /Length %d >>\nstream\n" % (n_objs, payload))
        left = payload
        piece = os.urandom(1 << 20)
        while left > 0:
            f.write(piece[: min(left, len(piece))])
            left -= len(piece)
        f.write(b"\nendstream\nendobj\n")
        xref_at = f.tell()
        f.write(b"xref\n%d 1\n%010d 00000 n \n" % (n_objs, obj_at))
        f.write(b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n"
                % (n_objs + 1, prev, xref_at))
    return path


def sign_pdf_call(stub: Any, path: Path, token_label: str, key_id: str, pin: str | None = None,
                  chunk: int = 1 << 20, timeout: float | None = None, **header: Any) -> tuple[Any, bytes]:
    """SignPdf over the API; returns (result, signed bytes)."""
    from signet.v1 import agent_pb2

    from agent.client import file_chunks, upload

    h = agent_pb2.SignPdfHeader(token=agent_pb2.TokenSelector(label=token_label), key_id=key_id,
                                credential=agent_pb2.PinCredential(pin=pin) if pin else None, **header)
    out = bytearray()
    result = None
    for r in stub.SignPdf(upload("header", h, agent_pb2.SignPdfRequest, file_chunks(path, chunk=chunk)),
                          timeout=timeout):
        if r.WhichOneof("part") == "chunk":
            out += r.chunk
        else:
            result = r.result
    return result, bytes(out)
