"""Signature checks for the tests, with `cryptography` as the independent judge.

One typed place for what the tests kept writing out by hand: take a public key (or the DER of a
SubjectPublicKeyInfo, or a certificate), make sure it is an RSA or EC key, and check a signature made
by the token (PKCS#1 v1.5 or PSS for RSA, ECDSA for EC) over a message or over a precomputed digest.
A bad signature raises `cryptography.exceptions.InvalidSignature`, exactly as `verify` itself does.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_der_public_key

SigningPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
KeySource = PublicKeyTypes | x509.Certificate | bytes

_SHA256 = hashes.SHA256()


def signing_key(source: KeySource) -> SigningPublicKey:
    """The RSA or EC public key of ``source``: a public key, a certificate, or DER bytes.

    DER bytes are read as a SubjectPublicKeyInfo first and, failing that, as a certificate.  Any other kind
    of key (Ed25519, DSA, ...) raises TypeError: the tokens here make RSA and EC keys only.
    """
    key: PublicKeyTypes
    if isinstance(source, bytes):
        try:
            key = load_der_public_key(source)
        except ValueError:
            key = x509.load_der_x509_certificate(source).public_key()
    elif isinstance(source, x509.Certificate):
        key = source.public_key()
    else:
        key = source
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        return key
    raise TypeError(f"not an RSA or EC public key: {type(key).__name__}")


def rsa_key(source: KeySource) -> rsa.RSAPublicKey:
    """The public key of ``source``, which must be RSA (TypeError otherwise)."""
    key = signing_key(source)
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError(f"not an RSA public key: {type(key).__name__}")
    return key


def ec_key(source: KeySource) -> ec.EllipticCurvePublicKey:
    """The public key of ``source``, which must be EC (TypeError otherwise)."""
    key = signing_key(source)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise TypeError(f"not an EC public key: {type(key).__name__}")
    return key


def verify_signature(source: KeySource, signature: bytes, data: bytes, *, hash: hashes.HashAlgorithm = _SHA256,
                     pss: bool = False, salt_length: int | None = None, prehashed: bool = False) -> None:
    """Check ``signature`` over ``data`` with the key of ``source``; raises InvalidSignature when it does not hold.

    RSA keys: PKCS#1 v1.5, or PSS with ``pss`` (MGF1 with ``hash``, salt ``salt_length``, by default the
    digest size, as the token makes them).  EC keys: ECDSA with a DER signature; ``pss`` is refused
    (ValueError).  With ``prehashed``, ``data`` is the digest already computed with ``hash``.
    """
    key = signing_key(source)
    algorithm: hashes.HashAlgorithm | utils.Prehashed = utils.Prehashed(hash) if prehashed else hash
    if isinstance(key, rsa.RSAPublicKey):
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(hash), salt_length=hash.digest_size if salt_length is None else salt_length)
            if pss else padding.PKCS1v15())
        key.verify(signature, data, pad, algorithm)
    else:
        if pss or salt_length is not None:
            raise ValueError("PSS is an RSA padding: this is an EC key")
        key.verify(signature, data, ec.ECDSA(algorithm))
