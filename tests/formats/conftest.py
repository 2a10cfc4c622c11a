"""Fixtures for formats/: a test CA whose certificates name a local OCSP responder and CRL server (so the
default, online revocation checking runs for real), token keys with certificates issued from token-signed
CSRs, an RFC 3161 TSA, an NSS db."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import pki

from . import minipki


@dataclass(frozen=True)
class SignerSetup:
    signer: object  # formats.TokenSigner
    token: object  # hsm.Token
    key_id: str
    cert_der: bytes


@pytest.fixture(scope="session")
def revocation_srv():
    with minipki.revocation_server() as srv:
        yield srv


@pytest.fixture(scope="session")
def ca(revocation_srv) -> minipki.MiniCA:
    return minipki.MiniCA("Signet Test Root CA", revocation_srv)


@pytest.fixture(scope="session")
def nssdb(ca, tmp_path_factory) -> Path:
    return pki.make_nssdb(tmp_path_factory.mktemp("nss") / "db", ca.root_pem)


@pytest.fixture(scope="session")
def tsa_url(ca):
    with pki.tsa_server(ca) as url:
        yield url


@pytest.fixture(scope="session")
def formats_token(make_token, tmp_path_factory):
    """One logged-in token for the formats tests (keys are per algorithm)."""
    from hsm import Hsm

    t = make_token("fmt")
    h = Hsm(pin_state=tmp_path_factory.mktemp("pins") / "pins.json")
    tok = h.token(serial=t.serial)
    tok.login(t.pin)
    yield tok
    tok.logout()


def _setup(tok, ca: minipki.MiniCA, algorithm: str, cn: str) -> SignerSetup:
    from formats import TokenSigner

    info = tok.generate_key(algorithm, f"{algorithm}-signing")
    csr = tok.create_csr(info.key_id, {"common_name": cn, "country_name": "CN"}, emails=["signer@example.com"])
    cert = ca.issue_from_csr(csr)
    tok.import_certificate(info.key_id, cert, [ca.root_der])
    return SignerSetup(TokenSigner(tok, info.key_id), tok, info.key_id, cert)  # certificate + chain from the token


@pytest.fixture(scope="session")
def rsa_setup(formats_token, ca) -> SignerSetup:
    return _setup(formats_token, ca, "rsa-2048", "Alice RSA")


@pytest.fixture(scope="session")
def ec_setup(formats_token, ca) -> SignerSetup:
    return _setup(formats_token, ca, "p256", "Bob ECDSA")


@pytest.fixture(params=["rsa", "ec"])
def setup(request, rsa_setup, ec_setup) -> SignerSetup:
    return rsa_setup if request.param == "rsa" else ec_setup


@pytest.fixture
def contract(tmp_path) -> Path:
    from formats.samplepdf import make_contract_pdf

    p = tmp_path / "contract.pdf"
    make_contract_pdf(p, "Service Agreement", ["Alice Example", "Bob Example"], pages=2)
    return p
