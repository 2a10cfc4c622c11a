"""A pyHanko ``Signer`` whose private-key operation goes through an :class:`hsm.Token` (its session pool).

pyHanko's own ``PKCS11Signer`` would open a private PKCS#11 session and bypass the hsm layer's pool,
locking and PIN guard; ``SimpleSigner`` re-parses its key on every signature (measured 4.9x slower).
``TokenSigner`` reads the certificate, chain and algorithm once, at construction, and afterwards only
hashes in Python and calls ``token.sign_digest`` (one token round trip, the key handle cached per
pooled session by hsm).

Errors from the token (``hsm.HsmError`` subclasses such as ``PinIncorrect``, ``TokenRemoved``) pass
through unchanged so callers can map them to precise statuses (the signer remembers the last one, so the
guards of :mod:`formats.failures` can tell it from a document failure); everything else that goes wrong
while setting up the signer is a :class:`formats.errors.SigningError`.

Each certificate goes into the CMS SignedData once: pyHanko adds the signer certificate itself, so the
registry holds only the chain (without the signer certificate, without duplicates).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from asn1crypto import algos, x509
from pyhanko.sign.signers.pdf_cms import Signer
from pyhanko_certvalidator.registry import SimpleCertificateStore

from .errors import SigningError

log = logging.getLogger(__name__)

# ECDSA DER signature upper bound: SEQUENCE header + two INTEGERs with a possible sign byte.
_EC_DER_MAX = {"secp256r1": 72, "secp384r1": 104, "secp521r1": 139}
_EC_HASH = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}


class _KeyView(Protocol):
    @property
    def public_key_der(self) -> bytes: ...


class Token(Protocol):
    """The part of ``hsm.Token`` a TokenSigner uses (a Protocol: formats does not import hsm; the agent's
    worker processes pass a stand-in)."""

    @property
    def label(self) -> str: ...

    def certificate(self, key_id: str) -> bytes | None: ...

    def chain(self, key_id: str) -> list[bytes]: ...

    def key(self, key_id: str) -> _KeyView: ...

    def sign_digest(self, key_id: str, dgst: bytes, *, hash_name: str = ...) -> bytes: ...


def _load_cert(der: bytes | x509.Certificate, what: str) -> x509.Certificate:
    if isinstance(der, x509.Certificate):
        return der
    try:
        cert = x509.Certificate.load(bytes(der))
        _ = cert.subject, cert.issuer, cert.public_key  # parse what we read now; .native would slow every dump
        return cert
    except (ValueError, TypeError) as e:
        raise SigningError(f"{what} is not a DER X.509 certificate") from e


class TokenSigner(Signer):
    """pyHanko signer for one key on one hsm token.

    ``certificate``/``chain`` default to what is stored on the token next to the key.  The token must be
    logged in before the first real signature (``dry_run`` sizing never touches it).
    """

    def __init__(
        self,
        token: Token | None,
        key_id: str | None,
        *,
        certificate: bytes | x509.Certificate | None = None,
        chain: Iterable[bytes | x509.Certificate] | None = None,
        embed_roots: bool = True,
    ) -> None:
        self.token = token
        self.key_id = key_id
        if certificate is None:
            if token is None or key_id is None:
                raise SigningError("a TokenSigner without a token needs an explicit certificate")
            certificate = token.certificate(key_id)
            if certificate is None:
                raise SigningError(
                    f"key {key_id} on token {token.label!r} has no certificate: import one first"
                )
            if chain is None:
                chain = token.chain(key_id)
        cert = _load_cert(certificate, "the signer certificate")
        others: list[x509.Certificate] = []
        seen = {cert.dump()}
        for c in chain or ():
            loaded = _load_cert(c, "a chain certificate")
            if loaded.dump() not in seen:  # pyHanko adds the signer certificate itself
                seen.add(loaded.dump())
                others.append(loaded)
        if token is not None and key_id is not None:
            spki = token.key(key_id).public_key_der
            if spki != cert.public_key.dump():
                raise SigningError(f"the certificate does not belong to key {key_id} (public keys differ)")

        algo = cert.public_key.algorithm
        if algo == "rsa":
            self._hash = "sha256"
            self._raw_size: int = (cert.public_key.bit_size + 7) // 8
            mech = "sha256_rsa"
        elif algo == "ec":
            curve = cert.public_key.curve[1]
            if curve not in _EC_HASH:
                raise SigningError(f"unsupported EC curve {curve}")
            self._hash = _EC_HASH[curve]
            self._raw_size = _EC_DER_MAX[curve]
            mech = f"{self._hash}_ecdsa"
        else:
            raise SigningError(f"unsupported key algorithm {algo} (use RSA or ECDSA)")
        super().__init__(
            embed_roots=embed_roots,
            signing_cert=cert,
            cert_registry=_store(others),
            signature_mechanism=algos.SignedDigestAlgorithm({"algorithm": mech}),
        )
        self.chain_certs: tuple[x509.Certificate, ...] = tuple(others)
        self.token_failure: BaseException | None = None

    @classmethod
    def for_sizing(
        cls, certificate: bytes | x509.Certificate, chain: Iterable[bytes | x509.Certificate] = ()
    ) -> TokenSigner:
        """A signer that can only do dry runs (size estimates); it never touches a token."""
        return cls(None, None, certificate=certificate, chain=chain)

    @property
    def digest_algorithm(self) -> str:
        return self._hash

    @property
    def raw_signature_size(self) -> int:
        """Upper bound of the raw signature size in bytes (RSA: modulus size; ECDSA: DER maximum)."""
        return self._raw_size

    @property
    def subject(self) -> str:
        cert = self.signing_cert
        return str(cert.subject.human_friendly) if cert is not None else ""

    def certificates_size(self) -> int:
        """DER bytes of every certificate that goes into the CMS object (the signer's and the chain)."""
        cert = self.signing_cert
        return (len(cert.dump()) if cert is not None else 0) + sum(len(c.dump()) for c in self.chain_certs)

    def sign_digest(self, digest: bytes, digest_algorithm: str) -> bytes:
        """Sign a precomputed digest with the token key (DER for ECDSA, PKCS#1 v1.5 for RSA)."""
        if self.token is None or self.key_id is None:
            raise SigningError("this signer is for size estimates only; it has no token")
        self.token_failure = None
        try:
            return bytes(self.token.sign_digest(self.key_id, digest, hash_name=digest_algorithm))
        except Exception as e:  # remembered, not handled: formats.failures lets exactly this one through
            self.token_failure = e
            raise

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if dry_run:
            return b"\x00" * self._raw_size
        digest_algorithm = digest_algorithm.lower()
        if digest_algorithm != self._hash:
            raise SigningError(f"this key signs with {self._hash}, not {digest_algorithm}")
        # The token call takes ~0.6 ms; a thread hop would cost more than it saves.
        sig = self.sign_digest(hashlib.new(digest_algorithm, data).digest(), digest_algorithm)
        log.debug("signed with key %s", self.key_id)
        return sig


def _store(certs: list[x509.Certificate]) -> Any:
    store = SimpleCertificateStore()  # type: ignore[no-untyped-call]
    store.register_multiple(certs)
    return store
