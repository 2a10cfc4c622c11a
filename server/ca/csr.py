"""Checking a PKCS#10 certification request: well-formed, self-signed by its key, an acceptable key.

The public key is re-encoded into its canonical SubjectPublicKeyInfo (EC points uncompressed) so a
second request for the same key cannot slip past the uniqueness check with another encoding.
Only the key comes from the request; the subject and extensions are the CA's decision.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509 as cx509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .errors import InvalidRequest

MAX_CSR_BYTES = 16 * 1024
_CURVES = {"secp256r1", "secp384r1", "secp521r1"}
_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


@dataclass(frozen=True)
class CheckedRequest:
    spki_der: bytes  # canonical SubjectPublicKeyInfo
    key_description: str  # e.g. "RSA-3072", "EC secp256r1"


def check_csr(data: bytes) -> CheckedRequest:
    """Parse and verify a DER (or PEM) PKCS#10 request; :class:`InvalidRequest` says what is wrong."""
    if not data or len(data) > MAX_CSR_BYTES:
        raise InvalidRequest(f"a certification request must be 1 to {MAX_CSR_BYTES} bytes")
    try:
        req = (cx509.load_pem_x509_csr(data) if data.lstrip().startswith(b"-----BEGIN")
               else cx509.load_der_x509_csr(data))
        pub = req.public_key()
        hash_alg = req.signature_hash_algorithm
    except (ValueError, UnsupportedAlgorithm, TypeError, cx509.InvalidVersion) as e:
        raise InvalidRequest("the certification request is not a well-formed PKCS#10 request "
                             "with a supported key and signature algorithm") from e
    if not isinstance(hash_alg, _HASHES):
        raise InvalidRequest("the certification request must be signed with SHA-256, SHA-384 or SHA-512")
    if isinstance(pub, rsa.RSAPublicKey):
        numbers = pub.public_numbers()
        if not 2048 <= pub.key_size <= 8192 or numbers.e < 65537 or numbers.e % 2 == 0:
            raise InvalidRequest("RSA keys must be 2048 to 8192 bits with an odd public exponent >= 65537")
        description = f"RSA-{pub.key_size}"
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        if pub.curve.name not in _CURVES:
            raise InvalidRequest("EC keys must be on P-256, P-384 or P-521")
        description = f"EC {pub.curve.name}"
    else:
        raise InvalidRequest("only RSA and EC (P-256, P-384, P-521) keys can be certified")
    try:
        valid = req.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as e:
        raise InvalidRequest("the certification request's signature cannot be checked") from e
    if not valid:
        raise InvalidRequest("the certification request's signature does not verify: it was altered or not "
                             "signed by the key it carries")
    spki = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return CheckedRequest(spki, description)
