"""The encrypted archive on a real SoftHSM server token: round trip, nothing in the clear at rest, AAD binding,
tampering, idempotent and concurrent puts, KEK rotation without touching content, retention, legal hold, shredding."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from server.archive import Archive, BlobShredded, EncryptedBlobStore, Shredded
from server.archive.vault import HEADER, MAGIC, open_sealed, seal
from server.blobs import BlobCorrupt, BlobMissing, BlobStore
from server.clock import ManualClock
from server.store import Store, open_store

ORG, OTHER = "org-acme", "org-globex"


@dataclass
class Env:
    archive: Archive
    store: Store
    clock: ManualClock
    content: Path
    db: Path
    kek: str


def _label(what: str) -> str:
    return f"test-{what}-{os.getpid()}-{os.urandom(4).hex()}"


def destroy_kek(token: Any, label: str) -> int:
    """Destroy a secret key by label: hsm.Token has no call for it (delete_key covers key pairs and certificates)."""
    from pkcs11 import Attribute, ObjectClass

    from hsm import objects

    with token.pool.session() as s, token._objects:
        found = objects.find(s.session, {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label})
        for obj in found:
            obj.destroy()
        return len(found)


@pytest.fixture
def env(pki, tmp_path: Path) -> Iterator[Env]:
    """An archive on the server token with a KEK of its own (so a test may rotate and destroy it) and its own store."""
    kek = _label("kek")
    pki.token.generate_kek(kek)
    db = tmp_path / "archive.sqlite"
    store = open_store(str(db))
    clock = ManualClock()
    try:
        yield Env(Archive(pki.token, store, tmp_path / "content", kek_label=kek, clock=clock), store, clock,
                  tmp_path / "content", db, kek)
    finally:
        store.close()
        destroy_kek(pki.token, kek)


def content_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*/*") if p.is_file())


def row(store: Store, org: str, sha: str) -> dict[str, Any]:
    r = store.query_one("SELECT * FROM archive_objects WHERE org = ? AND sha256 = ?", (org, sha))
    assert r is not None
    return r


def test_round_trip_on_the_server_store_under_the_archive_kek(pki, tmp_path: Path) -> None:
    from server.keys import ARCHIVE_KEK_LABEL

    archive = Archive(pki.token, pki.store, tmp_path / "content")
    blobs: BlobStore = archive.blobs(ORG)  # what envelope code takes
    data = b"%PDF-1.7 a sealed contract\n" + os.urandom(1000)
    sha = blobs.put(data)
    assert sha == hashlib.sha256(data).hexdigest()
    assert blobs.get(sha) == data and blobs.exists(sha)
    assert not blobs.exists("0" * 64) and not archive.exists(OTHER, sha)
    with pytest.raises(BlobMissing):
        blobs.get("0" * 64)
    with pytest.raises(BlobMissing):
        archive.get(OTHER, sha)  # another organisation's object is not this one's
    with pytest.raises(ValueError):
        blobs.get("../../etc/passwd")
    r = row(pki.store, ORG, sha)
    assert (r["kek_label"], r["kek_version"], r["mechanism"]) == (ARCHIVE_KEK_LABEL, 1, "CKM_AES_KEY_WRAP_PAD")
    assert len(r["wrapped_key"]) == 40 and r["size"] == len(data) and r["format"] == 1  # RFC 5649 of 32 bytes
    (path,) = content_files(tmp_path / "content")
    assert path.name == r["content"]
    raw = path.read_bytes()
    assert raw[:4] == MAGIC and raw[4] == 1 and len(raw) == HEADER.size + len(data) + 16
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "content").stat().st_mode & 0o777) == "0o700"


def test_nothing_is_stored_in_the_clear(env: Env) -> None:
    marker = b"SIGNET-ARCHIVE-PLAINTEXT-MARKER-" + os.urandom(8).hex().encode()
    ids = [env.archive.put(ORG, b"contract %d " % i + marker * 50 + os.urandom(i)) for i in range(5)]
    ids.append(env.archive.put(OTHER, marker))
    assert all(env.archive.get(ORG, i).count(marker) == 50 for i in ids[:5])
    files = [*content_files(env.content), env.db, env.db.with_name(env.db.name + "-wal")]
    assert len(files) == 8 and all(f.exists() for f in files)
    for f in files:
        assert marker not in f.read_bytes(), f
        assert marker[:16] not in f.read_bytes(), f


def test_associated_data_binds_object_and_organisation(env: Env) -> None:
    a, b = b"contract A " + os.urandom(64), b"contract B " + os.urandom(64)
    ida, idb = env.archive.put(ORG, a), env.archive.put(ORG, b)
    ida_other = env.archive.put(OTHER, a)  # same bytes, another organisation: another object
    ra, rb, ro = row(env.store, ORG, ida), row(env.store, ORG, idb), row(env.store, OTHER, ida_other)
    assert ra["content"] != ro["content"] and ra["wrapped_key"] != ro["wrapped_key"]

    # object B's row pointed at A's file and A's data key: the key opens it, the associated data does not match
    env.store.execute("UPDATE archive_objects SET content = ?, wrapped_key = ? WHERE org = ? AND sha256 = ?",
                      (ra["content"], ra["wrapped_key"], ORG, idb))
    with pytest.raises(BlobCorrupt, match="failed authentication"):
        env.archive.get(ORG, idb)
    # the other organisation's copy of A pointed at this organisation's file and key
    env.store.execute("UPDATE archive_objects SET content = ?, wrapped_key = ? WHERE org = ? AND sha256 = ?",
                      (ra["content"], ra["wrapped_key"], OTHER, ida_other))
    with pytest.raises(BlobCorrupt, match="failed authentication"):
        env.archive.get(OTHER, ida_other)
    assert env.archive.get(ORG, ida) == a  # the original still reads

    # a file copied over another object's file (its own key row intact)
    env.store.execute("UPDATE archive_objects SET content = ?, wrapped_key = ? WHERE org = ? AND sha256 = ?",
                      (rb["content"], rb["wrapped_key"], ORG, idb))
    fb = env.content / rb["content"][:2] / rb["content"]
    fb.write_bytes((env.content / ra["content"][:2] / ra["content"]).read_bytes())
    with pytest.raises(BlobCorrupt):
        env.archive.get(ORG, idb)

    # the same at the format level
    key = os.urandom(32)
    head, body = seal(key, ORG, ida, a)
    assert open_sealed(key, ORG, ida, head + body) == a
    for org, sha in ((OTHER, ida), (ORG, idb)):
        with pytest.raises(BlobCorrupt):
            open_sealed(key, org, sha, head + body)


def test_a_flipped_byte_anywhere_is_an_error_never_wrong_bytes(env: Env) -> None:
    data = b"the signed contract " + os.urandom(4096)
    sha = env.archive.put(ORG, data)
    (path,) = content_files(env.content)
    good = path.read_bytes()
    for pos in (0, 4, 5, 8, 19, HEADER.size, HEADER.size + 2000, len(good) - 1):
        bad = bytearray(good)
        bad[pos] ^= 0x01
        path.chmod(0o600)
        path.write_bytes(bytes(bad))
        with pytest.raises(BlobCorrupt):
            env.archive.get(ORG, sha)
    path.write_bytes(good[:10])
    with pytest.raises(BlobCorrupt, match="truncated"):
        env.archive.get(ORG, sha)
    path.write_bytes(good)
    assert env.archive.get(ORG, sha) == data

    wrapped = row(env.store, ORG, sha)["wrapped_key"]
    damaged = bytes([wrapped[0] ^ 1]) + wrapped[1:]
    env.store.execute("UPDATE archive_objects SET wrapped_key = ? WHERE sha256 = ?", (damaged, sha))
    with pytest.raises(BlobCorrupt, match="wrapped data key"):
        env.archive.get(ORG, sha)
    env.store.execute("UPDATE archive_objects SET wrapped_key = ? WHERE sha256 = ?", (wrapped, sha))

    path.unlink()
    with pytest.raises(BlobMissing, match="content file"):
        env.archive.get(ORG, sha)


def test_put_is_idempotent(env: Env) -> None:
    blobs = env.archive.blobs(ORG)
    sha = blobs.put(b"same bytes")
    (path,) = content_files(env.content)
    before = path.stat().st_mtime_ns, row(env.store, ORG, sha)
    assert blobs.put(b"same bytes") == sha
    assert content_files(env.content) == [path]
    assert (path.stat().st_mtime_ns, row(env.store, ORG, sha)) == before
    assert env.archive.orphans() == []
    assert blobs.put(b"same bytes", org=OTHER) == sha  # per-call organisation: a second object
    assert len(content_files(env.content)) == 2


def test_concurrent_puts_from_several_threads(env: Env) -> None:
    blobs = env.archive.blobs(ORG)
    shared = [b"shared %d " % i + os.urandom(2048) for i in range(6)]  # every thread puts these too
    results: dict[int, list[tuple[bytes, str]]] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(n: int) -> None:
        try:
            start.wait()
            out = []
            for i in range(6):
                own = b"thread %d item %d " % (n, i) + os.urandom(512)
                out.append((own, blobs.put(own)))
                out.append((shared[i], blobs.put(shared[i])))
            results[n] = out
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    distinct = {data: sha for out in results.values() for data, sha in out}
    assert len(distinct) == 8 * 6 + 6
    for data, sha in distinct.items():
        assert sha == hashlib.sha256(data).hexdigest() and blobs.get(sha) == data
    assert env.store.query_one("SELECT COUNT(*) AS n FROM archive_objects")["n"] == len(distinct)  # type: ignore[index]
    assert len(content_files(env.content)) == len(distinct)  # racing losers removed their files
    assert env.archive.orphans() == []


def test_rotation_rewraps_every_key_and_leaves_content_alone(env: Env, pki) -> None:
    objs = {env.archive.put(ORG if i % 2 else OTHER, b"object %d " % i + os.urandom(300)): i for i in range(25)}
    items = [(ORG if i % 2 else OTHER, sha) for sha, i in objs.items()]
    plain = {k: env.archive.get(*k) for k in items}
    files = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in content_files(env.content)}
    old_rows = {k: row(env.store, *k) for k in items}
    seen: list[tuple[int, int]] = []
    new = _label("kek2")
    try:
        rot = env.archive.rotate_kek(new, batch=10, progress=lambda done, total: seen.append((done, total)))
        assert (rot.label, rot.version, rot.rewrapped, rot.retired) == (new, 2, 25, (env.kek,))
        assert seen == [(10, 25), (20, 25), (25, 25)]
        for k in items:
            r = row(env.store, *k)
            assert (r["kek_label"], r["kek_version"]) == (new, 2)
            assert r["wrapped_key"] != old_rows[k]["wrapped_key"] and r["content"] == old_rows[k]["content"]
        assert {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in content_files(env.content)} == files
        keks = env.archive.keks()
        assert [(k["version"], k["label"], k["retired_at"] is not None) for k in keks] == [(1, env.kek, True),
                                                                                          (2, new, False)]
        # the old KEK can go: everything still decrypts, and a key wrapped under it no longer opens
        assert destroy_kek(pki.token, env.kek) == 1
        assert all(env.archive.get(*k) == v for k, v in plain.items())
        from hsm.errors import KeyNotFound
        from hsm.wrap import WrappedKey

        r0 = next(iter(old_rows.values()))
        with pytest.raises(KeyNotFound):
            pki.token.unwrap_key(WrappedKey(env.kek, r0["mechanism"], r0["wrapped_key"]))
        sha = env.archive.put(ORG, b"after the rotation")
        assert row(env.store, ORG, sha)["kek_version"] == 2
        again = env.archive.rotate_kek(new)  # resuming a finished rotation does nothing
        assert (again.rewrapped, again.retired) == (0, ())
    finally:
        destroy_kek(pki.token, new)


def test_a_put_that_wrapped_under_the_old_kek_wraps_again_when_a_rotation_began_meanwhile(env: Env, pki) -> None:
    """The race: put wraps under KEK 1, a rotation then records KEK 2 and finishes (seeing no row of this put);
    the put must not commit a row under KEK 1, which the operator may now destroy."""
    new = _label("kek2")

    class RacingToken:
        rotated = False

        def __getattr__(self, name: str) -> Any:
            return getattr(pki.token, name)

        def wrap_key(self, label: str, key: bytes) -> Any:
            wrapped = pki.token.wrap_key(label, key)
            if not RacingToken.rotated:
                RacingToken.rotated = True
                archive.rotate_kek(new)
            return wrapped

    archive = Archive(RacingToken(), env.store, env.content, clock=env.clock)  # type: ignore[arg-type]
    try:
        sha = archive.put(ORG, b"written during a rotation")
        assert row(env.store, ORG, sha)["kek_version"] == 2
        destroy_kek(pki.token, env.kek)
        assert archive.get(ORG, sha) == b"written during a rotation"
    finally:
        destroy_kek(pki.token, new)


def test_retention_shreds_keys_and_legal_hold_protects(env: Env, pki) -> None:
    a = env.archive
    t0 = env.clock.now()
    a.set_policy(ORG, retention_days=30)
    a.set_policy(OTHER, retention_days=30, legal_hold=True)
    old = a.put(ORG, b"old contract")
    held = a.put(OTHER, b"held contract")
    forever = a.put("org-no-policy", b"kept forever")
    env.clock.advance(timedelta(days=20).total_seconds())
    young = a.put(ORG, b"young contract")

    assert a.shred_expired(t0 + timedelta(days=29)) == []
    gone = a.shred_expired(t0 + timedelta(days=31))
    assert [(s.org, s.sha256, s.size, s.created_at, s.retention_days) for s in gone] == [
        (ORG, old, len(b"old contract"), t0, 30)]
    r = row(env.store, ORG, old)
    assert r["wrapped_key"] is None and r["kek_label"] is None and r["shredded_at"] is not None
    shredded_at = re.escape("crypto-shredded at 2030-02-01T00:00:00.000000Z when its retention ended")
    with pytest.raises(BlobShredded, match=shredded_at) as e:
        a.get(ORG, old)
    assert e.value.reason == "BLOB_SHREDDED" and isinstance(e.value, BlobMissing)
    assert not a.exists(ORG, old)
    with pytest.raises(BlobShredded):
        a.put(ORG, b"old contract")
    assert content_files(env.content)  # the content stays, unreadable
    assert a.get(ORG, young) == b"young contract"
    assert a.get(OTHER, held) == b"held contract"
    assert a.get("org-no-policy", forever) == b"kept forever"

    assert a.shred_expired(t0 + timedelta(days=400)) == [Shredded(ORG, young, 14, t0 + timedelta(days=20),
                                                                           30, t0 + timedelta(days=400))]
    assert a.set_legal_hold(OTHER, False).retention_days == 30
    assert [s.sha256 for s in a.shred_expired(t0 + timedelta(days=400))] == [held]
    assert a.get("org-no-policy", forever) == b"kept forever"
    a.set_legal_hold(ORG, True)
    assert a.policy(ORG).legal_hold and a.policy(ORG).retention_days == 30

    # a rotation skips shredded objects and leaves them shredded
    new = _label("kek2")
    try:
        assert a.rotate_kek(new).rewrapped == 1  # only the object with no policy
        assert row(env.store, ORG, old)["wrapped_key"] is None
    finally:
        destroy_kek(pki.token, new)


def test_encrypted_blob_store_is_a_blob_store(env: Env) -> None:
    store: BlobStore = EncryptedBlobStore(env.archive, ORG)
    assert store.get(store.put(b"x")) == b"x"
    with pytest.raises(ValueError):
        EncryptedBlobStore(env.archive, "")


def test_working_revisions_are_bound_to_their_organisation(env: Env, tmp_path: Path) -> None:
    """Stored for one organisation, a working revision is not found for another; revisions of earlier versions
    (the scope without an organisation, a plaintext directory) are still read."""
    from server.archive.working import WORKING_SCOPE, WorkingBlobs, scope
    from server.blobs import FileBlobStore

    legacy = FileBlobStore(tmp_path / "plain-blobs")
    blobs: BlobStore = WorkingBlobs(env.archive, legacy)
    sha = blobs.put(b"%PDF-1.7 working revision", org="org_a")
    assert blobs.get(sha, org="org_a") == b"%PDF-1.7 working revision" and blobs.exists(sha, org="org_a")
    assert row(env.store, scope("org_a"), sha)["org"] == "signet:working-revisions:org_a"  # in the AAD too
    assert not blobs.exists(sha, org="org_b")
    with pytest.raises(BlobMissing):
        blobs.get(sha, org="org_b")
    older = env.archive.put(WORKING_SCOPE, b"stored before the organisation was bound")
    plain = legacy.put(b"stored before encryption")
    assert blobs.get(older, org="org_b") == b"stored before the organisation was bound"
    assert blobs.get(plain, org="org_b") == b"stored before encryption"


def test_a_crash_between_the_content_file_and_the_key_row_leaves_an_orphan_file_never_a_dangling_row(
        env: Env, pki, monkeypatch) -> None:
    class Crash(Exception):
        pass

    def crash(table: str, row: dict[str, Any]) -> int:
        raise Crash(table)

    archive = Archive(pki.token, env.store, env.content, clock=env.clock)
    monkeypatch.setattr(env.store, "insert", crash)  # the process dies at the row, after the durable file
    with pytest.raises(Crash):
        archive.put(ORG, b"interrupted")
    monkeypatch.undo()
    orphans = archive.orphans()
    assert len(orphans) == 1 and [p.name for p in content_files(env.content)] == orphans
    sha = hashlib.sha256(b"interrupted").hexdigest()
    assert not archive.exists(ORG, sha)
    with pytest.raises(BlobMissing):
        archive.get(ORG, sha)
    assert archive.put(ORG, b"interrupted") == sha and archive.get(ORG, sha) == b"interrupted"
    assert archive.orphans() == orphans  # the retry wrote a file of its own
