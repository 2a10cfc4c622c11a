"""A server key on the HSM as a signer of DER structures, with a check of every signature it makes.

The private key never leaves the token: :meth:`HsmSigner.sign` hashes in Python and asks the
token for the private-key operation (hsm does both).  Each signature is verified against the
key's public half before it is used, so a faulty HSM or a wrong key id never yields a published
certificate, CRL, OCSP response or timestamp with a bad signature.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from asn1crypto import algos, keys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import load_der_public_key

from signet.pubkeys import signature_ok

from .errors import SigningCheckFailed

if TYPE_CHECKING:
    from hsm import Token

_HASH_CLASSES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


@dataclass(frozen=True)
class HsmSigner:
    """One signing key on a (logged-in) token; ``public_key_der`` is its SubjectPublicKeyInfo."""

    token: Token
    key_id: str
    public_key_der: bytes

    @property
    def is_rsa(self) -> bool:
        return bool(keys.PublicKeyInfo.load(self.public_key_der).algorithm == "rsa")

    @property
    def hash_name(self) -> str:
        """SHA-384 for P-384 keys (matching strength), SHA-256 otherwise."""
        info = keys.PublicKeyInfo.load(self.public_key_der)
        if info.algorithm == "ec" and info.curve[1] == "secp384r1":
            return "sha384"
        return "sha256"

    def signature_algorithm(self) -> algos.SignedDigestAlgorithm:
        """AlgorithmIdentifier for X.509 certificates, CRLs and OCSP responses."""
        kind = "rsa" if self.is_rsa else "ecdsa"
        return algos.SignedDigestAlgorithm({"algorithm": f"{self.hash_name}_{kind}"})

    def cms_signature_algorithm(self) -> algos.SignedDigestAlgorithm:
        """AlgorithmIdentifier for a CMS SignerInfo (rsaEncryption for PKCS#1 v1.5, RFC 3370)."""
        if self.is_rsa:
            return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"})
        return algos.SignedDigestAlgorithm({"algorithm": f"{self.hash_name}_ecdsa"})

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(self.hash_name, data).digest()

    def sign(self, data: bytes) -> bytes:
        """Signature over ``data`` made on the token, verified before it is returned."""
        signature = self.token.sign(self.key_id, data, hash_name=self.hash_name)
        if not verify(self.public_key_der, signature, data, self.hash_name):
            raise SigningCheckFailed(
                f"the HSM signature by key {self.key_id} did not verify; nothing was signed"
            )
        return signature


def verify(spki_der: bytes, signature: bytes, data: bytes, hash_name: str) -> bool:
    """True when ``signature`` (PKCS#1 v1.5 or DER ECDSA) over ``data`` verifies with the key."""
    pub = load_der_public_key(spki_der)
    return signature_ok(pub, signature, data, _HASH_CLASSES[hash_name]())
