"""RFC 6960 OCSP responder for the signing CA, signed by its delegated responder key on the HSM.

Every answer is made from the store at request time, so a revocation shows at once.  Requests for
certificates of other issuers get "unknown"; a request naming only other issuers is "unauthorized"
(RFC 5019 2.2.3).  A nonce (RFC 8954: 1 to 32 bytes) is echoed; anything unparsable is
"malformedRequest", and a failure on our side "internalError" with nothing more said to the client.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from asn1crypto import core, ocsp, x509

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
_HASHES = ("sha1", "sha256", "sha384", "sha512")


def error_response(status: str) -> bytes:
    """An unsigned OCSPResponse carrying only an error status (RFC 6960 4.2.1)."""
    return ocsp.OCSPResponse({"response_status": status}).dump()


class MalformedRequest(Exception):
    pass


class OcspResponder:
    """Answers OCSP requests about certificates of the issuing CA."""

    def __init__(self, keys: ServerKeys, store: Store, clock: Clock, *,
                 validity: timedelta = timedelta(hours=1)) -> None:
        self.keys = keys
        self.store = store
        self.clock = clock
        self.validity = validity
        issuing = keys[Role.SIGNING_CA].certificate
        self._issuer_key_hash = db.spki_hash(keys[Role.SIGNING_CA].public_key_der)
        subject_der = issuing.subject.dump()
        key_bits = bytes(issuing.public_key["public_key"])
        self._cert_id_hashes = {h: (hashlib.new(h, subject_der).digest(), hashlib.new(h, key_bits).digest())
                                for h in _HASHES}
        self._responder_cert = keys[Role.OCSP].certificate
        db.migrate(store)

    def respond(self, request_der: bytes) -> bytes:
        """DER OCSPResponse for a DER OCSPRequest; never raises for bad input."""
        try:
            requests, nonce = self._parse(request_der)
        except MalformedRequest as e:
            log.info("malformed OCSP request: %s", e)
            return error_response("malformed_request")
        try:
            return self._answer(requests, nonce)
        except Exception:
            log.exception("OCSP responder failed")
            return error_response("internal_error")

    def _parse(self, der: bytes) -> tuple[list[ocsp.Request], bytes | None]:
        if not der or len(der) > MAX_REQUEST_BYTES:
            raise MalformedRequest("empty or oversized")
        try:
            req = ocsp.OCSPRequest.load(der, strict=True)
            tbs = req["tbs_request"]
            requests = list(tbs["request_list"])
            for r in requests:
                _ = r["req_cert"].native
            nonce = req.nonce_value
            critical = req.critical_extensions
        except (ValueError, TypeError, KeyError) as e:
            raise MalformedRequest(f"unparsable ({type(e).__name__})") from e
        if not 1 <= len(requests) <= MAX_CERTS_PER_REQUEST:
            raise MalformedRequest(f"{len(requests)} certificates asked about")
        if critical - {"nonce"}:
            raise MalformedRequest("unsupported critical extension")
        nonce_bytes = None
        if nonce is not None:
            nonce_bytes = nonce.native if isinstance(nonce.native, bytes) else None
            if nonce_bytes is None or not 1 <= len(nonce_bytes) <= 32:
                raise MalformedRequest("nonce is not 1 to 32 bytes")
        return requests, nonce_bytes

    def _ours(self, cert_id: ocsp.CertId) -> bool:
        hashes = self._cert_id_hashes.get(cert_id["hash_algorithm"]["algorithm"].native)
        return hashes is not None and (cert_id["issuer_name_hash"].native, cert_id["issuer_key_hash"].native) == hashes

    def _status(self, cert_id: ocsp.CertId) -> ocsp.CertStatus:
        if not self._ours(cert_id):
            return ocsp.CertStatus(name="unknown", value=core.Null())
        rec = db.find(self.store, self._issuer_key_hash, cert_id["serial_number"].native)
        if rec is None:
            return ocsp.CertStatus(name="unknown", value=core.Null())
        if rec.revoked:
            assert rec.revoked_at is not None
            info: dict[str, Any] = {"revocation_time": xb.whole_second(rec.revoked_at)}
            if rec.revocation_reason and rec.revocation_reason != "unspecified":
                info["revocation_reason"] = rec.revocation_reason
            return ocsp.CertStatus(name="revoked", value=ocsp.RevokedInfo(info))
        return ocsp.CertStatus(name="good", value=core.Null())

    def _answer(self, requests: list[ocsp.Request], nonce: bytes | None) -> bytes:
        if not any(self._ours(r["req_cert"]) for r in requests):
            return error_response("unauthorized")
        now = xb.whole_second(self.clock.now())
        responses = [{
            "cert_id": r["req_cert"],
            "cert_status": self._status(r["req_cert"]),
            "this_update": now,
            "next_update": now + self.validity,
        } for r in requests]
        data: dict[str, Any] = {
            "responder_id": ocsp.ResponderId(name="by_key", value=self._responder_cert.public_key.sha1),
            "produced_at": now,
            "responses": responses,
        }
        if nonce is not None:
            data["response_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
        tbs_der = ocsp.ResponseData(data).dump()
        signer = self.keys.signer(Role.OCSP)
        signature = signer.sign(tbs_der)
        basic = ocsp.BasicOCSPResponse({
            "tbs_response_data": ocsp.ResponseData.load(tbs_der),
            "signature_algorithm": signer.signature_algorithm(),
            "signature": signature,
            "certs": [x509.Certificate.load(self.keys.certificate_der(Role.OCSP))],
        })
        return ocsp.OCSPResponse({
            "response_status": "successful",
            "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
        }).dump()
