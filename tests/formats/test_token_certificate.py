"""TokenSigner with the certificate and chain read from the token (the path the agent uses).

The end-to-end case runs in a child process on a token of its own: with python-pkcs11 0.9.5 a failing
``create_object`` template (an attribute it cannot pack, as CKA_CERTIFICATE_CATEGORY once was) corrupts
the heap and crashes the interpreter later, and such a crash must fail this test, not the whole session.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

SCRIPT = textwrap.dedent("""
    import sys, tempfile
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from tests import conftest, pki
    from hsm import Hsm, module
    from formats import TokenSigner, PdfSignOptions, sign_pdf, verify_pdf
    from formats.samplepdf import make_contract_pdf

    conftest.create_token("tokcert")
    module.load().reinitialize()
    tok = Hsm(pin_state=Path(tempfile.mkdtemp()) / "p.json").token(label="tokcert")
    tok.login(conftest.USER_PIN)
    ca = pki.make_ca()
    info = tok.generate_key("p256", "k")
    tok.import_certificate(info.key_id, ca.issue_from_csr(tok.create_csr(info.key_id, {"common_name": "T"})),
                           [ca.root_der])
    signer = TokenSigner(tok, info.key_id)
    assert [c.dump() for c in signer.chain_certs] == [ca.root_der], "chain not read from the token"
    d = Path(tempfile.mkdtemp())
    make_contract_pdf(d / "in.pdf", "T", ["A"])
    sign_pdf(d / "in.pdf", d / "out.pdf", signer, PdfSignOptions())
    rep = verify_pdf(d / "out.pdf", [ca.root_der], revocation="offline")  # tests.pki names no OCSP/CRL
    assert rep.valid, rep.to_dict()
    assert rep.all_warnings() == ["signature 'Signature1': revocation of Common Name: T was not checked (offline)"]
    print("OK", rep.signatures[0].signer_subject)
""")


def test_signer_reads_certificate_and_chain_from_token(softhsm_dir):
    p = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "OK Common Name: T" in p.stdout, p.stderr[-3000:]


def test_certificate_of_another_key_is_refused(formats_token, rsa_setup, ec_setup):
    from formats import SigningError, TokenSigner

    with pytest.raises(SigningError, match="does not belong"):
        TokenSigner(formats_token, rsa_setup.key_id, certificate=ec_setup.cert_der)


def test_key_without_certificate_is_refused(formats_token):
    from formats import SigningError, TokenSigner

    info = formats_token.generate_key("p256", "no-cert")
    with pytest.raises(SigningError, match="no certificate"):
        TokenSigner(formats_token, info.key_id)


def test_chain_and_mechanism_read_once(rsa_setup, ec_setup, ca):
    assert [c.dump() for c in rsa_setup.signer.chain_certs] == [ca.root_der]
    assert rsa_setup.signer.signature_mechanism["algorithm"].native == "sha256_rsa"
    assert ec_setup.signer.signature_mechanism["algorithm"].native == "sha256_ecdsa"
    assert (rsa_setup.signer.raw_signature_size, ec_setup.signer.raw_signature_size) == (256, 72)
