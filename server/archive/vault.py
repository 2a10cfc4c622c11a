"""The encrypted archive: write-once content files, one AES-256-GCM data key per object, wrapped by the token's KEK.

:class:`Archive` owns the content directory, the key table and the per-organisation retention policies;
:meth:`Archive.blobs` gives an :class:`EncryptedBlobStore`, which implements :class:`server.blobs.BlobStore`
(``put``/``get``/``exists``) so envelope code can use it unchanged.

Objects keep the ids callers know: the SHA-256 of the plaintext (lowercase hex).  An object belongs to an
organisation: the ``org`` given to :meth:`Archive.blobs` (the default for every call), or ``org=`` on a single
call.  The same bytes in two organisations are two objects (two data keys, two files, two retention clocks).

Content file (``<dir>/<2 hex>/<name>``, 0600 in 0700 directories, written temp -> fsync -> link -> fsync dir by
:mod:`signet.durable`; ``name`` is 64 random hex digits recorded in the key row)::

    b"SGNA" | version (1 byte, 1) | algorithm (1 byte, 1 = AES-256-GCM) | 0x0000 | nonce (12 bytes)
    | AES-GCM ciphertext + 16-byte tag

Associated data (AAD) of the GCM operation::

    header[0:8] (magic, version, algorithm, reserved) | len(org utf-8) (2 bytes, big-endian) | org utf-8
    | object id (the 32 raw bytes of the plaintext SHA-256)

so a file moved to another object or organisation, or relabelled as another version, fails authentication.
The file is named at random rather than by its own hash: hashing the ciphertext too would cost a second full
SHA-256 per put and get (SHA-256 runs at a fraction of AES-GCM's speed: ``bench/archive_vault.py``), and the GCM tag
already authenticates every byte.  A ``get`` unwraps the data key (one token call), checks the tag, and checks the
plaintext's SHA-256 against the id; any mismatch is :class:`BlobCorrupt`, never wrong bytes.  No unwrapped key
outlives the call that used it: one unwrap costs ~0.3-0.4 ms on SoftHSM (``bench/archive_vault.py``), about half of a
64 KiB get, a fifth of a 1 MiB one and 1% of a 16 MiB one.  Part of it is the token's search for the KEK on every
call; caching that handle in hsm/ would save time without keeping data keys in server memory.

Tables (``store.migrate("archive", MIGRATIONS)``):

* ``archive_objects`` (org, sha256) -> content file name, size, format version, created_at and the *wrapped*
  data key with its KEK label, KEK version and wrapping mechanism; ``shredded_at`` once crypto-shredded (then
  the four key columns are NULL).
* ``archive_keks``: every KEK version (label, created_at, retired_at).  The highest version is current: new
  objects are wrapped under it.
* ``archive_policies``: per organisation, ``retention_days`` (NULL: kept forever) and ``legal_hold``.

Put order: the content file is durable first, then the key row commits.  A crash between leaves an orphan
content file (:meth:`Archive.orphans` lists them), never a key row without content.  A put of an id the
organisation has already is a no-op; of an id it shredded, :class:`BlobShredded`.

KEK rotation (:meth:`Archive.rotate_kek`): a new KEK is generated on the token and recorded as the next
version, then every data key is unwrapped with its old KEK and wrapped with the new one, a batch per
transaction, with progress.  Content files are never touched.  Once no key row refers to an older KEK, the older
versions are marked retired and may be destroyed on the token (hsm has no call for destroying a secret key yet).
Calling it again with the same label resumes an interrupted rotation.

Crypto-shredding (:meth:`Archive.shred_expired`): for each organisation with a retention period and no legal
hold, the wrapped keys of objects stored (``created_at``, the archive clock at put) longer ago than the
period are erased, under the policy as it is at shredding time; the content file stays, unreadable.  The
returned list is for the caller's audit tombstones.  A copy of the store made earlier (a backup; free pages or
WAL frames the database has not overwritten yet) may still hold a shredded wrapped key: the shred is final
against those only once the KEK that wrapped it is rotated away and destroyed.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hsm.errors import KeyExists, KeyNotFound, WrapError
from hsm.wrap import WrappedKey
from signet.durable import fsync_dir, open_atomic

from ..blobs import PUBLISH_TRIES, BlobCorrupt, BlobMissing, FileBlobStore, sha256_hex
from ..clock import Clock, SystemClock, from_text, to_text
from ..errors import InvalidArgument
from ..keys import ARCHIVE_KEK_LABEL
from ..store import IntegrityError, Row, Store

if TYPE_CHECKING:
    from hsm import Token

log = logging.getLogger(__name__)

MAGIC = b"SGNA"
FORMAT_VERSION = 1
ALG_AES256_GCM = 1
NONCE_LEN = 12
HEADER = struct.Struct(">4sBBH12s")  # magic, version, algorithm, reserved, nonce: 20 bytes
ROTATION_BATCH = 500
_ID = re.compile(r"^[0-9a-f]{64}$")


class BlobShredded(BlobMissing):
    """The object's data key was destroyed when its retention ended: the bytes cannot be recovered."""

    reason = "BLOB_SHREDDED"


