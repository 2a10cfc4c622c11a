"""Test harness for the agent: mTLS test certificates, token set-up through the API, large documents.

The agent process itself is scripts.processes.AgentProcess (shared with the demo, the soak and the benchmarks);
nothing here fakes the agent or the token.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from scripts.processes import PY, ROOT, AgentProcess, free_port, signet

__all__ = ["PY", "ROOT", "AgentProcess", "cli", "free_port", "make_tls", "provision_key", "signet"]


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


def make_tls(directory: Path, clients: tuple[str, ...] = ("kiosk-1", "intruder", "no-uri")) -> TlsFiles:
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
        elif cn != "no-uri":  # a client is named by its SAN URI; "no-uri" is named by its fingerprint
            b = b.add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(client_uri(cn))]),
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


# -- the agent process (scripts.processes: one implementation for demo, tests, soak and bench) ---------------------
def tls_settings(tls: TlsFiles, revocation: str = "off") -> dict[str, str]:
    """[tcp] settings for an agent serving mutual TLS with the test PKI (its client certificates name no CRL)."""
    return {"certificate": str(tls.server_cert), "private_key": str(tls.server_key), "client_ca": str(tls.ca_cert),
            "revocation": revocation}


def tls_stub(agent: AgentProcess, tls: TlsFiles, cn: str | None) -> Any:
    from agent.client import Target, channel
    from signet.v1 import agent_pb2_grpc

    cert, key = tls.clients[cn] if cn else (None, None)
    t = Target(tcp=f"127.0.0.1:{agent.port}", cert=cert, key=key, ca=tls.ca_cert)
    return agent_pb2_grpc.AgentServiceStub(channel(t))


def caller(cn: str) -> str:
    """How the agent names a test client certificate (its SAN URI)."""
    return f"tls:{client_uri(cn)}"


def client_uri(cn: str) -> str:
    return f"urn:signet:test:client:{cn}"


cli = signet


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


def sign_pdf_call(stub: Any, path: Path, token_label: str, key_id: str, pin: str | None = None, *,
                  chunk: int = 1 << 20, timeout: float | None = None, grant: str | None = None,
                  **header: Any) -> tuple[Any, bytes]:
    """SignPdf over the API (header, then chunks); returns (result, signed bytes)."""
    from agent.client import file_chunks, upload
    from signet.v1 import agent_pb2

    h = agent_pb2.SignPdfHeader(token=agent_pb2.TokenSelector(label=token_label), key_id=key_id,
                                credential=agent_pb2.PinCredential(pin=pin) if pin else None, **header)
    out = bytearray()
    result = None
    for r in stub.SignPdf(upload("header", h, agent_pb2.SignPdfRequest, file_chunks(path, chunk=chunk)),
                          timeout=timeout, metadata=with_grant(grant) if grant else None):
        if r.WhichOneof("part") == "chunk":
            out += r.chunk
        else:
            result = r.result
    return result, bytes(out)


# -- policies and grants ----------------------------------------------------------------------------------------
def digest_policy(label: str = "signing", callers: str = '"local"', extra: str = "") -> str:
    """A [[policy.key]] that lets ``callers`` sign raw digests with the key labelled ``label`` (tests that measure
    or exercise SignDigest; documents need no such rule)."""
    return f'[[policy.key]]\nlabel = "{label}"\ncallers = [{callers}]\nallow_digests = true\n{extra}\n'


def with_grant(handle: str) -> tuple[tuple[str, str], ...]:
    """gRPC metadata presenting an unlock grant handle."""
    from signet.wire import GRANT_METADATA

    return ((GRANT_METADATA, handle),)
