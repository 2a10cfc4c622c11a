"""Whether a submitted signature may join the envelope: the revision itself, then the server's own checks on the
certificate that made it.

1. :func:`require_current` (cheap, before the code is looked at): a PDF revision must extend the current
   revision; one that extends an earlier revision was made before another signer of a parallel group got in
   (FAILED_PRECONDITION ``REVISION_CHANGED``: fetch the current revision and sign again).
2. :func:`check_revision`: :mod:`formats.revision` -- the previous bytes an untouched prefix, earlier signatures
   intact, only this signature added (in the recipient's own field when the sender placed one), nothing after
   it, the signer chaining to the Signet signing root; the form fields it fills are this recipient's own
   (``REVISION_FOREIGN_FIELD`` for another's, or one assigned to nobody), with values that suit them
   (``REVISION_FIELD_VALUE_INVALID``), the required ones filled (``REVISION_REQUIRED_FIELD_EMPTY``); a detached CMS
   signature over the locked bytes.  A
   refusal is FAILED_PRECONDITION with the verdict's reason (``REVISION_NOT_INCREMENTAL``,
   ``REVISION_TRAILING_BYTES``, ``REVISION_SIGNATURE_INVALID``, ``CMS_INVALID`` ...), except a revision that
   cannot be read at all: INVALID_ARGUMENT ``REVISION_UNREADABLE`` (the request itself is malformed).
3. :func:`check_signer`, against the CA's own records (the authority on revocation, so ``formats`` runs
   offline): issued by this server's signing CA (``SIGNER_NOT_OURS``), for exactly this recipient's person
   (``SIGNER_NOT_RECIPIENT``), not revoked (``SIGNER_REVOKED``), valid now (``SIGNER_NOT_YET_VALID``,
   ``SIGNER_EXPIRED``), carrying the policy of the recipient's signing method (``SIGNER_WRONG_POLICY``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509

from formats.errors import InvalidDocument
from formats.policy import certificate_policies
from formats.revision import RevisionVerdict, check_detached_signature, check_pdf_revision

from ..ca import db
from ..errors import FailedPrecondition, InvalidArgument
from ..store import Store
from .model import Document, Recipient, Revision, SigningMethod

UNREADABLE = "REVISION_UNREADABLE"


@dataclass(frozen=True)
class SigningRules:
    """What a signature must chain to and carry (from the server's keys and ``[ca]`` configuration)."""

    trust_roots: tuple[bytes, ...]  # the Signet signing root
    issuer_key_hash: str  # SPKI hash of the signing CA: certificates the server issued are recorded under it
    token_policy_oid: str
    remote_policy_oid: str
    # the server's TSA: PDF signatures are made PAdES B-T with it (StartSigning tells a token signer; remote
    # signatures use it), so that the platform seal makes every signature B-LTA; "" = no signature timestamp
    timestamp_url: str = ""


def _refuse(reason: str, message: str) -> FailedPrecondition:
    return FailedPrecondition(message, reason=reason)


def require_current(history: list[Revision], current: bytes, content: bytes) -> None:
    """REVISION_CHANGED when ``content`` extends an earlier PDF revision instead of the current one."""
    if content.startswith(current):
        return
    for rev in history:
        if rev.kind != "detached" and rev.size < len(content) and \
                hashlib.sha256(content[:rev.size]).hexdigest() == rev.sha256:
            raise _refuse("REVISION_CHANGED", "another signature was added since this revision was fetched: fetch "
                                              "the current revision, ask for a new code and sign it again")
    # anything else is for the revision check to name


def check_revision(doc: Document, previous: bytes, content: bytes, r: Recipient,
                   rules: SigningRules, *, earlier_accepted: bool = False) -> tuple[RevisionVerdict, bytes]:
    """The formats verdict on the submitted revision (PDF) or detached signature, and the new signer's
    certificate; raises when it is refused.  ``earlier_accepted``: ``previous`` is a revision this check accepted
    (every signature in it validated then), so only the new signature is validated again."""
    try:
        if doc.is_pdf:
            verdict = check_pdf_revision(previous, content, trust_roots=list(rules.trust_roots),
                                         expected_field=r.field_name if r.field is not None else None,
                                         revocation="offline",
                                         assigned_fields={f.name: f.kind.value for f in r.form_fields},
                                         required_fields=[f.name for f in r.form_fields if f.required],
                                         earlier_accepted=earlier_accepted)
        else:
            verdict = check_detached_signature(previous, content, trust_roots=list(rules.trust_roots),
                                               revocation="offline")
    except InvalidDocument as e:  # the verdict covers unreadable input; this is only a belt to those braces
        raise InvalidArgument(f"the submitted revision cannot be read: {e}", reason=UNREADABLE) from None
    if not verdict.accepted:
        reason, message = verdict.reason or "REVISION_REFUSED", verdict.message or "the revision was refused"
        raise InvalidArgument(message, reason=reason) if reason == UNREADABLE else _refuse(reason, message)
    if verdict.signer_certificate_der is None:
        raise _refuse("SIGNER_UNKNOWN", "the new signature names no signer certificate")
    return verdict, verdict.signer_certificate_der


def field_values(r: Recipient, values: Mapping[str, str]) -> dict[str, str]:
    """The values a remote signer gives for their form fields, checked before their key is activated: each names a
    field of theirs (FAILED_PRECONDITION ``REVISION_FOREIGN_FIELD``, as the revision check would refuse it) and
    suits its kind (INVALID_ARGUMENT ``FIELD_VALUE_INVALID``)."""
    from formats.errors import InvalidOptions
    from formats.formfields import check_value

    kinds = {f.name: f.kind.value for f in r.form_fields}
    out = {}
    for name, value in sorted(values.items()):
        if name not in kinds:
            raise _refuse("REVISION_FOREIGN_FIELD", f"form field {name[:64]!r} is not assigned to this recipient")
        try:
            out[name] = check_value(kinds[name], value)
        except InvalidOptions as e:
            raise InvalidArgument(f"form field {name!r}: {e}", reason="FIELD_VALUE_INVALID") from None
    for f in r.form_fields:
        if f.required and out.get(f.name, "") in ("", "no"):
            raise _refuse("REVISION_REQUIRED_FIELD_EMPTY", f"the required form field {f.name!r} needs a value")
    return out


def check_signer(store: Store, rules: SigningRules, certificate_der: bytes, r: Recipient,
                 now: datetime) -> db.CertRecord:
    """The CA's record of the certificate that made the new signature, after the server's own checks."""
    try:
        cert = x509.Certificate.load(certificate_der)
        serial = cert.serial_number
    except (ValueError, TypeError):
        raise _refuse("SIGNER_NOT_OURS", "the signer certificate cannot be read") from None
    rec = db.find(store, rules.issuer_key_hash, serial)
    if rec is None or rec.der != certificate_der or rec.origin != db.ORIGIN_ISSUED:
        raise _refuse("SIGNER_NOT_OURS", "the signature was not made with a certificate this server's signing CA "
                                         "issued to a person")
    if rec.person_id != r.person_id:
        raise _refuse("SIGNER_NOT_RECIPIENT", f"the signer certificate ({db.serial_text(serial)}) belongs to "
                                              "someone else, not to this recipient")
    if rec.revoked:
        raise _refuse("SIGNER_REVOKED", f"the signer certificate {db.serial_text(serial)} is revoked")
    if now < rec.not_before:
        raise _refuse("SIGNER_NOT_YET_VALID", f"the signer certificate {db.serial_text(serial)} is not valid yet")
    if now >= rec.not_after:
        raise _refuse("SIGNER_EXPIRED", f"the signer certificate {db.serial_text(serial)} has expired")
    wanted = rules.token_policy_oid if r.signing_method is SigningMethod.TOKEN else rules.remote_policy_oid
    if wanted not in certificate_policies(cert):
        raise _refuse("SIGNER_WRONG_POLICY", f"the signer certificate does not carry the policy {wanted} of "
                                             f"{r.signing_method.value} signatures")
    return rec
