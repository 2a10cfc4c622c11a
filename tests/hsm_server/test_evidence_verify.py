"""`signet verify-evidence`: real evidence bundles (``signet-evidence-1``) built here from real server parts -- a PDF
signed B-T by two token keys and sealed B-LTA, a sealed certificate of completion, a text file with two
countersigned CAdES signatures, an audit log on a fresh store with a head signed by the audit key, a manifest
signed by the seal key -- checked offline under the signing root alone.  The intact bundle passes; each changed
byte, removed or added entry fails and names the check it breaks.  The "insider" variants change a part and
re-sign the manifest with the seal key (the manifest then vouches for the change): the semantic check alone
catches it.

The builder here is independent of the server's exporter (server/seal/evidence.py): it writes the format from
its description, so the two are checked against each other only through the verifier."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import pem

from signet.auditformat import event_leaf_payload

ENVELOPE = "env-7f3a"
OTHER = "env-other"


@dataclass
class Parts:
    """What goes into a bundle, before the manifest is made: entry -> bytes, plus the manifest's own fields."""

    entries: dict[str, bytes]
    documents: list[dict[str, str]]
    head: dict[str, object]
    root_der: bytes
    manifest_extra: dict[str, object] = field(default_factory=dict)


def _person():
    from server.ca import SubjectIdentity, semantics_identifier

    return SubjectIdentity("Zhang San 张三", semantics_identifier("id_card", "CN", "11010519491231002X"),
                           "Signet Test Org", "CN", ("zhang.san@example.com",))


def _party_signers(pki, tag: str):
    from formats.signer import TokenSigner

    out = []
    for n in (1, 2):
        info = pki.agent.generate_key("p256", f"ev-party-{n}-{tag}")
        issued = pki.ca.issue(pki.agent.create_csr(info.key_id, {"common_name": "x"}), _person(), f"p-ev-{tag}-{n}")
        out.append(TokenSigner(pki.agent, info.key_id, certificate=issued.der, chain=list(issued.chain)))
    return out


def _seal_signer(pki):
    from formats.signer import TokenSigner
    from server.ca import Role

    key = pki.keys[Role.SEAL]
    return TokenSigner(pki.token, key.key_id, certificate=key.certificate_der,
                       chain=list(pki.keys.chain_der(Role.SEAL)))


def _signed_pdf(pki, signers, d: Path) -> tuple[bytes, bytes]:
    from formats.pades import PdfSignOptions, sign_pdf
    from formats.samplepdf import make_contract_pdf

    src = d / "lease.pdf"
    make_contract_pdf(src, "Evidence lease", ["Zhang San", "Landlord Ltd"])
    original = src.read_bytes()
    for n, signer in enumerate(signers, 1):
        out = d / f"lease-signed{n}.pdf"
        sign_pdf(src, out, signer, PdfSignOptions(field_name=f"party{n}", level="B-T",
                                                  timestamp_url=f"{pki.url}/tsa"))
        src = out
    return original, src.read_bytes()


