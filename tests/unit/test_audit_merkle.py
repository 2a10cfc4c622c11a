"""RFC 9162 Merkle tree: published vectors, every corruption refused, and random trees.

The vectors (leaves, roots of every prefix, inclusion and consistency proofs of the 8-leaf tree) are transcribed
from transparency-dev/merkle, ``proof/verify_test.go`` (commit 02194e9afb6c1d95b5381350007963aa70fff472); data
only.  Their inclusion vectors number leaves from 1; they are given here with 0-based indexes.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from signet import merkle
from signet.merkle import MerkleError, ProofMismatch

LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")]

ROOTS = [bytes.fromhex(h) for h in (  # ROOTS[n - 1] is the root of the first n leaves
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]

EMPTY = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


INCLUSION = [  # (0-based leaf index, tree size, proof)
    (0, 8, _h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
              "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
              "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")),
    (5, 8, _h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
              "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
              "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (2, 3, _h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (1, 5, _h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
              "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
              "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
    (0, 1, []),
]

CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, _h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
              "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
              "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")),
    (6, 8, _h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
              "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
              "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
    (2, 5, _h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
              "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")),
    (6, 7, _h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
              "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
              "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")),
]

HASHES = [merkle.leaf_hash(d) for d in LEAVES]


def test_empty_tree_and_hash_prefixes() -> None:
    assert merkle.root([]) == EMPTY == hashlib.sha256(b"").digest()
    assert merkle.leaf_hash(b"") == ROOTS[0]
    assert merkle.node_hash(HASHES[0], HASHES[1]) == ROOTS[1]


@pytest.mark.parametrize("n", range(1, 9))
def test_root_of_every_prefix(n: int) -> None:
    assert merkle.root(HASHES[:n]) == ROOTS[n - 1]
    assert merkle.MerkleTree(HASHES).root(n) == ROOTS[n - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_published_inclusion_proofs(index: int, size: int, proof: list[bytes]) -> None:
    assert merkle.inclusion_proof(HASHES, index, size) == proof
    assert merkle.inclusion_proof_size(index, size) == len(proof)
    merkle.verify_inclusion(HASHES[index], index, size, proof, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY)
def test_published_consistency_proofs(old: int, new: int, proof: list[bytes]) -> None:
    assert merkle.consistency_proof(HASHES, old, new) == proof
    assert merkle.consistency_proof_size(old, new) == len(proof)
    merkle.verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


def _flip(b: bytes, i: int, bit: int = 0) -> bytes:
    return b[:i] + bytes([b[i] ^ (1 << bit)]) + b[i + 1:]


def _refused_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> None:
    with pytest.raises(MerkleError):
        merkle.verify_inclusion(leaf, index, size, proof, root)


@pytest.mark.parametrize(("index", "size", "proof"), [v for v in INCLUSION if v[2]])
def test_every_corrupted_inclusion_proof_is_refused(index: int, size: int, proof: list[bytes]) -> None:
    leaf, root = HASHES[index], ROOTS[size - 1]
    for i, p in enumerate(proof):  # every bit of every byte of every hash
        for j in range(len(p)):
            for bit in range(8):
                _refused_inclusion(leaf, index, size, [*proof[:i], _flip(p, j, bit), *proof[i + 1:]], root)
    for j in range(32):
        _refused_inclusion(_flip(leaf, j), index, size, proof, root)
        _refused_inclusion(leaf, index, size, proof, _flip(root, j))
    for wrong in {index - 1, index + 1, index ^ 2, size, size + 1} - {index}:
        if wrong >= 0:
            _refused_inclusion(leaf, wrong, size, proof, root)
    # a neighbouring size can share the proof's shape (leaf 0 of 7 and of 8): the root tells them apart, not this
    for wrong_size in {size * 2, size // 2, 0} - {size}:
        _refused_inclusion(leaf, index, wrong_size, proof, root)
    for bad in ([*proof, b""], [*proof, root], [b"", *proof], [root, *proof], proof[:-1],
                [proof[0], SOME_HASH, *proof[1:]], proof[::-1] if len(proof) > 1 else [SOME_HASH]):
        _refused_inclusion(leaf, index, size, bad, root)
    _refused_inclusion(leaf, index, size, proof, EMPTY)
    _refused_inclusion(leaf, index, size, proof, SOME_HASH)
    _refused_inclusion(b"WrongLeaf", index, size, proof, root)


def _refused_consistency(old: int, new: int, r1: bytes, r2: bytes, proof: list[bytes]) -> None:
    with pytest.raises(MerkleError):
        merkle.verify_consistency(old, new, r1, r2, proof)


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CONSISTENCY if v[2]])
def test_every_corrupted_consistency_proof_is_refused(old: int, new: int, proof: list[bytes]) -> None:
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    for i, p in enumerate(proof):
        for j in range(len(p)):
            for bit in range(8):
                _refused_consistency(old, new, r1, r2, [*proof[:i], _flip(p, j, bit), *proof[i + 1:]])
    for j in range(32):
        _refused_consistency(old, new, _flip(r1, j), r2, proof)
        _refused_consistency(old, new, r1, _flip(r2, j), proof)
    for wrong_old in {old - 1, old + 1, old ^ 2} - {old}:
        _refused_consistency(wrong_old, new, r1, r2, proof)
    for wrong_new in {new * 2, new // 2} - {new}:  # new ± 1 can share the shape, as for inclusion
        _refused_consistency(old, wrong_new, r1, r2, proof)
    _refused_consistency(old, new, r2, r1, proof)
    _refused_consistency(old, new, b"WrongRoot", r2, proof)
    for bad in ([], [*proof, b""], [*proof, r1], [*proof, r2], [b"", *proof], [r1, *proof], [r2, *proof],
                [proof[0], *proof], proof[:-1]):
        _refused_consistency(old, new, r1, r2, bad)


def test_trivial_consistency() -> None:
    merkle.verify_consistency(0, 0, EMPTY, EMPTY, [])
    merkle.verify_consistency(0, 5, EMPTY, ROOTS[4], [])
    merkle.verify_consistency(3, 3, ROOTS[2], ROOTS[2], [])
    _refused_consistency(3, 3, ROOTS[2], ROOTS[3], [])  # two roots for one size
    _refused_consistency(0, 0, EMPTY, EMPTY, [EMPTY])  # a proof where none is due
    _refused_consistency(1, 1, ROOTS[0], ROOTS[0], [EMPTY])
    _refused_consistency(0, 1, SOME_HASH, ROOTS[0], [])  # the empty tree has one root
    _refused_consistency(1, 0, ROOTS[0], EMPTY, [])  # time travel
    _refused_consistency(2, 1, ROOTS[1], ROOTS[0], [])
    _refused_consistency(1, 2, ROOTS[0], ROOTS[1], [])  # proof missing


@pytest.mark.parametrize("bad", [
    dict(index=-1), dict(index=8), dict(index=True), dict(index=1.0), dict(size=0), dict(size=-3), dict(size="8"),
    dict(proof=None), dict(proof=b"x" * 96), dict(proof="abc"), dict(proof=[1, 2, 3]), dict(proof=[b"x"] * 3),
    dict(proof=[b"x" * 33] * 3), dict(proof=[b"x" * 32] * 1000), dict(leaf=b""), dict(leaf=None), dict(root=b"r"),
    dict(root="00" * 32), dict(index=2**70, size=2**71), dict(proof=[None, None, None]),
])
def test_hostile_inclusion_arguments_raise_merkle_errors_only(bad: dict[str, object]) -> None:
    args: dict[str, object] = dict(leaf=HASHES[0], index=0, size=8, proof=INCLUSION[0][2], root=ROOTS[7])
    args.update(bad)
    with pytest.raises(MerkleError):
        merkle.verify_inclusion(args["leaf"], args["index"], args["size"], args["proof"], args["root"])  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [
    dict(old=-1), dict(old=9), dict(new=True), dict(old=6.0), dict(new=-8), dict(proof=None), dict(proof=b"x" * 96),
    dict(proof=[b"x"] * 3), dict(proof=[b"x" * 32] * 10_000), dict(r1=None), dict(r2=b""), dict(old=2**64 + 6),
    dict(new=2**200), dict(proof=[[], [], []]),
])
def test_hostile_consistency_arguments_raise_merkle_errors_only(bad: dict[str, object]) -> None:
    args: dict[str, object] = dict(old=6, new=8, r1=ROOTS[5], r2=ROOTS[7], proof=CONSISTENCY[2][2])
    args.update(bad)
    with pytest.raises(MerkleError):
        merkle.verify_consistency(args["old"], args["new"], args["r1"], args["r2"], args["proof"])  # type: ignore[arg-type]


def test_generator_refuses_bad_requests() -> None:
    for call in (lambda: merkle.inclusion_proof(HASHES, 8, 8), lambda: merkle.inclusion_proof(HASHES, 0, 9),
                 lambda: merkle.inclusion_proof(HASHES, -1, 4), lambda: merkle.inclusion_proof(HASHES, 0, 0),
                 lambda: merkle.consistency_proof(HASHES, 5, 4), lambda: merkle.consistency_proof(HASHES, 1, 9),
                 lambda: merkle.consistency_proof(HASHES, -1, 4), lambda: merkle.root([b"short"]),
                 lambda: merkle.MerkleTree(HASHES).subtree(3, 9), lambda: merkle.MerkleTree(HASHES).root(9)):
        with pytest.raises(MerkleError):
            call()


def test_random_fuzz_never_escapes_merkle_error() -> None:
    rng = random.Random(9162)
    for _ in range(3000):
        size = rng.choice([0, 1, 2, 3, 7, 8, 9, rng.randrange(0, 2**64)])
        index = rng.choice([0, size - 1, size, rng.randrange(-2, 2**64)])
        proof = [rng.randbytes(rng.choice([32, 32, 32, 31, 0])) for _ in range(rng.randrange(0, 70))]
        try:
            merkle.verify_inclusion(rng.randbytes(32), index, size, proof, rng.randbytes(32))
        except MerkleError:
            pass
        old = rng.choice([0, 1, size, rng.randrange(0, 2**64)])
        try:
            merkle.verify_consistency(old, size, rng.randbytes(32), rng.randbytes(32), proof)
        except MerkleError:
            pass


def _reference_root(hashes: list[bytes]) -> bytes:
    """MTH straight from the RFC's recursive definition."""
    if not hashes:
        return EMPTY
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return merkle.node_hash(_reference_root(hashes[:k]), _reference_root(hashes[k:]))


