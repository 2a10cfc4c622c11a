"""The Cloud Signature Consortium API v2, the subset Signet serves over people's remote-signing keys.

Endpoints (JSON over HTTPS, :mod:`.listener`; ``POST /csc/v2/<name>``)::

    info                     the service: name, specs, authType basic, the methods below      (no authentication)
    auth/login               HTTP Basic (person id : the CSC client secret of remote-key creation) -> bearer token
    credentials/list         the caller's credential: its remote key, named by its certificate serial
    credentials/info         the key (EC P-256, ecdsa-with-SHA256), its certificates, SCAL 2, OTP online, multisign 1
    credentials/sendOTP      a one-time code to the person's verified phone (purpose ``csc-authorize``)
    credentials/authorize    OTP + the hash(es) to sign -> SAD, bound to exactly those hashes, single use
    signatures/signHash      SAD + the same hash(es) -> signatures made by the key on the server token

SCAL 2: a SAD authorises exactly the hashes it was issued for, once, within ``[csc] sad_seconds``; the OTP is
the person's proof of possession of their phone and is spent by the authorisation (a wrong one counts as a
failed attempt, as everywhere).  Both steps are journalled in the person's evidence chain (``csc_authorized``
with the SAD's id, the hashes and the code id; ``csc_signed`` when the key signed) -- never the OTP, the SAD,
the secret or the token.  Refusals are CSC errors: HTTP 400 ``invalid_request`` with a description, 401
``invalid_client`` / ``invalid_token`` for authentication.  Bearer tokens live in this process only (a restart
asks for a new login); SADs are rows in the store (a restart refuses nothing it should accept, replays nothing).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import secrets
import threading
from datetime import datetime, timedelta
from typing import Any

from ..clock import Clock, from_text, to_text
from ..errors import ServerError, Unauthenticated
from ..identity import IdentityService, Principal, Role
from ..identity import evidence as chain
from ..notify.message import Address, Channel
from ..otp import send_code
from ..remotekeys import RemoteKey, RemoteKeys
from ..store import Store

log = logging.getLogger(__name__)

OTP_PURPOSE = "csc-authorize"
SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_SHA256 = "1.2.840.10045.4.3.2"
SIGN_ALGORITHMS = frozenset({ECDSA_SHA256, "1.2.840.10045.2.1"})  # v2 clients may name the key algorithm
P256 = "1.2.840.10045.3.1.7"
MULTISIGN = 1
METHODS = ("auth/login", "credentials/list", "credentials/info", "credentials/sendOTP", "credentials/authorize",
           "signatures/signHash")


class CscError(Exception):
    """A refusal in the CSC API's terms: HTTP status, ``error`` and ``error_description``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def _bad(description: str) -> CscError:
    return CscError(400, "invalid_request", description)


def _v1(store: Store) -> None:
    store.execute("CREATE TABLE csc_sads (id TEXT PRIMARY KEY, sad_hash TEXT NOT NULL UNIQUE, person_id TEXT NOT NULL,"
                  " credential_id TEXT NOT NULL, hashes TEXT NOT NULL, code_id TEXT NOT NULL, created_at TEXT NOT NULL,"
                  " expires_at TEXT NOT NULL, used_at TEXT)")


MIGRATIONS = [_v1]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _hashes(body: dict[str, Any]) -> list[str]:
    """The request's hashes (``hashes`` in v2, ``hash`` as v1 clients and pyHanko send it), as hex."""
    given = body.get("hashes", body.get("hash"))
    if not isinstance(given, list) or not given or len(given) > MULTISIGN:
        raise _bad(f"give 1 to {MULTISIGN} base64 SHA-256 hash values in 'hashes'")
    out = []
    for h in given:
        try:
            raw = base64.b64decode(str(h), validate=True)
        except (binascii.Error, ValueError):
            raise _bad("a hash value is not base64") from None
        if len(raw) != 32:
            raise _bad("a hash value is not a SHA-256 digest (32 bytes)")
        out.append(raw.hex())
    return out


