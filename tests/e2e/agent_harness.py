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
from scripts.provision import SignerKey, big_pdf, digest_policy, provision_key, sign_pdf_call, with_grant

__all__ = ["PY", "ROOT", "AgentProcess", "SignerKey", "big_pdf", "cli", "digest_policy", "free_port", "make_tls",
           "provision_key", "sign_pdf_call", "signet", "with_grant"]


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