def test_random_trees_every_proof_verifies() -> None:
    rng = random.Random(20240601)
    for n in [*range(1, 40), *rng.sample(range(40, 101), 8)]:
        hashes = [merkle.leaf_hash(i.to_bytes(2, "big") + rng.randbytes(rng.randrange(0, 20))) for i in range(n)]
        tree = merkle.MerkleTree(hashes)
        roots = [tree.root(m) for m in range(n + 1)]
        assert roots == [_reference_root(hashes[:m]) for m in range(n + 1)]
        for size in range(1, n + 1):
            for i in range(size):
                proof = tree.inclusion_proof(i, size)
                assert len(proof) == merkle.inclusion_proof_size(i, size)
                merkle.verify_inclusion(hashes[i], i, size, proof, roots[size])
                if i + 1 < size:
                    with pytest.raises(ProofMismatch):
                        merkle.verify_inclusion(hashes[i + 1], i, size, proof, roots[size])
            for old in range(0, size + 1):
                proof = tree.consistency_proof(old, size)
                assert len(proof) == merkle.consistency_proof_size(old, size)
                merkle.verify_consistency(old, size, roots[old], roots[size], proof)
                if 0 < old < size:
                    with pytest.raises(ProofMismatch):
                        merkle.verify_consistency(old, size, roots[old - 1] if old > 1 else SOME_HASH,
                                                  roots[size], proof)


def test_large_tree_proofs_are_cheap() -> None:
    hashes = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(100_000)]
    tree = merkle.MerkleTree(hashes)
    r = tree.root()
    for i in (0, 1, 65_535, 65_536, 99_999):
        merkle.verify_inclusion(hashes[i], i, 100_000, tree.inclusion_proof(i, 100_000), r)
    merkle.verify_consistency(77_777, 100_000, tree.root(77_777), r, tree.consistency_proof(77_777, 100_000))
