"""Signing with token keys: RSA PKCS#1 v1.5, RSA-PSS and ECDSA over a digest.

Hashing always happens here, in Python (SoftHSM 2.6 has no CKM_ECDSA_SHA256,
and a uniform digest-then-sign path lets callers pass precomputed digests),
and the token only performs the raw private-key operation.
"""

from __future__ import annotations

import enum
import hashlib
from typing import Any

from asn1crypto import algos
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import MGF, Mechanism

from .errors import UnsupportedAlgorithm
from .keys import KeyAlgorithm


class SignScheme(enum.Enum):
    RSA_PKCS1V15 = "rsa-pkcs1v15"
    RSA_PSS = "rsa-pss"
    ECDSA = "ecdsa"

    @classmethod
    def default_for(cls, algorithm: KeyAlgorithm) -> SignScheme:
        return cls.RSA_PKCS1V15 if algorithm.is_rsa else cls.ECDSA


HASHES = {"sha256": 32, "sha384": 48, "sha512": 64}
_PKCS11_HASH = {"sha256": (Mechanism.SHA256, MGF.SHA256), "sha384": (Mechanism.SHA384, MGF.SHA384),
                "sha512": (Mechanism.SHA512, MGF.SHA512)}


def digest(data: bytes, hash_name: str) -> bytes:
    if hash_name not in HASHES:
        raise UnsupportedAlgorithm(f"unsupported hash {hash_name!r}; use sha256, sha384 or sha512")
    return hashlib.new(hash_name, data).digest()


def check_scheme(algorithm: KeyAlgorithm, scheme: SignScheme) -> None:
    if algorithm.is_rsa == (scheme is SignScheme.ECDSA):
        raise UnsupportedAlgorithm(f"scheme {scheme.value} does not fit a {algorithm.name} key")


def raw_to_der_ecdsa(sig: bytes) -> bytes:
    """PKCS#11 gives ECDSA as r||s; X.509/CMS want DER SEQUENCE {r, s}."""
    # cryptography's encoder: ~5 us where asn1crypto's DSASignature takes ~50 us per signature
    half = len(sig) // 2
    return encode_dss_signature(int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big"))


def _digest_info_prefix(hash_name: str) -> bytes:
    size = HASHES[hash_name]
    der = algos.DigestInfo({"digest_algorithm": {"algorithm": hash_name}, "digest": b"\0" * size}).dump()
    return der[:-size]


# DER DigestInfo = fixed prefix || digest (RFC 8017 9.2 note 1): built once, since asn1crypto
# takes ~150 us per DigestInfo, a quarter of an RSA-2048 signature on SoftHSM
DIGEST_INFO_PREFIX = {name: _digest_info_prefix(name) for name in HASHES}


def sign_digest(
    priv: Any, algorithm: KeyAlgorithm, scheme: SignScheme, hash_name: str, dgst: bytes
) -> bytes:
    """Sign a precomputed digest with a python-pkcs11 private key object."""
    check_scheme(algorithm, scheme)
    if HASHES.get(hash_name) != len(dgst):
        raise UnsupportedAlgorithm(
            f"a {hash_name} digest is {HASHES.get(hash_name, '?')} bytes, got {len(dgst)}"
        )
    if scheme is SignScheme.RSA_PKCS1V15:
        return bytes(priv.sign(DIGEST_INFO_PREFIX[hash_name] + dgst, mechanism=Mechanism.RSA_PKCS))
    if scheme is SignScheme.RSA_PSS:
        mech_hash, mgf = _PKCS11_HASH[hash_name]
        return bytes(priv.sign(dgst, mechanism=Mechanism.RSA_PKCS_PSS,
                               mechanism_param=(mech_hash, mgf, len(dgst))))
    return raw_to_der_ecdsa(bytes(priv.sign(dgst, mechanism=Mechanism.ECDSA)))
