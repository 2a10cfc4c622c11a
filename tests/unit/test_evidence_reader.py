"""The evidence bundle reader and parsers (agent.evidence) on hostile input: limits, names, zip bombs, JSON that is
not a manifest, a head, a leaf or an event -- always EvidenceError (or a failed ``archive`` check), never another
exception; and the audit checks on a real Merkle tree built here."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from agent.evidence import (
    EvidenceError,
    Limits,
    check_leaf,
    parse_events,
    parse_head,
    parse_leaf,
    parse_leaves,
    parse_manifest,
    read_bundle,
    verify_bundle,
)
from signet import auditformat, merkle
from tests.fuzz.evidence_targets import _bundle, _tree


def _zip(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buf.getvalue()


def test_a_well_formed_bundle_reads_and_parses():
    events, head, leaves = _tree()
    entries = read_bundle(_bundle(events, head, leaves))
    assert set(entries) >= {"manifest.json", "manifest.p7s", "events.jsonl", "audit/leaves.jsonl"}
    m = parse_manifest(entries["manifest.json"])
    assert m.envelope_id == "env-1" and m.documents[0].path == "documents/a.txt"
    h = parse_head(json.loads(entries["audit/head.json"]))
    for leaf in parse_leaves(entries["audit/leaves.jsonl"]):
        check_leaf(leaf, h)
    assert [e.type for e in parse_events(entries["events.jsonl"])] == ["created", "sent", "signed", "completed",
                                                                     "sealed"]


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04", b"not a zip at all", b"PK\x05\x06" + b"\x00" * 10])
def test_what_is_not_a_zip_is_a_clean_refusal(data):
    with pytest.raises(EvidenceError):
        read_bundle(data)


@pytest.mark.parametrize("name", ["../x", "a/../b", "/etc/passwd", "a//b", "./a", "C:/x", "a\\b", "a\x01b"])
def test_unsafe_names_are_refused(name):
    with pytest.raises(EvidenceError):
        read_bundle(_zip([(name, b"x")]))


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_duplicates_are_refused():
    with pytest.raises(EvidenceError, match="twice"):
        read_bundle(_zip([("a", b"1"), ("a", b"2")]))


def test_too_many_entries_too_large_entries_and_a_bomb_are_refused_without_reading_them():
    with pytest.raises(EvidenceError, match="entries"):
        read_bundle(_zip([(f"f{i}", b"") for i in range(11)]), Limits(entries=10))
    with pytest.raises(EvidenceError, match="per entry"):
        read_bundle(_zip([("big", b"\x00" * 5000)]), Limits(entry=4096))
    with pytest.raises(EvidenceError, match="add up"):
        read_bundle(_zip([("a", b"\x00" * 3000), ("b", b"\x00" * 3000)]), Limits(total=5000))
    bomb = _zip([("bomb", b"\x00" * (8 << 20))])
    assert len(bomb) < 64 << 10
    with pytest.raises(EvidenceError):
        read_bundle(bomb, Limits(entry=1 << 20))


def test_a_header_that_understates_the_size_is_refused():
    data = bytearray(_zip([("a", b"\x00" * 100_000)]))
    # the central directory's uncompressed size (offset 24 in the central header) says 10 bytes
    cd = data.rindex(b"PK\x01\x02")
    data[cd + 24:cd + 28] = (10).to_bytes(4, "little")
    with pytest.raises(EvidenceError):
        read_bundle(bytes(data))


def test_encrypted_or_exotic_compression_is_refused():
    data = bytearray(_zip([("a", b"hello")], zipfile.ZIP_STORED))
    cd = data.rindex(b"PK\x01\x02")
    data[cd + 8] |= 1  # the encrypted flag
    with pytest.raises(EvidenceError):
        read_bundle(bytes(data))
    bz = _zip([("a", b"hello" * 100)], zipfile.ZIP_BZIP2)
    with pytest.raises(EvidenceError, match="compression"):
        read_bundle(bz)


def test_verify_bundle_turns_an_unreadable_archive_into_one_failed_check():
    report = verify_bundle(b"garbage", [b"unused"])
    assert not report.ok and [c.name for c in report.checks] == ["archive"]
    assert report.checks[0].breaks


@pytest.mark.parametrize("text", [
    b"", b"[]", b"{}", b"\xff", b'{"format": "signet-evidence-2"}', b"[" * 100_000, b'{"a": NaN}',
    b'{"a": 1, "a": 2}', b"1" * 10_000,
])
def test_a_manifest_that_is_not_one_is_refused(text):
    with pytest.raises(EvidenceError):
        parse_manifest(text)


def test_a_manifest_with_a_hostile_file_name_is_refused():
    events, head, leaves = _tree()
    with zipfile.ZipFile(io.BytesIO(_bundle(events, head, leaves))) as z:
        m = json.loads(z.read("manifest.json"))
    m["files"]["../evil"] = {"sha256": "00" * 32, "size": 1}
    with pytest.raises(EvidenceError):
        parse_manifest(json.dumps(m).encode())


def test_the_head_takes_the_field_names_of_tree_head_to_dict():
    _, head, _ = _tree()
    assert parse_head(head).spki_sha256 == "ab" * 32
    for key in head:
        bad = dict(head)
        del bad[key]
        with pytest.raises(EvidenceError):
            parse_head(bad)
    for key, value in [("tree_size", -1), ("tree_size", True), ("tree_size", 1 << 64), ("root_hash", "00"),
                       ("timestamp", "2030-01-01T00:00:00Z"), ("hash_name", "md5"), ("signature", "zz"),
                       ("spki_sha256", "AB" * 32)]:
        with pytest.raises(EvidenceError):
            parse_head({**head, key: value})


def test_a_leaf_whose_fields_or_proof_changed_fails_and_says_which():
    _, head_obj, leaves = _tree()
    head = parse_head(head_obj)
    good = leaves[2]
    check_leaf(parse_leaf(good), head)
    changed = {**good, "payload": {**good["payload"], "actor": "p-b"}}
    with pytest.raises(EvidenceError, match="does not match its hash"):
        check_leaf(parse_leaf(changed), head)
    proof = list(good["proof"])
    proof[0] = "00" * 32
    with pytest.raises(EvidenceError, match="not in the signed tree"):
        check_leaf(parse_leaf({**good, "proof": proof}), head)
    outside = {**good, "seq": 99}  # a leaf outside the tree, its hash recomputed to match its fields
    outside["leaf_hash"] = merkle.leaf_hash(auditformat.leaf_bytes(99, good["time"], good["kind"], good["subject"],
                                                                   good["payload"])).hex()
    with pytest.raises(EvidenceError, match="not in the signed tree"):
        check_leaf(parse_leaf(outside), head)


@pytest.mark.parametrize("change", [
    {"seq": "1"}, {"seq": -1}, {"payload": []}, {"leaf_hash": "00"}, {"proof": ["00" * 32] * 65},
    {"proof": "00"}, {"kind": 1},
])
def test_malformed_leaves_are_refused(change):
    _, _, leaves = _tree()
    with pytest.raises(EvidenceError):
        parse_leaf({**leaves[0], **change})


def test_leaf_fields_that_cannot_be_a_leaf_are_evidence_errors():
    _, head_obj, leaves = _tree()
    head = parse_head(head_obj)
    for change in ({"payload": {"x": 1.5}}, {"time": "yesterday"}, {"kind": "\ud800"}):
        with pytest.raises(EvidenceError):
            check_leaf(parse_leaf({**leaves[0], **change}), head)


def test_leaves_and_events_files_refuse_duplicates_and_bad_lines():
    _, _, leaves = _tree()
    line = json.dumps(leaves[0]).encode()
    with pytest.raises(EvidenceError, match="twice"):
        parse_leaves(line + b"\n" + line)
    with pytest.raises(EvidenceError):
        parse_leaves(b"{not json}\n")
    ev = json.dumps({"id": 1, "type": "t", "actor": None, "at": "x", "detail": {}}).encode()
    with pytest.raises(EvidenceError, match="twice"):
        parse_events(ev + b"\n" + ev)
    with pytest.raises(EvidenceError):
        parse_events(b'{"id": "e"}\n')


def test_the_merkle_and_audit_formats_match_the_server_encoding():
    """The verifier's leaf hash is the server's: canonical JSON, keys sorted, hashed with the 0x00 prefix."""
    payload = {"b": 1, "a": "é"}
    leaf = auditformat.leaf_bytes(3, "2030-01-01T00:00:00.000Z", "envelope.sent", "env", payload)
    assert leaf == '{"kind":"envelope.sent","payload":{"a":"é","b":1},"seq":3,"subject":"env","time":"2030-01-01T00:00:00.000Z"}'.encode()  # noqa: E501
    assert merkle.leaf_hash(leaf) == __import__("hashlib").sha256(b"\x00" + leaf).digest()
