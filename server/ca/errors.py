"""Errors raised by the CA, revocation, OCSP, CRL and TSA code.

Each class is also one of the server's generic errors (:mod:`server.errors`), so the gRPC edge
maps it to a status code without knowing the CA.  Messages never contain key material.
"""

from __future__ import annotations

from ..errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ServerError


class CaError(ServerError):
    """Base class of every CA error."""

    reason = "CA_ERROR"


class InvalidRequest(CaError, InvalidArgument):
    """A certification request or subject that cannot be used (bad signature, weak key, bad name)."""

    reason = "CA_INVALID_REQUEST"


class KeyAlreadyCertified(CaError, AlreadyExists):
    """The public key already has a certificate: every certificate needs a new key."""

    reason = "CA_KEY_NOT_NEW"


class CertificateNotFound(CaError, NotFound):
    reason = "CA_CERTIFICATE_NOT_FOUND"


class AlreadyRevoked(CaError, FailedPrecondition):
    reason = "CA_ALREADY_REVOKED"


class ChainInvalid(CaError, InvalidArgument):
    """An externally issued certificate does not chain to a configured external root (or is unusable)."""

    reason = "CA_CHAIN_INVALID"


class ServerKeysMissing(CaError, FailedPrecondition):
    """The server token lacks keys or certificates (run `signet-server init`)."""

    reason = "SERVER_KEYS_MISSING"


class SigningCheckFailed(CaError):
    """A signature made by the HSM did not verify: nothing was issued or published."""

    reason = "CA_SIGNATURE_CHECK_FAILED"
