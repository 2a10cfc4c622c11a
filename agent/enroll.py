"""Enrollment from the signer's side: a new key on the token, certified by signet-server, stored back next to it.

Steps (:func:`enroll`): generate a key pair on the token (non-extractable); build a PKCS#10 request
signed by the token; generate the agent's TLS key (software, P-256: grpc-python needs a PEM key) and
its request; call the server's Enroll with the person id and the one-time code the person received;
check the answer (the certificate carries the token key, the chain verifies up to the root the
server sent, and that root is the one we trust); store certificate + chain on the token next to the
key; save the agent's TLS client certificate and key (0600) for later mutual-TLS calls.  When the
server refuses, the new key is deleted from the token again, so a retry starts clean.

Command line (through the running agent, which holds the token)::

    signet enroll --server HOST:PORT --ca ca.pem --person P_ID --token LABEL --send-code
    signet enroll --server HOST:PORT --ca ca.pem --person P_ID --token LABEL [--api HOST:PORT]
        [--pin-env VAR | --pin-file F] [--code-env VAR | --code-file F] [--tls-dir DIR] [--key-label L]

Without ``--code-env``/``--code-file`` the command asks the server to send a code and then
prompts for it on the terminal; one-time codes, like PINs, are never taken as arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from asn1crypto import pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from signet.v1 import agent_pb2

from signet.durable import write_atomic

from .serverlink import ServerLink, ServerRefused, ServerTarget


class EnrollmentFailed(Exception):
    """The server's answer could not be accepted (wrong key, chain or root); nothing was stored."""


class EnrollToken(Protocol):
    """What enrollment needs from a token (:class:`hsm.Token` provides it)."""

    def generate_key(self, algorithm: str, label: str) -> Any: ...

    def create_csr(self, key_id: str, subject: dict[str, str]) -> bytes: ...

    def import_certificate(self, key_id: str, der: bytes, chain: list[bytes] | None = None) -> None: ...

    def delete_key(self, key_id: str) -> None: ...


@dataclass(frozen=True)
class EnrollResult:
    key_id: str
    key_label: str
    serial: str
    subject: str
    certificate_der: bytes
    chain_der: tuple[bytes, ...]
    tls_dir: Path | None


def _write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, data, mode)


def _pem(*ders: bytes) -> bytes:
    return b"".join(pem.armor("CERTIFICATE", d) for d in ders)


def _check_answer(spki_der: bytes, cert_der: bytes, chain: Sequence[bytes], root_der: bytes,
                  trusted_root_pem: bytes) -> x509.Certificate:
    cert = x509.load_der_x509_certificate(cert_der)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if spki != spki_der:
        raise EnrollmentFailed("the server certified another key than the one generated on the token")
    trusted = [x509.load_der_x509_certificate(der) for _, _, der in pem.unarmor(trusted_root_pem, multiple=True)]
    if root_der and all(t.public_bytes(serialization.Encoding.DER) != root_der for t in trusted):
        raise EnrollmentFailed("the server's root CA is not the one this agent trusts")
    path = [cert, *(x509.load_der_x509_certificate(d) for d in chain)]
    try:
        for child, parent in zip(path, path[1:], strict=False):
            child.verify_directly_issued_by(parent)
        if not any(path[-1] == t or (path[-1].issuer == t.subject and _issued(path[-1], t)) for t in trusted):
            raise EnrollmentFailed("the certificate chain does not end at the trusted root")
    except (ValueError, TypeError) as e:
        raise EnrollmentFailed(f"the certificate chain does not verify: {e}") from None
    return cert


def _issued(child: x509.Certificate, parent: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(parent)
        return True
    except (ValueError, TypeError):
        return False


def enroll(token: EnrollToken, link: ServerLink, person_id: str, code: str, *, key_label: str | None = None,
           algorithm: str = "p256", tls_dir: Path | None = None, code_id: str = "") -> EnrollResult:
    """Run the whole flow; raises :class:`ServerRefused` (server said no) or :class:`EnrollmentFailed`."""
    label = key_label or f"signet-{person_id}"
    info = token.generate_key(algorithm, label)
    tls_key = ec.generate_private_key(ec.SECP256R1()) if tls_dir is not None else None
    try:
        csr = token.create_csr(info.key_id, {"common_name": person_id})
        tls_csr = b""
        if tls_key is not None:
            tls_csr = (x509.CertificateSigningRequestBuilder()
                       .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, person_id)]))
                       .sign(tls_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
        answer = link.enroll(person_id, code, csr, tls_csr, code_id)
        cert = _check_answer(info.public_key_der, answer.certificate_der, answer.chain_der, answer.root_der,
                             link.target.ca_pem)
    except (ServerRefused, EnrollmentFailed):
        token.delete_key(info.key_id)  # nothing usable was issued for it: let a retry start clean
        raise
    token.import_certificate(info.key_id, answer.certificate_der, list(answer.chain_der))
    if tls_dir is not None and tls_key is not None and answer.agent_certificate_der:
        tls_dir = Path(tls_dir)
        _write(tls_dir / "agent.key", tls_key.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()), 0o600)
        _write(tls_dir / "agent.crt", _pem(answer.agent_certificate_der, *answer.chain_der[:1]), 0o644)
        _write(tls_dir / "ca.pem", link.target.ca_pem, 0o644)
        _write(tls_dir / "enrollment.json", json.dumps({
            "person_id": person_id, "key_id": info.key_id, "key_label": label, "serial": answer.serial,
            "enroll": link.target.enroll, "api": link.target.api}, indent=2).encode(), 0o644)
    return EnrollResult(info.key_id, label, answer.serial, cert.subject.rfc4514_string(), answer.certificate_der,
                        answer.chain_der, tls_dir)


