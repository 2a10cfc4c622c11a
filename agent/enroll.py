"""Enrollment from the signer's side: a new key on the token, certified by signet-server, stored back next to it.

Steps (:func:`enroll`): generate a key pair on the token (non-extractable); build a PKCS#10 request
signed by the token; generate the agent's TLS key (software, P-256: grpc-python needs a PEM key) and
its request; call the server's Enroll with the person id and the one-time code the person received;
check the answer (the certificate carries the token key, the chain verifies up to the root the
server sent, and that root is the one we trust); store certificate + chain on the token next to the
key; save the agent's TLS client certificate and key (0600) for later mutual-TLS calls.  When the
server refuses, the new key is deleted from the token again, so a retry starts clean.

Command line (until `signet enroll` wires it in)::

    python -m agent.enroll request --server HOST:PORT --ca ca.pem --person P_ID
    python -m agent.enroll enroll --server HOST:PORT --ca ca.pem --person P_ID --token-label L
        [--pin-env VAR | --pin-file F] [--code-env VAR | --code CODE] [--tls-dir DIR] [--key-label L]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from asn1crypto import pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def _secret(env: str | None, value: str | None, what: str) -> str:
    if env:
        found = os.environ.get(env)
        if found is None:
            raise SystemExit(f"signet enroll: environment variable {env} ({what}) is not set")
        return found
    if value:
        return value
    raise SystemExit(f"signet enroll: give the {what} (--{what.split()[0]}-env VAR)")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="signet enroll", description="Enrol a token key with signet-server.")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("request", "enroll"):
        s = sub.add_parser(name)
        s.add_argument("--server", required=True, help="HOST:PORT of the server's enrollment listener")
        s.add_argument("--ca", required=True, help="the server's root CA certificate (PEM)")
        s.add_argument("--person", required=True)
        s.add_argument("--server-name", help="TLS name to expect when it differs from HOST")
    e = sub.choices["enroll"]
    e.add_argument("--api", help="HOST:PORT of the server's API listener (recorded for later calls)")
    e.add_argument("--token-label", required=True)
    e.add_argument("--pin-env")
    e.add_argument("--pin-file")
    e.add_argument("--code-env")
    e.add_argument("--code")
    e.add_argument("--tls-dir")
    e.add_argument("--key-label")
    e.add_argument("--algorithm", default="p256")
    args = p.parse_args(argv)
    target = ServerTarget(enroll=args.server, ca_pem=Path(args.ca).read_bytes(), api=getattr(args, "api", None),
                          server_name=args.server_name)
    with ServerLink(target) as link:
        try:
            if args.command == "request":
                c = link.start_enrollment(args.person)
                print(f"enrollment code sent via {c.channel}; it expires at {c.expires_at:%Y-%m-%d %H:%M:%S} UTC")
                return 0
            from hsm import Hsm

            from .client import read_pin
            from .config import default_state_dir

            pin = read_pin(args.pin_file, args.pin_env, prompt="token PIN: ")
            if pin is None:
                raise SystemExit("signet enroll: give the token PIN (--pin-env VAR or --pin-file F)")
            code = _secret(args.code_env, args.code, "code")
            token = Hsm(pin_state=default_state_dir() / "pin-failures.json").token(label=args.token_label)
            token.login(pin)
            tls_dir = Path(args.tls_dir) if args.tls_dir else default_state_dir() / "server"
            result = enroll(token, link, args.person, code, key_label=args.key_label, algorithm=args.algorithm,
                            tls_dir=tls_dir)
        except (ServerRefused, EnrollmentFailed) as err:
            print(f"signet enroll: {err}", file=sys.stderr)
            return 1
    print(f"enrolled key {result.key_id} ({result.key_label}) on token {args.token_label}: certificate "
          f"{result.serial} for {result.subject}; agent TLS files in {result.tls_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