class CscService:
    def __init__(self, remote_keys: RemoteKeys, identity: IdentityService, notifier: Channel, store: Store,
                 clock: Clock, *, token_seconds: int = 3600, sad_seconds: int = 300) -> None:
        self._keys = remote_keys
        self._identity = identity
        self._notifier = notifier
        self._store = store
        self._clock = clock
        self._token_ttl = timedelta(seconds=token_seconds)
        self._sad_ttl = timedelta(seconds=sad_seconds)
        self._tokens: dict[str, tuple[str, datetime]] = {}  # sha256(token) -> person id, expiry
        self._lock = threading.Lock()
        store.migrate("csc", MIGRATIONS)

    # --- the routing of one request ---------------------------------------------------------------------------
    def call(self, name: str, authorization: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer the endpoint ``name`` (``credentials/info`` ...) for a request with this Authorization header."""
        if name == "info":
            return self.info()
        if name == "auth/login":
            return self.login(authorization)
        handlers = {"credentials/list": self.credentials_list, "credentials/info": self.credentials_info,
                    "credentials/sendOTP": self.send_otp, "credentials/authorize": self.authorize,
                    "signatures/signHash": self.sign_hash}
        handler = handlers.get(name)
        if handler is None:
            raise CscError(404, "invalid_request", f"no endpoint {name!r}")
        return handler(self.caller(authorization), body)

    def info(self) -> dict[str, Any]:
        return {"specs": "2.0.0.2", "name": "Signet", "logo": "", "region": "CN", "lang": "en-US",
                "description": "Signet remote signing: keys held for people on the server token",
                "authType": ["basic"], "methods": list(METHODS)}

    # --- authentication -----------------------------------------------------------------------------------------
    def login(self, authorization: str) -> dict[str, Any]:
        scheme, _, value = authorization.partition(" ")
        try:
            person_id, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            person_id, secret = "", ""
        key = self._keys.client(person_id, secret) if scheme.lower() == "basic" and person_id and secret else None
        if key is None:
            log.info("csc: a login was refused")
            raise CscError(401, "invalid_client", "HTTP Basic authentication with your person id and CSC client "
                                                  "secret is required")
        token = secrets.token_urlsafe(32)
        now = self._clock.now()
        with self._lock:
            self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
            self._tokens[_digest(token)] = (person_id, now + self._token_ttl)
        log.info("csc: person %s logged in", person_id)
        return {"access_token": token, "token_type": "Bearer", "expires_in": int(self._token_ttl.total_seconds())}

    def caller(self, authorization: str) -> str:
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            found = self._tokens.get(_digest(token.strip())) if scheme.lower() == "bearer" else None
        if found is None or found[1] <= self._clock.now():
            raise CscError(401, "invalid_token", "a valid bearer token from auth/login is required")
        return found[0]

    def _credential(self, person_id: str, body: dict[str, Any]) -> RemoteKey:
        key = self._keys.get(person_id)
        if key is None or body.get("credentialID") != key.certificate_serial:
            raise _bad("Invalid parameter credentialID")
        return key

    # --- credentials --------------------------------------------------------------------------------------------
    def credentials_list(self, person_id: str, body: dict[str, Any]) -> dict[str, Any]:
        key = self._keys.get(person_id)
        return {"credentialIDs": [key.certificate_serial] if key is not None else []}

    def credentials_info(self, person_id: str, body: dict[str, Any]) -> dict[str, Any]:
        key = self._credential(person_id, body)
        try:
            signer = self._keys.signer(person_id)
            status = "enabled"
        except ServerError:
            signer, status = None, "disabled"
        certs: list[str] = []
        wanted = body.get("certificates", "single")
        if signer is not None and signer.signing_cert is not None and wanted in ("single", "chain"):
            ders = [signer.signing_cert.dump()] + ([c.dump() for c in signer.chain_certs] if wanted == "chain" else [])
            certs = [base64.b64encode(d).decode() for d in ders]
        return {"description": "Signet remote-signing key", "key": {"status": status, "algo": [ECDSA_SHA256],
                                                                   "len": 256, "curve": P256},
                "cert": {"status": "valid" if status == "enabled" else "revoked", "certificates": certs},
                "authMode": "explicit", "SCAL": "2", "multisign": MULTISIGN, "lang": "en-US",
                "OTP": {"presence": "true", "type": "online", "ID": "signet-phone", "provider": "Signet",
                        "format": "N", "label": "Signet code", "description": "the code sent to your phone"},
                "credentialID": key.certificate_serial}

    def send_otp(self, person_id: str, body: dict[str, Any]) -> dict[str, Any]:
        key = self._credential(person_id, body)
        me = self._identity.get_person(Principal(key.org_id, person_id, Role.AGENT), person_id)
        send_code(self._identity.codes, self._notifier, purpose=OTP_PURPOSE,
                  binding=f"{person_id}|{key.certificate_serial}", to=Address.phone(me.phone),
                  subject="Signet remote-signing code",
                  text=lambda code, minutes: (f"Your Signet code is {code}. It lets an application you use sign with "
                                              f"the key Signet holds for you, once, and expires in {minutes} minutes. "
                                              "Never share it; Signet staff will not ask for it."))
        return {}

    # --- signing ------------------------------------------------------------------------------------------------
    def authorize(self, person_id: str, body: dict[str, Any]) -> dict[str, Any]:
        key = self._credential(person_id, body)
        hashes = _hashes(body)
        if int(body.get("numSignatures", len(hashes))) != len(hashes):
            raise _bad("numSignatures must equal the number of hashes")
        if body.get("hashAlgorithmOID", SHA256) != SHA256:
            raise _bad("only SHA-256 hashes are signed")
        otp = str(body.get("OTP") or "")
        if not otp:
            raise _bad("the OTP (credentials/sendOTP sends it) is required")
        self._keys.signer(person_id)  # no SAD for a key that cannot sign (revoked, expired)
        try:
            accepted = self._identity.codes.verify(OTP_PURPOSE, f"{person_id}|{key.certificate_serial}", otp)
        except Unauthenticated as e:
            log.info("csc: authorisation refused for person %s (%s)", person_id, e.reason)
            raise _bad(f"Invalid OTP ({e.reason})") from None
        sad = secrets.token_urlsafe(32)
        sad_id = "sad_" + secrets.token_hex(8)
        now = self._clock.now()
        with self._store.transaction():
            self._store.insert("csc_sads", {
                "id": sad_id, "sad_hash": _digest(sad), "person_id": person_id, "credential_id": key.certificate_serial,
                "hashes": json.dumps(hashes), "code_id": accepted.code_id, "created_at": to_text(now),
                "expires_at": to_text(now + self._sad_ttl), "used_at": None})
            chain.append(self._store, person_id=person_id, org_id=key.org_id, kind="csc_authorized", at=now,
                         actor=f"csc:{person_id}", provider="csc", reference=sad_id,
                         detail={"credential_id": key.certificate_serial, "hashes": hashes,
                                 "code_id": accepted.code_id})
        log.info("csc: %s issued to person %s for %d hash(es)", sad_id, person_id, len(hashes))
        return {"SAD": sad, "expiresIn": int(self._sad_ttl.total_seconds())}

    def sign_hash(self, person_id: str, body: dict[str, Any]) -> dict[str, Any]:
        key = self._credential(person_id, body)
        hashes = _hashes(body)
        if body.get("hashAlgo", body.get("hashAlgorithmOID", SHA256)) != SHA256:
            raise _bad("only SHA-256 hashes are signed")
        if body.get("signAlgo", ECDSA_SHA256) not in SIGN_ALGORITHMS:
            raise _bad(f"signAlgo must be {ECDSA_SHA256} (ecdsa-with-SHA256)")
        signer = self._keys.signer(person_id)
        sad = str(body.get("SAD") or "")
        with self._store.transaction():  # the SAD is spent before the key signs: one activation, once
            row = self._store.query_one("SELECT * FROM csc_sads WHERE sad_hash = ?", (_digest(sad),))
            now = self._clock.now()
            if row is None or row["person_id"] != person_id or row["credential_id"] != key.certificate_serial:
                raise _bad("Invalid SAD")
            if row["used_at"]:
                raise _bad("Invalid SAD: it was used already")
            if now >= from_text(row["expires_at"]):
                raise _bad("Invalid SAD: it has expired")
            if json.loads(row["hashes"]) != hashes:
                raise _bad("Invalid SAD: it was issued for other hash values")
            self._store.execute("UPDATE csc_sads SET used_at = ? WHERE id = ?", (to_text(now), row["id"]))
            chain.append(self._store, person_id=person_id, org_id=key.org_id, kind="csc_signed", at=now,
                         actor=f"csc:{person_id}", provider="csc", reference=row["id"],
                         detail={"credential_id": key.certificate_serial, "hashes": hashes})
        signatures = [base64.b64encode(signer.sign_digest(bytes.fromhex(h), "sha256")).decode() for h in hashes]
        log.info("csc: %s spent; person %s's remote key signed %d hash(es)", row["id"], person_id, len(hashes))
        return {"signatures": signatures}
