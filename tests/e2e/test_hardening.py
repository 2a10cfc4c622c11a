"""The trust promises, end to end with a real signet-server, a real agent and a key enrolled on a real token:

- a signature made with an agent's software TLS key is NOT valid (it chains to the TLS root, never the signing
  root), a token-key signature is;
- a PAdES B-T signature stamped by our own TSA verifies under the signing root alone, revocation checked online
  against our own OCSP responder and CRLs;
- after `signet-admin cert revoke`, `signet sign` is refused before the token is asked, and a signature made after
  the revocation (by other means) is NOT valid.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from asn1crypto import pem

from formats.samplepdf import make_contract_pdf
from tests.e2e.agent_harness import AgentProcess, cli
from tests.e2e.server_harness import admin, channel, latest_code, prc_id, register_verified, start_running

pytestmark = pytest.mark.e2e

PHONE = "+8613900139077"


@pytest.fixture(scope="module")
def world(make_token, tmp_path_factory):
    base = tmp_path_factory.mktemp("hardening")
    srv_tok = make_token("srv-hard")
    r = start_running(base / "server", srv_tok.label, srv_tok.pin)
    person = register_verified(r, channel(r.env, r.op_a), "Hui Lin 林慧", prc_id("19880808", "123"), PHONE,
                               "hui@example.com")
    token = make_token("hui", pin="Hui-PIN-38")
    tsa = f"{r.env.pki_url}/tsa"
    agent = AgentProcess(base / "agent", agent_settings=f'timestamp_urls = ["{tsa}"]').start()
    env = {"PIN": token.pin}
    p = cli(agent, "enroll", "--token", token.label, "--server", r.env.enroll, "--server-ca", str(r.env.ca_pem),
            "--person", person, "--send-code")
    assert p.returncode == 0, p.stderr
    env["CODE"] = latest_code(r.env, PHONE)
    p = cli(agent, "enroll", "--token", token.label, "--pin-env", "PIN", "--server", r.env.enroll, "--server-ca",
            str(r.env.ca_pem), "--person", person, "--code-env", "CODE", "--key-label", "hui", env=env)
    assert p.returncode == 0, p.stderr
    key_id = re.search(r"enrolled key ([0-9a-f]+)", p.stdout).group(1)  # type: ignore[union-attr]
    serial = re.search(r"certificate ([0-9a-f]+) for", p.stdout).group(1)  # type: ignore[union-attr]
    yield {"r": r, "agent": agent, "token": token, "key": key_id, "serial": serial, "base": base, "tsa": tsa,
           "env": {"PIN": token.pin}}
    assert agent.stop() == 0
    r.server.stop()


def _contract(path, title="Service agreement"):
    make_contract_pdf(path, title, ["Hui Lin", "Acme Leasing Ltd"])
    return path


def _verify(w, *args):
    return cli(w["agent"], "--json", "verify", *args, "--trust", str(w["r"].env.signing_root))


def test_token_key_pades_b_t_by_our_tsa_verifies_under_the_signing_root_alone_online(world):
    """The chain of the timestamp token is embedded (TSA + signing CA): the signing root is the only anchor, and
    revocation of the signer, the signing CA and the TSA is checked online against our OCSP responder and CRLs."""
    w = world
    src = _contract(w["base"] / "bt.pdf")
    out = w["base"] / "bt-signed.pdf"
    p = cli(w["agent"], "--json", "sign", str(src), "-o", str(out), "--token", w["token"].label, "--key", w["key"],
            "--tsa", w["tsa"],
            "--pin-env", "PIN", env=w["env"])
    assert p.returncode == 0, p.stderr
    v = _verify(w, str(out))
    assert v.returncode == 0, v.stdout + v.stderr
    rep = json.loads(v.stdout)
    (sig,) = rep["signatures"]
    assert rep["valid"] is True and sig["timestamp_time"] and sig["warnings"] == []
    assert sig["signing_policy"] == "1.3.6.1.4.1.59541.1.1" and "Hui Lin" in sig["signer_subject"]


def _software_signer(w):
    """The agent's TLS key and certificate chain from enrollment: a software key, in a file."""
    from cryptography.hazmat.primitives.serialization import Encoding, PrivateFormat
    from pyhanko.sign.signers import SimpleSigner

    tls = w["agent"].state / "server"
    key = tls / "agent.key"
    certs = [der for _, _, der in pem.unarmor((tls / "agent.crt").read_bytes(), multiple=True)]
    assert len(certs) == 2  # agent TLS certificate + TLS CA
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509
    from cryptography.hazmat.primitives.serialization import NoEncryption, load_pem_private_key
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    priv = load_pem_private_key(key.read_bytes(), None)
    der = priv.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    return SimpleSigner(signing_cert=x509.Certificate.load(certs[0]), signing_key=asn1_keys.PrivateKeyInfo.load(der),
                        cert_registry=SimpleCertificateStore.from_certs([x509.Certificate.load(c) for c in certs]))


