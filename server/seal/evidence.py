"""The evidence bundle of a sealed contract (format ``signet-evidence-1``): everything a dispute needs, checkable
offline with nothing but the bundle and the Signet signing root (``signet verify-evidence``).

A zip (deflate) of:

- ``manifest.json``: format, envelope id, organisation, title, creation time, ``files`` (every other entry's
  SHA-256 and size), ``audit`` (the signed tree head the proofs lead to) and ``documents`` (id, name, media
  type, SHA-256 as sent / signed / sealed, and the entry of the sealed file);
- ``manifest.p7s``: a detached CMS signature of manifest.json by the platform seal key (certificate and chain
  inside);
- ``documents/NAME``: each sealed PDF (PAdES B-LTA); a file other than PDF as sent, with
  ``documents/NAME.p7s.json`` (its parties' CAdES signatures, countersigned and timestamped by the platform);
- ``certificate-of-completion.pdf`` (sealed) and ``events.jsonl`` (the envelope's events as of the export);
- ``audit/leaves.jsonl``: every audit leaf about the envelope (its fields, hash and inclusion proof) and
  ``audit/head.json``: the tree head signed by the audit key, taken after the export itself was logged
  (``evidence.exported``);
- ``certs/``: signing root, audit, seal and TSA certificates with their chains (informational: a verifier
  trusts only its own copy of the root); ``revocation/``: the OCSP responses and CRLs of the PDFs' DSS;
- ``report.json`` / ``report.txt``: the server's validation of every signature at export, offline from the
  DSS under the signing root (informational; the verifier recomputes it).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import pem, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESPassed
from pyhanko.sign.validation import ades
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.policy_decl import PdfSignatureValidationSpec, SignatureValidationSpec
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager

from formats import sign_detached

from .. import audit
from ..archive import Archive
from ..ca import Role
from ..envelopes import records
from ..errors import NotFound
from ..keys import ServerKeys
from ..store import Store
from . import export
from .sealer import SealKey, event_log

FORMAT = "signet-evidence-1"


@dataclass(frozen=True)
class Bundle:
    envelope_id: str
    data: bytes = b""
    manifest: dict[str, Any] | None = None


def _pems(ders: Sequence[bytes]) -> bytes:
    return b"".join(pem.armor("CERTIFICATE", d) for d in ders)


def _offline_spec(root_der: bytes) -> PdfSignatureValidationSpec:
    return PdfSignatureValidationSpec(SignatureValidationSpec(cert_validation_policy=CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=[x509.Certificate.load(root_der)]),
        revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO))))


async def lta_report(data: bytes, root_der: bytes) -> list[dict[str, Any]]:
    """pyHanko's AdES LTA validation of every signature of a PDF under ``root_der`` alone, revocation data from the
    document only: field, signer, certificate serial, indication, passed, signing time (per signature)."""
    spec = _offline_spec(root_der)
    out = []
    reader = PdfFileReader(io.BytesIO(data))
    for sig in reader.embedded_regular_signatures:
        result = await ades.ades_lta_validation(sig, spec)
        cert = sig.signer_cert
        out.append({"field": sig.field_name, "signer": cert.subject.human_friendly,
                    "certificate_serial": format(cert.serial_number, "x"),
                    "ades": str(result.ades_subindic), "passed": result.ades_subindic is AdESPassed.OK,
                    "signing_time": str(sig.self_reported_timestamp) if sig.self_reported_timestamp else None})
    return out


def _revocation(data: bytes) -> tuple[list[bytes], list[bytes]]:
    try:
        dss = DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(data)))
    except NoDSSFoundError:
        return [], []
    ocsps = [bytes(o.get_object().data) for o in dss.ocsps]
    crls = [bytes(c.get_object().data) for c in dss.crls]
    return ocsps, crls


def build(store: Store, archive: Archive, keys: ServerKeys, seal: SealKey, envelope_id: str, *, actor: str,
          now: datetime) -> Bundle:
    """The bundle of a sealed envelope (NOT_SEALED before its seal); the export is logged (``evidence.exported``)
    and covered by the signed tree head inside."""
    env = records.load(store, envelope_id)
    if env is None:
        raise NotFound(f"no envelope {envelope_id!r}", reason="ENVELOPE_NOT_FOUND")
    exported = export.files(store, archive, envelope_id)
    entries: dict[str, bytes] = {}
    by_kind: dict[tuple[str, str], str] = {}
    for f, data in exported:
        name = f.name if f.kind in ("certificate", "events") else f"documents/{f.name}"
        entries[name] = data
        by_kind[(f.kind, f.document_id)] = name
    # the event log as of the export (the archived copy was taken before the seal's own event): every envelope
    # leaf below has its event here
    entries["events.jsonl"] = event_log(store, env)
    root = keys.certificate_der(Role.SIGNING_ROOT)
    log = audit.AuditLog(store, migrate=False)
    log.append("evidence.exported", envelope_id, {"actor": actor}, now)
    head = log.sign_head(keys.signer(Role.AUDIT), now)
    leaves = log.leaves_of(envelope_id)
    proofs = log.proofs([int(r["seq"]) for r in leaves], head.tree_size)
    entries["audit/leaves.jsonl"] = "".join(json.dumps({
        "seq": int(r["seq"]), "time": r["time"], "kind": r["kind"], "subject": r["subject"],
        "payload": json.loads(r["payload"]), "leaf_hash": r["leaf_hash"],
        "proof": [p.hex() for p in proofs[int(r["seq"])]]}, ensure_ascii=False, sort_keys=True) + "\n"
        for r in leaves).encode("utf-8")
    entries["audit/head.json"] = json.dumps(head.to_dict(), sort_keys=True, indent=1).encode("utf-8")
    entries["certs/signing-root.pem"] = _pems([root])
    for role, name in ((Role.AUDIT, "audit"), (Role.SEAL, "seal"), (Role.TSA, "tsa")):
        entries[f"certs/{name}.pem"] = _pems([keys.certificate_der(role), *keys.chain_der(role)])
    reports = _reports_and_revocation(entries, root)
    entries["report.json"] = json.dumps({"validated_at": records.text(now), "trust": "the Signet signing root",
                                         "revocation": "from each PDF's DSS, offline", "documents": reports},
                                        ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
    entries["report.txt"] = _report_text(reports).encode("utf-8")
    documents = []
    for d in env.documents:
        path = by_kind.get(("document", d.id), "")
        sealed = entries.get(path, b"")
        documents.append({"id": d.id, "name": d.name, "media_type": d.media_type,
                          "original_sha256": d.original_sha256, "signed_sha256": d.current_sha256,
                          "sealed_sha256": hashlib.sha256(sealed).hexdigest(), "path": path})
    manifest = {"format": FORMAT, "envelope_id": env.id, "organisation": env.org_id, "title": env.title,
                "created_at": records.text(now), "audit": head.to_dict(), "documents": documents,
                "files": {n: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)}
                          for n, b in sorted(entries.items())}}
    manifest_bytes = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
    signature = sign_detached(io.BytesIO(manifest_bytes), seal.pdf_signer, signing_time=now)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", manifest_bytes)
        z.writestr("manifest.p7s", bytes(signature))
        for name, data in sorted(entries.items()):
            z.writestr(name, data)
    return Bundle(envelope_id, buf.getvalue(), manifest)


def _reports_and_revocation(entries: dict[str, bytes], root: bytes) -> dict[str, Any]:
    """Validate every PDF entry offline (the report) and add its DSS's OCSP responses and CRLs as entries."""
    reports: dict[str, Any] = {}
    seen: set[bytes] = set()
    counts = {"ocsp": 0, "crl": 0}
    for name, data in list(entries.items()):
        if not name.endswith(".pdf") or not data.startswith(b"%PDF"):
            continue
        try:
            reports[name] = asyncio.run(lta_report(data, root))
        except Exception as e:  # noqa: BLE001 - the report says the validation could not be run, and why
            reports[name] = [{"error": f"{type(e).__name__}: {str(e)[:200]}"}]
        ocsps, crls = _revocation(data)
        for kind, ders in (("ocsp", ocsps), ("crl", crls)):
            for der in ders:
                if der not in seen:
                    seen.add(der)
                    counts[kind] += 1
                    entries[f"revocation/{kind}-{counts[kind]}.der"] = der
    return reports


def _report_text(reports: dict[str, Any]) -> str:
    lines = ["Signet evidence bundle: validation at export (offline, revocation data from each PDF's DSS)", ""]
    for name, sigs in reports.items():
        lines.append(name)
        for s in sigs:
            if "error" in s:
                lines.append(f"  could not validate: {s['error']}")
            else:
                lines.append(f"  {'PASSED' if s['passed'] else 'NOT PASSED'}  {s['field']}: {s['signer']} "
                             f"(certificate {s['certificate_serial']}), {s['ades']}")
        lines.append("")
    return "\n".join(lines)


__all__ = ["FORMAT", "Bundle", "build"]
