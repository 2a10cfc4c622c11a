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

Command line (through the running agent, which holds the token)::

    signet enroll --server HOST:PORT --server-ca tls-root.pem --person P_ID --token LABEL --send-code
    signet enroll --server HOST:PORT --server-ca tls-root.pem --person P_ID --token LABEL [--api HOST:PORT]
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

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signet import pemfiles
from signet.durable import write_atomic
from signet.secrets import read_secret
from signet.wire import KEY_ALGORITHMS

from .client import AgentClient, TokenRef
from .serverlink import Enrolled, ServerLink, ServerRefused, ServerTarget


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
        for child, parent in zip(path, path[1:], strict=False):
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
            "enroll": link.target.enroll, "api": link.target.api}, indent=2).encode(), 0o644)
    return EnrollResult(info.key_id, label, answer.serial, cert.subject.rfc4514_string(), answer.certificate_der,
                        answer.chain_der, tls_dir)


@dataclass(frozen=True)
class _NewKey:
    key_id: str
    public_key_der: bytes


class AgentToken:
    """:class:`EnrollToken` over the running agent (which holds the token), through :class:`AgentClient`."""

    def __init__(self, client: AgentClient, token: TokenRef, pin: str | None) -> None:
        self.client, self.token, self.pin = client, token, pin

    def generate_key(self, algorithm: str, label: str) -> _NewKey:
        key = self.client.generate_key(self.token, algorithm, label, self.pin)
        return _NewKey(key.key_id, key.public_key_der)

    def create_csr(self, key_id: str, subject: dict[str, str]) -> bytes:
        return self.client.certificate_request(self.token, key_id, subject, pin=self.pin)

    def import_certificate(self, key_id: str, der: bytes, chain: list[bytes] | None = None) -> None:
        self.client.import_certificate(self.token, key_id, der, list(chain or []), self.pin)

    def delete_key(self, key_id: str) -> None:
        self.client.delete_key(self.token, key_id, self.pin)


def add_arguments(sp: argparse.ArgumentParser) -> None:
    """The `signet enroll` options (the token selection and PIN options are added by the CLI)."""
    sp.add_argument("--server", required=True, help="HOST:PORT of signet-server's enrollment listener")
    sp.add_argument("--server-ca", required=True, metavar="PEM",
                    help="signet-server's TLS root certificate (its tls/ca.pem)")
    sp.add_argument("--person", required=True, help="your person id (from the operator who registered you)")
    sp.add_argument("--api", help="HOST:PORT of the server's API listener (recorded for later calls)")
    sp.add_argument("--tls-server-name", help="TLS name to expect when it differs from HOST")
    sp.add_argument("--send-code", action="store_true", help="only ask the server to send an enrollment code")
    sp.add_argument("--code-env", metavar="VAR", help="read the one-time code from this environment variable")
    sp.add_argument("--code-file", help="read the one-time code from the first line of this file (mode 0600)")
    sp.add_argument("--code-id", help="the code_id --send-code printed (default: the one it kept for this person)")
    sp.add_argument("--tls-dir", help="where to keep the agent's TLS client files (default: the agent's state "
                                      "directory/server)")
    sp.add_argument("--key-label", help="label of the new key (default: signet-PERSON)")
    sp.add_argument("--algorithm", choices=sorted(KEY_ALGORITHMS), default="p256")


def cmd_enroll(client: AgentClient, args: argparse.Namespace, token: TokenRef, pin: str | None) -> int:
    """`signet enroll`: key on the token (through the agent), certified by signet-server, stored back."""
    import getpass

    target = ServerTarget(enroll=args.server, ca_pem=Path(args.server_ca).read_bytes(), api=args.api,
                          server_name=args.tls_server_name)
    with ServerLink(target) as link:
        try:
            code = read_secret(args.code_file, args.code_env, what="one-time code")
            code = code.strip() if code is not None else None
            if code is None and not args.send_code and not sys.stdin.isatty():
                raise SystemExit("signet enroll: no terminal to type the one-time code: send it with --send-code, "
                                 "then run again with --code-env VAR or --code-file F")
            state = _agent_server_dir(client, required=not args.tls_dir)
            tls_dir = Path(args.tls_dir) if args.tls_dir else state
            pending = (state or tls_dir) / f"enrollment-code-{args.person}.json"
            code_id = args.code_id or ""
            if code is None or args.send_code:
                c = link.start_enrollment(args.person)
                code_id = c.code_id
                write_atomic(pending, json.dumps({"person_id": args.person, "code_id": c.code_id}).encode(), 0o600)
                print(f"enrollment code sent via {c.channel} (code id {c.code_id}); it expires at "
                      f"{c.expires_at:%Y-%m-%d %H:%M:%S} UTC")
                if args.send_code:
                    return 0
                code = getpass.getpass("one-time code: ").strip()
            if not code_id and pending.exists():
                code_id = str(json.loads(pending.read_text())["code_id"])
            if not code_id:
                raise SystemExit("signet enroll: which code? send one first (--send-code), or give --code-id")
            result = enroll(AgentToken(client, token, pin), link, args.person, code,
                            key_label=args.key_label, algorithm=args.algorithm, tls_dir=tls_dir, code_id=code_id)
            pending.unlink(missing_ok=True)
        except (ServerRefused, EnrollmentFailed) as err:
            print(f"signet enroll: {err}", file=sys.stderr)
            return 1
    print(f"enrolled key {result.key_id} ({result.key_label}): certificate {result.serial} for "
          f"{result.subject}; agent TLS files in {result.tls_dir}")
    return 0


def _agent_server_dir(client: AgentClient, required: bool = True) -> Path:
    """The agent's own state directory (it tells local callers), so the TLS files live with the agent."""
    state = client.info().state_dir
    if not state:
        if not required:
            return None  # type: ignore[return-value]  # callers give --tls-dir then
        raise SystemExit("signet enroll: the agent does not say where its state is (a TCP connection?): "
                         "give --tls-dir")
    return Path(state) / "server"
