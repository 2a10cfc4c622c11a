"""RFC 6960 OCSP responder for the signing CA, signed by its delegated responder key on the HSM.

Signed answers are cached, so the signing cost does not grow with the request rate (the RFC 5019
model).  A cache entry is keyed on the CertIDs asked about and remembers the store's revocation state
of each serial it was signed from; every request reads that state again (one indexed row per
certificate) and the entry is used only while it is equal, so a revocation shows at once, in every
server process sharing the store.  An entry is re-signed at ``refresh`` (half the validity by
default), well before its nextUpdate, and concurrent misses for one key wait for one signature.

Nonces (RFC 8954) are validated but not echoed: every answer may come from the cache byte-for-byte,
and a nonce would force one HSM signature per request, which is exactly what an abusive client would
send.  Freshness comes from thisUpdate/nextUpdate instead (RFC 5019 section 4).

Requests for certificates of other issuers get "unknown"; a request naming only other issuers is
"unauthorized" (RFC 5019 2.2.3); anything unparsable is "malformedRequest", and a failure on our side
"internalError" with nothing more said to the client.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from asn1crypto import algos, core, ocsp, x509

from ..clock import Clock
from ..store import Store
from . import db
from . import x509build as xb
from .profiles import Role

if TYPE_CHECKING:
    from ..keys import ServerKeys

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 16 * 1024
MAX_CERTS_PER_REQUEST = 16
DEFAULT_CACHE_SIZE = 10_000
_HASHES = ("sha1", "sha256", "sha384", "sha512")
_FOREIGN = "foreign"  # a CertID naming another issuer
_State = db.RevocationState | str | None  # None: our issuer, a serial it never issued

_DIGEST_NAMES = frozenset(algos.DigestAlgorithmId._map.values())  # names asn1crypto reads; else a dotted OID


def error_response(status: str) -> bytes:
    """An unsigned OCSPResponse carrying only an error status (RFC 6960 4.2.1)."""
    return bytes(ocsp.OCSPResponse({"response_status": status}).dump())


class MalformedRequest(Exception):
    pass


@dataclass(frozen=True)
class _Asked:
    """What the answer needs from one CertID: whether it names our issuer, and the serial."""

    ours: bool
    serial: int


@dataclass(frozen=True)
class _Entry:
    asked: tuple[_Asked, ...]
    states: tuple[_State, ...]
    this_update: datetime
    refresh_at: datetime
    der: bytes

    def serves(self, states: tuple[_State, ...], now: datetime) -> bool:
        return self.states == states and self.this_update <= now < self.refresh_at


class OcspResponder:
    """Answers OCSP requests about certificates of the issuing CA.

    ``cache_size`` 0 signs every answer (the benchmark's baseline); ``signatures`` counts HSM signatures.
    """

    def __init__(self, keys: ServerKeys, store: Store, clock: Clock, *, validity: timedelta = timedelta(hours=1),
                 refresh: timedelta | None = None, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        refresh = validity / 2 if refresh is None else refresh
        if not timedelta(0) < refresh <= validity or cache_size < 0:
            raise ValueError("the OCSP refresh interval must be positive and not longer than the validity")
        self.keys = keys
        self.store = store
        self.clock = clock
        self.validity = validity
        self.refresh = refresh
        self.cache_size = cache_size
        self.signatures = 0
        issuing = keys[Role.SIGNING_CA].certificate
        self._issuer_key_hash = db.spki_hash(keys[Role.SIGNING_CA].public_key_der)
        subject_der = issuing.subject.dump()
        key_bits = bytes(issuing.public_key["public_key"])
        self._cert_id_hashes = {h: (hashlib.new(h, subject_der).digest(), hashlib.new(h, key_bits).digest())
                                for h in _HASHES}
        self._responder_id = ocsp.ResponderId(name="by_key", value=keys[Role.OCSP].certificate.public_key.sha1)
        self._responder_certs = [x509.Certificate.load(keys.certificate_der(Role.OCSP))]
        self._cache: dict[tuple[bytes, ...], _Entry] = {}
        self._cache_lock = threading.Lock()
        self._sign_locks = tuple(threading.Lock() for _ in range(32))
        db.migrate(store)

    def respond(self, request_der: bytes) -> bytes:
        """DER OCSPResponse for a DER OCSPRequest; never raises for bad input."""
        try:
            cert_ids = self._parse(request_der)
            key = tuple(bytes(c.dump()) for c in cert_ids)
            entry = self._cache.get(key)
            if entry is not None:  # a CertID is examined once per entry: the same DER always says the same
                asked = entry.asked
            else:
                asked = tuple(self._examine(c, d) for c, d in zip(cert_ids, key, strict=True))
        except MalformedRequest as e:
            log.info("malformed OCSP request: %s", e)
            return error_response("malformed_request")
        try:
            return self._answer(cert_ids, key, asked)
        except Exception:
            log.exception("OCSP responder failed")
            return error_response("internal_error")

    def _parse(self, der: bytes) -> list[ocsp.CertId]:
        if not der or len(der) > MAX_REQUEST_BYTES:
            raise MalformedRequest("empty or oversized")
        try:
            tbs = ocsp.OCSPRequest.load(der, strict=True)["tbs_request"]
            cert_ids = [r["req_cert"] for r in tbs["request_list"]]
            extensions = [(e["extn_id"].native, e["critical"].native, e["extn_value"].contents)
                          for e in tbs["request_extensions"]]
        except xb.ASN1_ERRORS as e:
            raise MalformedRequest(f"unparsable ({type(e).__name__})") from e
        if not 1 <= len(cert_ids) <= MAX_CERTS_PER_REQUEST:
            raise MalformedRequest(f"{len(cert_ids)} certificates asked about")
        for name, critical, value in extensions:
            if critical and name != "nonce":
                raise MalformedRequest("unsupported critical extension")
            # RFC 8954 2.1: a nonce is an OCTET STRING of 1 to 32 bytes, else refused, though it is not echoed
            if name == "nonce" and not (len(value) >= 3 and value[0] == 0x04 and 1 <= value[1] <= 32
                                        and len(value) == 2 + value[1]):
                raise MalformedRequest("nonce is not an OCTET STRING of 1 to 32 bytes")
        return cert_ids

    def _examine(self, cert_id: ocsp.CertId, der: bytes) -> _Asked:
        """Whether a CertID names our issuer, and its serial; :class:`MalformedRequest` unless all of it is DER.

        Every field is read, not only those the answer needs: the CertID is echoed into a signed answer,
        which every client must be able to parse.
        """
        try:
            fields = cert_id.native
            canonical = ocsp.CertId.load(der).dump(force=True) == der
        except xb.ASN1_ERRORS as e:
            raise MalformedRequest(f"unparsable CertID ({type(e).__name__})") from e
        serial = fields["serial_number"]
        if not canonical or not isinstance(serial, int):
            raise MalformedRequest("the CertID is not DER")
        algorithm = fields["hash_algorithm"]
        # only a digest algorithm (absent or NULL parameters) is echoed: a signature algorithm, or parameters
        # its algorithm forbids, make the signed answer unreadable to strict clients (cryptography, OpenSSL)
        if algorithm["algorithm"] not in _DIGEST_NAMES or algorithm["parameters"] is not None:
            raise MalformedRequest("the CertID's hash algorithm is not a digest algorithm without parameters")
        hashes = self._cert_id_hashes.get(algorithm["algorithm"])
        return _Asked(hashes is not None and (fields["issuer_name_hash"], fields["issuer_key_hash"]) == hashes, serial)

    def _states(self, asked: tuple[_Asked, ...]) -> tuple[_State, ...]:
        return tuple(db.revocation_state(self.store, self._issuer_key_hash, a.serial) if a.ours else _FOREIGN
                     for a in asked)

    def _answer(self, cert_ids: list[ocsp.CertId], key: tuple[bytes, ...], asked: tuple[_Asked, ...]) -> bytes:
        if not any(a.ours for a in asked):
            return error_response("unauthorized")
        states = self._states(asked)
        entry = self._cache.get(key)
        if entry is not None and entry.serves(states, self.clock.now()):
            return entry.der
        with self._sign_locks[hash(key) % len(self._sign_locks)]:
            # another thread may have signed this answer while this one waited: read the store again
            states = self._states(asked)
            now = self.clock.now()
            entry = self._cache.get(key)
            if entry is not None and entry.serves(states, now):
                return entry.der
            entry = self._sign(cert_ids, asked, states, now)
            if self.cache_size:
                with self._cache_lock:
                    self._cache.pop(key, None)
                    while len(self._cache) >= self.cache_size:  # oldest first: dicts keep insertion order
                        del self._cache[next(iter(self._cache))]
                    self._cache[key] = entry
            return entry.der

    def _sign(self, cert_ids: list[ocsp.CertId], asked: tuple[_Asked, ...], states: tuple[_State, ...],
              now: datetime) -> _Entry:
        this_update = xb.whole_second(now)
        data: dict[str, Any] = {
            "responder_id": self._responder_id,
            "produced_at": this_update,
            "responses": [{
                "cert_id": c,
                "cert_status": _cert_status(state),
                "this_update": this_update,
                "next_update": this_update + self.validity,
            } for c, state in zip(cert_ids, states, strict=True)],
        }
        tbs_der = ocsp.ResponseData(data).dump()
        signer = self.keys.signer(Role.OCSP)
        signature = signer.sign(tbs_der)
        with self._cache_lock:
            self.signatures += 1
        basic = ocsp.BasicOCSPResponse({
            "tbs_response_data": ocsp.ResponseData.load(tbs_der),
            "signature_algorithm": signer.signature_algorithm(),
            "signature": signature,
            "certs": self._responder_certs,
        })
        der = bytes(ocsp.OCSPResponse({
            "response_status": "successful",
            "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
        }).dump())
        return _Entry(asked, states, this_update, this_update + self.refresh, der)


def _cert_status(state: _State) -> ocsp.CertStatus:
    if not isinstance(state, db.RevocationState):
        return ocsp.CertStatus(name="unknown", value=core.Null())
    if state.status == "revoked":
        if state.revoked_at is None:
            raise ValueError("a revoked certificate without a revocation time in the store")
        info: dict[str, Any] = {"revocation_time": xb.whole_second(state.revoked_at)}
        if state.reason and state.reason != "unspecified":
            info["revocation_reason"] = state.reason
        return ocsp.CertStatus(name="revoked", value=ocsp.RevokedInfo(info))
    return ocsp.CertStatus(name="good", value=core.Null())
