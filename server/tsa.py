"""RFC 3161 time-stamp authority: TimeStampReq in, TimeStampResp out, the token signed on the HSM.

The token is CMS SignedData over a TSTInfo (policy, message imprint, random serial, genTime,
accuracy, the request's nonce, the TSA's name) with the signed attributes content-type,
message-digest and signing-certificate-v2 (ESSCertIDv2, RFC 5816).  When the request asks for
certificates (certReq), the token carries the whole chain below the root (the TSA certificate and the
signing CA), so that it validates under the Signet signing root alone.  A request the TSA cannot honour gets a
PKIStatus "rejection" with the RFC 3161 failure bit and a short reason; an internal failure gets
"systemFailure" and nothing more.

Serial numbers are random (126 bits) and recorded in the store (:mod:`server.tsa_log`, UNIQUE) before
the token is signed, so none is ever issued twice, even by several server processes: a collision draws
again.  The accuracy comes from the policy (``[tsa] accuracy_seconds``, see ``runtime.tsa_policy``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from asn1crypto import algos, cms, core, tsp, x509

from formats.policy import DEFAULT_TSA_POLICY

from . import tsa_log
from .ca import x509build as xb
from .ca.profiles import Role
from .clock import Clock
from .store import Store

if TYPE_CHECKING:
    from datetime import datetime

    from .keys import ServerKeys

log = logging.getLogger(__name__)

MAX_QUERY_BYTES = 8 * 1024
DEFAULT_POLICY = DEFAULT_TSA_POLICY  # under Signet's placeholder arc; deployments set their own ([tsa] policy_oid)
SERIAL_DRAWS = 8  # a collision of 126 random bits means a broken RNG long before the 8th draw
_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64, "sha3_256": 32, "sha3_384": 48, "sha3_512": 64}


class Rejected(Exception):
    """A request the TSA refuses; ``failure`` is a PKIFailureInfo bit name."""

    def __init__(self, failure: str, text: str) -> None:
        super().__init__(text)
        self.failure = failure
        self.text = text


@dataclass(frozen=True)
class TsaPolicy:
    policy_oid: str = DEFAULT_POLICY
    accepted_policies: tuple[str, ...] = ()  # further OIDs a request may name; ours is always accepted
    accuracy_seconds: int = 1

    def __post_init__(self) -> None:
        for oid in (self.policy_oid, *self.accepted_policies):
            if not re.match(r"^[0-2](\.\d+)+$", oid):
                raise ValueError(f"{oid!r} is not a dotted OID")
        if self.accuracy_seconds < 1:
            raise ValueError("accuracy must be at least one second (genTime has whole seconds)")


class TimeStampAuthority:
    """Answers RFC 3161 requests with tokens signed by the TSA key on the server token."""

    def __init__(self, keys: ServerKeys, clock: Clock, policy: TsaPolicy | None = None, *, store: Store,
                 rng: xb.Rng = os.urandom) -> None:
        self.keys = keys
        self.clock = clock
        self.store = store
        self.policy = policy or TsaPolicy()
        self._rng = rng
        self._cert_der = keys.certificate_der(Role.TSA)
        self._cert = x509.Certificate.load(self._cert_der)
        # the TSA certificate and the CAs above it, root excluded (relying parties bring the root)
        self._chain = [self._cert, *(x509.Certificate.load(d) for d in keys.chain_der(Role.TSA)[:-1])]
        tsa_log.migrate(store)

    def respond(self, query_der: bytes) -> bytes:
        """DER TimeStampResp for a DER TimeStampReq; never raises for bad input."""
        try:
            digest_alg, digest, nonce, cert_req = self._parse(query_der)
            token = self.stamp(digest_alg, digest, nonce=nonce, cert_req=cert_req)
        except Rejected as e:
            log.info("time-stamp request rejected: %s", e.failure)
            return rejection(e.failure, e.text)
        except Exception:
            log.exception("time-stamp authority failed")
            return rejection("system_failure", "the time-stamp authority is unavailable")
        return bytes(tsp.TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump())

    def _parse(self, der: bytes) -> tuple[str, bytes, int | None, bool]:
        if not der or len(der) > MAX_QUERY_BYTES:
            raise Rejected("bad_request", f"a time-stamp request must be 1 to {MAX_QUERY_BYTES} bytes")
        try:
            req = tsp.TimeStampReq.load(der, strict=True)
            version = req["version"].native
            imprint = req["message_imprint"]
            digest_alg = imprint["hash_algorithm"]["algorithm"].native
            digest = imprint["hashed_message"].native
            req_policy = req["req_policy"].native
            nonce = req["nonce"].native
            cert_req = bool(req["cert_req"].native)
            has_extensions = req["extensions"].native is not None
        except xb.ASN1_ERRORS as e:
            raise Rejected("bad_data_format", "the request is not a DER TimeStampReq") from e
        if version != "v1":
            raise Rejected("bad_request", "only version 1 requests are supported")
        if digest_alg not in _DIGEST_SIZES:
            raise Rejected("bad_alg", "the message imprint must use SHA-256, SHA-384, SHA-512 or SHA-3")
        if len(digest) != _DIGEST_SIZES[digest_alg]:
            raise Rejected("bad_data_format", f"a {digest_alg} imprint is {_DIGEST_SIZES[digest_alg]} bytes")
        if req_policy is not None and req_policy not in (self.policy.policy_oid, *self.policy.accepted_policies):
            raise Rejected("unaccepted_policy", f"policy {req_policy} is not offered by this TSA")
        if has_extensions:
            raise Rejected("unaccepted_extensions", "request extensions are not supported")
        if nonce is not None and not 0 <= nonce < 2**256:
            raise Rejected("bad_request", "the nonce must be a non-negative integer of at most 256 bits")
        return digest_alg, digest, nonce, cert_req

    def stamp(self, digest_alg: str, digest: bytes, *, nonce: int | None = None,
              cert_req: bool = True) -> cms.ContentInfo:
        """The time-stamp token (ContentInfo) over a message imprint; also used in process by sealing."""
        now = xb.whole_second(self.clock.now())
        if not self._cert.not_valid_before <= now < self._cert.not_valid_after:
            raise Rejected("time_not_available", "the TSA certificate is not valid now")
        tst: dict[str, Any] = {
            "version": "v1",
            "policy": self.policy.policy_oid,
            "message_imprint": {"hash_algorithm": {"algorithm": digest_alg}, "hashed_message": digest},
            "serial_number": self._draw_serial(now, digest_alg, digest),
            "gen_time": now,
            "accuracy": {"seconds": self.policy.accuracy_seconds},
            "tsa": x509.GeneralName(name="directory_name", value=self._cert.subject),
        }
        if nonce is not None:
            tst["nonce"] = nonce
        tst_der = tsp.TSTInfo(tst).dump()
        signer = self.keys.signer(Role.TSA)
        hash_name = signer.hash_name
        signed_attrs = cms.CMSAttributes([
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "message_digest", "values": [hashlib.new(hash_name, tst_der).digest()]},
            {"type": "signing_certificate_v2", "values": [{"certs": [{
                "cert_hash": hashlib.sha256(self._cert_der).digest(),
                "issuer_serial": {"issuer": [x509.GeneralName(name="directory_name", value=self._cert.issuer)],
                                  "serial_number": self._cert.serial_number},
            }]}]},
        ])
        # the signature covers the attributes DER-encoded as a SET OF (RFC 5652 5.4), not as [0]
        signature = signer.sign(signed_attrs.dump())
        signed_data: dict[str, Any] = {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": hash_name})],
            "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(tst_der)},
            "signer_infos": [{
                "version": "v1",
                "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value={
                    "issuer": self._cert.issuer, "serial_number": self._cert.serial_number}),
                "digest_algorithm": {"algorithm": hash_name},
                "signed_attrs": signed_attrs,
                "signature_algorithm": signer.cms_signature_algorithm(),
                "signature": signature,
            }],
        }
        if cert_req:
            signed_data["certificates"] = self._chain
        log.info("issued time-stamp token %s", format(tst["serial_number"], "x"))
        return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})

    def _draw_serial(self, gen_time: datetime, digest_alg: str, digest: bytes) -> int:
        """A random serial never issued before, recorded in the store (a collision draws again)."""
        for _ in range(SERIAL_DRAWS):
            serial = xb.random_serial(self._rng)
            stamp = tsa_log.IssuedStamp(serial, gen_time, self.policy.policy_oid, digest_alg, digest)
            if tsa_log.record(self.store, stamp, now=self.clock.now()):
                return serial
            log.warning("time-stamp serial %s was drawn before; drawing another", format(serial, "x"))
        raise RuntimeError(f"{SERIAL_DRAWS} serial numbers in a row were already taken: is the RNG broken?")


class _StatusOnlyResp(core.Sequence):  # type: ignore[misc]
    """TimeStampResp without its token (asn1crypto declares timeStampToken mandatory; RFC 3161 does not)."""

    _fields: ClassVar[list[tuple[str, Any]]] = [("status", tsp.PKIStatusInfo)]


def rejection(failure: str, text: str) -> bytes:
    return bytes(_StatusOnlyResp({"status": {
        "status": "rejection", "status_string": [text], "fail_info": tsp.PKIFailureInfo({failure}),
    }}).dump())
