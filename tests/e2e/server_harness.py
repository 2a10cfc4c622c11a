"""Test harness for signet-server: a real `signet-server` subprocess (scripts.processes) on a real SoftHSM token,
real TLS on 127.0.0.1, `signet-admin` as a subprocess, and gRPC clients with the certificates it issues.

Imported by tests/e2e/test_server_*.py; nothing here fakes the server, the token or the network.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from scripts.processes import (
    PY,
    ROOT,
    SERVER_PIN_ENV,
    ServerEnv,
    ServerProcess,
    free_port,
    server_cli,
    write_server_config,
)
from signet.wire import reason_of

__all__ = ["PY", "ROOT", "ServerEnv", "ServerProcess", "free_port"]

PIN_ENV = SERVER_PIN_ENV
_databases = itertools.count(1)


def write_config(directory: Path, token_label: str, pin: str, extra: str = "", server_settings: str = "") -> ServerEnv:
    """The test server: every test talks to it from 127.0.0.1, so the per-address enrollment throttle is wide
    unless a test sets its own."""
    if "[enrollment]" not in extra:
        extra += "\n[enrollment]\nrequests_per_minute = 10000\n"
    if os.environ.get("SIGNET_TEST_STORE") == "postgresql" and "store =" not in server_settings:
        from tests.conftest import shared_pg_cluster

        db = f"srv_{os.getpid()}_{next(_databases)}"
        server_settings += f'\nstore = "{shared_pg_cluster().createdb(db)}"\n'
    return write_server_config(directory, token_label, pin, extra, server_settings=server_settings)


cli = server_cli


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
    m = re.search(r"\b(\d{8}|\d{6})\b", body)  # enrollment codes have 8 digits, phone codes 6
    assert m, "no code in the outbox message"
    return m.group(1)


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


reason = reason_of


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
    reviewer_a: ClientFiles  # a second operator of organisation A: four eyes, the one who approves
    org_a_name: str = "Acme Leasing Ltd"


def start_running(directory: Path, token_label: str, pin: str, extra: str = "", server_settings: str = "") -> Running:
    env = write_config(directory, token_label, pin, extra, server_settings)
    p = server_init(env)
    assert p.returncode == 0, p.stderr
    server = ServerProcess(env)
    try:
        org_a = admin(env, "org", "create", "Acme Leasing Ltd")["id"]
        org_b = admin(env, "org", "create", "Other Corp")["id"]
        op_a = operator_cert(env, org_a, "alice-op", directory / "op-a")
        op_b = operator_cert(env, org_b, "bob-op", directory / "op-b")
        reviewer_a = operator_cert(env, org_a, "alice-reviewer", directory / "reviewer-a")
    except BaseException:
        server.proc.kill()
        raise
    return Running(env, server, org_a, org_b, op_a, op_b, reviewer_a)


def prc_id(birth: str, seq: str) -> str:
    """A PRC resident ID number with a correct ISO 7064 MOD 11-2 check digit (area 110105, Beijing)."""
    from server.identity.documents import mod11_2_check

    body = "110105" + birth + seq
    return body + mod11_2_check(body)


def register_verified(r: Running, ch: grpc.Channel, name: str, doc: str, phone: str, email: str, *,
                      approve: bool = True) -> str:
    """Register a person over gRPC as operator A, confirm the phone with the code from the outbox, and have the
    second operator of A approve (four eyes: the registering operator may not)."""
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
        approve_as_reviewer(r, person.id)
    return person.id


def approve_as_reviewer(r: Running, person_id: str) -> None:
    from signet.v1 import server_pb2 as pb
    from signet.v1 import server_pb2_grpc as pbg

    with channel(r.env, r.reviewer_a) as ch:
        pbg.IdentityServiceStub(ch).ApprovePerson(pb.ApprovePersonRequest(
            person_id=person_id, evidence="ID card inspected at the branch", reference="ticket-7"), timeout=30)


def notice_link(env: ServerEnv, email: str, envelope_id: str, timeout: float = 60.0) -> str:
    """The portal link in a recipient's "your turn" notice for ``envelope_id`` (their e-mail, in the outbox)."""
    import re
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in admin(env, "outbox", "list", "--to", email):
            body = admin(env, "outbox", "read", entry["id"])["body"]
            if envelope_id in body:
                m = re.search(r"Open it in your browser: (https://\S+/r/[A-Za-z0-9_-]+)", body)
                assert m, body
                return m.group(1)
        time.sleep(0.5)
    raise AssertionError(f"no notice with a link for {envelope_id}")
