"""Signing with token keys: RSA PKCS#1 v1.5, RSA-PSS and ECDSA over a digest.

Hashing always happens here, in Python (SoftHSM 2.6 has no CKM_ECDSA_SHA256,
and a uniform digest-then-sign path lets callers pass precomputed digests),
and the token only performs the raw private-key operation.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto import algos
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


def _der_int(b: bytes) -> bytes:
    b = b.lstrip(b"\0")
    if not b or b[0] & 0x80:
        b = b"\0" + b
    return b"\x02" + bytes((len(b),)) + b


def raw_to_der_ecdsa(sig: bytes) -> bytes:
    """PKCS#11 gives ECDSA as r||s; X.509/CMS want DER SEQUENCE {r, s}."""
    # byte slicing: ~1.5 us, where cryptography's encode_dss_signature (two int conversions) takes ~2.5 us
    # and asn1crypto's DSASignature ~50 us per signature; any curve up to P-521 fits a one-byte length
    half = len(sig) // 2
    body = _der_int(sig[:half]) + _der_int(sig[half:])
    n = len(body)
    return (b"\x30" + bytes((n,)) if n < 0x80 else b"\x30\x81" + bytes((n,))) + body


def _digest_info_prefix(hash_name: str) -> bytes:
    size = HASHES[hash_name]
    der = algos.DigestInfo({"digest_algorithm": {"algorithm": hash_name}, "digest": b"\0" * size}).dump()
    return der[:-size]


# DER DigestInfo = fixed prefix || digest (RFC 8017 9.2 note 1): built once, since asn1crypto
# takes ~150 us per DigestInfo, a quarter of an RSA-2048 signature on SoftHSM
DIGEST_INFO_PREFIX = {name: _digest_info_prefix(name) for name in HASHES}


@dataclass(frozen=True, slots=True)
class SignPlan:
    """Everything per-signature work needs, decided once per (key algorithm, scheme, hash)."""

    mechanism: Mechanism
    param: tuple[Any, ...] | None  # mechanism parameter (RSA-PSS), else None
    prefix: bytes  # prepended to the digest (DER DigestInfo prefix for PKCS#1 v1.5), else b""
    digest_size: int
    hash_name: str
    ecdsa: bool  # raw r||s to DER


_PLANS: dict[tuple[KeyAlgorithm, SignScheme, str], SignPlan] = {}


def plan(algorithm: KeyAlgorithm, scheme: SignScheme, hash_name: str) -> SignPlan:
    """The signing plan for a key algorithm, scheme and hash; raises UnsupportedAlgorithm when they do not fit."""
    k = (algorithm, scheme, hash_name)
    p = _PLANS.get(k)
    if p is not None:
        return p
    check_scheme(algorithm, scheme)
    size = HASHES.get(hash_name)
    if size is None:
        raise UnsupportedAlgorithm(f"unsupported hash {hash_name!r}; use sha256, sha384 or sha512")
    if scheme is SignScheme.RSA_PKCS1V15:
        p = SignPlan(Mechanism.RSA_PKCS, None, DIGEST_INFO_PREFIX[hash_name], size, hash_name, False)
    elif scheme is SignScheme.RSA_PSS:
        mech_hash, mgf = _PKCS11_HASH[hash_name]
        p = SignPlan(Mechanism.RSA_PKCS_PSS, (mech_hash, mgf, size), b"", size, hash_name, False)
    else:
        p = SignPlan(Mechanism.ECDSA, None, b"", size, hash_name, True)
    _PLANS[k] = p
    return p


def check_digests(p: SignPlan, digests: Sequence[bytes]) -> None:
    size = p.digest_size
    for i, d in enumerate(digests):
        if len(d) != size:
            where = f"digest {i}" if len(digests) > 1 else "the digest"
            raise UnsupportedAlgorithm(f"a {p.hash_name} digest is {size} bytes, {where} is {len(d)}")


def sign_many(priv: Any, p: SignPlan, digests: Sequence[bytes]) -> list[bytes]:
    """Sign already checked digests with one python-pkcs11 private key object, in order.

    The loop does only the token call and the output encoding: everything else was decided in ``p``.
    """
    sign, mech = priv.sign, p.mechanism
    if p.ecdsa:
        return [raw_to_der_ecdsa(sign(d, mechanism=mech)) for d in digests]
    if p.param is not None:
        param = p.param
        return [bytes(sign(d, mechanism=mech, mechanism_param=param)) for d in digests]
    prefix = p.prefix
    return [bytes(sign(prefix + d, mechanism=mech)) for d in digests]


def sign_digest(
    priv: Any, algorithm: KeyAlgorithm, scheme: SignScheme, hash_name: str, dgst: bytes
) -> bytes:
    """Sign a precomputed digest with a python-pkcs11 private key object."""
    p = plan(algorithm, scheme, hash_name)
    check_digests(p, (dgst,))
    return sign_many(priv, p, (dgst,))[0]
