"""The Signet signing-policy rule: which certificates may make a valid signature, read from the trust anchor.

Signet's OIDs sit under ``SIGNET_ARC``, a *placeholder* private enterprise arc (1.3.6.1.4.1.59541); a
deployment replaces it with its own arc, consistently in the server's CA configuration and here.

The server's CA writes a certificatePolicies extension into its roots:

* the Signet **signing root** lists ``SIGNING_ROOT_MARKER`` plus every signing policy its hierarchy
  issues (by default ``DEFAULT_SIGNING_POLICY`` for token keys of verified persons,
  ``DEFAULT_REMOTE_POLICY`` for remote-signing keys held on the server token, ``DEFAULT_SEAL_POLICY`` for
  the platform seal);
* the Signet **TLS root** lists ``TLS_ROOT_MARKER``;
* every signer certificate carries its own policy OID; a remote-signing certificate (a key held for its
  person on the server token) also carries ``REMOTE_KEY_MARKER``, so any verifier can say the signature was
  made by a server-held key without knowing the deployment's policy OIDs.

The rule (:func:`check`), for every signature (PAdES and CMS; not document timestamps): when the anchor of
the validated path carries ``SIGNING_ROOT_MARKER``, the signer certificate must carry at least one of the
other policies the anchor lists; when it carries ``TLS_ROOT_MARKER``, no signature is valid (TLS keys are
software keys).  Anchors without a marker (external or test CAs) impose nothing.  Together with the CA
certifying only keys generated on a token, a valid signature means a key on a token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SIGNET_ARC = "1.3.6.1.4.1.59541"  # placeholder enterprise arc: deployments replace it
SIGNING_ROOT_MARKER = SIGNET_ARC + ".0.1"  # in the Signet signing root's certificatePolicies
TLS_ROOT_MARKER = SIGNET_ARC + ".0.2"  # in the Signet TLS root's certificatePolicies
REMOTE_KEY_MARKER = SIGNET_ARC + ".0.3"  # in a remote-signing certificate: the key is held on the server token
DEFAULT_SIGNING_POLICY = SIGNET_ARC + ".1.1"  # token key of a verified person
DEFAULT_REMOTE_POLICY = SIGNET_ARC + ".1.2"  # remote-signing key held on the server token
DEFAULT_SEAL_POLICY = SIGNET_ARC + ".1.3"  # the platform seal
DEFAULT_TSA_POLICY = SIGNET_ARC + ".2.1"  # TSTInfo policy of the Signet TSA
MARKERS = frozenset({SIGNING_ROOT_MARKER, TLS_ROOT_MARKER, REMOTE_KEY_MARKER})


@dataclass(frozen=True)
class PolicyVerdict:
    """``ok`` is None when the anchor sets no requirement; ``matched`` is the signer's policy that satisfied it;
    ``remote_key`` says the accepted signer certificate is a remote-signing one (``REMOTE_KEY_MARKER``: the key is
    held for its person on the Signet server token, activated by a one-time code), None when no rule applied."""

    ok: bool | None
    matched: str | None
    problem: str | None
    remote_key: bool | None = None


NO_REQUIREMENT = PolicyVerdict(None, None, None)


def certificate_policies(cert: Any) -> list[str]:
    """Dotted policy OIDs of an asn1crypto certificate, in extension order (empty when it has none)."""
    value = cert.certificate_policies_value
    if value is None:
        return []
    return [info["policy_identifier"].dotted for info in value]


def check(anchor: Any | None, signer: Any | None) -> PolicyVerdict:
    """Apply the rule to the anchor certificate of a validated path and the signer certificate.

    ``anchor`` is None for a name-and-key trust anchor without a certificate: it carries no marker.
    """
    if anchor is None or signer is None:
        return NO_REQUIREMENT
    listed = certificate_policies(anchor)
    if TLS_ROOT_MARKER in listed:
        return PolicyVerdict(False, None, "the signer certificate chains to the Signet TLS root, which certifies "
                                          "TLS keys, never signing keys")
    if SIGNING_ROOT_MARKER not in listed:
        return NO_REQUIREMENT
    required = [oid for oid in listed if oid not in MARKERS]
    held = set(certificate_policies(signer))
    for oid in required:
        if oid in held:
            return PolicyVerdict(True, oid, None, REMOTE_KEY_MARKER in held)
    return PolicyVerdict(False, None, (
        f"the signer certificate carries none of the signing policies its Signet root requires "
        f"({', '.join(required) or 'none listed'}): only keys on a token (or the server token) certified by "
        f"the Signet signing CA make valid signatures"))


def anchor_certificate(path: Any) -> Any | None:
    """The certificate of a pyhanko_certvalidator ValidationPath's trust anchor (None for a bare name and key)."""
    if path is None:
        return None
    authority = path.trust_anchor.authority
    return getattr(authority, "certificate", None)
