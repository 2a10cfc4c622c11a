"""The CSC API's rules on a real store with a ManualClock (server.csc.service): bearer tokens and SADs expire, a
SAD is another person's or another hash's for nobody, the OTP is bound to the person and the credential, and
nothing secret reaches the log.  The remote key is a software key behind the token interface with a remote-signing
certificate (the server-token key and the HTTPS listener are in tests/e2e/test_csc.py)."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from formats import TokenSigner
from formats.policy import DEFAULT_REMOTE_POLICY, REMOTE_KEY_MARKER
from server.csc import CscError, CscService
from server.errors import FailedPrecondition
from server.remotekeys import RemoteKey

from .test_envelopes_world import PHONES, Signer, World, make_world

SECRET = "s3cret-of-the-test"


class Keys:
    """What server.remotekeys.RemoteKeys answers, for Carol and Bob."""

    def __init__(self, w: World) -> None:
        self.signers: dict[str, Signer] = {}
        self.keys: dict[str, RemoteKey] = {}
        for name in ("carol", "bob"):
            s = w.certify(name, policies=(DEFAULT_REMOTE_POLICY, REMOTE_KEY_MARKER))
            p = w.people[name]
            self.signers[p.id] = s
            self.keys[p.id] = RemoteKey(p.id, p.org_id, "k", "signet-remote-x", s.serial, "", "operator:op")

    def get(self, person_id: str) -> RemoteKey | None:
        return self.keys.get(person_id)

    def client(self, person_id: str, secret: str) -> RemoteKey | None:
        return self.keys.get(person_id) if secret == SECRET else None

    def signer(self, person_id: str) -> TokenSigner:
        if person_id not in self.signers:
            raise FailedPrecondition("no key", reason="REMOTE_KEY_MISSING")
        return self.signers[person_id].signer()


def _basic(person_id: str, secret: str = SECRET) -> str:
    return "Basic " + base64.b64encode(f"{person_id}:{secret}".encode()).decode()


@pytest.fixture(name="setup")
def csc_world(tmp_path: Path) -> tuple[World, Keys, CscService]:
    w = make_world(tmp_path)
    keys = Keys(w)
    svc = CscService(keys, w.identity, w.outbox, w.store, w.clock, token_seconds=600,  # type: ignore[arg-type]
                     sad_seconds=60)
    return w, keys, svc


def _login(svc: CscService, w: World, name: str) -> str:
    return "Bearer " + svc.login(_basic(w.people[name].id))["access_token"]


def _otp(w: World, name: str) -> str:
    [entry] = [e for e in w.outbox.list(to=PHONES[name], unread_only=True) if e.topic == "otp.csc-authorize"]
    m = re.search(r"\b(\d{6})\b", w.outbox.read(entry.id).body)
    assert m is not None
    return m.group(1)


def _sad(svc: CscService, w: World, keys: Keys, name: str, digest: bytes) -> tuple[str, str, dict]:
    bearer = _login(svc, w, name)
    cred = {"credentialID": keys.keys[w.people[name].id].certificate_serial}
    svc.call("credentials/sendOTP", bearer, cred)
    sad = svc.call("credentials/authorize", bearer, {**cred, "hash": [base64.b64encode(digest).decode()],
                                                    "numSignatures": 1, "OTP": _otp(w, name)})["SAD"]
    return bearer, sad, cred


def test_a_sad_signs_its_hash_once_and_the_signature_verifies(setup) -> None:
    w, keys, svc = setup
    digest = hashlib.sha256(b"to be signed").digest()
    bearer, sad, cred = _sad(svc, w, keys, "carol", digest)
    out = svc.call("signatures/signHash", bearer, {**cred, "SAD": sad, "hash": [base64.b64encode(digest).decode()]})
    [sig] = out["signatures"]
    public = keys.signers[w.people["carol"].id].token.public_key
    public.verify(base64.b64decode(sig), b"to be signed", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(CscError, match="used already"):
        svc.call("signatures/signHash", bearer, {**cred, "SAD": sad, "hash": [base64.b64encode(digest).decode()]})
    kinds = [r.kind for r in w.identity.evidence(w.acme_op, w.people["carol"].id)]
    assert kinds[-2:] == ["csc_authorized", "csc_signed"]


def test_sads_and_tokens_expire_and_belong_to_one_person(setup) -> None:
    w, keys, svc = setup
    digest = hashlib.sha256(b"x").digest()
    h = [base64.b64encode(digest).decode()]
    bearer, sad, cred = _sad(svc, w, keys, "carol", digest)
    bob = _login(svc, w, "bob")
    bob_cred = {"credentialID": keys.keys[w.people["bob"].id].certificate_serial}
    with pytest.raises(CscError, match="Invalid SAD"):  # Carol's SAD is nothing to Bob
        svc.call("signatures/signHash", bob, {**bob_cred, "SAD": sad, "hash": h})
    with pytest.raises(CscError, match="credentialID"):  # nor is her credential
        svc.call("signatures/signHash", bob, {**cred, "SAD": sad, "hash": h})
    w.clock.advance(61)
    with pytest.raises(CscError, match="expired"):
        svc.call("signatures/signHash", bearer, {**cred, "SAD": sad, "hash": h})
    w.clock.advance(600)
    with pytest.raises(CscError) as e:
        svc.call("credentials/list", bearer, {})
    assert (e.value.status, e.value.error) == (401, "invalid_token")
    with pytest.raises(CscError) as e:
        svc.login(_basic(w.people["carol"].id, "wrong"))
    assert (e.value.status, e.value.error) == (401, "invalid_client")


def test_the_otp_is_bound_to_the_person_and_the_credential(setup) -> None:
    w, keys, svc = setup
    carol, bob = _login(svc, w, "carol"), _login(svc, w, "bob")
    cred = {"credentialID": keys.keys[w.people["carol"].id].certificate_serial}
    bob_cred = {"credentialID": keys.keys[w.people["bob"].id].certificate_serial}
    svc.call("credentials/sendOTP", carol, cred)
    code = _otp(w, "carol")
    h = {"hash": [base64.b64encode(hashlib.sha256(b"y").digest()).decode()], "numSignatures": 1}
    with pytest.raises(CscError, match="Invalid OTP"):  # Carol's code in Bob's authorisation
        svc.call("credentials/authorize", bob, {**bob_cred, **h, "OTP": code})
    with pytest.raises(CscError, match="numSignatures"):
        svc.call("credentials/authorize", carol, {**cred, **h, "numSignatures": 2, "OTP": code})
    assert svc.call("credentials/authorize", carol, {**cred, **h, "OTP": code})["SAD"]


def test_nothing_secret_reaches_the_log(setup, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    w, keys, svc = setup
    digest = hashlib.sha256(b"z").digest()
    bearer, sad, cred = _sad(svc, w, keys, "carol", digest)
    svc.call("signatures/signHash", bearer, {**cred, "SAD": sad, "hash": [base64.b64encode(digest).decode()]})
    codes = re.findall(r"\b\d{6}\b", " ".join(w.outbox.read(e.id).body for e in w.outbox.list(to=PHONES["carol"])))
    for secret in (sad, bearer.split()[1], SECRET, *codes):
        assert secret not in caplog.text
    assert "csc:" in caplog.text