@dataclass(frozen=True)
class _NewKey:
    key_id: str
    public_key_der: bytes


class AgentToken:
    """:class:`EnrollToken` over the running agent's gRPC API (the agent holds the token)."""

    def __init__(self, stub: Any, selector: agent_pb2.TokenSelector, credential: agent_pb2.PinCredential | None):
        self.stub, self.selector, self.credential = stub, selector, credential

    def generate_key(self, algorithm: str, label: str) -> _NewKey:
        from .client import ALGOS

        r = self.stub.GenerateKey(agent_pb2.GenerateKeyRequest(
            token=self.selector, algorithm=ALGOS[algorithm], label=label, credential=self.credential))
        return _NewKey(r.key.key_id, r.key.public_key_der)

    def create_csr(self, key_id: str, subject: dict[str, str]) -> bytes:
        r = self.stub.CreateCertificateRequest(agent_pb2.CreateCertificateRequestRequest(
            token=self.selector, key_id=key_id, subject=subject, credential=self.credential))
        return bytes(r.csr_der)

    def import_certificate(self, key_id: str, der: bytes, chain: list[bytes] | None = None) -> None:
        self.stub.ImportCertificate(agent_pb2.ImportCertificateRequest(
            token=self.selector, key_id=key_id, certificate_der=der, chain_der=list(chain or []),
            credential=self.credential))

    def delete_key(self, key_id: str) -> None:
        self.stub.DeleteKey(agent_pb2.DeleteKeyRequest(token=self.selector, key_id=key_id,
                                                       credential=self.credential))


def add_arguments(sp: argparse.ArgumentParser) -> None:
    """The `signet enroll` options (the token selection and PIN options are added by the CLI)."""
    sp.add_argument("--server", required=True, help="HOST:PORT of signet-server's enrollment listener")
    sp.add_argument("--server-ca", required=True, metavar="PEM", help="signet-server's root CA certificate")
    sp.add_argument("--person", required=True, help="your person id (from the operator who registered you)")
    sp.add_argument("--api", help="HOST:PORT of the server's API listener (recorded for later calls)")
    sp.add_argument("--tls-server-name", help="TLS name to expect when it differs from HOST")
    sp.add_argument("--send-code", action="store_true", help="only ask the server to send an enrollment code")
    sp.add_argument("--code-env", metavar="VAR", help="read the one-time code from this environment variable")
    sp.add_argument("--code-file", help="read the one-time code from the first line of this file")
    sp.add_argument("--tls-dir", help="where to keep the agent's TLS client files (default: state dir/server)")
    sp.add_argument("--key-label", help="label of the new key (default: signet-PERSON)")
    sp.add_argument("--algorithm", choices=("p256", "p384", "rsa-2048", "rsa-3072", "rsa-4096"), default="p256")


def _code(args: argparse.Namespace) -> str | None:
    from .client import read_secret

    code = read_secret(args.code_file, args.code_env)
    return code.strip() if code is not None else None


def cmd_enroll(stub: Any, args: argparse.Namespace, selector: agent_pb2.TokenSelector,
               credential: agent_pb2.PinCredential | None) -> int:
    """`signet enroll`: key on the token (through the agent), certified by signet-server, stored back."""
    import getpass

    target = ServerTarget(enroll=args.server, ca_pem=Path(args.server_ca).read_bytes(), api=args.api,
                          server_name=args.tls_server_name)
    with ServerLink(target) as link:
        try:
            code = _code(args)
            if code is None and not args.send_code and not sys.stdin.isatty():
                raise SystemExit("signet enroll: no terminal to type the one-time code: send it with --send-code, "
                                 "then run again with --code-env VAR or --code-file F")
            if code is None or args.send_code:
                c = link.start_enrollment(args.person)
                print(f"enrollment code sent via {c.channel}; it expires at {c.expires_at:%Y-%m-%d %H:%M:%S} UTC")
                if args.send_code:
                    return 0
                code = getpass.getpass("one-time code: ").strip()
            from .config import default_state_dir

            tls_dir = Path(args.tls_dir) if args.tls_dir else default_state_dir() / "server"
            result = enroll(AgentToken(stub, selector, credential), link, args.person, code,
                            key_label=args.key_label, algorithm=args.algorithm, tls_dir=tls_dir)
        except (ServerRefused, EnrollmentFailed) as err:
            print(f"signet enroll: {err}", file=sys.stderr)
            return 1
    print(f"enrolled key {result.key_id} ({result.key_label}): certificate {result.serial} for "
          f"{result.subject}; agent TLS files in {result.tls_dir}")
    return 0
