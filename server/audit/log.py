"""The audit log in the store: leaves of an RFC 9162 Merkle tree (:mod:`.merkle`) and tree heads signed by the
audit key on the server token.

Leaves
    Table ``audit_leaves``: ``seq`` (0, 1, 2, ... without gaps), ``time`` (the server clock, UTC, ISO 8601 with
    milliseconds: ``2030-01-01T12:00:00.123Z``), ``kind`` (e.g. ``envelope.signed``), ``subject`` (e.g. the
    envelope id), ``payload`` (a JSON object as canonical JSON text) and ``leaf_hash`` (hex).  The payload holds
    ids, hashes and states only: never a secret, a one-time code or document content (the log is append-only:
    nothing written here can be taken back).

    The leaf bytes hashed (``SHA-256(0x00 || leaf)``) are the canonical JSON of the object
    ``{"kind": kind, "payload": payload, "seq": seq, "subject": subject, "time": time}``: UTF-8, keys sorted by
    Unicode code point at every level, no insignificant whitespace (separators ``,`` and ``:``), non-ASCII
    characters as themselves (not ``\\u`` escapes), integers in decimal; floats, NaN, non-string keys and
    unpaired surrogates are refused when appending, so every leaf re-encodes to the same bytes anywhere.

Appending
    :func:`append` runs inside the caller's transaction when there is one (an envelope event and its leaf commit
    together or not at all).  The one-row table ``audit_state`` counts the leaves; an append first increments it
    (``UPDATE``), which takes the store's write lock (SQLite) or the row's lock (PostgreSQL) until the
    transaction ends, so appends are serialised across threads and processes, and ``seq`` is the new count
    minus one: unique and contiguous (a rolled-back append takes its increment with it).

Signed tree heads
    Table ``audit_heads``: ``tree_size`` (unique), ``root_hash`` (hex), ``timestamp`` (ISO UTC ms, as above),
    ``signature`` (hex: DER ECDSA or PKCS#1 v1.5, whichever the audit key is), ``hash_name`` (``sha256`` or
    ``sha384``), ``key_id`` (the key's id on the token, informational) and ``spki_sha256`` (hex SHA-256 of the
    signing key's SubjectPublicKeyInfo: which certificate verifies it).  The bytes signed are::

        b"signet-audit-tree-head-v1\\0" || uint64be(tree_size) || uint64be(timestamp in ms since 1970) || root

    (the label keeps a head signature from meaning anything else the audit key may sign).

Verifying
    :meth:`AuditLog.verify` recomputes every leaf hash from its stored fields, the root at every stored head, each
    head's signature (against the audit certificate) and the consistency between successive heads, and names
    each leaf or head that is wrong (:class:`Report`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from signet import merkle
from signet.auditformat import (
    AuditError,
    _leaf_text,
    _ms,
    canonical_json,
    head_message,
    leaf_bytes,
    parse_time,
    time_text,
)

from ..ca.signer import verify as verify_signature
from ..store import Row, Store

COMPONENT = "audit"
HASH_NAMES = ("sha256", "sha384", "sha512")


def _create_tables(store: Store) -> None:
    store.execute("CREATE TABLE audit_state (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL)")
    store.execute("INSERT INTO audit_state (id, size) VALUES (1, 0)")
    store.execute(
        "CREATE TABLE audit_leaves (seq INTEGER PRIMARY KEY, time TEXT NOT NULL, kind TEXT NOT NULL, "
        "subject TEXT NOT NULL, payload TEXT NOT NULL, leaf_hash TEXT NOT NULL)")
    store.execute("CREATE INDEX audit_leaves_subject ON audit_leaves (subject, seq)")
    store.execute(
        "CREATE TABLE audit_heads (tree_size INTEGER PRIMARY KEY, root_hash TEXT NOT NULL, "
        "timestamp TEXT NOT NULL, signature TEXT NOT NULL, hash_name TEXT NOT NULL, key_id TEXT NOT NULL, "
        "spki_sha256 TEXT NOT NULL)")


MIGRATIONS = (_create_tables,)


def migrate(store: Store) -> int:
    """Create or upgrade the audit tables (run once at startup, outside any transaction)."""
    return store.migrate(COMPONENT, MIGRATIONS)


_migrate = migrate


# --- encoding ------------------------------------------------------------------------------------------------


# --- records -------------------------------------------------------------------------------------------------


class HeadSigner(Protocol):
    """What signs tree heads: :class:`server.ca.signer.HsmSigner` of the audit key."""

    @property
    def key_id(self) -> str: ...

    @property
    def public_key_der(self) -> bytes: ...

    @property
    def hash_name(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class TreeHead:
    tree_size: int
    root_hash: bytes
    timestamp: str  # ISO UTC ms
    signature: bytes
    hash_name: str
    key_id: str
    spki_sha256: str

    def message(self) -> bytes:
        return head_message(self.tree_size, _ms(parse_time(self.timestamp)), self.root_hash)

    def to_dict(self) -> dict[str, Any]:
        return {"tree_size": self.tree_size, "root_hash": self.root_hash.hex(), "timestamp": self.timestamp,
                "signature": self.signature.hex(), "hash_name": self.hash_name, "key_id": self.key_id,
                "spki_sha256": self.spki_sha256}


@dataclass(frozen=True)
class Problem:
    """One thing :meth:`AuditLog.verify` found wrong: a leaf (``ref`` = seq), a head (``ref`` = tree size) or the
    log as a whole (``ref`` = -1)."""

    what: Literal["leaf", "head", "log"]
    ref: int
    message: str

    def __str__(self) -> str:
        where = {"leaf": f"leaf {self.ref}", "head": f"head at tree size {self.ref}", "log": "log"}[self.what]
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Report:
    leaves: int
    heads: int
    latest: TreeHead | None
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def bad_leaves(self) -> list[int]:
        """The seqs of the leaves found wrong."""
        return sorted({p.ref for p in self.problems if p.what == "leaf"})

    def bad_heads(self) -> list[int]:
        """The tree sizes of the heads found wrong."""
        return sorted({p.ref for p in self.problems if p.what == "head"})

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "leaves": self.leaves, "heads": self.heads,
                "latest": self.latest.to_dict() if self.latest else None,
                "problems": [{"what": p.what, "ref": p.ref, "message": p.message} for p in self.problems]}


def _head(r: Row) -> TreeHead:
    return TreeHead(int(r["tree_size"]), bytes.fromhex(r["root_hash"]), r["timestamp"],
                    bytes.fromhex(r["signature"]), r["hash_name"], r["key_id"], r["spki_sha256"])


def _spki_sha256(spki_der: bytes) -> str:
    return hashlib.sha256(spki_der).hexdigest()


# --- writing -------------------------------------------------------------------------------------------------


def append(store: Store, kind: str, subject: str, payload: Mapping[str, Any], now: datetime) -> int:
    """Append one leaf (in the caller's transaction when there is one); returns its seq."""
    if not isinstance(kind, str) or not kind:
        raise AuditError("an audit leaf needs a kind")
    if not isinstance(subject, str):
        raise AuditError("an audit leaf's subject is a string")
    if not isinstance(payload, Mapping):
        raise AuditError("an audit leaf's payload is a JSON object")
    when = time_text(now)
    body = canonical_json(payload)
    try:  # refuses what cannot be encoded before anything is written
        _leaf_text(0, when, kind, subject, body)
    except UnicodeEncodeError as e:
        raise AuditError("kind or subject holds text that is not valid Unicode") from e
    with store.transaction():
        if store.execute("UPDATE audit_state SET size = size + 1 WHERE id = 1") != 1:
            raise AuditError("the audit log's state row is missing")
        row = store.query_one("SELECT size FROM audit_state WHERE id = 1")
        if row is None:
            raise AuditError("the audit log's state row is missing")
        seq = int(row["size"]) - 1
        digest = merkle.leaf_hash(_leaf_text(seq, when, kind, subject, body))
        store.insert("audit_leaves", {"seq": seq, "time": when, "kind": kind, "subject": subject,
                                      "payload": body, "leaf_hash": digest.hex()})
    return seq


class AuditLog:
    """The audit log of one store (creates its tables when ``migrate``, the default)."""

    def __init__(self, store: Store, *, migrate: bool = True) -> None:
        self.store = store
        if migrate:
            _migrate(store)

    def append(self, kind: str, subject: str, payload: Mapping[str, Any], now: datetime) -> int:
        return append(self.store, kind, subject, payload, now)

    def size(self) -> int:
        row = self.store.query_one("SELECT size FROM audit_state WHERE id = 1")
        return int(row["size"]) if row else 0

    def leaf_hashes(self, tree_size: int) -> list[bytes]:
        """The stored hashes of leaves ``0 .. tree_size - 1``, read in one query."""
        rows = self.store.query("SELECT seq, leaf_hash FROM audit_leaves WHERE seq < ? ORDER BY seq", (tree_size,))
        out: list[bytes] = []
        for i, r in enumerate(rows):
            if int(r["seq"]) != i:
                raise AuditError(f"leaf {i} is missing from the audit log")
            try:
                out.append(bytes.fromhex(r["leaf_hash"]))
            except (TypeError, ValueError) as e:
                raise AuditError(f"leaf {i} has a malformed stored hash") from e
        if len(out) != tree_size:
            raise AuditError(f"the audit log has {len(out)} leaves, not {tree_size}")
        return out

    def _tree(self, tree_size: int) -> merkle.MerkleTree:
        size = self.size()
        if isinstance(tree_size, bool) or not isinstance(tree_size, int) or not 0 <= tree_size <= size:
            raise AuditError(f"tree size {tree_size!r} is not between 0 and the log's size {size}")
        try:
            return merkle.MerkleTree(self.leaf_hashes(tree_size))
        except merkle.MerkleError as e:
            raise AuditError(str(e)) from e

    def root(self, tree_size: int) -> bytes:
        return self._tree(tree_size).root()

    def inclusion(self, seq: int, tree_size: int) -> list[bytes]:
        """The inclusion proof of leaf ``seq`` in the tree of ``tree_size`` leaves."""
        try:
            return self._tree(tree_size).inclusion_proof(seq, tree_size)
        except merkle.MerkleError as e:
            raise AuditError(str(e)) from e

    def proofs(self, seqs: list[int], tree_size: int) -> dict[int, list[bytes]]:
        """Inclusion proofs of several leaves in the tree of ``tree_size`` leaves (the tree read once)."""
        tree = self._tree(tree_size)
        try:
            return {s: tree.inclusion_proof(s, tree_size) for s in seqs}
        except merkle.MerkleError as e:
            raise AuditError(str(e)) from e

    def leaves_of(self, subject: str) -> list[Row]:
        """Every leaf about ``subject`` (e.g. an envelope id), oldest first."""
        return self.store.query("SELECT * FROM audit_leaves WHERE subject = ? ORDER BY seq", (subject,))

    def consistency(self, old: int, new: int) -> list[bytes]:
        """The consistency proof between the trees of ``old`` and ``new`` leaves."""
        try:
            return self._tree(new).consistency_proof(old, new)
        except merkle.MerkleError as e:
            raise AuditError(str(e)) from e

    def leaf(self, seq: int) -> Row | None:
        return self.store.query_one("SELECT * FROM audit_leaves WHERE seq = ?", (seq,))

    def head(self) -> TreeHead | None:
        """The newest signed tree head (None before the first)."""
        row = self.store.query_one("SELECT * FROM audit_heads ORDER BY tree_size DESC LIMIT 1")
        return _head(row) if row else None

    def head_at(self, tree_size: int) -> TreeHead | None:
        """The head signed at exactly ``tree_size`` leaves (None when none was)."""
        row = self.store.query_one("SELECT * FROM audit_heads WHERE tree_size = ?", (tree_size,))
        return _head(row) if row else None

    def heads(self) -> list[TreeHead]:
        return [_head(r) for r in self.store.query("SELECT * FROM audit_heads ORDER BY tree_size")]

    def sign_head(self, signer: HeadSigner, now: datetime) -> TreeHead:
        """A signed head over every leaf committed now: the newest head when the log has not grown since it was
        signed, a new one otherwise.  The token signs outside any store transaction."""
        latest = self.head()
        size = self.size()
        if latest is not None and latest.tree_size >= size:
            return latest
        stamp = time_text(now)
        ms = _ms(parse_time(stamp))
        if latest is not None and ms < _ms(parse_time(latest.timestamp)):
            raise AuditError(f"the clock ({stamp}) is behind the newest tree head ({latest.timestamp})")
        root = self.root(size)
        if signer.hash_name not in HASH_NAMES:
            raise AuditError(f"unsupported signature hash {signer.hash_name!r}")
        signature = signer.sign(head_message(size, ms, root))
        head = TreeHead(size, root, stamp, signature, signer.hash_name, signer.key_id,
                        _spki_sha256(signer.public_key_der))
        with self.store.transaction():
            newer = self.head()
            if newer is not None and newer.tree_size >= size:  # another signer got there first
                return newer
            self.store.insert("audit_heads", {
                "tree_size": head.tree_size, "root_hash": root.hex(), "timestamp": stamp,
                "signature": signature.hex(), "hash_name": head.hash_name, "key_id": head.key_id,
                "spki_sha256": head.spki_sha256})
        return head

    # --- verification ------------------------------------------------------------------------------------

    def verify(self, audit_certificate_der: bytes) -> Report:
        """Check every leaf, every head's root and signature, and consistency between successive heads."""
        return _Verifier(self.store, audit_certificate_der).run()


class _Verifier:
    """One run of :meth:`AuditLog.verify`."""

    def __init__(self, store: Store, certificate_der: bytes) -> None:
        self.store = store
        self.problems: list[Problem] = []
        self.spki, why = _certificate_spki(certificate_der)
        if why:
            self.problems.append(Problem("log", -1, why))
        self.mismatched: list[int] = []  # leaves whose fields and stored hash disagree
        self.trees: dict[str, merkle.MerkleTree] = {}
        self.matched_by: list[tuple[int, str]] = []  # (head's tree size, the tree its root matched)

    def run(self) -> Report:
        leaves = self._leaves()
        heads = self.store.query("SELECT * FROM audit_heads ORDER BY tree_size")
        previous: TreeHead | None = None
        for r in heads:
            head = self._head(r, previous)
            if head is not None:
                previous = head
        self._attribute_mismatches()
        order = {"log": 0, "leaf": 1, "head": 2}
        self.problems.sort(key=lambda p: (order[p.what], p.ref))
        latest = _head(heads[-1]) if heads and _parse_head(heads[-1])[0] is not None else None
        return Report(leaves, len(heads), latest if latest and latest.tree_size <= leaves else None,
                      tuple(self.problems))

    def _leaves(self) -> int:
        """Check every leaf; build the tree of the stored hashes (what heads were signed over) and, when some
        disagree with their fields, the tree of the fields' hashes.  Returns the number of leaves checked."""
        size_row = self.store.query_one("SELECT size FROM audit_state WHERE id = 1")
        size = int(size_row["size"]) if size_row else 0
        rows = self.store.query("SELECT * FROM audit_leaves ORDER BY seq")
        stored: list[bytes] = []
        recomputed: list[bytes] = []
        for i, r in enumerate(rows):
            seq = int(r["seq"])
            if seq != i:
                self.problems.append(Problem("log", -1, f"leaf {i} is missing (the next stored leaf is {seq}); "
                                             "leaves from there on are not checked"))
                break
            fields_hash, why = _leaf_from_fields(r)
            stored_hash = _stored_hash(r["leaf_hash"])
            if why is not None:
                self.problems.append(Problem("leaf", seq, why))
            elif stored_hash is None:
                self.problems.append(Problem("leaf", seq, "the stored leaf hash is malformed"))
            elif stored_hash != fields_hash:
                self.mismatched.append(seq)
            stored.append(stored_hash or fields_hash or merkle.EMPTY_ROOT)
            recomputed.append(fields_hash or merkle.EMPTY_ROOT)
        else:
            if len(rows) != size:
                self.problems.append(Problem("log", -1, f"the log counts {size} leaves but {len(rows)} are stored"))
        self.trees["stored"] = merkle.MerkleTree(stored)
        if self.mismatched:
            self.trees["fields"] = merkle.MerkleTree(recomputed)
        return len(stored)

    def _head(self, r: Row, previous: TreeHead | None) -> TreeHead | None:
        """Check one head (after ``previous``, the last good one); the head when good."""
        n = int(r["tree_size"])
        head, why = _parse_head(r)
        if head is None:
            self.problems.append(Problem("head", n, why or "malformed"))
            return None
        found: list[str] = []
        leaves = self.trees["stored"].size
        tree: merkle.MerkleTree | None = None
        if n > leaves:
            found.append(f"covers {n} leaves but only {leaves} can be checked")
        else:
            match = next((name for name, t in self.trees.items() if t.root(n) == head.root_hash), None)
            if match is None:
                since = previous.tree_size if previous else 0
                where = f"leaves {since}..{n - 1}" if since < n else "the head"
                found.append(f"root does not match the stored leaves 0..{n - 1} "
                             f"(a leaf among {where} or this head was changed)")
            else:
                self.matched_by.append((n, match))
                tree = self.trees[match]
        if self.spki is not None:
            sig_problem = _check_signature(head, self.spki)
            if sig_problem:
                found.append(sig_problem)
        if previous is not None and not found and tree is not None:
            found += _after(previous, head, tree)
        self.problems += [Problem("head", n, message) for message in found]
        return None if found else head

    def _attribute_mismatches(self) -> None:
        """Say, for each leaf whose fields and hash disagree, which of the two the signed heads vouch for."""
        for seq in self.mismatched:
            covering = next((name for n, name in self.matched_by if n > seq), None)
            if covering == "stored":
                msg = "its fields were changed after it was logged (signed heads cover its stored hash)"
            elif covering == "fields":
                msg = "its stored leaf hash was changed (signed heads cover the hash of its fields)"
            else:
                msg = "its fields do not match its stored leaf hash"
            self.problems.append(Problem("leaf", seq, msg))


def _after(previous: TreeHead, head: TreeHead, tree: merkle.MerkleTree) -> list[str]:
    """What is wrong with ``head`` as the successor of ``previous`` (time order, consistency)."""
    if parse_time(head.timestamp) < parse_time(previous.timestamp):
        return [f"timestamp {head.timestamp} is before the previous head's ({previous.timestamp}, "
                f"tree size {previous.tree_size})"]
    try:
        proof = tree.consistency_proof(previous.tree_size, head.tree_size)
        merkle.verify_consistency(previous.tree_size, head.tree_size, previous.root_hash, head.root_hash, proof)
    except merkle.MerkleError as e:
        return [f"not consistent with the head at tree size {previous.tree_size}: {e}"]
    return []


def _stored_hash(text: object) -> bytes | None:
    try:
        b = bytes.fromhex(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return b if b is not None and len(b) == merkle.HASH_SIZE else None


def _no_float(text: str) -> Any:
    raise AuditError(f"{text} is not allowed in the audit log (no floats, NaN or infinities)")


def _leaf_from_fields(r: Row) -> tuple[bytes | None, str | None]:
    """The hash of a stored leaf's fields, or why they cannot be a leaf."""
    text = r["payload"]
    try:
        payload = json.loads(text, parse_float=_no_float, parse_constant=_no_float)
    except AuditError as e:
        return None, f"the stored payload: {e}"
    except (TypeError, ValueError):
        return None, "the stored payload is not JSON"
    if not isinstance(payload, dict):
        return None, "the stored payload is not a JSON object"
    try:
        if json.dumps(payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")) != text:
            return None, "the stored payload is not canonical JSON"
        parse_time(r["time"])
        if not isinstance(r["kind"], str) or not isinstance(r["subject"], str):
            return None, "kind or subject is not text"
        return merkle.leaf_hash(_leaf_text(int(r["seq"]), r["time"], r["kind"], r["subject"], text)), None
    except AuditError as e:
        return None, str(e)
    except UnicodeEncodeError:
        return None, "the stored leaf holds text that is not valid Unicode"


def _parse_head(r: Row) -> tuple[TreeHead | None, str | None]:
    try:
        head = _head(r)
        parse_time(head.timestamp)
    except (TypeError, ValueError) as e:
        return None, f"malformed stored head ({e})"
    if len(head.root_hash) != merkle.HASH_SIZE:
        return None, "the stored root hash is not 32 bytes"
    return head, None


def _certificate_spki(der: bytes) -> tuple[bytes | None, str | None]:
    try:
        cert = x509.load_der_x509_certificate(der)
        return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo), None
    except (TypeError, ValueError) as e:
        return None, f"the audit certificate cannot be read ({e}); no head signature was checked"


def _check_signature(head: TreeHead, spki: bytes) -> str | None:
    if head.spki_sha256 != _spki_sha256(spki):
        return "signed by another key than the audit certificate's"
    if head.hash_name not in HASH_NAMES:
        return f"unsupported signature hash {head.hash_name!r}"
    try:
        ok = verify_signature(spki, head.signature, head.message(), head.hash_name)
    except (TypeError, ValueError):
        ok = False
    return None if ok else "the signature does not verify with the audit certificate"


__all__ = ["COMPONENT", "MIGRATIONS", "AuditError", "AuditLog", "HeadSigner", "Problem", "Report", "TreeHead",
           "append", "canonical_json", "head_message", "leaf_bytes", "migrate", "parse_time", "time_text"]