def _v1(store: Store) -> None:
    store.execute(
        "CREATE TABLE archive_objects (org TEXT NOT NULL, sha256 TEXT NOT NULL, content TEXT NOT NULL,"
        " size INTEGER NOT NULL, format INTEGER NOT NULL, created_at TEXT NOT NULL,"
        " kek_label TEXT, kek_version INTEGER, mechanism TEXT, wrapped_key BLOB, shredded_at TEXT,"
        " PRIMARY KEY (org, sha256))"
    )
    store.execute("CREATE INDEX archive_objects_kek ON archive_objects (kek_version)")
    store.execute("CREATE INDEX archive_objects_created ON archive_objects (org, created_at)")
    store.execute("CREATE TABLE archive_keks (version INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE,"
                  " created_at TEXT NOT NULL, retired_at TEXT)")
    store.execute("CREATE TABLE archive_policies (org TEXT PRIMARY KEY, retention_days INTEGER,"
                  " legal_hold INTEGER NOT NULL, updated_at TEXT NOT NULL)")


MIGRATIONS = [_v1]


@dataclass(frozen=True)
class Kek:
    version: int
    label: str


@dataclass(frozen=True)
class Shredded:
    """One crypto-shredded object, for the caller's audit tombstone."""

    org: str
    sha256: str
    size: int
    created_at: datetime
    retention_days: int
    shredded_at: datetime


@dataclass(frozen=True)
class Rotation:
    label: str
    version: int
    rewrapped: int
    retired: tuple[str, ...]  # labels of the KEKs no key row refers to any more (safe to destroy on the token)


@dataclass(frozen=True)
class Policy:
    org: str
    retention_days: int | None
    legal_hold: bool


def header(nonce: bytes) -> bytes:
    return HEADER.pack(MAGIC, FORMAT_VERSION, ALG_AES256_GCM, 0, nonce)


def aad(head: bytes, org: str, sha256: str) -> bytes:
    o = org.encode("utf-8")
    return head[:8] + struct.pack(">H", len(o)) + o + bytes.fromhex(sha256)


def seal(data_key: bytes, org: str, sha256: str, data: bytes, nonce: bytes | None = None) -> tuple[bytes, bytes]:
    """(header, ciphertext+tag) of ``data``, object ``sha256`` of ``org``, under ``data_key``."""
    head = header(nonce if nonce is not None else os.urandom(NONCE_LEN))
    return head, AESGCM(data_key).encrypt(head[8:], data, aad(head, org, sha256))


def open_sealed(data_key: bytes, org: str, sha256: str, blob: bytes) -> bytes:
    """The plaintext of a content file, authenticated and checked against ``sha256``; BlobCorrupt otherwise."""
    if len(blob) < HEADER.size + 16:
        raise BlobCorrupt(f"archived object {sha256} is damaged: its content file is truncated")
    magic, version, alg, _, nonce = HEADER.unpack_from(blob)
    if magic != MAGIC or version != FORMAT_VERSION or alg != ALG_AES256_GCM:
        raise BlobCorrupt(f"archived object {sha256} is damaged: unknown content file header")
    head = blob[:HEADER.size]
    try:
        data = AESGCM(data_key).decrypt(nonce, memoryview(blob)[HEADER.size:], aad(head, org, sha256))
    except InvalidTag:
        raise BlobCorrupt(f"archived object {sha256} failed authentication: its content file was damaged, or "
                          "belongs to another object or organisation") from None
    if sha256_hex(data) != sha256:  # authenticated under this id, so only a bug gets here; never hand it out
        raise BlobCorrupt(f"archived object {sha256} decrypted to bytes with another SHA-256")
    return data


