"""The platform's countersignature of a party's detached CAdES signature (RFC 5652 §11.4) with a signature
timestamp: openssl cms -verify still verifies the party's signature; the countersignature verifies with the seal
certificate over the party's signature value; openssl ts -verify checks its timestamp under the signing root."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from asn1crypto import cms, pem
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tests.hsm_server.conftest import openssl


def _party_signature(pki, person, tmp_path):
    from formats import sign_detached
    from formats.signer import TokenSigner

    info = pki.agent.generate_key("p256", f"cades-party-{tmp_path.name}")
    issued = pki.ca.issue(pki.agent.create_csr(info.key_id, {"common_name": "x"}), person, "p-cades-seal")
    signer = TokenSigner(pki.agent, info.key_id, certificate=issued.der, chain=list(issued.chain))
    content = tmp_path / "invoice.xml"
    content.write_bytes(b"<invoice total='100.00'/>\n" * 100)
    return content, sign_detached(content, signer)


def _sealer(pki):
    from server.ca import Role

    return pki.keys.signer(Role.SEAL), [pki.keys.certificate_der(Role.SEAL), *pki.keys.chain_der(Role.SEAL)]


def test_countersigned_cades_verifies_with_openssl_and_the_countersignature_checks_out(pki, person, tmp_path):
    from pyhanko.sign.timestamps import HTTPTimeStamper

    from server.ca import Role
    from server.seal.cms import countersign

    content, party = _party_signature(pki, person, tmp_path)
    seal, certs = _sealer(pki)
    sealed = countersign(party, seal, certs, HTTPTimeStamper(f"{pki.url}/tsa"), dt.datetime.now(dt.UTC))
    root = tmp_path / "root.pem"
    root.write_bytes(pem.armor("CERTIFICATE", pki.keys.certificate_der(Role.SIGNING_ROOT)))
    (tmp_path / "sealed.p7s").write_bytes(sealed)
    r = openssl("cms", "-verify", "-binary", "-inform", "DER", "-content", str(content), "-in",
                str(tmp_path / "sealed.p7s"), "-CAfile", str(root), "-purpose", "any", "-out", "/dev/null")
    assert "Verification successful" in r.stderr, r.stderr
    # the party's SignerInfo is byte for byte what it was, plus the unsigned attribute
    party_si = cms.ContentInfo.load(party)["content"]["signer_infos"][0]
    si = cms.ContentInfo.load(sealed)["content"]["signer_infos"][0]
    assert si["signed_attrs"].dump() == party_si["signed_attrs"].dump()
    assert si["signature"].native == party_si["signature"].native
    (counter,) = [a["values"][0] for a in si["unsigned_attrs"] if a["type"].native == "counter_signature"]
    attrs = {a["type"].native: a["values"][0].native for a in counter["signed_attrs"]}
    assert attrs["message_digest"] == hashlib.sha256(si["signature"].native).digest()
    assert "content_type" not in attrs  # RFC 5652 §11.4
    seal_cert = cx509.load_der_x509_certificate(pki.keys.certificate_der(Role.SEAL))
    key, sig = seal_cert.public_key(), counter["signature"].native
    data = counter["signed_attrs"].untag().dump()  # signed as a SET (RFC 5652 §5.4), stored [0] IMPLICIT
    if isinstance(key, rsa.RSAPublicKey):
        key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey)
        key.verify(sig, data, ec.ECDSA(hashes.SHA256()))
    # its timestamp: over the countersignature's value, by our TSA, under the signing root alone
    (token,) = [a["values"][0] for a in counter["unsigned_attrs"] if a["type"].native == "signature_time_stamp_token"]
    (tmp_path / "tst.der").write_bytes(token.dump())
    r = openssl("ts", "-verify", "-digest", hashlib.sha256(counter["signature"].native).hexdigest(), "-in",
                str(tmp_path / "tst.der"), "-token_in", "-CAfile", str(root))
    assert "Verification: OK" in r.stdout, r.stdout + r.stderr


def test_a_failing_tsa_means_no_countersignature(pki, person, tmp_path):
    from pyhanko.sign.timestamps import HTTPTimeStamper

    from server.seal.cms import countersign
    from server.seal.pdf import SealFailed

    _, party = _party_signature(pki, person, tmp_path)
    seal, certs = _sealer(pki)
    with pytest.raises(SealFailed):
        countersign(party, seal, certs, HTTPTimeStamper(f"{pki.url}/nowhere", timeout=5), dt.datetime.now(dt.UTC))
