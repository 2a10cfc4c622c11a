"""The Cloud Signature Consortium API v2 subset against a real `signet-server` process (``[csc] listen``), with
pyHanko's own CSC client (pyhanko.sign.signers.csc_signer.CSCSigner) as the independent party: it logs in with
the client credentials `signet-admin remote-key create` handed over, fetches the credential's certificates,
has the OTP sent, authorises exactly the hash it is about to sign and signs a PDF through signatures/signHash;
the PDF validates under the Signet signing root (formats, pdfsig), reported as a server-held key.  A SAD for
another hash, a replayed SAD and a wrong OTP are refused; every authorisation and signature is in the person's
evidence chain; no OTP, SAD, secret or token reaches the server's log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import io
import json
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import pem

from formats import verify_pdf
from formats.samplepdf import contract_pdf_bytes
from scripts.processes import free_port
from tests.pki import make_nssdb, pdfsig

from .server_harness import Running, admin, channel, latest_code, prc_id, register_verified, start_running

pytestmark = pytest.mark.e2e

PHONE = "+8613800138061"


@dataclass
class World:
    r: Running
    base: Path
    url: str
    port: int
    person: str
    secret: str
    credential: str
    ca: Path
    seen: list[str]  # every OTP, SAD, token and secret the test handled: none may reach the log

    def otp(self) -> str:
        code = latest_code(self.r.env, PHONE)
        self.seen.append(code)
        return code

    def post(self, name: str, body: dict[str, Any], *, token: str | None = None,
             basic: tuple[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30,
                                           context=ssl.create_default_context(cafile=str(self.ca)))
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if basic:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
        try:
            conn.request("POST", f"/csc/v2/{name}", body=json.dumps(body), headers=headers)
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def login(self) -> str:
        status, body = self.post("auth/login", {}, basic=(self.person, self.secret))
        assert status == 200, body
        self.seen.append(body["access_token"])
        return str(body["access_token"])


@pytest.fixture(scope="module")
def world(make_token, tmp_path_factory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("csc")
    tok = make_token("csc-srv")
    port = free_port()
    r = start_running(base, tok.label, tok.pin, f'\n[csc]\nlisten = "127.0.0.1:{port}"\n')
    seen: list[str] = []
    try:
        with channel(r.env, r.op_a) as op:
            person = register_verified(r, op, "Carol Csc", prc_id("19780101", "248"), PHONE, "carol@example.com")
        admin(r.env, "remote-key", "create", person, "--evidence", "no token; passport seen", "--out",
              str(base / "carol"))
        csc = json.loads((base / "carol" / "csc.json").read_text())
        seen.append(csc["client_secret"])
        assert f"csc=https://127.0.0.1:{port}" in r.server.ready_line
        yield World(r, base, f"https://127.0.0.1:{port}", port, person, csc["client_secret"], csc["credential_id"],
                    r.env.ca_pem, seen)
    finally:
        assert r.server.stop() == 0
    log = r.server.log
    assert seen and not [s for s in seen if re.search(re.escape(s), log)]


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


# -- pyHanko's CSC client, with an authorisation manager that has the OTP sent and authorises the hash ------------
async def _sign_with_pyhanko(w: World, data: bytes, otp: Callable[[], str]) -> bytes:
    import aiohttp
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.signers.csc_signer import (
        CSCAuthorizationInfo,
        CSCAuthorizationManager,
        CSCServiceSessionInfo,
        CSCSigner,
        fetch_certs_in_csc_credential,
    )

    class OtpAuthorization(CSCAuthorizationManager):
        def __init__(self, info: Any, credential: Any, session: aiohttp.ClientSession) -> None:
            super().__init__(info, credential)
            self.session = session

        async def authorize_signature(self, hash_b64s: list[str]) -> CSCAuthorizationInfo:
            info = self.csc_session_info
            async with self.session.post(info.endpoint_url("credentials/sendOTP"), headers=self.auth_headers,
                                         json={"credentialID": info.credential_id}, raise_for_status=True):
                pass
            request = self.format_csc_auth_request(otp=otp(), hash_b64s=hash_b64s)
            async with self.session.post(info.endpoint_url("credentials/authorize"), headers=self.auth_headers,
                                         json=request, raise_for_status=True) as resp:
                answer = await resp.json()
            w.seen.append(answer["SAD"])
            return self.parse_csc_auth_response(answer)

    tls = ssl.create_default_context(cafile=str(w.ca))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as session:
        basic = "Basic " + base64.b64encode(f"{w.person}:{w.secret}".encode()).decode()
        async with session.post(f"{w.url}/csc/v2/auth/login", headers={"Authorization": basic}, json={},
                                raise_for_status=True) as resp:
            token = (await resp.json())["access_token"]
        w.seen.append(token)
        info = CSCServiceSessionInfo(w.url, w.credential, oauth_token=token, api_ver="v2")
        credential = await fetch_certs_in_csc_credential(session, info)
        assert credential.hash_pinning_required and credential.max_batch_size == 1
        signer = CSCSigner(session, OtpAuthorization(info, credential, session))
        out = await signers.async_sign_pdf(IncrementalPdfFileWriter(io.BytesIO(data)),
                                           signers.PdfSignatureMetadata(field_name="CscSignature"), signer=signer)
        return out.getvalue()


def test_info_login_and_credentials(world: World) -> None:
    w = world
    status, info = w.post("info", {})
    assert status == 200 and "signatures/signHash" in info["methods"] and info["authType"] == ["basic"]
    assert w.post("auth/login", {}, basic=(w.person, "not the secret"))[0] == 401
    assert w.post("credentials/list", {}, token="forged")[0] == 401
    token = w.login()
    status, listed = w.post("credentials/list", {}, token=token)
    assert status == 200 and listed["credentialIDs"] == [w.credential]
    status, info = w.post("credentials/info", {"credentialID": w.credential, "certificates": "chain"}, token=token)
    assert status == 200 and info["SCAL"] == "2" and len(info["cert"]["certificates"]) == 3
    assert w.post("credentials/info", {"credentialID": "00"}, token=token)[0] == 400


def test_pyhanko_signs_a_pdf_through_signet_and_it_validates(world: World) -> None:
    w = world
    data = contract_pdf_bytes("CSC Agreement", ["Carol Csc"], pages=1)
    signed = asyncio.run(_sign_with_pyhanko(w, data, w.otp))
    path = w.base / "csc-signed.pdf"
    path.write_bytes(signed)
    root = pem.unarmor(w.r.env.signing_root.read_bytes())[2]
    report = verify_pdf(path, [root], revocation="offline")
    assert report.valid, report.reasons()
    [s] = report.signatures
    assert s.remote_key is True and "Carol Csc" in (s.signer_subject or "")
    verdict = pdfsig(path, make_nssdb(w.base / "nssdb", w.r.env.signing_root.read_bytes()))
    assert verdict.valid and verdict.trusted and verdict.total, verdict.text
    evidence = [e["kind"] for e in admin(w.r.env, "person", "show", w.person)["evidence"]]
    assert evidence.count("csc_authorized") >= 1 and evidence.count("csc_signed") >= 1


def test_a_sad_signs_its_own_hash_once_and_a_wrong_otp_gets_none(world: World) -> None:
    w = world
    token = w.login()
    mine, other = hashlib.sha256(b"mine").digest(), hashlib.sha256(b"other").digest()
    cred = {"credentialID": w.credential}
    assert w.post("credentials/sendOTP", cred, token=token)[0] == 200
    code = w.otp()
    wrong = "000000" if code != "000000" else "111111"
    status, body = w.post("credentials/authorize", {**cred, "numSignatures": 1, "hash": [_b64(mine)], "OTP": wrong},
                          token=token)
    assert status == 400 and "Invalid OTP" in body["error_description"]
    status, body = w.post("credentials/authorize", {**cred, "numSignatures": 1, "hash": [_b64(mine)], "OTP": code},
                          token=token)
    assert status == 200, body
    sad = body["SAD"]
    w.seen.append(sad)
    sign = {**cred, "SAD": sad, "hashAlgo": "2.16.840.1.101.3.4.2.1", "signAlgo": "1.2.840.10045.4.3.2"}
    status, body = w.post("signatures/signHash", {**sign, "hash": [_b64(other)]}, token=token)
    assert status == 400 and "other hash" in body["error_description"]  # a SAD for another hash
    status, body = w.post("signatures/signHash", {**sign, "hash": [_b64(mine)]}, token=token)
    assert status == 200 and len(body["signatures"]) == 1  # the refusal did not spend it
    status, body = w.post("signatures/signHash", {**sign, "hash": [_b64(mine)]}, token=token)
    assert status == 400 and "used already" in body["error_description"]  # replayed
    # the OTP, once spent, authorises nothing more
    status, body = w.post("credentials/authorize", {**cred, "numSignatures": 1, "hash": [_b64(other)], "OTP": code},
                          token=token)
    assert status == 400 and "Invalid OTP" in body["error_description"]
