"""RFC 9162 (Certificate Transparency v2) Merkle trees over SHA-256: roots, inclusion and consistency proofs.

Pure functions, no I/O.  The tree is the one of RFC 9162 §2.1.1: for ``n`` leaves ``D[0:n]``

* ``MTH({}) = SHA-256()`` (the hash of the empty string),
* ``MTH({d0}) = SHA-256(0x00 || d0)`` (a *leaf hash*),
* ``MTH(D[0:n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` for ``n > 1``, ``k`` the largest power of two
  smaller than ``n`` (an *interior node*).

The functions here take *leaf hashes* (32 bytes each, ``leaf_hash(data)``), not leaf data, so a log can keep the
hashes and never re-read its leaves to prove something.  Proofs are lists of 32-byte hashes, deepest first, as in
§2.1.3.1 (``PATH``) and §2.1.4.1 (``PROOF``); verification follows §2.1.3.2 and §2.1.4.2 step by step.

:class:`MerkleTree` builds every complete, aligned power-of-two subtree once (``n - 1`` hashes); after that the
hash of any subtree that appears in the RFC decomposition costs O(log n) hashes, so a root of any prefix, an
inclusion proof or a consistency proof costs O(log n) hash operations.

Every malformed input -- a size or index out of range, a non-integer, a hash that is not 32 bytes, a proof of the
wrong length -- raises :class:`MerkleError` (a ``ValueError``); a well-formed proof that does not prove the claim
raises :class:`ProofMismatch` (also a :class:`MerkleError`).  Nothing here raises ``IndexError`` or
``AssertionError`` on hostile input, and a proof's length is checked before any hashing, so an oversized proof costs
nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF = b"\x00"
_NODE = b"\x01"


class MerkleError(ValueError):
    """A malformed request or proof: bad size, index, hash length or proof length."""


class ProofMismatch(MerkleError):
    """A well-formed proof that does not lead to the claimed root(s)."""


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE + left + right).digest()


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MerkleError(f"{what} must be an integer, not {type(value).__name__}")
    if value < 0:
        raise MerkleError(f"{what} must not be negative (got {value})")
    return value


def _hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise MerkleError(f"{what} must be bytes, not {type(value).__name__}")
    b = bytes(value)
    if len(b) != HASH_SIZE:
        raise MerkleError(f"{what} must be {HASH_SIZE} bytes (got {len(b)})")
    return b


def _proof(proof: object, expected: int, what: str) -> list[bytes]:
    if isinstance(proof, bytes | bytearray | str) or not isinstance(proof, Sequence):
        raise MerkleError(f"{what} must be a sequence of {HASH_SIZE}-byte hashes")
    if len(proof) != expected:
        raise MerkleError(f"{what} has {len(proof)} hashes; this index and these sizes need {expected}")
    return [_hash(p, f"{what}[{i}]") for i, p in enumerate(proof)]


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n`` > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof_size(index: int, tree_size: int) -> int:
    """The number of hashes in the inclusion proof of leaf ``index`` in a tree of ``tree_size`` (checked)."""
    index, tree_size = _int(index, "leaf index"), _int(tree_size, "tree size")
    if index >= tree_size:
        raise MerkleError(f"leaf index {index} is not in a tree of size {tree_size}")
    # levels where the paths to `index` and to the last leaf differ, plus the left siblings above them
    inner = (index ^ (tree_size - 1)).bit_length()
    return inner + bin(index >> inner).count("1")


def consistency_proof_size(old_size: int, new_size: int) -> int:
    """The number of hashes in the consistency proof between two tree sizes (checked)."""
    old_size, new_size = _int(old_size, "old size"), _int(new_size, "new size")
    if old_size > new_size:
        raise MerkleError(f"old size {old_size} is larger than new size {new_size}")
    if old_size in (0, new_size):
        return 0
    # the old tree is the subtree at the node of its last leaf shifted by its trailing zero bits
    level = (old_size & -old_size).bit_length() - 1
    index, size = (old_size - 1) >> level, ((new_size - 1) >> level) + 1
    seed = 0 if index == 0 else 1  # an old tree of 2^k leaves is its own node: the proof omits it
    return seed + inclusion_proof_size(index, size)


class MerkleTree:
    """The tree over ``leaf_hashes``: its complete aligned subtrees computed once; prefixes and proofs from them."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        level = [_hash(h, f"leaf hash {i}") for i, h in enumerate(leaf_hashes)]
        self._levels: list[list[bytes]] = [level]
        while len(level) > 1:
            level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self._levels.append(level)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def _check_size(self, tree_size: object, what: str = "tree size") -> int:
        n = _int(tree_size, what)
        if n > self.size:
            raise MerkleError(f"{what} {n} is larger than the tree ({self.size} leaves)")
        return n

    def subtree(self, start: int, end: int) -> bytes:
        """``MTH(D[start:end])`` for ``0 <= start < end <= size`` (the hash of the empty tree when equal)."""
        if not 0 <= start <= end <= self.size:
            raise MerkleError(f"range [{start}, {end}) is not in a tree of {self.size} leaves")
        if start == end:
            return EMPTY_ROOT
        n = end - start
        if n & (n - 1) == 0 and start % n == 0:  # complete and aligned: built in __init__
            return self._levels[n.bit_length() - 1][start // n]
        k = _split(n)
        return node_hash(self.subtree(start, start + k), self.subtree(start + k, end))

    def root(self, tree_size: int | None = None) -> bytes:
        """``MTH(D[0:tree_size])`` (the whole tree by default)."""
        n = self.size if tree_size is None else self._check_size(tree_size)
        return self.subtree(0, n)

    def inclusion_proof(self, index: int, tree_size: int) -> list[bytes]:
        """``PATH(index, D[0:tree_size])`` (RFC 9162 §2.1.3.1), deepest hash first."""
        n = self._check_size(tree_size)
        inclusion_proof_size(index, n)  # checks index < tree_size
        path: list[bytes] = []
        start, end = 0, n
        while end - start > 1:
            k = _split(end - start)
            if index < start + k:
                path.append(self.subtree(start + k, end))
                end = start + k
            else:
                path.append(self.subtree(start, start + k))
                start += k
        path.reverse()
        return path

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """``PROOF(old_size, D[0:new_size])`` (RFC 9162 §2.1.4.1), deepest hash first; empty when
        ``old_size`` is 0 or equals ``new_size``."""
        n = self._check_size(new_size, "new size")
        m = _int(old_size, "old size")
        consistency_proof_size(m, n)  # checks old <= new
        if m in (0, n):
            return []
        out: list[bytes] = []
        start, end, complete = 0, n, True
        while m != end - start:  # SUBPROOF(m, D[start:end], complete), m relative to start
            k = _split(end - start)
            if m <= k:
                out.append(self.subtree(start + k, end))
                end = start + k
            else:
                out.append(self.subtree(start, start + k))
                start, m, complete = start + k, m - k, False
        if not complete:
            out.append(self.subtree(start, end))
        out.reverse()
        return out


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of all ``leaf_hashes`` (``SHA-256()`` for none)."""
    return MerkleTree(leaf_hashes).root()


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, tree_size: int) -> list[bytes]:
    """The inclusion proof of leaf ``index`` in the tree of the first ``tree_size`` leaf hashes."""
    n = _int(tree_size, "tree size")
    if n > len(leaf_hashes):
        raise MerkleError(f"tree size {n} is larger than the {len(leaf_hashes)} leaf hashes given")
    return MerkleTree(leaf_hashes[:n]).inclusion_proof(index, n)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int) -> list[bytes]:
    """The consistency proof between the trees of the first ``old_size`` and ``new_size`` leaf hashes."""
    n = _int(new_size, "new size")
    if n > len(leaf_hashes):
        raise MerkleError(f"new size {n} is larger than the {len(leaf_hashes)} leaf hashes given")
    return MerkleTree(leaf_hashes[:n]).consistency_proof(old_size, n)


def verify_inclusion(leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` with ``root`` (RFC 9162 §2.1.3.2).

    Returns nothing when it is; raises :class:`ProofMismatch` when the proof leads elsewhere and
    :class:`MerkleError` when an argument is malformed."""
    r = _hash(leaf_hash, "leaf hash")
    want = _hash(root, "root")
    path = _proof(proof, inclusion_proof_size(index, tree_size), "inclusion proof")
    fn, sn = index, tree_size - 1
    for p in path:
        if sn == 0:
            raise ProofMismatch("inclusion proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn != 0 and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != want:
        raise ProofMismatch(f"inclusion proof of leaf {index} does not lead to the root of tree size {tree_size}")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes,
                       proof: Sequence[bytes]) -> None:
    """Check that the tree of ``new_size`` with ``new_root`` extends the tree of ``old_size`` with ``old_root``
    (RFC 9162 §2.1.4.2).

    Sizes 0 and equal sizes take an empty proof: size 0 needs ``old_root`` to be ``SHA-256()``, equal sizes need
    equal roots.  Returns nothing when consistent; raises :class:`ProofMismatch` when not and :class:`MerkleError`
    when an argument is malformed."""
    first = _hash(old_root, "old root")
    second = _hash(new_root, "new root")
    path = _proof(proof, consistency_proof_size(old_size, new_size), "consistency proof")
    if old_size == 0:
        if first != EMPTY_ROOT:
            raise ProofMismatch("the root of an empty tree must be SHA-256 of nothing")
        return
    if old_size == new_size:
        if first != second:
            raise ProofMismatch(f"two different roots for tree size {old_size}")
        return
    if old_size & (old_size - 1) == 0:  # step 2: a power of two is its own node, the proof starts with it
        path.insert(0, first)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofMismatch("consistency proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn != 0 and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != first or sr != second:
        raise ProofMismatch(f"tree size {new_size} is not consistent with tree size {old_size} under these roots")


__all__ = ["EMPTY_ROOT", "HASH_SIZE", "MerkleError", "MerkleTree", "ProofMismatch", "consistency_proof",
           "consistency_proof_size", "inclusion_proof", "inclusion_proof_size", "leaf_hash", "node_hash", "root",
           "verify_consistency", "verify_inclusion"]
