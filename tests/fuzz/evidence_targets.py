"""Fuzz targets of the offline evidence verifier (registered in :data:`tests.fuzz.targets.TARGETS`).

==================  ================================================================================
evidence_bundle     ``agent.evidence.read_bundle`` + ``parse_manifest`` / ``parse_head`` /
                    ``parse_leaves`` / ``parse_events`` of the entries it finds: a hostile zip (a bomb,
                    lying sizes, odd names, duplicates) or hostile JSON raises only ``EvidenceError``
                    (first byte odd: the bytes are a ``manifest.json`` alone, not a zip)
audit_proof         hostile JSON ``{"leaf": ..., "head": ..., "consistency": ...}``:
                    ``parse_leaf`` / ``parse_head`` / ``check_leaf`` raise only ``EvidenceError``;
                    ``signet.merkle.verify_inclusion`` / ``verify_consistency`` only ``MerkleError``;
                    ``signet.auditformat.parse_time`` / ``leaf_bytes`` / ``head_message`` only
                    ``AuditError``; a proof that verifies is consistent with the tree it claims
==================  ================================================================================

``write_seeds(corpus)`` writes valid inputs (a small well-formed bundle with a real Merkle tree, and leaves with
their proofs) into ``corpus/evidence_bundle`` and ``corpus/audit_proof``.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from .fakes import Finding


def evidence_bundle(data: bytes) -> None:
    from agent.evidence import (
        EVENTS,
        HEAD,
        LEAVES,
        MANIFEST,
        EvidenceError,
        Limits,
        parse_events,
        parse_head,
        parse_leaves,
        parse_manifest,
        read_bundle,
    )

    if data[:1] and data[0] & 1:
        try:
            parse_manifest(data[1:])
        except EvidenceError:
            pass
        return
    limits = Limits(entries=64, total=1 << 20, entry=512 << 10, archive=1 << 20)
    try:
        entries = read_bundle(data[1:], limits)
    except EvidenceError:
        return
    if len(entries) > limits.entries or sum(len(v) for v in entries.values()) > limits.total:
        raise Finding("evidence-limits", f"read_bundle returned more than its limits allow ({len(entries)} "
                                         "entries)")
    for name, parse in ((MANIFEST, parse_manifest), (LEAVES, parse_leaves), (EVENTS, parse_events)):
        if name in entries:
            try:
                parse(entries[name])
            except EvidenceError:
                pass
    if HEAD in entries:
        try:
            parse_head(json.loads(entries[HEAD]))
        except (ValueError, RecursionError):  # the target's own json.loads
            pass
        except EvidenceError:
            pass


def audit_proof(data: bytes) -> None:
    from agent.evidence import EvidenceError, check_leaf, parse_head, parse_leaf
    from signet import auditformat, merkle

    try:
        doc = json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return
    if not isinstance(doc, dict):
        return
    leaf = head = None
    try:
        leaf = parse_leaf(doc.get("leaf"))
    except EvidenceError:
        pass
    try:
        head = parse_head(doc.get("head"))
        head.message()
    except EvidenceError:
        head = None
    if leaf is not None and head is not None:
        try:
            check_leaf(leaf, head)
        except EvidenceError:
            pass
        else:
            if leaf.seq >= head.tree_size:
                raise Finding("evidence-proof", "a leaf outside the tree was accepted")
    raw: Any = doc.get("raw")
    if isinstance(raw, dict):
        _raw_merkle(raw, merkle)
        _raw_audit(raw, auditformat)


def _hashes(value: Any) -> Any:
    if isinstance(value, list):
        return [bytes.fromhex(v) if isinstance(v, str) and len(v) % 2 == 0 and _is_hex(v) else v for v in value]
    return value


def _is_hex(v: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in v)


def _maybe_bytes(value: Any) -> Any:
    return bytes.fromhex(value) if isinstance(value, str) and len(value) % 2 == 0 and _is_hex(value) else value


def _raw_merkle(raw: dict[str, Any], merkle: Any) -> None:
    """The Merkle functions straight on hostile values: MerkleError only."""
    try:
        merkle.verify_inclusion(_maybe_bytes(raw.get("leaf_hash")), raw.get("index"), raw.get("tree_size"),
                                _hashes(raw.get("proof")), _maybe_bytes(raw.get("root")))
    except merkle.MerkleError:
        pass
    try:
        merkle.verify_consistency(raw.get("old_size"), raw.get("new_size"), _maybe_bytes(raw.get("old_root")),
                                  _maybe_bytes(raw.get("new_root")), _hashes(raw.get("consistency")))
    except merkle.MerkleError:
        pass


def _raw_audit(raw: dict[str, Any], auditformat: Any) -> None:
    """The audit wire formats straight on hostile values: AuditError only."""
    try:
        auditformat.parse_time(raw.get("time"))
    except auditformat.AuditError:
        pass
    seq, kind, subject, payload = raw.get("seq"), raw.get("kind"), raw.get("subject"), raw.get("payload")
    if isinstance(seq, int) and isinstance(kind, str) and isinstance(subject, str) and isinstance(payload, dict):
        try:
            auditformat.leaf_bytes(seq, str(raw.get("time")), kind, subject, payload)
        except (auditformat.AuditError, RecursionError):
            pass
        except UnicodeEncodeError:  # a lone surrogate in kind/subject: the server refuses it at append
            pass
    size, ms, root = raw.get("tree_size"), raw.get("ms"), _maybe_bytes(raw.get("root"))
    if isinstance(size, int) and isinstance(ms, int) and isinstance(root, bytes):
        try:
            auditformat.head_message(size, ms, root)
        except auditformat.AuditError:
            pass


# --- seeds ---------------------------------------------------------------------------------------------------------


def _tree() -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    from signet import auditformat, merkle

    events: list[dict[str, Any]] = []
    leaves: list[dict[str, Any]] = []
    hashes: list[bytes] = []
    for i, kind in enumerate(("created", "sent", "signed", "completed", "sealed")):
        ev = {"id": i + 1, "type": kind, "actor": "p-a" if i < 3 else None, "at": "2030-01-01T00:00:00+00:00",
              "detail": {"n": i}}
        events.append(ev)
        payload = {"event_id": ev["id"], "actor": ev["actor"], "detail": ev["detail"]}
        time = f"2030-01-01T00:0{i}:00.000Z"
        h = merkle.leaf_hash(auditformat.leaf_bytes(i, time, f"envelope.{kind}", "env-1", payload))
        hashes.append(h)
        leaves.append({"seq": i, "time": time, "kind": f"envelope.{kind}", "subject": "env-1", "payload": payload,
                       "leaf_hash": h.hex()})
    tree = merkle.MerkleTree(hashes)
    for leaf in leaves:
        leaf["proof"] = [p.hex() for p in tree.inclusion_proof(leaf["seq"], tree.size)]
    head = {"tree_size": tree.size, "root_hash": tree.root().hex(), "timestamp": "2030-01-01T01:00:00.000Z",
            "signature": "30" * 8, "hash_name": "sha256", "key_id": "k1", "spki_sha256": "ab" * 32}
    return events, head, leaves


def _bundle(events: list[dict[str, Any]], head: dict[str, Any], leaves: list[dict[str, Any]]) -> bytes:
    files = {"events.jsonl": b"".join(json.dumps(e).encode() + b"\n" for e in events),
             "audit/leaves.jsonl": b"".join(json.dumps(x).encode() + b"\n" for x in leaves),
             "audit/head.json": json.dumps(head).encode(), "documents/a.txt": b"annex\n"}
    manifest = {"format": "signet-evidence-1", "envelope_id": "env-1", "organisation": "o", "title": "t",
                "created_at": "2030-01-01T01:00:00.000Z",
                "files": {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in files.items()},
                "audit": head, "documents": [{"id": "d1", "name": "a.txt", "media_type": "text/plain",
                                              "original_sha256": "00" * 32, "signed_sha256": "00" * 32,
                                              "sealed_sha256": "00" * 32, "path": "documents/a.txt"}]}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest))
        z.writestr("manifest.p7s", b"\x30\x03\x02\x01\x00")
        for n, d in files.items():
            z.writestr(n, d)
    return buf.getvalue()


def write_seeds(corpus: Path) -> None:
    events, head, leaves = _tree()
    bundle = _bundle(events, head, leaves)
    d = corpus / "evidence_bundle"
    d.mkdir(parents=True, exist_ok=True)
    (d / "bundle.bin").write_bytes(b"\x00" + bundle)
    with zipfile.ZipFile(io.BytesIO(bundle)) as z:
        (d / "manifest.bin").write_bytes(b"\x01" + z.read("manifest.json"))
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a/../b", b"x")
    (d / "dotdot.bin").write_bytes(b"\x00" + stored.getvalue())
    d = corpus / "audit_proof"
    d.mkdir(parents=True, exist_ok=True)
    for leaf in leaves[:3]:
        (d / f"leaf-{leaf['seq']}.json").write_bytes(json.dumps({"leaf": leaf, "head": head}).encode())
    raw = {"leaf_hash": leaves[1]["leaf_hash"], "index": 1, "tree_size": head["tree_size"],
           "proof": leaves[1]["proof"], "root": head["root_hash"], "old_size": 2, "new_size": 5,
           "old_root": "00" * 32, "new_root": head["root_hash"], "consistency": ["11" * 32, "22" * 32],
           "time": "2030-01-01T00:00:00.000Z", "seq": 1, "kind": "k", "subject": "s", "payload": {"a": [1, None]},
           "ms": 5}
    (d / "raw.json").write_bytes(json.dumps({"raw": raw}).encode())


if __name__ == "__main__":
    write_seeds(Path(__file__).resolve().parent / "corpus")
