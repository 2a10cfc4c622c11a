"""OCSP over the real HTTP listener checked with `openssl ocsp`, and CRLs checked with `openssl crl`."""

from __future__ import annotations

import base64
import re
import urllib.parse
import urllib.request

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp

from .conftest import openssl, write_pem


def _ocsp(pki, leaf, *extra):
    out = openssl("ocsp", "-issuer", str(pki.files / "signing-ca.pem"), "-cert", str(leaf), "-url",
                  f"{pki.url}/ocsp", "-CAfile", str(pki.files / "signing-root.pem"), *extra, check=False)
    return out.returncode, out.stdout + out.stderr


def _fetch(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.headers.get("Content-Type"), resp.read()


def test_ocsp_good_then_revoked_at_once(pki, new_key, person, tmp_path):
    issued = pki.ca.issue(new_key()[1], person, "p-ocsp")
    leaf = write_pem(tmp_path / "leaf.pem", issued.der)
    rc, out = _ocsp(pki, leaf)
    assert rc == 0, out
    assert f"{leaf}: good" in out and "Response verify OK" in out
    # nonces are not echoed (answers come from the cache, RFC 5019): openssl says so and nothing else
    assert [line for line in out.splitlines() if "WARNING" in line] == ["WARNING: no nonce in response"]
    pki.ca.revoke(issued.serial, "key_compromise")
    rc, out = _ocsp(pki, leaf)
    assert rc == 0, out
    assert f"{leaf}: revoked" in out and "Reason: keyCompromise" in out and "Response verify OK" in out
    assert re.search(r"Revocation Time: \w+ +\d+ \d\d:\d\d:\d\d \d{4} GMT", out)


def test_ocsp_nonce_is_not_echoed_and_answers_come_from_the_cache(pki, new_key, person, tmp_path):
    """RFC 5019 style: two requests with different nonces get the same bytes, without a nonce, one signature."""
    leaf = write_pem(tmp_path / "leaf.pem", pki.ca.issue(new_key()[1], person, "p-nonce").der)
    bodies, nonces = [], []
    for i in range(2):
        req = tmp_path / f"req{i}.der"
        openssl("ocsp", "-issuer", str(pki.files / "signing-ca.pem"), "-cert", str(leaf), "-reqout", str(req))
        nonces.append(ocsp.OCSPRequest.load(req.read_bytes()).nonce_value.native)
        status, ctype, body = _fetch(f"{pki.url}/ocsp", req.read_bytes(), {"Content-Type": "application/ocsp-request"})
        assert status == 200 and ctype == "application/ocsp-response"
        bodies.append(body)
    assert nonces[0] != nonces[1] and bodies[0] == bodies[1]
    resp = ocsp.OCSPResponse.load(bodies[0])
    assert resp["response_status"].native == "successful" and resp.nonce_value is None
    rc, out = _ocsp(pki, leaf, "-no_nonce")
    assert rc == 0 and ": good" in out and "Response verify OK" in out and "WARNING" not in out


def test_ocsp_get_with_base64_path(pki, new_key, person, tmp_path):
    issued = pki.ca.issue(new_key()[1], person, "p-get")
    leaf = write_pem(tmp_path / "leaf.pem", issued.der)
    req = tmp_path / "req.der"
    openssl("ocsp", "-issuer", str(pki.files / "signing-ca.pem"), "-cert", str(leaf), "-no_nonce", "-reqout", str(req))
    path = urllib.parse.quote(base64.b64encode(req.read_bytes()).decode(), safe="")
    status, ctype, body = _fetch(f"{pki.url}/ocsp/{path}")
    assert status == 200 and ctype == "application/ocsp-response"
    resp = ocsp.OCSPResponse.load(body)
    single = resp.basic_ocsp_response["tbs_response_data"]["responses"][0]
    assert single["cert_status"].name == "good"
    assert single["cert_id"]["serial_number"].native == issued.serial
    # the response verifies with openssl too (read back from the GET answer)
    (tmp_path / "resp.der").write_bytes(body)
    out = openssl("ocsp", "-respin", str(tmp_path / "resp.der"), "-issuer", str(pki.files / "signing-ca.pem"),
                  "-cert", str(leaf), "-CAfile", str(pki.files / "signing-root.pem"), check=False)
    assert "Response verify OK" in out.stderr + out.stdout and ": good" in out.stdout


def test_ocsp_unknown_serial_malformed_request_and_foreign_issuer(pki, tmp_path):
    # our issuer, a serial this CA never issued
    req = tmp_path / "req.der"
    openssl("ocsp", "-issuer", str(pki.files / "signing-ca.pem"), "-serial", "0x1234567", "-no_nonce",
            "-reqout", str(req))
    _, _, body = _fetch(f"{pki.url}/ocsp", req.read_bytes(), {"Content-Type": "application/ocsp-request"})
    single = ocsp.OCSPResponse.load(body).basic_ocsp_response["tbs_response_data"]["responses"][0]
    assert single["cert_status"].name == "unknown"
    _, _, body = _fetch(f"{pki.url}/ocsp", b"\x30\x02\x05\x00", {"Content-Type": "application/ocsp-request"})
    assert ocsp.OCSPResponse.load(body)["response_status"].native == "malformed_request"
    # asking about a certificate of another issuer (our root as "issuer") is not ours to answer
    openssl("ocsp", "-issuer", str(pki.files / "signing-root.pem"), "-cert", str(pki.files / "signing-ca.pem"),
            "-no_nonce", "-reqout", str(req))
    _, _, body = _fetch(f"{pki.url}/ocsp", req.read_bytes(), {"Content-Type": "application/ocsp-request"})
    assert ocsp.OCSPResponse.load(body)["response_status"].native == "unauthorized"


def test_crl_lists_revoked_serials_and_verifies(pki, new_key, person, tmp_path):
    keep = pki.ca.issue(new_key()[1], person, "p-crl")
    gone = pki.ca.issue(new_key()[1], person, "p-crl")
    status, ctype, first = _fetch(f"{pki.url}/crl/signing-ca.crl")
    assert status == 200 and ctype == "application/pkix-crl"
    pki.ca.revoke(gone.serial, "cessation_of_operation")
    _, _, der = _fetch(f"{pki.url}/crl/signing-ca.crl")
    (tmp_path / "issuing.crl").write_bytes(der)
    chain = tmp_path / "chain.pem"
    chain.write_bytes((pki.files / "signing-ca.pem").read_bytes() + (pki.files / "signing-root.pem").read_bytes())
    out = openssl("crl", "-inform", "DER", "-in", str(tmp_path / "issuing.crl"), "-text", "-noout",
                  "-CAfile", str(chain))
    assert "verify OK" in out.stderr + out.stdout
    listed = {int(s, 16) for s in re.findall(r"Serial Number: ([0-9A-F]+)", out.stdout)}
    assert gone.serial in listed and keep.serial not in listed
    assert "Cessation Of Operation" in out.stdout
    assert "X509v3 CRL Number" in out.stdout and "Next Update:" in out.stdout
    n_before = asn1_crl.CertificateList.load(first).crl_number_value.native
    n_after = asn1_crl.CertificateList.load(der).crl_number_value.native
    assert n_after > n_before
    # unchanged revocations within the refresh interval: the same CRL again
    assert _fetch(f"{pki.url}/crl/signing-ca.crl")[2] == der
    # openssl's own revocation check refuses the revoked leaf and accepts the other
    for issued, ok in ((gone, False), (keep, True)):
        leaf = write_pem(tmp_path / "leaf.pem", issued.der)
        (tmp_path / "crl.pem").write_text(
            openssl("crl", "-inform", "DER", "-in", str(tmp_path / "issuing.crl")).stdout)
        out = openssl("verify", "-crl_check", "-CRLfile", str(tmp_path / "crl.pem"), "-CAfile",
                      str(pki.files / "signing-root.pem"), "-untrusted", str(pki.files / "signing-ca.pem"), str(leaf),
                      check=False)
        assert (out.returncode == 0) is ok, out.stdout + out.stderr
        if not ok:
            assert "certificate revoked" in out.stdout + out.stderr


def test_root_crl_and_ca_certificates_are_served(pki, tmp_path):
    _, _, der = _fetch(f"{pki.url}/crl/signing-root.crl")
    (tmp_path / "root.crl").write_bytes(der)
    out = openssl("crl", "-inform", "DER", "-in", str(tmp_path / "root.crl"), "-noout", "-text",
                  "-CAfile", str(pki.files / "signing-root.pem"))
    assert "verify OK" in out.stderr + out.stdout and "No Revoked Certificates" in out.stdout
    for name in ("signing-root", "signing-ca", "tls-root", "tls-ca", "ocsp", "tsa", "seal", "audit"):
        status, ctype, body = _fetch(f"{pki.url}/ca/{name}.crt")
        assert status == 200 and ctype == "application/pkix-cert"
        assert body == pki.http.services.ca_certificates[name]


def test_revocation_is_validated(pki, new_key, person):
    from server.ca import AlreadyRevoked, CertificateNotFound, InvalidRequest

    issued = pki.ca.issue(new_key()[1], person, "p-rv")
    with pytest.raises(InvalidRequest):
        pki.ca.revoke(issued.serial, "certificate_hold")
    with pytest.raises(CertificateNotFound):
        pki.ca.revoke(12345, "unspecified")
    rec = pki.ca.revoke(issued.serial, "superseded")
    assert rec.revoked and rec.revocation_reason == "superseded"
    with pytest.raises(AlreadyRevoked):
        pki.ca.revoke(issued.serial, "key_compromise")
    assert pki.ca.status(issued.serial).revocation_reason == "superseded"
