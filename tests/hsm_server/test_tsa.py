"""The RFC 3161 TSA over HTTP, checked with `openssl ts` and pyHanko's HTTPTimeStamper."""

from __future__ import annotations

import asyncio
import hashlib
import urllib.error
import urllib.request
from typing import ClassVar

import pytest
from asn1crypto import cms, core, tsp

from formats.policy import DEFAULT_TSA_POLICY

from .conftest import openssl


def _post(url, body, ctype="application/timestamp-query"):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def test_openssl_query_is_stamped_and_verifies(pki, tmp_path):
    data = tmp_path / "contract.bin"
    data.write_bytes(b"the contract text\n" * 100)
    q = tmp_path / "q.tsq"
    openssl("ts", "-query", "-data", str(data), "-sha256", "-cert", "-out", str(q))
    status, ctype, body = _post(f"{pki.url}/tsa", q.read_bytes())
    assert status == 200 and ctype == "application/timestamp-reply"
    resp = tmp_path / "resp.tsr"
    resp.write_bytes(body)
    # the token carries its chain below the root: the Signet signing root alone is enough to verify it
    root = str(pki.files / "signing-root.pem")
    out = openssl("ts", "-verify", "-data", str(data), "-in", str(resp), "-CAfile", root)
    assert "Verification: OK" in out.stdout
    # against the query: imprint, nonce and (absent) policy all match
    out = openssl("ts", "-verify", "-queryfile", str(q), "-in", str(resp), "-CAfile", root)
    assert "Verification: OK" in out.stdout
    text = openssl("ts", "-reply", "-in", str(resp), "-text").stdout
    assert "Status: Granted." in text and f"Policy OID: {DEFAULT_TSA_POLICY}" in text
    assert "Accuracy: 0x01 seconds" in text and "Nonce: 0x" in text
    info = tsp.TimeStampResp.load(body)["time_stamp_token"]["content"]
    # certReq honoured: the TSA certificate and the signing CA, not the root
    assert sorted(c.chosen.subject.native["common_name"] for c in info["certificates"]) == [
        "Signet Test Org Signing CA", "Signet Test Org Time-Stamping Authority"]
    tst = info["encap_content_info"]["content"].parsed
    assert tst["message_imprint"]["hashed_message"].native == hashlib.sha256(data.read_bytes()).digest()
    query_nonce = tsp.TimeStampReq.load(q.read_bytes())["nonce"].native
    assert tst["nonce"].native == query_nonce
    attrs = {a["type"].native for a in info["signer_infos"][0]["signed_attrs"]}
    assert {"content_type", "message_digest", "signing_certificate_v2"} <= attrs


def test_without_cert_req_verifies_with_the_tsa_certificate_given(pki, tmp_path):
    data = tmp_path / "d.bin"
    data.write_bytes(b"x")
    q = tmp_path / "q.tsq"
    openssl("ts", "-query", "-data", str(data), "-sha512", "-no_nonce", "-out", str(q))
    _, _, body = _post(f"{pki.url}/tsa", q.read_bytes())
    token = tsp.TimeStampResp.load(body)["time_stamp_token"]["content"]
    assert not token["certificates"]
    (tmp_path / "r.tsr").write_bytes(body)
    out = openssl("ts", "-verify", "-data", str(data), "-in", str(tmp_path / "r.tsr"), "-CAfile",
                  str(pki.files / "signing-root.pem"), "-untrusted",
                  str(_cat(tmp_path / "u.pem", pki.files / "signing-ca.pem", pki.files / "tsa.pem")))
    assert "Verification: OK" in out.stdout


def _cat(out, *paths):
    out.write_bytes(b"".join(p.read_bytes() for p in paths))
    return out


def _query(**fields):
    base = {"version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                                                 "hashed_message": b"\x11" * 32}}
    base.update(fields)
    return tsp.TimeStampReq(base).dump()


@pytest.mark.parametrize(("query", "failure"), [
    (_query(message_imprint={"hash_algorithm": {"algorithm": "sha1"}, "hashed_message": b"\x11" * 20}), "bad_alg"),
    (_query(message_imprint={"hash_algorithm": {"algorithm": "md5"}, "hashed_message": b"\x11" * 16}), "bad_alg"),
    (_query(message_imprint={"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x11" * 31}),
     "bad_data_format"),
    (_query(req_policy="1.2.3.4"), "unaccepted_policy"),
    (_query(extensions=[{"extn_id": "1.2.3.5", "critical": False, "extn_value": b"\x05\x00"}]),
     "unaccepted_extensions"),
    (b"\x30\x03\x02\x01\x01", "bad_data_format"),
    (b"not DER at all", "bad_data_format"),
])
def test_bad_requests_get_a_rejection(pki, query, failure, tmp_path):
    status, _, body = _post(f"{pki.url}/tsa", query)
    assert status == 200
    resp = _StatusOnly.load(body)
    assert resp["status"]["status"].native == "rejection"
    assert resp["status"]["fail_info"].native == {failure}
    (tmp_path / "r.tsr").write_bytes(body)
    text = openssl("ts", "-reply", "-in", str(tmp_path / "r.tsr"), "-text").stdout
    assert "Status: Rejected." in text and "TST info:\nNot included." in text


class _StatusOnly(core.Sequence):  # type: ignore[misc]
    """A TimeStampResp without a token (asn1crypto's own class insists on one)."""

    _fields: ClassVar = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


def test_our_policy_requested_by_name_is_granted(pki):
    body = pki.http.services.tsa.respond(_query(req_policy=DEFAULT_TSA_POLICY, nonce=7, cert_req=True))
    resp = tsp.TimeStampResp.load(body)
    assert resp["status"]["status"].native == "granted"
    assert resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed["nonce"].native == 7


def test_pyhanko_http_timestamper_gets_a_valid_token(pki):
    from asn1crypto import x509
    from pyhanko.sign.timestamps import HTTPTimeStamper
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko_certvalidator import ValidationContext

    digest = hashlib.sha256(b"a PAdES document's signature value").digest()
    stamper = HTTPTimeStamper(f"{pki.url}/tsa")
    token = asyncio.run(stamper.async_timestamp(digest, "sha256"))
    root = x509.Certificate.load(pki.keys.certificate_der(_role("SIGNING_ROOT")))
    vc = ValidationContext(trust_roots=[root])  # the root alone: the token brings the rest of its chain
    status = asyncio.run(validate_tst_signed_data(token["content"], vc, lambda _algo: digest))
    assert status["intact"] and status["valid"], status
    assert status["trust_problem_indic"] is None and status["validation_path"] is not None, status
    assert status["timestamp"] is not None


def _role(name):
    from server.ca import Role

    return Role[name]