def _events_and_audit(pki, d: Path) -> tuple[list[dict[str, object]], list[dict[str, object]], dict[str, object]]:
    """events.jsonl's events, the envelope's audit leaves (with proofs) and the signed head, from a real
    AuditLog on a fresh store (with another envelope's leaves in between: the tree is not just ours)."""
    from server.audit import AuditLog
    from server.ca import Role
    from server.store import open_store

    store = open_store(str(d / "audit.sqlite"))
    log = AuditLog(store)
    t0 = dt.datetime(2030, 1, 2, 9, 0, tzinfo=dt.UTC)
    events: list[dict[str, object]] = []
    steps: list[tuple[str, str | None, dict[str, Any]]] = [
        ("created", "p-alice", {"title": "Evidence lease"}), ("sent", "p-alice", {"recipients": 2}),
        ("viewed", "p-bob", {}), ("signed", "p-alice", {"document": "d1", "revision": "ab" * 32}),
        ("signed", "p-bob", {"document": "d1", "revision": "cd" * 32}), ("completed", None, {}),
        ("sealed", None, {"documents": 2})]
    mine: list[int] = []
    for i, (kind, actor, detail) in enumerate(steps):
        now = t0 + dt.timedelta(minutes=i)
        log.append("envelope.created", OTHER, {"event_id": 1000 + i, "actor": "p-x", "detail": {}}, now)
        ev = {"id": i + 1, "type": kind, "actor": actor or "server", "at": now.isoformat(), "detail": detail}
        events.append(ev)
        mine.append(log.append(f"envelope.{kind}", ENVELOPE,  # as the server writes it: the title as a hash
                               event_leaf_payload(kind, i + 1, actor or "server", detail), now))
    mine.append(log.append("archive.lta_renewed", ENVELOPE, {"object": "ef" * 32}, t0 + dt.timedelta(hours=1)))
    log.append("envelope.sent", OTHER, {"event_id": 2000, "actor": "p-x", "detail": {}},
               t0 + dt.timedelta(hours=2))
    head = log.sign_head(pki.keys.signer(Role.AUDIT), t0 + dt.timedelta(hours=3))
    leaves = []
    for seq in mine:
        r = log.leaf(seq)
        assert r is not None
        leaves.append({"seq": seq, "time": r["time"], "kind": r["kind"], "subject": r["subject"],
                       "payload": json.loads(r["payload"]), "leaf_hash": r["leaf_hash"],
                       "proof": [p.hex() for p in log.inclusion(seq, head.tree_size)]})
    store.close()
    return events, leaves, head.to_dict()


def _jsonl(rows: list[dict[str, object]]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False, sort_keys=True).encode() + b"\n" for r in rows)


def build_parts(pki, d: Path) -> Parts:
    """Every part of a bundle for envelope ENVELOPE, made with the real server code (slow: signs and seals)."""
    from pyhanko.sign.timestamps import HTTPTimeStamper

    from formats import sign_detached
    from formats.samplepdf import contract_pdf_bytes
    from server.ca import Role
    from server.seal.cms import countersign
    from server.seal.pdf import seal_pdf

    roots = [pki.keys.certificate_der(Role.SIGNING_ROOT)]
    tsa = HTTPTimeStamper(f"{pki.url}/tsa")
    signers = _party_signers(pki, d.name)
    original, signed = _signed_pdf(pki, signers, d)
    sealed = seal_pdf(signed, _seal_signer(pki), tsa, roots)
    certificate = seal_pdf(contract_pdf_bytes("Certificate of completion", ["Zhang San", "Landlord Ltd"]),
                           _seal_signer(pki), tsa, roots)
    annex = b"<annex>payment schedule</annex>\n" * 50
    seal_key = pki.keys.signer(Role.SEAL)
    seal_certs = [pki.keys.certificate_der(Role.SEAL), *pki.keys.chain_der(Role.SEAL)]
    cades = [countersign(sign_detached(io.BytesIO(annex), s), seal_key, seal_certs, tsa, dt.datetime.now(dt.UTC))
             for s in signers]
    events, leaves, head = _events_and_audit(pki, d)

    def certs(role: Role) -> bytes:
        return b"".join(pem.armor("CERTIFICATE", c)
                        for c in (pki.keys.certificate_der(role), *pki.keys.chain_der(role)))

    entries = {
        "documents/lease.pdf": sealed,
        "documents/annex.xml": annex,
        "documents/annex.xml.p7s.json": json.dumps(
            {"format": "signet-cades-set-1", "signatures": [base64.b64encode(c).decode() for c in cades]}).encode(),
        "certificate-of-completion.pdf": certificate,
        "events.jsonl": _jsonl(events),
        "audit/leaves.jsonl": _jsonl(leaves),
        "audit/head.json": json.dumps(head, sort_keys=True).encode(),
        "certs/signing-root.pem": pem.armor("CERTIFICATE", roots[0]),
        "certs/audit.pem": certs(Role.AUDIT),
        "certs/seal.pem": certs(Role.SEAL),
        "certs/tsa.pem": certs(Role.TSA),
        "report.json": b'{"ok": true}',
        "report.txt": b"all signatures valid\n",
    }
    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    documents = [
        {"id": "d1", "name": "lease.pdf", "media_type": "application/pdf", "original_sha256": sha(original),
         "signed_sha256": sha(signed), "sealed_sha256": sha(sealed), "path": "documents/lease.pdf"},
        {"id": "d2", "name": "annex.xml", "media_type": "application/xml", "original_sha256": sha(annex),
         "signed_sha256": sha(annex), "sealed_sha256": sha(annex), "path": "documents/annex.xml"},
    ]
    return Parts(entries, documents, head, roots[0])