def test_a_signature_made_with_the_agent_tls_key_is_not_valid(world):
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    w = world
    signer = _software_signer(w)
    src = _contract(w["base"] / "tls.pdf")
    out = w["base"] / "tls-signed.pdf"
    with open(src, "rb") as f, open(out, "wb") as o:
        signers.sign_pdf(IncrementalPdfFileWriter(f), signers.PdfSignatureMetadata(field_name="Sig"), signer,
                         output=o)
    tls_root = str(w["r"].env.ca_pem)
    # under the signing root alone it is simply untrusted ...
    v = _verify(w, str(out))
    assert v.returncode == 3 and json.loads(v.stdout)["valid"] is False
    # ... and even a verifier that trusts the TLS root too refuses it, saying why
    v = _verify(w, "--trust", tls_root, str(out))
    assert v.returncode == 3, v.stdout
    problems = json.loads(v.stdout)["signatures"][0]["problems"]
    assert any("Signet TLS root" in p and "never signing keys" in p for p in problems), problems

    # the same for a detached CMS signature (.p7s)
    data = w["base"] / "annex.txt"
    data.write_bytes(b"Annex: the equipment list\n")
    p7s = w["base"] / "annex.txt.p7s"
    cms = asyncio.run(signer.async_sign_general_data(open(data, "rb"), "sha256", detached=True))
    p7s.write_bytes(cms.dump())
    v = _verify(w, "--trust", tls_root, str(data), "--sig", str(p7s))
    assert v.returncode == 3, v.stdout
    problems = json.loads(v.stdout)["signatures"][0]["problems"]
    assert any("Signet TLS root" in p for p in problems), problems


def test_a_revoked_certificate_is_refused_before_the_token_is_asked_and_later_signatures_are_not_valid(world,
                                                                                                       hsm_root):
    w = world
    src = _contract(w["base"] / "before.pdf")
    before = w["base"] / "before-signed.pdf"
    assert cli(w["agent"], "sign", str(src), "-o", str(before), "--token", w["token"].label, "--key", w["key"],
               "--pin-env", "PIN",
               env=w["env"]).returncode == 0
    admin(w["r"].env, "cert", "revoke", w["serial"], "--reason", "key_compromise")

    after = w["base"] / "after-signed.pdf"
    p = cli(w["agent"], "sign", str(src), "-o", str(after), "--token", w["token"].label, "--key", w["key"],
            "--pin-env", "PIN", env=w["env"])
    assert p.returncode == 5 and "CERTIFICATE_REVOKED" in p.stderr, p.stderr
    assert not after.exists()
    rows = [r for r in w["agent"].journal() if r["operation"] == "sign_pdf"]
    assert rows[-1]["outcome"] == "CERTIFICATE_REVOKED" and rows[-1]["signed_digest"] == ""

    # a signature made after the revocation by other means (the token used directly, bypassing the agent)
    from formats.pades import sign_pdf
    from formats.signer import TokenSigner

    tok = hsm_root.token(label=w["token"].label)
    tok.login(w["token"].pin)
    try:
        sign_pdf(src, after, TokenSigner(tok, w["key"]))
    finally:
        tok.logout()
    v = _verify(w, str(after))
    assert v.returncode == 3, v.stdout
    problems = json.loads(v.stdout)["signatures"][0]["problems"]
    assert any("revoked" in p for p in problems), problems