class _ContentFiles(FileBlobStore):
    """Randomly named write-once files, in FileBlobStore's layout, with its sweep of temp files left by a crash."""

    def write(self, head: bytes, body: bytes) -> str:
        name = secrets.token_hex(32)
        path = self._path(name)
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fsync_dir(self.directory)
        for attempt in range(PUBLISH_TRIES):
            try:
                with open_atomic(path, 0o600, overwrite=False) as f:  # two writes: no joined copy of a large body
                    f.write(head)
                    f.write(body)
            except FileNotFoundError:  # a replica's start-up sweep took the temp file: write it again
                if attempt + 1 == PUBLISH_TRIES:
                    raise
                continue
            return name
        raise AssertionError("unreachable")

    def read(self, name: str, sha256: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(f"archived object {sha256}: its content file {name} is missing") from None

    def names(self) -> list[str]:
        return [p.name for p in self.directory.glob("[0-9a-f][0-9a-f]/*") if not p.name.startswith(".")]

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


class Archive:
    """Encrypted, write-once object storage on one token and one store; thread-safe."""

    def __init__(self, token: Token, store: Store, directory: str | os.PathLike[str], *,
                 kek_label: str = ARCHIVE_KEK_LABEL, clock: Clock | None = None) -> None:
        """``kek_label``: the KEK recorded as version 1 when the archive is new (``signet-server init`` made it)."""
        self._token = token
        self._store = store
        self._clock: Clock = clock or SystemClock()
        self._files = _ContentFiles(directory)
        store.migrate("archive", MIGRATIONS)
        with store.transaction():
            if store.query_one("SELECT version FROM archive_keks") is None:
                store.insert("archive_keks", {"version": 1, "label": kek_label, "created_at": self._now()})

    @property
    def directory(self) -> Path:
        return self._files.directory

    def blobs(self, org: str) -> EncryptedBlobStore:
        return EncryptedBlobStore(self, org)

    def _now(self) -> str:
        return to_text(self._clock.now())

    def current_kek(self) -> Kek:
        row = self._store.query_one("SELECT version, label FROM archive_keks ORDER BY version DESC LIMIT 1")
        if row is None:
            raise AssertionError("the archive has no KEK row (created in __init__)")
        return Kek(int(row["version"]), str(row["label"]))

    def _row(self, org: str, sha256: str) -> Row | None:
        return self._store.query_one("SELECT * FROM archive_objects WHERE org = ? AND sha256 = ?", (org, sha256))

    # -- objects ------------------------------------------------------------
    def put(self, org: str, data: bytes) -> str:
        sha = sha256_hex(data)
        if (row := self._row(org, sha)) is not None:
            return self._already(row)
        data_key = AESGCM.generate_key(256)
        kek = self.current_kek()
        wrapped = self._token.wrap_key(kek.label, data_key)  # before the file: a token failure leaves no orphan
        head, body = seal(data_key, org, sha, data)
        name = self._files.write(head, body)  # durable before the row that refers to it
        while True:
            try:
                with self._store.transaction():
                    if (row := self._row(org, sha)) is None:
                        current = self.current_kek()
                        if current == kek:
                            self._store.insert("archive_objects", {
                                "org": org, "sha256": sha, "content": name, "size": len(data),
                                "format": FORMAT_VERSION, "created_at": self._now(), "kek_label": wrapped.kek_label,
                                "kek_version": kek.version, "mechanism": wrapped.mechanism,
                                "wrapped_key": wrapped.wrapped, "shredded_at": None})
                            return sha
            except IntegrityError:  # a store without serialised writers: the concurrent insert won
                row = self._row(org, sha)
                if row is None:
                    raise
            if row is not None:  # a concurrent put of the same bytes committed first
                self._files.remove(name)  # never referenced: only this call knew its name
                return self._already(row)
            # a rotation began after the wrap: a row under the old KEK now could outlive it; wrap again
            kek, wrapped = current, self._token.wrap_key(current.label, data_key)

    @staticmethod
    def _already(row: Row) -> str:
        if row["shredded_at"] is not None:
            raise BlobShredded(f"archived object {row['sha256']} of {row['org']!r} was crypto-shredded at "
                               f"{row['shredded_at']}; it cannot be stored again under the same id")
        return str(row["sha256"])

    def get(self, org: str, sha256: str) -> bytes:
        if not _ID.match(sha256):
            raise ValueError("an object id is 64 lowercase hex digits")
        row = self._row(org, sha256)
        if row is None:
            raise BlobMissing(f"archived object {sha256} is not in the archive of {org!r}")
        for attempt in range(2):
            if row["shredded_at"] is not None:
                raise BlobShredded(f"archived object {sha256} of {org!r} was crypto-shredded at {row['shredded_at']}"
                                   " when its retention ended; it cannot be recovered")
            blob = self._files.read(str(row["content"]), sha256)
            wk = WrappedKey(str(row["kek_label"]), str(row["mechanism"]), bytes(row["wrapped_key"]))
            try:
                data_key = self._token.unwrap_key(wk)
            except (WrapError, KeyNotFound) as e:
                fresh = self._row(org, sha256)
                if attempt == 0 and fresh is not None and fresh["kek_version"] != row["kek_version"]:
                    row = fresh  # re-wrapped by a rotation meanwhile (the old KEK may be gone): read again
                    continue
                if isinstance(e, KeyNotFound):
                    raise  # the KEK is not on this token: a configuration problem, not a damaged object
                raise BlobCorrupt(f"archived object {sha256}: its wrapped data key does not unwrap under "
                                  f"{wk.kek_label!r} (damaged key row)") from None
            return open_sealed(data_key, org, sha256, blob)
        raise AssertionError("unreachable")

    def exists(self, org: str, sha256: str) -> bool:
        """True when the object is stored and readable (False once shredded)."""
        row = self._row(org, sha256)
        return row is not None and row["shredded_at"] is None

    def orphans(self) -> list[str]:
        """Content files no key row refers to: left by a crash between the file and the row, or by a put racing
        another put of the same bytes that died before removing its file.  Only safe to delete while no put runs."""
        referenced = {str(r["content"]) for r in self._store.query("SELECT content FROM archive_objects")}
        return sorted(n for n in self._files.names() if n not in referenced)

    # -- KEK rotation -------------------------------------------------------
    def rotate_kek(self, new_label: str, *, batch: int = ROTATION_BATCH,
                   progress: Callable[[int, int], None] | None = None) -> Rotation:
        """Generate KEK ``new_label`` on the token, make it current and re-wrap every data key under it.

        ``progress(done, total)`` after each batch.  Content files are not touched.  Resumable: calling it again
        with the label of an unfinished rotation continues it (no new key is generated).  A crash between generating
        the key and recording it leaves a KEK the archive does not know: KeyExists; rotate to another label.
        """
        known = self._store.query_one("SELECT version FROM archive_keks WHERE label = ?", (new_label,))
        if known is None:
            self._token.generate_kek(new_label)  # KeyExists: the label is taken on the token
            with self._store.transaction():
                version = self.current_kek().version + 1
                self._store.insert("archive_keks", {"version": version, "label": new_label,
                                                    "created_at": self._now()})
            log.info("archive: KEK %s (version %d) created; re-wrapping data keys", new_label, version)
        elif int(known["version"]) != self.current_kek().version:
            raise KeyExists(f"KEK {new_label!r} is an earlier archive KEK; rotate to a new label")
        new = self.current_kek()
        total = self._count_stale(new)
        done = 0
        retired: list[str] | None = None
        while retired is None:
            rows = self._store.query(
                "SELECT org, sha256, kek_label, mechanism, wrapped_key FROM archive_objects"
                " WHERE wrapped_key IS NOT NULL AND kek_version <> ? ORDER BY org, sha256 LIMIT ?",
                (new.version, batch))
            if rows:
                done += self._rewrap(new, rows)
                if progress is not None:
                    progress(done, max(total, done))
                continue
            with self._store.transaction():
                if self._count_stale(new):  # a put committed under the old KEK after the last batch: go on
                    continue
                retired = [str(r["label"]) for r in self._store.query(
                    "SELECT label FROM archive_keks WHERE version < ? AND retired_at IS NULL", (new.version,))]
                self._store.execute("UPDATE archive_keks SET retired_at = ? WHERE version < ? AND retired_at IS NULL",
                                    (self._now(), new.version))
        log.info("archive: %d data key(s) re-wrapped under %s (version %d); retired %s",
                 done, new.label, new.version, ", ".join(retired) or "none")
        return Rotation(new.label, new.version, done, tuple(retired))

    def _rewrap(self, new: Kek, rows: list[Row]) -> int:
        fresh = []
        for r in rows:  # token calls outside the transaction: writers wait only for the UPDATEs
            key = self._token.unwrap_key(WrappedKey(str(r["kek_label"]), str(r["mechanism"]), bytes(r["wrapped_key"])))
            fresh.append((r, self._token.wrap_key(new.label, key)))
        n = 0
        with self._store.transaction():
            for r, wk in fresh:  # only if unchanged meanwhile: a shred in between stays shredded
                n += self._store.execute(
                    "UPDATE archive_objects SET kek_label = ?, kek_version = ?, mechanism = ?, wrapped_key = ?"
                    " WHERE org = ? AND sha256 = ? AND wrapped_key = ?",
                    (wk.kek_label, new.version, wk.mechanism, wk.wrapped, r["org"], r["sha256"], r["wrapped_key"]))
        return n

    def _count_stale(self, new: Kek) -> int:
        row = self._store.query_one("SELECT COUNT(*) AS n FROM archive_objects WHERE wrapped_key IS NOT NULL"
                                    " AND kek_version <> ?", (new.version,))
        return int(row["n"]) if row is not None else 0

    def keks(self) -> list[Row]:
        return self._store.query("SELECT version, label, created_at, retired_at FROM archive_keks ORDER BY version")

    # -- retention, legal hold, shredding ------------------------------------
    def set_policy(self, org: str, *, retention_days: int | None, legal_hold: bool = False) -> Policy:
        if retention_days is not None and retention_days < 0:
            raise InvalidArgument("retention_days must be 0 or more (or None: keep forever)")
        self._store.execute(
            "INSERT INTO archive_policies (org, retention_days, legal_hold, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(org) DO UPDATE SET retention_days = excluded.retention_days,"
            " legal_hold = excluded.legal_hold, updated_at = excluded.updated_at",
            (org, retention_days, int(legal_hold), self._now()))
        return Policy(org, retention_days, legal_hold)

    def set_legal_hold(self, org: str, hold: bool) -> Policy:
        p = self.policy(org)
        return self.set_policy(org, retention_days=p.retention_days, legal_hold=hold)

    def policy(self, org: str) -> Policy:
        row = self._store.query_one("SELECT * FROM archive_policies WHERE org = ?", (org,))
        if row is None:
            return Policy(org, None, False)
        days = row["retention_days"]
        return Policy(org, None if days is None else int(days), bool(row["legal_hold"]))

    def shred_expired(self, now: datetime, tombstone: Callable[[Shredded], None] | None = None) -> list[Shredded]:
        """Destroy the wrapped data keys of every object whose organisation's retention ended by ``now`` and
        that is not under legal hold; returns what was shredded.  ``tombstone(s)`` runs for each one inside the
        transaction that shreds it (the audit log's tombstone commits with the shredding, or neither does)."""
        out: list[Shredded] = []
        when = to_text(now)
        orgs = self._store.query("SELECT org FROM archive_policies WHERE retention_days IS NOT NULL AND legal_hold = 0")
        for o in orgs:
            with self._store.transaction():  # the policy read again inside: a hold set meanwhile wins
                p = self.policy(str(o["org"]))
                if p.retention_days is None or p.legal_hold:
                    continue
                cutoff = to_text(now - timedelta(days=p.retention_days))
                rows = self._store.query(
                    "SELECT sha256, size, created_at FROM archive_objects WHERE org = ? AND wrapped_key IS NOT NULL"
                    " AND created_at <= ? ORDER BY created_at", (p.org, cutoff))
                self._store.execute(
                    "UPDATE archive_objects SET wrapped_key = NULL, kek_label = NULL, kek_version = NULL,"
                    " mechanism = NULL, shredded_at = ? WHERE org = ? AND wrapped_key IS NOT NULL AND created_at <= ?",
                    (when, p.org, cutoff))
                done = [Shredded(p.org, str(r["sha256"]), int(r["size"]), from_text(str(r["created_at"])),
                                 p.retention_days, now) for r in rows]
                for s in done:
                    if tombstone is not None:
                        tombstone(s)
                out.extend(done)
        if out:
            log.info("archive: crypto-shredded %d object(s) whose retention ended", len(out))
        return out


class EncryptedBlobStore:
    """:class:`server.blobs.BlobStore` over an :class:`Archive` for one organisation (``org=`` overrides per call)."""

    def __init__(self, archive: Archive, org: str) -> None:
        if not org:
            raise ValueError("an archive blob store needs an organisation")
        self.archive = archive
        self.org = org

    def put(self, data: bytes, *, org: str = "") -> str:
        return self.archive.put(org or self.org, data)

    def get(self, sha256: str, *, org: str = "") -> bytes:
        return self.archive.get(org or self.org, sha256)

    def exists(self, sha256: str, *, org: str = "") -> bool:
        return self.archive.exists(org or self.org, sha256)


__all__ = ["MIGRATIONS", "Archive", "BlobShredded", "EncryptedBlobStore", "Kek", "Policy", "Rotation", "Shredded",
           "aad", "header", "open_sealed", "seal"]