def assemble(pki, parts: Parts, *, head: dict[str, object] | None = None) -> bytes:
    """The bundle of ``parts``: manifest.json over every entry, manifest.p7s by the seal key, one deflated zip."""
    from formats import sign_detached

    manifest = {
        "format": "signet-evidence-1", "envelope_id": ENVELOPE, "organisation": "Signet Test Org",
        "title": "Evidence lease", "created_at": "2030-01-02T12:00:00.000Z",
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                  for name, data in parts.entries.items()},
        "audit": head if head is not None else parts.head, "documents": parts.documents, **parts.manifest_extra,
    }
    body = json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode()
    p7s = sign_detached(io.BytesIO(body), _seal_signer(pki))
    return zip_entries({"manifest.json": body, "manifest.p7s": p7s, **parts.entries})


def zip_entries(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def unzip(bundle: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(bundle)) as z:
        return {n: z.read(n) for n in z.namelist()}


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


@pytest.fixture(scope="module")
def parts(pki, tmp_path_factory) -> Parts:
    return build_parts(pki, tmp_path_factory.mktemp("evidence"))


@pytest.fixture(scope="module")
def bundle(pki, parts) -> bytes:
    return assemble(pki, parts)


def _verify(bundle: bytes, parts: Parts):
    from agent.evidence import verify_bundle

    return verify_bundle(bundle, [parts.root_der])


def _failed(report) -> dict[str, str]:
    out = {c.name: c.breaks for c in report.checks if not c.ok}
    for c in report.checks:
        if not c.ok:
            assert c.breaks, c
    return out


def test_an_intact_bundle_passes_every_check(bundle, parts):
    report = _verify(bundle, parts)
    assert report.ok, json.dumps(report.to_dict(), indent=1, ensure_ascii=False)
    names = [c.name for c in report.checks]
    assert names == ["archive", "manifest-signature", "files", "audit-head", "audit-leaves", "events",
                     "pdf:documents/lease.pdf", "pdf:certificate-of-completion.pdf", "cades:documents/annex.xml"]
    lease = report.check("pdf:documents/lease.pdf")
    assert lease is not None and "party1" in lease.detail and "party2" in lease.detail
    assert "signet-seal" in lease.detail and "OK" in lease.detail
    assert report.envelope_id == ENVELOPE
    # the events carry the title; the audit leaves (the public log) only its SHA-256
    assert b"Evidence lease" in parts.entries["events.jsonl"]
    assert b"Evidence lease" not in parts.entries["audit/leaves.jsonl"]
    assert b"title_sha256" in parts.entries["audit/leaves.jsonl"]


def _rezip(bundle: bytes, change: Callable[[dict[str, bytes]], object]) -> bytes:
    entries = unzip(bundle)
    change(entries)
    return zip_entries(entries)


def _line_flip(name: str, line: int, old: bytes, new: bytes) -> Callable[[dict[str, bytes]], None]:
    def change(e: dict[str, bytes]) -> None:
        lines = e[name].split(b"\n")
        assert old in lines[line], (old, lines[line])
        lines[line] = lines[line].replace(old, new, 1)
        e[name] = b"\n".join(lines)

    return change


def _json_change(name: str, key: str, fn: Callable[[str], str]) -> Callable[[dict[str, bytes]], None]:
    def change(e: dict[str, bytes]) -> None:
        obj = json.loads(e[name])
        obj[key] = fn(obj[key])
        e[name] = json.dumps(obj, sort_keys=True).encode()

    return change


def _hexflip(h: str) -> str:
    return ("1" if h[0] != "1" else "2") + h[1:]


def _proof_flip(e: dict[str, bytes]) -> None:
    lines = e["audit/leaves.jsonl"].split(b"\n")
    leaf = json.loads(lines[2])
    leaf["proof"][0] = _hexflip(leaf["proof"][0])
    lines[2] = json.dumps(leaf, sort_keys=True).encode()
    e["audit/leaves.jsonl"] = b"\n".join(lines)


def _pdf_flip(name: str) -> Callable[[dict[str, bytes]], None]:
    def change(e: dict[str, bytes]) -> None:
        data = e[name]
        at = data.index(b"Evidence lease" if name.startswith("documents/") else b"Certificate of completion")
        e[name] = flip(data, at + 2)

    return change


# case -> (the change, the check it breaks, every check that fails once the manifest is re-signed over it)
CHANGES: dict[str, tuple[Callable[[dict[str, bytes]], None], str, set[str]]] = {
    "sealed-pdf": (_pdf_flip("documents/lease.pdf"), "pdf:documents/lease.pdf", {"pdf:documents/lease.pdf"}),
    "certificate": (_pdf_flip("certificate-of-completion.pdf"), "pdf:certificate-of-completion.pdf",
                    {"pdf:certificate-of-completion.pdf"}),
    "annex": (lambda e: e.__setitem__("documents/annex.xml", flip(e["documents/annex.xml"], 10)),
              "cades:documents/annex.xml", {"cades:documents/annex.xml"}),
    "event-line": (_line_flip("events.jsonl", 3, b'"p-alice"', b'"p-alicf"'), "events", {"events"}),
    # the title is not in the leaf, only its SHA-256: a changed title still breaks the match
    "event-title": (_line_flip("events.jsonl", 0, b"Evidence lease", b"Evidence lea5e"), "events", {"events"}),
    # the leaf no longer matches its hash, and no longer matches its event either
    "leaf-payload": (_line_flip("audit/leaves.jsonl", 3, b'"p-alice"', b'"p-alicf"'), "audit-leaves",
                     {"audit-leaves", "events"}),
    "proof": (_proof_flip, "audit-leaves", {"audit-leaves"}),
    # no authentic head: no leaf can be checked against it
    "head-root": (_json_change("audit/head.json", "root_hash", _hexflip), "audit-head",
                  {"audit-head", "audit-leaves"}),
    "head-signature": (_json_change("audit/head.json", "signature",
                                    lambda s: s[:-2] + ("00" if s[-2:] != "00" else "01")),
                       "audit-head", {"audit-head", "audit-leaves"}),
}


@pytest.mark.parametrize("case", sorted(CHANGES))
def test_a_changed_byte_fails_the_file_hash_and_the_check_it_breaks(bundle, parts, case):
    change, check, _ = CHANGES[case]
    report = _verify(_rezip(bundle, change), parts)
    failed = _failed(report)
    assert not report.ok
    assert "files" in failed and "changed after export" in failed["files"], failed
    assert check in failed, (case, failed)
    assert "manifest-signature" not in failed


@pytest.mark.parametrize("case", sorted(CHANGES))
def test_an_insider_who_re_signs_the_manifest_is_still_caught_by_the_check_it_breaks(pki, parts, case):
    """The seal key re-signs a manifest over the changed part: the file hashes agree, the semantic check does
    not."""
    change, _, expected = CHANGES[case]
    entries = dict(parts.entries)
    change(entries)
    head = json.loads(entries["audit/head.json"])
    bundle = assemble(pki, replace(parts, entries=entries), head=head)
    failed = _failed(_verify(bundle, parts))
    assert set(failed) == expected, (case, failed)


def test_a_changed_manifest_fails_its_signature(bundle, parts):
    def change(e: dict[str, bytes]) -> None:
        at = e["manifest.json"].index(b"Evidence lease")
        e["manifest.json"] = flip(e["manifest.json"], at + 3)

    failed = _failed(_verify(_rezip(bundle, change), parts))
    assert "manifest-signature" in failed and "no file in the bundle can be trusted" in failed["manifest-signature"]


def test_a_changed_manifest_signature_fails(bundle, parts):
    failed = _failed(_verify(_rezip(bundle, lambda e: e.__setitem__("manifest.p7s", flip(e["manifest.p7s"], -1))),
                             parts))
    assert set(failed) == {"manifest-signature"}, failed


def test_a_removed_entry_fails_the_files_check(bundle, parts):
    failed = _failed(_verify(_rezip(bundle, lambda e: e.pop("certs/tsa.pem")), parts))
    assert set(failed) == {"files"} and "certs/tsa.pem was removed" in failed["files"], failed
    failed = _failed(_verify(_rezip(bundle, lambda e: e.pop("documents/lease.pdf")), parts))
    assert {"files", "pdf:documents/lease.pdf"} == set(failed), failed


def test_an_added_entry_fails_the_files_check(bundle, parts):
    failed = _failed(_verify(_rezip(bundle, lambda e: e.__setitem__("documents/extra.pdf", b"%PDF-1.7\n")), parts))
    assert set(failed) == {"files"} and "documents/extra.pdf was added" in failed["files"], failed


def test_a_manifest_signed_by_a_party_key_is_not_the_seal(pki, parts, bundle, tmp_path):
    from formats import sign_detached

    [party, _] = _party_signers(pki, tmp_path.name)
    entries = unzip(bundle)
    entries["manifest.p7s"] = sign_detached(io.BytesIO(entries["manifest.json"]), party)
    failed = _failed(_verify(zip_entries(entries), parts))
    assert set(failed) == {"manifest-signature"}, failed


def test_another_trust_root_trusts_nothing(bundle, parts, pki):
    from agent.evidence import verify_bundle
    from server.ca import Role

    report = verify_bundle(bundle, [pki.keys.certificate_der(Role.TLS_ROOT)])
    failed = _failed(report)
    assert {"manifest-signature", "audit-head", "pdf:documents/lease.pdf", "pdf:certificate-of-completion.pdf",
            "cades:documents/annex.xml"} <= set(failed), failed


def test_the_cli_exits_0_for_an_intact_bundle_and_3_not_valid_for_a_changed_one(bundle, parts, tmp_path, capsys):
    from agent.cli import main

    (tmp_path / "root.pem").write_bytes(pem.armor("CERTIFICATE", parts.root_der))
    (tmp_path / "good.zip").write_bytes(bundle)
    assert main(["verify-evidence", str(tmp_path / "good.zip"), "--trust", str(tmp_path / "root.pem")]) == 0
    out = capsys.readouterr().out
    assert "✓ manifest-signature" in out and "✗" not in out
    (tmp_path / "bad.zip").write_bytes(_rezip(bundle, CHANGES["proof"][0]))
    assert main(["verify-evidence", str(tmp_path / "bad.zip"), "--trust", str(tmp_path / "root.pem"),
                 "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert [c["name"] for c in doc["checks"] if not c["ok"]] == ["files", "audit-leaves"]
    assert main(["verify-evidence", str(tmp_path / "missing.zip"), "--trust", str(tmp_path / "root.pem")]) == 2
