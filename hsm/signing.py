"""Signing with token keys: RSA PKCS#1 v1.5, RSA-PSS and ECDSA over a digest.

Hashing always happens here, in Python (SoftHSM 2.6 has no CKM_ECDSA_SHA256,
and a uniform digest-then-sign path lets callers pass precomputed digests),
and the token only performs the raw private-key operation.

:func:`sign_raw` (what :class:`hsm.Token` uses) calls C_SignInit and C_Sign through the module's
ctypes function table with an output buffer of the known signature size: two C calls per
signature, where python-pkcs11's ``key.sign`` makes three (it asks C_Sign for the length first),
each giving up and retaking the GIL, plus its per-call Python set-up.  With two threads signing
P-256 that overhead, not the token, decided the rate.  Return values become the exceptions
python-pkcs11 raises for them (:mod:`hsm.rv`), so callers handle both paths alike.
"""

from __future__ import annotations

import ctypes
import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asn1crypto import algos
from pkcs11 import MGF, Mechanism, PKCS11Error

from . import functions, rv
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
    der: bytes = algos.DigestInfo({"digest_algorithm": {"algorithm": hash_name}, "digest": b"\0" * size}).dump()
    return der[:-size]


# DER DigestInfo = fixed prefix || digest (RFC 8017 9.2 note 1): built once, since asn1crypto
# takes ~150 us per DigestInfo, a quarter of an RSA-2048 signature on SoftHSM
DIGEST_INFO_PREFIX = {name: _digest_info_prefix(name) for name in HASHES}


def signature_size(algorithm: KeyAlgorithm) -> int:
    """Bytes C_Sign returns: the modulus size for RSA, r||s (twice the coordinate size) for ECDSA."""
    if algorithm.is_rsa:
        return (int(algorithm.value[1]) + 7) // 8
    return {KeyAlgorithm.EC_P256: 64, KeyAlgorithm.EC_P384: 96}[algorithm]


def _ck_mechanism(mechanism: Mechanism, param: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """(pointer to a CK_MECHANISM, the objects it points into): read-only for the module, shared by threads."""
    if param is None:
        mech = functions.Mechanism(int(mechanism), None, 0)
        return ctypes.pointer(mech), mech
    hash_alg, mgf, salt_len = param
    pss = functions.RsaPssParams(int(hash_alg), int(mgf), int(salt_len))
    mech = functions.Mechanism(int(mechanism), ctypes.cast(ctypes.pointer(pss), ctypes.c_void_p), ctypes.sizeof(pss))
    return ctypes.pointer(mech), mech, pss


@dataclass(frozen=True, slots=True)
class SignPlan:
    """Everything per-signature work needs, decided once per (key algorithm, scheme, hash)."""

    mechanism: Mechanism
    param: tuple[Any, ...] | None  # mechanism parameter (RSA-PSS), else None
    prefix: bytes  # prepended to the digest (DER DigestInfo prefix for PKCS#1 v1.5), else b""
    digest_size: int
    hash_name: str
    ecdsa: bool  # raw r||s to DER
    sig_size: int = 0  # bytes C_Sign returns for this key algorithm (a larger answer grows the buffer)
    ck_mechanism: tuple[Any, ...] = field(default=(), compare=False, repr=False)  # see _ck_mechanism


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
    sig_size = signature_size(algorithm)
    if scheme is SignScheme.RSA_PKCS1V15:
        mech, param, prefix = Mechanism.RSA_PKCS, None, DIGEST_INFO_PREFIX[hash_name]
    elif scheme is SignScheme.RSA_PSS:
        mech_hash, mgf = _PKCS11_HASH[hash_name]
        mech, param, prefix = Mechanism.RSA_PKCS_PSS, (mech_hash, mgf, size), b""
    else:
        mech, param, prefix = Mechanism.ECDSA, None, b""
    p = SignPlan(mech, param, prefix, size, hash_name, scheme is SignScheme.ECDSA, sig_size,
                 _ck_mechanism(mech, param))
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


class SessionKey:
    """A private key found in one session, with what raw C_Sign calls need: handles and an output buffer.

    Lives in the pooled session's cache, so only the thread that borrowed the session uses it.
    """

    __slots__ = ("buf", "handle", "length", "length_ptr", "priv", "session_handle", "size")

    def __init__(self, priv: Any, session_handle: int) -> None:
        self.priv = priv  # the python-pkcs11 object (keeps its session object alive)
        self.session_handle = session_handle
        self.handle = int(priv.handle)
        self.length = ctypes.c_ulong(0)
        self.length_ptr = ctypes.pointer(self.length)
        self.resize(0)

    def resize(self, size: int) -> None:
        self.buf = ctypes.create_string_buffer(max(size, 1))
        self.size = size


class UnfinishedOperation(PKCS11Error):
    """C_Sign refused the buffer it had asked for: a signature operation is still active in the session."""


def sign_raw(raw: Any, key: SessionKey, p: SignPlan, digests: Sequence[bytes]) -> list[bytes]:
    """Sign already checked digests through the module's C_SignInit and C_Sign, in order.

    ``raw`` is the module's :class:`hsm.functions.RawFunctions`.  A non-OK return value raises the exception
    python-pkcs11 raises for it, and leaves no operation active: every return value but CKR_BUFFER_TOO_SMALL ends the
    operation, and that one is answered by asking C_Sign for the length once and signing again (a module
    that refuses twice raises :class:`UnfinishedOperation`: do not reuse that session).
    """
    sign_init, sign = raw.sign_init, raw.sign
    sh, kh, mech = key.session_handle, key.handle, p.ck_mechanism[0]
    if key.size < p.sig_size:
        key.resize(p.sig_size)
    buf, size, length, length_ptr = key.buf, key.size, key.length, key.length_ptr
    prefix, ecdsa = p.prefix, p.ecdsa
    out: list[bytes] = []
    for d in digests:
        data = prefix + d if prefix else d
        r = sign_init(sh, mech, kh)
        if r:
            raise rv.error(r)
        length.value = size
        r = sign(sh, data, len(data), buf, length_ptr)
        if r:
            buf, size = _sign_resized(sign, key, data, r)
        n = length.value
        sig = buf.raw if n == size else buf.raw[:n]
        out.append(raw_to_der_ecdsa(sig) if ecdsa else sig)
    return out


def _sign_resized(sign: Any, key: SessionKey, data: bytes, r: int) -> tuple[Any, int]:
    """C_Sign returned ``r``: raise it, or after CKR_BUFFER_TOO_SMALL ask the length, grow the buffer, sign."""
    if r != rv.CKR_BUFFER_TOO_SMALL:
        raise rv.error(r)
    sh = key.session_handle
    key.length.value = 0
    r = sign(sh, data, len(data), None, key.length_ptr)
    if r:
        raise rv.error(r)
    key.resize(key.length.value)
    key.length.value = key.size
    r = sign(sh, data, len(data), key.buf, key.length_ptr)
    if r == rv.CKR_BUFFER_TOO_SMALL:
        raise UnfinishedOperation(f"C_Sign asked for {key.size} bytes, then refused them (rv={r:#x})")
    if r:
        raise rv.error(r)
    return key.buf, key.size


def sign_digest(
    priv: Any, algorithm: KeyAlgorithm, scheme: SignScheme, hash_name: str, dgst: bytes
) -> bytes:
    """Sign a precomputed digest with a python-pkcs11 private key object."""
    p = plan(algorithm, scheme, hash_name)
    check_digests(p, (dgst,))
    return sign_many(priv, p, (dgst,))[0]
