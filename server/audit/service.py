"""The audit log's proofs for relying parties (AuditService): signed tree heads, inclusion and consistency proofs.

Authorisation: operators only (anyone else :class:`~server.errors.PermissionDenied`).  Tree heads and consistency
proofs reveal only hashes, so any operator may get them; a leaf is shown only to an operator of the organisation
of what it is about:

* ``identity.*`` (a person's evidence record, subject the person id): the organisation the payload names
  (``org_id``, written by :func:`server.identity.evidence.append` from the person's row);
* ``certificate.*`` (subject the serial, payload the issuer's key hash): the organisation of the person the
  certificate was issued to (none for the server's own and unassigned certificates);
* any other leaf: the organisation of the envelope its ``subject`` names.

A leaf of another organisation, and a leaf about anything else (the archive's own operations), is
:class:`~server.errors.NotFound`, exactly like a seq or id that does not exist: the leaf is looked up and its
subject checked before any tree size is, and before anything is signed.

A tree size (or new size) of 0 means the newest signed head: signed now, with the audit key, when the log has
grown since the newest head was signed (:meth:`AuditLog.sign_head`).  A size larger than the log, a seq not in
the tree asked for, an old size larger than the new one: :class:`~server.errors.InvalidArgument`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..ca import Role as KeyRole
from ..ca import db as ca_db
from ..clock import Clock, SystemClock
from ..envelopes import records
from ..errors import InvalidArgument, NotFound
from ..identity import Principal
from ..identity.principal import require_operator
from ..keys import ServerKeys
from ..store import Row, Store
from .log import AuditError, AuditLog, TreeHead

_ACTION = "read the audit log's tree heads and proofs"
_SERIAL = re.compile(r"[0-9a-f]{1,40}")  # a serial as the CA writes it (db.serial_text): at most 20 octets


@dataclass(frozen=True)
class Leaf:
    seq: int
    time: str
    kind: str
    subject: str
    payload_json: str
    leaf_hash: bytes


@dataclass(frozen=True)
class SignedHead:
    head: TreeHead
    certificate_der: bytes  # the audit certificate: verifies head.signature
    chain_der: tuple[bytes, ...]  # above it, up to its root


@dataclass(frozen=True)
class Inclusion:
    leaf: Leaf
    tree_size: int
    proof: list[bytes]
    head: TreeHead | None  # the signed head of tree_size, when one was signed at that size


@dataclass(frozen=True)
class Consistency:
    old_size: int
    new_size: int
    proof: list[bytes]
    old_head: TreeHead | None
    new_head: TreeHead | None


@dataclass(frozen=True)
class EnvelopeLeaves:
    leaves: list[tuple[Leaf, list[bytes]]]  # oldest first, each with its inclusion proof
    tree_size: int
    head: TreeHead | None


def _leaf(r: Row) -> Leaf:
    return Leaf(int(r["seq"]), r["time"], r["kind"], r["subject"], r["payload"], bytes.fromhex(r["leaf_hash"]))


def _range(e: AuditError) -> InvalidArgument:
    return InvalidArgument(str(e), reason="AUDIT_SIZE_OUT_OF_RANGE")


class AuditQueries:
    """What AuditService asks of the audit log of ``store``; heads are signed with the audit key of ``keys``."""

    def __init__(self, store: Store, keys: ServerKeys, clock: Clock | None = None) -> None:
        self._store = store
        self._keys = keys
        self._clock = clock or SystemClock()
        self._log = AuditLog(store, migrate=False)

    # --- heads -----------------------------------------------------------------------------------------------

    def _newest(self) -> TreeHead:
        """The newest signed head, signed now when the log has grown since."""
        return self._log.sign_head(self._keys.signer(KeyRole.AUDIT), self._clock.now())

    def _head_at(self, tree_size: int) -> TreeHead | None:
        if tree_size > self._log.size():  # also keeps integers SQLite cannot hold out of the query
            return None
        return self._log.head_at(tree_size)

    def _size(self, tree_size: int) -> tuple[int, TreeHead | None]:
        """``tree_size`` (0: the newest signed head's) and the head signed at that size, if any."""
        if tree_size == 0:
            head = self._newest()
            return head.tree_size, head
        return tree_size, self._head_at(tree_size)

    def tree_head(self, principal: Principal, tree_size: int = 0) -> SignedHead:
        """The newest signed head (0), or the one signed at exactly ``tree_size`` (NOT_FOUND if none)."""
        require_operator(principal, _ACTION)
        head = self._newest() if tree_size == 0 else self._head_at(tree_size)
        if head is None:
            raise NotFound(f"no tree head was signed at tree size {tree_size}", reason="TREE_HEAD_NOT_FOUND")
        return SignedHead(head, self._keys.certificate_der(KeyRole.AUDIT), self._keys.chain_der(KeyRole.AUDIT))

    def consistency(self, principal: Principal, old_size: int, new_size: int = 0) -> Consistency:
        require_operator(principal, _ACTION)
        new_size, new_head = self._size(new_size)
        try:
            proof = self._log.consistency(old_size, new_size)
        except AuditError as e:
            raise _range(e) from e
        return Consistency(old_size, new_size, proof, self._head_at(old_size) if old_size else None, new_head)

    # --- leaves ----------------------------------------------------------------------------------------------

    def _visible_envelope(self, principal: Principal, envelope_id: str) -> bool:
        env = records.load(self._store, envelope_id) if envelope_id else None
        return env is not None and env.org_id == principal.org_id

    def _certificate_org(self, serial: str, issuer_key_hash: object) -> str | None:
        """The organisation of the person certificate ``serial`` of the issuer ``issuer_key_hash`` was issued to."""
        if not isinstance(issuer_key_hash, str) or not _SERIAL.fullmatch(serial):
            return None
        rec = ca_db.find(self._store, issuer_key_hash, int(serial, 16))
        if rec is None or not rec.person_id:
            return None
        row = self._store.query_one("SELECT org_id FROM identity_people WHERE id = ?", (rec.person_id,))
        return str(row["org_id"]) if row else None

    def _visible_leaf(self, principal: Principal, row: Row) -> bool:
        kind, subject = str(row["kind"]), str(row["subject"])
        if kind.startswith(("identity.", "certificate.")):
            try:
                payload = json.loads(row["payload"])
            except (TypeError, ValueError):
                return False
            if not isinstance(payload, dict):
                return False
            if kind.startswith("identity."):
                return bool(subject) and payload.get("org_id") == principal.org_id
            return self._certificate_org(subject, payload.get("issuer_key_hash")) == principal.org_id
        return self._visible_envelope(principal, subject)

    def inclusion(self, principal: Principal, seq: int, tree_size: int = 0) -> Inclusion:
        """Leaf ``seq`` and its inclusion proof in the tree of ``tree_size`` leaves (0: the newest signed head)."""
        require_operator(principal, _ACTION)
        row = self._log.leaf(seq) if seq < self._log.size() else None
        if row is None or not self._visible_leaf(principal, row):
            raise NotFound(f"no audit leaf {seq}", reason="AUDIT_LEAF_NOT_FOUND")
        tree_size, head = self._size(tree_size)
        try:
            proof = self._log.inclusion(seq, tree_size)
        except AuditError as e:
            raise _range(e) from e
        return Inclusion(_leaf(row), tree_size, proof, head)

    def envelope_leaves(self, principal: Principal, envelope_id: str, tree_size: int = 0) -> EnvelopeLeaves:
        """Every leaf about ``envelope_id`` in the tree of ``tree_size`` leaves (0: the newest signed head), oldest
        first, each with its inclusion proof."""
        require_operator(principal, _ACTION)
        if not self._visible_envelope(principal, envelope_id):
            raise NotFound(f"no envelope {envelope_id!r}", reason="ENVELOPE_NOT_FOUND")
        tree_size, head = self._size(tree_size)
        rows = [r for r in self._log.leaves_of(envelope_id) if int(r["seq"]) < tree_size]
        try:
            proofs = self._log.proofs([int(r["seq"]) for r in rows], tree_size)
        except AuditError as e:
            raise _range(e) from e
        return EnvelopeLeaves([(_leaf(r), proofs[int(r["seq"])]) for r in rows], tree_size, head)


__all__ = ["AuditQueries", "Consistency", "EnvelopeLeaves", "Inclusion", "Leaf", "SignedHead"]
