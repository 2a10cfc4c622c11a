"""Enrollment from the signer's side: a new key on the token, certified by signet-server, stored back next to it.

Steps (:func:`enroll`): generate a key pair on the token (non-extractable); build a PKCS#10 request
signed by the token; generate the agent's TLS key (software, P-256: grpc-python needs a PEM key) and
its request; call the server's Enroll with the person id and the one-time code the person received;
check the answer (the signing certificate carries the token key and chains to the signing root the server
sent; the agent TLS certificate chains to the TLS root we trust, a hierarchy apart from the signing one);
store certificate + chain on the token next to the key; save the agent's TLS client certificate and key
(0600), the TLS root and the signing root in the agent's state directory (``<state_dir>/server``) for later
mutual-TLS calls and for verification.  When the server refuses, the new key is deleted from the token
again, so a retry starts clean.

The `signet enroll` command is :mod:`agent.enroll_cli`.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signet import pemfiles
from signet.durable import write_atomic

from .serverlink import Enrolled, ServerLink, ServerRefused


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


def _verify_path(what: str, certs: Sequence[bytes]) -> list[x509.Certificate]:
    """Each certificate issued by the next; the last one self-signed (a root)."""
    try:
        path = [x509.load_der_x509_certificate(d) for d in certs]
        for child, parent in itertools.pairwise(path):
            child.verify_directly_issued_by(parent)
        path[-1].verify_directly_issued_by(path[-1])
    except (ValueError, TypeError, IndexError) as e:
        raise EnrollmentFailed(f"the {what} chain does not verify up to a root: {e}") from None
    return path


def _check_answer(spki_der: bytes, answer: Enrolled, trusted_tls_root_pem: bytes,
                  agent_tls_spki: bytes | None) -> x509.Certificate:
    """The signing certificate certifies the token key and chains to the signing root the server sent; the agent
    TLS certificate (when asked for) certifies our TLS key and chains to the TLS root this agent trusts."""
    if not answer.chain_der or answer.chain_der[-1] != answer.root_der:
        raise EnrollmentFailed("the server's signing chain does not end at the signing root it sent")
    cert = _verify_path("signing certificate", [answer.certificate_der, *answer.chain_der])[0]
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if spki != spki_der:
        raise EnrollmentFailed("the server certified another key than the one generated on the token")
    if agent_tls_spki is not None:
        trusted = pemfiles.ders(trusted_tls_root_pem)
        if not answer.agent_chain_der or answer.agent_chain_der[-1] not in trusted:
            raise EnrollmentFailed("the agent TLS certificate does not chain to the TLS root this agent trusts "
                                   "(--server-ca)")
        tls_cert = _verify_path("agent TLS", [answer.agent_certificate_der, *answer.agent_chain_der])[0]
        if tls_cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo) != agent_tls_spki:
            raise EnrollmentFailed("the server certified another TLS key than the agent's")
        if answer.root_der in trusted:
            raise EnrollmentFailed("the server's signing root is its TLS root: one hierarchy must not serve both")
    return cert


def enroll(token: EnrollToken, link: ServerLink, person_id: str, code: str, *, key_label: str | None = None,
           algorithm: str = "p256", tls_dir: Path | None = None, code_id: str = "",
           token_label: str = "") -> EnrollResult:
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
        if tls_key is not None and not answer.agent_certificate_der:
            raise EnrollmentFailed("the server issued no agent TLS certificate")
        tls_spki = None if tls_key is None else tls_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        cert = _check_answer(info.public_key_der, answer, link.target.ca_pem, tls_spki)
    except (ServerRefused, EnrollmentFailed):
        token.delete_key(info.key_id)  # nothing usable was issued for it: let a retry start clean
        raise
    token.import_certificate(info.key_id, answer.certificate_der, list(answer.chain_der))
    if tls_dir is not None and tls_key is not None and answer.agent_certificate_der:
        tls_dir = Path(tls_dir)
        _write(tls_dir / "agent.key", tls_key.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()), 0o600)
        _write(tls_dir / "agent.crt", pemfiles.to_pem(answer.agent_certificate_der, *answer.agent_chain_der[:-1]),
               0o644)
        _write(tls_dir / "ca.pem", link.target.ca_pem, 0o644)
        _write(tls_dir / "signing-root.pem", pemfiles.to_pem(answer.root_der), 0o644)
        _write(tls_dir / "enrollment.json", json.dumps({
            "person_id": person_id, "key_id": info.key_id, "key_label": label, "serial": answer.serial,
            "enroll": link.target.enroll, "api": link.target.api, "token_label": token_label}, indent=2).encode(),
               0o644)
    return EnrollResult(info.key_id, label, answer.serial, cert.subject.rfc4514_string(), answer.certificate_der,
                        answer.chain_der, tls_dir)
