"""The certificate of completion: one PDF saying who signed what, when, and how they were identified.

It lists the envelope (id, title, organisation, sender), each document (name, SHA-256 as sent, SHA-256 of the
signed revision, SHA-256 of the sealed file), and each recipient in routing order: verified legal name, the
identity document type and country the operator approved (never its number), the phone verification time,
role, signing method, certificate serial, and the send (notified), view and sign times in UTC to the
millisecond, from the server's clock.  The verification summary states what the server checked when it accepted
each signature and what the seal adds.  The sealer seals the certificate itself (PAdES B-LTA) before archiving.

Helvetica/WinAnsi text: characters outside it (CJK names) show as '?' in the rendered PDF; the same facts are
in the archived event log, which is UTF-8 JSON.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from formats.samplepdf import Line, text_pdf_bytes

from ..envelopes.model import Envelope, Revision
from ..identity import Person

LINES_PER_PAGE = 46


@dataclass(frozen=True)
class SealedDocument:
    document_id: str
    original_sha256: str
    signed_sha256: str
    sealed_sha256: str


def _t(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{when.microsecond // 1000:03d} UTC" if when else "-"


def lines(env: Envelope, people: Mapping[str, Person], sealed: Sequence[SealedDocument],
          revisions: Mapping[str, Sequence[Revision]], sealed_at: datetime) -> list[Line]:
    out: list[Line] = [(16, 24, "Certificate of completion"),
                       (10, 20, f"Envelope {env.id}: {env.title}"),
                       (10, 14, f"Organisation {env.org_id}; sent by {env.sender_name} at {_t(env.sent_at)}"),
                       (10, 14, f"Completed {_t(env.completed_at)}; sealed {_t(sealed_at)}"),
                       (12, 22, "Documents")]
    by_id = {s.document_id: s for s in sealed}
    for d in env.documents:
        s = by_id.get(d.id)
        out += [(10, 16, f"{d.name} ({d.media_type}, {d.size} bytes, {d.signatures} signature(s))"),
                (8, 11, f"  as sent   sha256 {d.original_sha256}"),
                (8, 11, f"  signed    sha256 {d.current_sha256}")]
        if s is not None:
            out.append((8, 11, f"  sealed    sha256 {s.sealed_sha256}"))
        for rev in revisions.get(d.id, ()):
            if rev.seq:
                out.append((8, 11, f"  revision {rev.seq} ({rev.kind}) by recipient {rev.recipient_id}, "
                                   f"certificate {rev.certificate_serial}, at {_t(rev.at)}"))
    out.append((12, 22, "Parties"))
    for r in sorted(env.recipients, key=lambda r: (r.routing_order, r.id)):
        p = people.get(r.person_id)
        ident = (f"identity document {p.document_type} ({p.document_country}) approved {_t(p.decided_at)}, "
                 f"phone verified {_t(p.phone_verified_at)}" if p else "identity record not found")
        out += [(10, 16, f"{r.legal_name}: {r.role.value}, order {r.routing_order}, {r.signing_method.value}"),
                (8, 11, f"  {ident}"),
                (8, 11, f"  sent {_t(r.notified_at)}; viewed {_t(r.viewed_at)}; signed {_t(r.signed_at)}"
                        + (f"; certificate serial {r.certificate_serial}" if r.certificate_serial else ""))]
    out.append((12, 22, "Verification summary"))
    summary = (
        "Each signature was accepted by the server only after: the one-time code sent to the recipient's verified "
        "phone for that exact revision; the new revision adding only that recipient's signature (earlier "
        "signatures intact); the signer certificate issued by this platform's signing CA to that recipient, with "
        "the token or remote-signing policy, and not revoked at the time. On completion the platform sealed each "
        "PDF: validation data (certificates, OCSP responses, CRLs) of every signature, the platform seal "
        "signature and an RFC 3161 document timestamp (PAdES B-LTA); other files carry each party's CAdES "
        "signature countersigned by the platform seal with a timestamp.")
    out += [(9, 12, w) for w in textwrap.wrap(summary, 110)]
    return out


def certificate_pdf(env: Envelope, people: Mapping[str, Person], sealed: Sequence[SealedDocument],
                    revisions: Mapping[str, Sequence[Revision]], sealed_at: datetime) -> bytes:
    """The certificate as an unsigned PDF (the sealer seals it)."""
    all_lines = lines(env, people, sealed, revisions, sealed_at)
    pages = [all_lines[i:i + LINES_PER_PAGE] for i in range(0, len(all_lines), LINES_PER_PAGE)]
    return text_pdf_bytes(f"Certificate of completion {env.id}", pages)
