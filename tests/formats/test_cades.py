"""CAdES detached signatures with token keys, checked by `openssl cms -verify` and by verify_detached."""

from __future__ import annotations

import datetime as dt
import io
import subprocess

import pytest
from asn1crypto import cms

from formats import InvalidDocument, sign_detached, verify_detached


def openssl_verify(content, sig: bytes, root_pem: bytes, tmp_path) -> subprocess.CompletedProcess:
    (tmp_path / "sig.p7s").write_bytes(sig)
    (tmp_path / "signing-root.pem").write_bytes(root_pem)
    return subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-content", str(content),
         "-in", str(tmp_path / "sig.p7s"), "-CAfile", str(tmp_path / "signing-root.pem"), "-purpose", "any",
         "-out", "/dev/null"],
        capture_output=True, text=True,
    )


@pytest.fixture
def payload(tmp_path):
    p = tmp_path / "invoice.xml"
    p.write_bytes(b"<invoice total='100.00'/>\n" * 5000)  # 130 kB: several chunks not needed, but >1 line
    return p


def test_detached_openssl_and_report(setup, payload, tmp_path, ca):
    when = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
    sig = sign_detached(payload, setup.signer, signing_time=when)
    sd = cms.ContentInfo.load(sig)["content"]
    assert sd["encap_content_info"]["content"].native is None  # detached
    attrs = {a["type"].native for a in sd["signer_infos"][0]["signed_attrs"]}
    assert {"content_type", "message_digest", "signing_time", "signing_certificate_v2"} <= attrs
    p = openssl_verify(payload, sig, ca.root_pem, tmp_path)
    assert p.returncode == 0 and "Verification successful" in p.stderr, p.stderr

    with open(payload, "rb") as f:  # stream form
        rep = verify_detached(f, sig, [ca.root_der])
    assert rep.valid, rep.to_dict()
    (s,) = rep.signatures
    assert s.intact and s.valid and s.trusted and s.signing_time == when.isoformat()
    assert s.chain[0] == s.signer_subject and "Signet Test Root CA" in s.chain[-1]


def test_stream_input_equals_path_input(rsa_setup, payload, ca):
    when = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    a = sign_detached(payload, rsa_setup.signer, signing_time=when)
    b = sign_detached(io.BytesIO(payload.read_bytes()), rsa_setup.signer, signing_time=when)
    assert a == b  # RSA PKCS#1 v1.5 is deterministic: same digest, same attributes, same bytes


def test_modified_content_is_invalid(setup, payload, tmp_path, ca):
    sig = sign_detached(payload, setup.signer)
    data = bytearray(payload.read_bytes())
    data[1000] ^= 0x01
    changed = tmp_path / "changed.xml"
    changed.write_bytes(bytes(data))
    rep = verify_detached(changed, sig, [ca.root_der])
    assert not rep.valid
    assert not rep.signatures[0].intact
    assert any("modified" in p for p in rep.signatures[0].problems)
    assert openssl_verify(changed, sig, ca.root_pem, tmp_path).returncode != 0


def test_untrusted_root_is_invalid_but_intact(ec_setup, payload):
    from tests import pki

    other = pki.make_ca("Some Other Root")
    rep = verify_detached(payload, sign_detached(payload, ec_setup.signer), [other.root_der])
    (s,) = rep.signatures
    assert s.intact and s.valid and not s.trusted and not rep.valid


def test_timestamped_detached(ec_setup, payload, ca, tsa_url, tmp_path):
    sig = sign_detached(payload, ec_setup.signer, timestamp_url=tsa_url)
    rep = verify_detached(payload, sig, [ca.root_der])
    assert rep.valid, rep.to_dict()
    ts = rep.signatures[0].timestamp
    assert ts is not None and ts.ok and "Signet Test TSA" in ts.tsa_subject
    assert openssl_verify(payload, sig, ca.root_pem, tmp_path).returncode == 0


@pytest.mark.parametrize("bad", [b"", b"not DER at all", bytes.fromhex("300302 0100")])
def test_garbage_signature_is_invalid_document(bad, payload, ca):
    with pytest.raises(InvalidDocument):
        verify_detached(payload, bad, [ca.root_der])
