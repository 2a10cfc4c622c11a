"""Building blocks of the authorisation tests' worlds: people enrolled through a real signet-server, a forged client
certificate, certificate serials.  Everything runs against real processes and real SoftHSM tokens."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .server_harness import ClientFiles, Running, latest_code


def serial_of(pem_path: Path) -> str:
    """Lowercase hex serial of the first certificate in a PEM file (as signet-admin and the API spell it)."""
    return format(x509.load_pem_x509_certificates(pem_path.read_bytes())[0].serial_number, "x")


@dataclass(frozen=True)
class Enrolled:
    signing_serial: str  # hex
    agent: ClientFiles  # the agent's TLS client certificate (+ TLS CA), key and the TLS root
    agent_serial: str  # hex
    key_id: str = ""  # the signing key on the person's token (its certificate and chain stored next to it)
    certificate_der: bytes = b""  # the signer certificate (as a station reads it from the token)
    card: Any = None  # the person's token (tests.conftest.TestToken): their card
    pin_state: Path | None = None  # the PIN-failure state file this process uses for it


def enroll_in_process(r: Running, person_id: str, phone: str, token: Any, directory: Path) -> Enrolled:
    """Enroll ``person_id`` with a key on ``token`` (a TestToken): StartEnrollment, the code from the outbox, Enroll
    with a signing CSR from the token and an agent TLS CSR; the agent TLS files land in ``directory``."""
    from agent.enroll import enroll
    from agent.serverlink import ServerLink, ServerTarget
    from hsm import Hsm

    pins = directory.parent / f"{directory.name}-pins.json"
    tok = Hsm(pin_state=pins).token(serial=token.serial)
    tok.login(token.pin)
    try:
        with ServerLink(ServerTarget(enroll=r.env.enroll, ca_pem=r.env.ca_pem.read_bytes())) as link:
            challenge = link.start_enrollment(person_id)
            done = enroll(tok, link, person_id, latest_code(r.env, phone), tls_dir=directory,
                          code_id=challenge.code_id)
    finally:
        tok.logout()
    files = ClientFiles(directory / "agent.crt", directory / "agent.key", directory / "ca.pem")
    return Enrolled(done.serial, files, serial_of(files.cert), done.key_id, done.certificate_der, token, pins)


def card_proof(card: Enrolled, org_id: str, station: str, *, about: bytes | None = None,
               at: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """(statement, signature) as a station makes them (signet.cardproof, a detached CAdES made on the card with its
    PIN): ``card``'s statement about the certificate ``about`` (default its own) at ``station`` of ``org_id``, at
    ``at`` (default now)."""
    from formats import TokenSigner, sign_detached
    from hsm import Hsm
    from signet import cardproof

    statement = cardproof.statement(org_id, station, about or card.certificate_der, at=at)
    tok = Hsm(pin_state=card.pin_state).token(serial=card.card.serial)
    tok.login(card.card.pin)
    try:
        return statement, sign_detached(io.BytesIO(statement), TokenSigner(tok, card.key_id))
    finally:
        tok.logout()


def forged_client(directory: Path, uri: str, ca: Path, cn: str = "forged operator") -> ClientFiles:
    """A self-signed clientAuth certificate naming ``uri`` (e.g. a real operator's SAN URI): right name, wrong CA."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    (directory / "client.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "client.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (directory / "client.key").chmod(0o600)
    return ClientFiles(directory / "client.crt", directory / "client.key", ca)
