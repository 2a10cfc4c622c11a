"""A running PKI for the tests here: server keys on a real SoftHSM token, the SQLite store, and
the HTTP listener on 127.0.0.1 (bound first, because the certificates carry its URL)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from server.http import PkiHttpServer


@dataclass(frozen=True)
class Pki:
    token: object  # hsm.Token of the server (logged in)
    agent: object  # hsm.Token standing in for a signer's smart card (logged in)
    store: object
    keys: object  # server.keys.ServerKeys
    ca: object  # server.ca.CertificateAuthority
    http: PkiHttpServer
    urls: object
    files: Path  # root.pem, issuing.pem, ocsp.pem, tsa.pem

    @property
    def url(self) -> str:
        return self.http.base_url


def openssl(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run openssl; text output; stdout+stderr in .stdout/.stderr."""
    proc = subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=60)
    out = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(errors="replace"),
                                      proc.stderr.decode(errors="replace"))
    if check and proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed ({proc.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def write_pem(path: Path, der: bytes) -> Path:
    from asn1crypto import pem

    path.write_bytes(pem.armor("CERTIFICATE", der))
    return path


@pytest.fixture(scope="session")
def pki(make_token, tmp_path_factory) -> Iterator[Pki]:
    from hsm import Hsm
    from server.ca import CertificateAuthority, PkiUrls
    from server.clock import SystemClock
    from server.http import PkiHttpServer, build_services
    from server.keys import init_server_keys, load_server_keys
    from tests.conftest import store_for_test

    d = tmp_path_factory.mktemp("pki")
    srv, ag = make_token("srv"), make_token("agent")
    hsm = Hsm(pin_state=d / "pins.json")
    token, agent = hsm.token(serial=srv.serial), hsm.token(serial=ag.serial)
    token.login(srv.pin)
    agent.login(ag.pin)
    store = store_for_test(d, "signet.sqlite")
    http = PkiHttpServer(("127.0.0.1", 0))
    urls = PkiUrls(http.base_url)
    clock = SystemClock()
    init_server_keys(token, store, "Signet Test Org", clock, urls=urls)
    keys = load_server_keys(token, store)
    http.services = build_services(keys, store, clock)
    http.start()
    files = d / "files"
    files.mkdir()
    for name, der in http.services.ca_certificates.items():
        write_pem(files / f"{name}.pem", der)
    try:
        yield Pki(token, agent, store, keys, CertificateAuthority(keys, store, clock, urls), http, urls, files)
    finally:
        http.stop()
        store.close()


@pytest.fixture
def new_key(pki) -> Callable[..., tuple[str, bytes]]:
    """new_key(alg="p256") -> (key id, PKCS#10 DER signed on the agent token) for a fresh key."""
    import itertools

    counter = itertools.count()

    def _make(alg: str = "p256", subject_cn: str = "requested name is ignored") -> tuple[str, bytes]:
        import os

        info = pki.agent.generate_key(alg, f"k-{os.getpid()}-{next(counter)}-{os.urandom(3).hex()}")
        return info.key_id, pki.agent.create_csr(info.key_id, {"common_name": subject_cn})

    return _make


@pytest.fixture
def person():
    from server.ca import SubjectIdentity, semantics_identifier

    return SubjectIdentity("Zhang San 张三", semantics_identifier("id_card", "CN", "11010519491231002X"),
                           "Signet Test Org", "CN", ("zhang.san@example.com",))
