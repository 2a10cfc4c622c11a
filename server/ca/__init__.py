"""The server's certification authority: issuing from PKCS#10, revocation, CRLs, OCSP, external certificates.

Every signature (certificates, CRLs, OCSP responses) is made by a key on the server's HSM token;
the tables live in the server store (:mod:`server.ca.db`).
"""

from __future__ import annotations

from .authority import REVOCATION_REASONS, CertificateAuthority, IssuedCertificate
from .crl import CrlPublisher
from .errors import (
    AlreadyRevoked,
    CaError,
    CertificateNotFound,
    ChainInvalid,
    InvalidRequest,
    KeyAlreadyCertified,
    ServerKeysMissing,
    SigningCheckFailed,
)
from .external import ExternalRoots, register_external
from .ocsp import OcspResponder
from .profiles import (
    LeafProfile,
    Role,
    SerialPolicy,
    SubjectIdentity,
    pseudonymous_identifier,
    semantics_identifier,
)
from .x509build import PkiUrls

__all__ = [
    "REVOCATION_REASONS", "AlreadyRevoked", "CaError", "CertificateAuthority", "CertificateNotFound",
    "ChainInvalid", "CrlPublisher", "ExternalRoots", "InvalidRequest", "IssuedCertificate", "KeyAlreadyCertified",
    "LeafProfile", "OcspResponder", "PkiUrls", "Role", "SerialPolicy", "ServerKeysMissing", "SigningCheckFailed",
    "SubjectIdentity", "pseudonymous_identifier", "register_external", "semantics_identifier",
]
