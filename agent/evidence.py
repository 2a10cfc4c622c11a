"""Offline verification of an evidence bundle (``signet-evidence-1``): `signet verify-evidence BUNDLE --trust ROOT`.

An evidence bundle is the zip an operator exports for a dispute (``server/seal/evidence.py`` writes it).  This
module checks all of it with nothing but the bundle and the Signet signing root given as the trust anchor:
nothing is fetched from the network, nothing in the bundle is trusted because it is in the bundle
(``certs/signing-root.pem`` is informational only).  :func:`verify_bundle` returns an :class:`EvidenceReport`: a
list of :class:`Check` (name, ok, detail, and for a failure what it *breaks*, in plain words), in this order:

``archive``
    The zip is readable within limits: at most :data:`MAX_ENTRIES` entries, :data:`MAX_TOTAL` bytes
    uncompressed in all and :data:`MAX_ENTRY` per entry, stored or deflated, not encrypted, names relative
    without ``..``, no duplicates.  Entries are read streaming with a cap, so a zip bomb or a lying header is a
    failed check, never an exception or a memory blow-up.  Nothing else can be checked when this fails.
``manifest-signature``
    ``manifest.p7s`` is a detached CMS signature over the exact bytes of ``manifest.json`` by a certificate that
    chains to a trust root and carries the platform seal policy (:data:`SEAL_POLICY`).  Revocation is not
    checked here (offline; the seal certificate's revocation data is in the sealed PDFs, checked below).
``manifest``
    ``manifest.json`` is a ``signet-evidence-1`` manifest (only reported when it is not).
``files``
    Every entry the manifest lists is present with its SHA-256 and size; any other entry (besides
    ``manifest.json`` and ``manifest.p7s``) is reported as added.
``audit-head``
    ``audit/head.json`` equals the manifest's ``audit``; its signature (over
    :func:`signet.auditformat.head_message`) verifies with the first certificate of ``certs/audit.pem``, whose
    SubjectPublicKeyInfo's SHA-256 is the head's ``spki_sha256`` and which chains to a trust root.
``audit-leaves``
    Each leaf of ``audit/leaves.jsonl``: its hash recomputed from its fields equals ``leaf_hash``, its subject is
    the envelope, and its RFC 9162 inclusion proof leads to the head's root (so ``seq < tree_size``).
``events``
    ``events.jsonl`` and the leaves agree: every event has its leaf (kind ``envelope.<type>``, subject the
    envelope, payload ``{event_id, actor, detail}``) and every ``envelope.*`` leaf has its event.
``pdf:<entry>``
    Each sealed PDF (the documents and ``certificate-of-completion.pdf``): pyHanko's PAdES LTA validation
    (ETSI EN 319 102-1) under the trust roots alone, revocation information required and taken from the
    document's DSS only (online fetching disabled), every signature ``PASSED/OK``; the seal signature
    present; the newest document timestamp covers the whole file; the file's SHA-256 is the manifest's
    ``sealed_sha256``.
``cades:<entry>``
    Each other document: every detached CAdES signature in ``<entry>.p7s.json`` verifies over the file and
    chains to a trust root; it carries an RFC 5652 countersignature whose signed message digest is the hash of
    the party's signature value and whose signature verifies with a seal certificate from the CMS (chaining to
    a trust root), itself with a signature timestamp whose imprint is the hash of the countersignature's value.

The bundle is good only when every check passes (:attr:`EvidenceReport.ok`).  :func:`read_bundle`,
:func:`parse_manifest`, :func:`parse_head`, :func:`parse_leaves` and :func:`parse_events` raise only
:class:`EvidenceError` on hostile input; :func:`verify_bundle` never raises on a bad bundle.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import json
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from signet import merkle
from signet.auditformat import (
    AuditError,
    _ms,
    canonical_json,
    event_leaf_payload,
    head_message,
    leaf_bytes,
    parse_time,
)
from signet.pubkeys import signature_ok

FORMAT = "signet-evidence-1"
CADES_SET_FORMAT = "signet-cades-set-1"
MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.p7s"
HEAD = "audit/head.json"
LEAVES = "audit/leaves.jsonl"
EVENTS = "events.jsonl"
AUDIT_CERTS = "certs/audit.pem"
CERTIFICATE = "certificate-of-completion.pdf"
SEAL_FIELD = "signet-seal"
SEAL_POLICY = "1.3.6.1.4.1.59541.1.3"  # formats.policy.DEFAULT_SEAL_POLICY (the CLI must not import formats)

MAX_ENTRIES = 10_000
MAX_TOTAL = 512 << 20  # uncompressed bytes, all entries together
MAX_ENTRY = 256 << 20  # uncompressed bytes of one entry
MAX_ARCHIVE = MAX_TOTAL + (64 << 20)  # the zip file itself (bounds the central directory's parse)
MAX_NAME = 1024
MAX_PROOF = 64  # hashes in an inclusion proof (a tree of 2^64 leaves needs 64)
MAX_SIGNATURE = 16 << 10  # bytes of a tree head's signature
HASH_NAMES = ("sha256", "sha384", "sha512")
_CHUNK = 1 << 16
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError,
               ValueError, OverflowError, zlib.error, struct.error, KeyError, IndexError, TypeError)


class EvidenceError(ValueError):
    """A bundle, or a part of one, that is not what the ``signet-evidence-1`` format says (hostile input)."""


# --- the report ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One check: ``breaks`` says, for a failure, what can no longer be relied on (empty when ``ok``)."""

    name: str
    ok: bool
    detail: str
    breaks: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "breaks": self.breaks}


@dataclass(frozen=True)
class EvidenceReport:
    checks: tuple[Check, ...]
    envelope_id: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "envelope_id": self.envelope_id, "checks": [c.to_dict() for c in self.checks]}


# --- reading the archive ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    entries: int = MAX_ENTRIES
    total: int = MAX_TOTAL
    entry: int = MAX_ENTRY
    archive: int = MAX_ARCHIVE


def _check_name(name: str) -> None:
    if not name or len(name) > MAX_NAME:
        raise EvidenceError(f"an entry name is empty or longer than {MAX_NAME} characters: {name[:80]!r}")
    if any(ord(c) < 0x20 or c in "\\\x7f" for c in name):
        raise EvidenceError(f"entry name {name[:80]!r} holds a control character or a backslash")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise EvidenceError(f"entry name {name[:80]!r} is absolute")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise EvidenceError(f"entry name {name[:80]!r} is not a plain relative path (empty part, . or ..)")


def _open(source: bytes | bytearray | memoryview | str | os.PathLike[str], limit: int) -> IO[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if len(data) > limit:
            raise EvidenceError(f"the archive is larger than {limit} bytes")
        return io.BytesIO(data)
    try:
        f = open(source, "rb")  # closed by read_bundle
        try:
            size = os.fstat(f.fileno()).st_size
        except OSError:
            f.close()
            raise
    except OSError as e:
        raise EvidenceError(f"the bundle cannot be read ({type(e).__name__}: {e.strerror or e})") from None
    if size > limit:
        f.close()
        raise EvidenceError(f"the archive is larger than {limit} bytes")
    return f


def _read_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """The entry's bytes, read in chunks; never more than ``cap`` (the declared size, itself within limits)."""
    out = bytearray()
    with zf.open(info) as f:
        while True:
            chunk = f.read(min(_CHUNK, cap + 1 - len(out)))
            if not chunk:
                break
            out += chunk
            if len(out) > cap:
                raise EvidenceError(f"entry {info.filename} holds more than its declared {cap} bytes")
    if len(out) != info.file_size:
        raise EvidenceError(f"entry {info.filename} holds {len(out)} bytes, not its declared {info.file_size}")
    return bytes(out)


def _admit(info: zipfile.ZipInfo, seen: set[str], limits: Limits) -> bool:
    """Whether ``info`` is a file entry to read (False: an empty directory); :class:`EvidenceError` when it is
    not acceptable."""
    name = info.filename
    if name.endswith("/"):
        _check_name(name.rstrip("/") or "/")
        if info.file_size:
            raise EvidenceError(f"directory entry {name[:80]!r} has content")
        return False
    _check_name(name)
    if name in seen:
        raise EvidenceError(f"entry {name} appears twice in the archive")
    seen.add(name)
    if info.flag_bits & 0x1:
        raise EvidenceError(f"entry {name} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise EvidenceError(f"entry {name} uses compression method {info.compress_type} (stored or deflate only)")
    if info.file_size > limits.entry:
        raise EvidenceError(f"entry {name} is {info.file_size} bytes uncompressed; at most {limits.entry} per entry")
    return True


def read_bundle(source: bytes | bytearray | memoryview | str | os.PathLike[str],
                limits: Limits = Limits()) -> dict[str, bytes]:
    """Every file entry of the zip by name, in archive order, checked against ``limits`` (the module docstring);
    :class:`EvidenceError` for anything else.  Empty directory entries are skipped."""
    f = _open(source, limits.archive)
    try:
        try:
            zf = zipfile.ZipFile(f)
        except _ZIP_ERRORS as e:
            raise EvidenceError(f"not a readable zip archive ({type(e).__name__})") from None
        with zf:
            infos = zf.infolist()
            if len(infos) > limits.entries:
                raise EvidenceError(f"the archive has {len(infos)} entries; at most {limits.entries} are read")
            files: list[zipfile.ZipInfo] = []
            seen: set[str] = set()
            total = 0
            for info in infos:
                if _admit(info, seen, limits):
                    total += info.file_size
                    if total > limits.total:
                        raise EvidenceError(f"the entries add up to more than {limits.total} bytes uncompressed")
                    files.append(info)
            try:
                return {info.filename: _read_entry(zf, info, info.file_size) for info in files}
            except EvidenceError:
                raise
            except _ZIP_ERRORS as e:
                raise EvidenceError(f"an entry cannot be read ({type(e).__name__}: {str(e)[:200]})") from None
    finally:
        f.close()


# --- JSON parts ------------------------------------------------------------------------------------------------


def _no_constant(text: str) -> Any:
    raise EvidenceError(f"{text} is not JSON")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise EvidenceError(f"key {k[:80]!r} appears twice in one JSON object")
        out[k] = v
    return out


def _json(text: bytes | str, what: str) -> Any:
    try:
        s = text.decode("utf-8") if isinstance(text, bytes) else text
        return json.loads(s, parse_constant=_no_constant, object_pairs_hook=_pairs)
    except EvidenceError as e:
        raise EvidenceError(f"{what}: {e}") from None
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError, JSONDecodeError, too many digits
        raise EvidenceError(f"{what} is not JSON ({type(e).__name__})") from None


def _obj(value: object, what: str, keys: Sequence[str] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise EvidenceError(f"{what} is not a JSON object")
    missing = [k for k in keys if k not in value]
    if missing:
        raise EvidenceError(f"{what} has no {', '.join(missing)}")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise EvidenceError(f"{what} is not text")
    return value


def _int(value: object, what: str, maximum: int = (1 << 64) - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise EvidenceError(f"{what} is not an integer between 0 and {maximum}")
    return value


def _hex(value: object, what: str, size: int | None = None, maximum: int = MAX_SIGNATURE) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * maximum:
        raise EvidenceError(f"{what} is not hex text")
    try:
        b = bytes.fromhex(value)
    except ValueError:
        raise EvidenceError(f"{what} is not hex text") from None
    if size is not None and len(b) != size:
        raise EvidenceError(f"{what} is {len(b)} bytes, not {size}")
    return b


def _sha256_hex(value: object, what: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise EvidenceError(f"{what} is not a SHA-256 in lower-case hex")
    return value


def _lines(data: bytes, what: str) -> list[tuple[int, Any]]:
    """(line number, JSON value) of each non-empty line of a JSON-lines file."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise EvidenceError(f"{what} is not UTF-8") from None
    out: list[tuple[int, Any]] = []
    for n, line in enumerate(text.split("\n"), 1):
        if line.strip():
            out.append((n, _json(line, f"{what} line {n}")))
    return out


@dataclass(frozen=True)
class Document:
    id: str
    name: str
    media_type: str
    path: str
    original_sha256: str
    signed_sha256: str
    sealed_sha256: str

    @property
    def is_pdf(self) -> bool:
        return self.media_type == "application/pdf" or self.path.lower().endswith(".pdf")


@dataclass(frozen=True)
class Manifest:
    envelope_id: str
    organisation: str
    title: str
    created_at: str
    files: dict[str, tuple[str, int]]  # entry -> (sha256 hex, size)
    audit: dict[str, Any]
    documents: tuple[Document, ...]


def parse_manifest(data: bytes) -> Manifest:
    """``manifest.json`` (see the bundle format in README.md); :class:`EvidenceError` when it is not one."""
    m = _obj(_json(data, "manifest.json"), "manifest.json",
             ("format", "envelope_id", "organisation", "title", "created_at", "files", "audit", "documents"))
    if m["format"] != FORMAT:
        raise EvidenceError(f"manifest.json is not {FORMAT} (format {str(m['format'])[:80]!r})")
    files: dict[str, tuple[str, int]] = {}
    for name, entry in _obj(m["files"], "manifest files").items():
        _check_name(name)
        e = _obj(entry, f"manifest files[{name}]", ("sha256", "size"))
        files[name] = (_sha256_hex(e["sha256"], f"sha256 of {name}"), _int(e["size"], f"size of {name}"))
    if MANIFEST in files or MANIFEST_SIG in files:
        raise EvidenceError("the manifest lists itself or its signature")
    docs = m["documents"]
    if not isinstance(docs, list):
        raise EvidenceError("manifest documents is not a list")
    documents = []
    for i, d in enumerate(docs):
        o = _obj(d, f"manifest documents[{i}]",
                 ("id", "name", "media_type", "original_sha256", "signed_sha256", "sealed_sha256", "path"))
        path = _str(o["path"], f"documents[{i}].path")
        _check_name(path)
        documents.append(Document(
            _str(o["id"], f"documents[{i}].id"), _str(o["name"], f"documents[{i}].name"),
            _str(o["media_type"], f"documents[{i}].media_type"), path,
            _sha256_hex(o["original_sha256"], f"documents[{i}].original_sha256"),
            _sha256_hex(o["signed_sha256"], f"documents[{i}].signed_sha256"),
            _sha256_hex(o["sealed_sha256"], f"documents[{i}].sealed_sha256")))
    return Manifest(_str(m["envelope_id"], "envelope_id"), _str(m["organisation"], "organisation"),
                    _str(m["title"], "title"), _str(m["created_at"], "created_at"), files,
                    _obj(m["audit"], "manifest audit"), tuple(documents))


@dataclass(frozen=True)
class Head:
    """A signed tree head as :meth:`server.audit.log.TreeHead.to_dict` writes it."""

    tree_size: int
    timestamp: str
    root_hash: bytes
    signature: bytes
    hash_name: str
    key_id: str
    spki_sha256: str

    def message(self) -> bytes:
        try:
            return head_message(self.tree_size, _ms(parse_time(self.timestamp)), self.root_hash)
        except AuditError as e:
            raise EvidenceError(f"audit head: {e}") from None


HEAD_KEYS = ("tree_size", "root_hash", "timestamp", "signature", "hash_name", "key_id", "spki_sha256")


def parse_head(value: object) -> Head:
    """A tree head object (``audit/head.json``, the manifest's ``audit``); :class:`EvidenceError` otherwise."""
    o = _obj(value, "the audit head", HEAD_KEYS)
    hash_name = _str(o["hash_name"], "the audit head's hash_name")
    if hash_name not in HASH_NAMES:
        raise EvidenceError(f"the audit head's hash {hash_name[:40]!r} is not one of {', '.join(HASH_NAMES)}")
    timestamp = _str(o["timestamp"], "the audit head's timestamp")
    try:
        parse_time(timestamp)
    except AuditError as e:
        raise EvidenceError(f"the audit head's timestamp: {e}") from None
    return Head(_int(o["tree_size"], "the audit head's tree_size"), timestamp,
                _hex(o["root_hash"], "the audit head's root_hash", merkle.HASH_SIZE),
                _hex(o["signature"], "the audit head's signature"), hash_name,
                _str(o["key_id"], "the audit head's key_id"),
                _sha256_hex(o["spki_sha256"], "the audit head's spki_sha256"))


@dataclass(frozen=True)
class Leaf:
    seq: int
    time: str
    kind: str
    subject: str
    payload: dict[str, Any]
    leaf_hash: bytes
    proof: tuple[bytes, ...]

    def recomputed_hash(self) -> bytes:
        """SHA-256(0x00 || the leaf's canonical bytes) from its fields; :class:`EvidenceError` when they cannot
        be a leaf (a float, a time that is not the log's format, ...)."""
        try:
            parse_time(self.time)
            return merkle.leaf_hash(leaf_bytes(self.seq, self.time, self.kind, self.subject, self.payload))
        except AuditError as e:
            raise EvidenceError(f"leaf {self.seq}: {e}") from None
        except RecursionError:
            raise EvidenceError(f"leaf {self.seq}: its payload is nested too deeply") from None
        except UnicodeEncodeError:
            raise EvidenceError(f"leaf {self.seq}: text that is not valid Unicode") from None


def parse_leaf(value: object, what: str = "leaf") -> Leaf:
    o = _obj(value, what, ("seq", "time", "kind", "subject", "payload", "leaf_hash", "proof"))
    proof = o["proof"]
    if not isinstance(proof, list) or len(proof) > MAX_PROOF:
        raise EvidenceError(f"{what}: proof is not a list of at most {MAX_PROOF} hashes")
    return Leaf(_int(o["seq"], f"{what} seq"), _str(o["time"], f"{what} time"), _str(o["kind"], f"{what} kind"),
                _str(o["subject"], f"{what} subject"), _obj(o["payload"], f"{what} payload"),
                _hex(o["leaf_hash"], f"{what} leaf_hash", merkle.HASH_SIZE),
                tuple(_hex(p, f"{what} proof[{i}]", merkle.HASH_SIZE) for i, p in enumerate(proof)))


def parse_leaves(data: bytes) -> list[Leaf]:
    """``audit/leaves.jsonl``; :class:`EvidenceError` for a line that is not a leaf or a seq given twice."""
    leaves = [parse_leaf(v, f"{LEAVES} line {n}") for n, v in _lines(data, LEAVES)]
    seqs = [leaf.seq for leaf in leaves]
    if len(set(seqs)) != len(seqs):
        raise EvidenceError(f"{LEAVES} lists a leaf twice")
    return leaves


def check_leaf(leaf: Leaf, head: Head) -> None:
    """The leaf's fields hash to its ``leaf_hash`` and its proof leads to the head's root; :class:`EvidenceError`
    says which of the two fails."""
    if leaf.recomputed_hash() != leaf.leaf_hash:
        raise EvidenceError(f"audit leaf {leaf.seq} ({leaf.kind[:80]}) does not match its hash")
    try:
        merkle.verify_inclusion(leaf.leaf_hash, leaf.seq, head.tree_size, list(leaf.proof), head.root_hash)
    except merkle.MerkleError as e:
        raise EvidenceError(f"audit leaf {leaf.seq} ({leaf.kind[:80]}) is not in the signed tree: {e}") from None


@dataclass(frozen=True)
class Event:
    id: int  # the envelope event's id (events are numbered by the server, 1, 2, ...)
    type: str
    actor: Any
    at: str
    detail: Any

    def leaf_payloads(self) -> list[dict[str, Any]]:
        """The audit leaf payloads that record this event: the current form (free text as its SHA-256,
        :func:`signet.auditformat.event_leaf_payload`) and the form of servers before it (the detail verbatim)."""
        verbatim = {"event_id": self.id, "actor": self.actor, "detail": self.detail}
        if isinstance(self.detail, dict) and isinstance(self.actor, str):
            try:
                return [event_leaf_payload(self.type, self.id, self.actor, self.detail), verbatim]
            except AuditError:
                pass
        return [verbatim]


def parse_events(data: bytes) -> list[Event]:
    """``events.jsonl``: one ``{id, type, actor, at, detail}`` per line; :class:`EvidenceError` otherwise."""
    out = []
    for n, v in _lines(data, EVENTS):
        o = _obj(v, f"{EVENTS} line {n}", ("id", "type", "actor", "at", "detail"))
        out.append(Event(_int(o["id"], f"{EVENTS} line {n} id"), _str(o["type"], f"{EVENTS} line {n} type"),
                         o["actor"], _str(o["at"], f"{EVENTS} line {n} at"), o["detail"]))
    if len({e.id for e in out}) != len(out):
        raise EvidenceError(f"{EVENTS} lists an event id twice")
    return out


def _canonical(value: object) -> str | None:
    try:
        return canonical_json(value)
    except (AuditError, RecursionError, UnicodeEncodeError):
        return None


def pem_certificates(data: bytes, what: str) -> list[bytes]:
    """The DER certificates of PEM text (one or more CERTIFICATE blocks); :class:`EvidenceError` otherwise."""
    from asn1crypto import pem, x509

    try:
        blocks = list(pem.unarmor(data, multiple=True)) if pem.detect(data) else []
        if not blocks:
            raise EvidenceError(f"{what} holds no PEM certificate")
        out = []
        for kind, _, der in blocks:
            if kind != "CERTIFICATE":
                raise EvidenceError(f"{what} holds a {kind[:40]} block")
            x509.Certificate.load(der).native  # noqa: B018 - parses the whole certificate now
            out.append(der)
        return out
    except EvidenceError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as e:
        raise EvidenceError(f"{what} is not a certificate file ({type(e).__name__})") from None


# --- cryptographic helpers (pyHanko, pyhanko_certvalidator, asn1crypto) ----------------------------------------


def _offline_context(trust_roots: Sequence[bytes], others: Sequence[Any] = ()) -> Any:
    """A validation context with ``trust_roots`` as the only anchors; no fetching, revocation not checked."""
    from asn1crypto import x509
    from pyhanko_certvalidator import ValidationContext

    return ValidationContext(trust_roots=[x509.Certificate.load(r) for r in trust_roots], other_certs=list(others),
                             allow_fetching=False, revocation_mode="soft-fail")


async def _chain(cert: Any, others: Sequence[Any], trust_roots: Sequence[bytes]) -> str | None:
    """None when ``cert`` chains to a trust root (offline, revocation not checked), else why not."""
    from pyhanko_certvalidator import CertificateValidator
    from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError

    try:
        await CertificateValidator(cert, list(others), _offline_context(trust_roots)).async_validate_path()
    except (PathBuildingError, PathValidationError) as e:
        return str(e)[:300] or type(e).__name__
    return None


def _policies(cert: Any) -> set[str]:
    ext = cert.certificate_policies_value
    return {p["policy_identifier"].dotted for p in ext} if ext is not None else set()


def _subject(cert: Any) -> str:
    try:
        return str(cert.subject.human_friendly)
    except (ValueError, TypeError, KeyError):
        return "(unreadable subject)"


def _signed_data(der: bytes, what: str) -> Any:
    from asn1crypto import cms

    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].native != "signed_data":
        raise EvidenceError(f"{what} is not CMS SignedData")
    return info["content"]


def _certificates(sd: Any) -> list[Any]:
    certs = sd["certificates"]
    return [c.chosen for c in certs if c.name == "certificate"] if _present(certs) else []


def _present(value: Any) -> bool:
    """Whether an optional ASN.1 field is there (without ``.native``, which re-encodes a large structure)."""
    from asn1crypto import core

    return not isinstance(value, core.Void)


def _find_cert(sid: Any, certs: Sequence[Any]) -> Any | None:
    if sid.name == "issuer_and_serial_number":
        ias = sid.chosen
        return next((c for c in certs if c.issuer == ias["issuer"]
                     and c.serial_number == ias["serial_number"].native), None)
    return next((c for c in certs if c.key_identifier == sid.chosen.native), None)


_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def _digest(name: str, data: bytes) -> bytes:
    if name not in _HASHES:
        raise EvidenceError(f"digest algorithm {name[:40]} is not allowed (sha256, sha384, sha512)")
    return _HASHES[name](data).digest()


def _verify_raw(cert: Any, signature: bytes, data: bytes, hash_name: str) -> bool:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}.get(hash_name)
    try:
        key = load_der_public_key(cert.public_key.dump())
    except (ValueError, TypeError):
        return False
    return signature_ok(key, signature, data, algorithm)


async def _detached_cms(content: bytes, sd: Any, trust_roots: Sequence[bytes]) -> Any:
    """pyHanko's validation of a detached CMS signature, offline (its status object)."""
    from pyhanko.sign.validation.generic_cms import async_validate_detached_cms

    vc = _offline_context(trust_roots, _certificates(sd))
    return await async_validate_detached_cms(content, sd, signer_validation_context=vc)


# --- the checks ------------------------------------------------------------------------------------------------


class _Run:
    """One run of :func:`verify_bundle` over the entries read."""

    def __init__(self, entries: dict[str, bytes], trust_roots: Sequence[bytes], seal_policies: frozenset[str],
                 now: Any) -> None:
        self.entries = entries
        self.roots = list(trust_roots)
        self.seal_policies = seal_policies
        self.now = now
        self.checks: list[Check] = []
        self.manifest: Manifest | None = None

    def add(self, name: str, ok: bool, detail: str, breaks: str = "") -> None:
        self.checks.append(Check(name, ok, detail, "" if ok else breaks))

    def guarded(self, name: str, breaks: str, fn: Callable[[], Awaitable[None]]) -> Awaitable[None]:
        """``fn`` with any unexpected error (a malformed structure deep in a parser) turned into a failed check."""
        async def run() -> None:
            try:
                await fn()
            except EvidenceError as e:
                self.add(name, False, str(e), breaks)
            except Exception as e:  # noqa: BLE001 - hostile input may fail anywhere in a parser: a failed check
                self.add(name, False, f"cannot be checked ({type(e).__name__}: {str(e)[:200]})", breaks)

        return run()

    # 2
    async def manifest_signature(self) -> None:
        name, breaks = "manifest-signature", "the manifest signature is broken: no file in the bundle can be trusted"
        body, sig = self.entries.get(MANIFEST), self.entries.get(MANIFEST_SIG)
        if body is None or sig is None:
            missing = " and ".join(n for n, v in ((MANIFEST, body), (MANIFEST_SIG, sig)) if v is None)
            self.add(name, False, f"{missing} missing from the bundle", breaks)
            return
        sd = _signed_data(sig, MANIFEST_SIG)
        if _present(sd["encap_content_info"]["content"]):
            raise EvidenceError(f"{MANIFEST_SIG} is not a detached signature")
        if len(sd["signer_infos"]) != 1:
            raise EvidenceError(f"{MANIFEST_SIG} has {len(sd['signer_infos'])} signers, not one")
        status = await _detached_cms(body, sd, self.roots)
        cert = status.signing_cert
        who = _subject(cert) if cert is not None else "an unknown signer"
        if not (status.intact and status.valid):
            self.add(name, False, f"the signature by {who} does not verify over {MANIFEST}", breaks)
        elif not status.trusted:
            self.add(name, False, f"the signer {who} does not chain to a trusted root "
                     f"({status.trust_problem_indic})", breaks)
        elif not _policies(cert) & self.seal_policies:
            self.add(name, False, f"the signer {who} is not the platform seal (no seal policy "
                     f"{', '.join(sorted(self.seal_policies))})", breaks)
        else:
            self.add(name, True, f"signed by {who}, chained to the trust root (revocation not checked here: "
                                 "offline; the seal's revocation data is checked in the sealed PDFs)")

    # 3
    def files(self, m: Manifest) -> None:
        problems: list[str] = []
        breaks: list[str] = []
        for entry, (sha, size) in m.files.items():
            data = self.entries.get(entry)
            if data is None:
                problems.append(f"{entry} is missing")
                breaks.append(f"{entry} was removed after export: what it held cannot be shown")
            elif len(data) != size or hashlib.sha256(data).hexdigest() != sha:
                problems.append(f"{entry} has SHA-256 {hashlib.sha256(data).hexdigest()} and {len(data)} bytes, "
                                f"not {sha} and {size}")
                breaks.append(f"{entry} changed after export: {_meaning(entry)}")
        extra = [e for e in self.entries if e not in m.files and e not in (MANIFEST, MANIFEST_SIG)]
        for entry in extra:
            problems.append(f"{entry} is not in the manifest")
            breaks.append(f"{entry} was added after export: it is not part of the evidence")
        if problems:
            self.add("files", False, "; ".join(problems), "; ".join(breaks))
        else:
            self.add("files", True, f"all {len(m.files)} files listed in the manifest are present and unchanged")

    # 4
    async def audit_head(self, m: Manifest) -> Head | None:
        name = "audit-head"
        breaks = "the audit tree head is not authentic: no audit leaf or event in the bundle can be relied on"
        raw = self.entries.get(HEAD)
        if raw is None:
            self.add(name, False, f"{HEAD} is missing", breaks)
            return None
        head_obj = _json(raw, HEAD)
        head = parse_head(head_obj)
        if _canonical(head_obj) != _canonical(m.audit):
            self.add(name, False, f"{HEAD} differs from the manifest's audit head", breaks)
            return None
        pem_data = self.entries.get(AUDIT_CERTS)
        if pem_data is None:
            self.add(name, False, f"{AUDIT_CERTS} is missing: the head's signature cannot be checked", breaks)
            return None
        from asn1crypto import x509

        certs = [x509.Certificate.load(d) for d in pem_certificates(pem_data, AUDIT_CERTS)]
        cert = certs[0]
        if hashlib.sha256(cert.public_key.dump()).hexdigest() != head.spki_sha256:
            self.add(name, False, f"the head names key spki_sha256 {head.spki_sha256}, not the key of "
                                  f"{_subject(cert)} ({AUDIT_CERTS})", breaks)
            return None
        why = await _chain(cert, certs[1:], self.roots)
        if why is not None:
            self.add(name, False, f"the audit certificate {_subject(cert)} does not chain to a trusted root: {why}",
                     breaks)
            return None
        if not _verify_raw(cert, head.signature, head.message(), head.hash_name):
            self.add(name, False, f"the signature of the head at tree size {head.tree_size} does not verify with "
                                  f"{_subject(cert)}", breaks)
            return None
        self.add(name, True, f"tree size {head.tree_size} at {head.timestamp}, signed by {_subject(cert)} "
                             "(chained to the trust root; revocation not checked)")
        return head

    # 5
    def audit_leaves(self, m: Manifest, head: Head | None) -> list[Leaf] | None:
        name = "audit-leaves"
        raw = self.entries.get(LEAVES)
        if raw is None:
            self.add(name, False, f"{LEAVES} is missing", "the audit log of the envelope is missing")
            return None
        leaves = parse_leaves(raw)
        if head is None:
            self.add(name, False, f"{len(leaves)} leaves not checked: no authentic tree head",
                     "no audit leaf can be relied on without an authentic tree head")
            return leaves
        problems: list[str] = []
        breaks: list[str] = []
        for leaf in leaves:
            what = f"audit leaf {leaf.seq} ({leaf.kind[:80]})"
            try:
                if leaf.recomputed_hash() != leaf.leaf_hash:
                    problems.append(f"{what} does not match its hash")
                    breaks.append(f"{what} does not match its hash: the event log was altered")
                    continue
            except EvidenceError as e:
                problems.append(str(e))
                breaks.append(f"{what} cannot be a leaf of the log: the event log was altered")
                continue
            try:
                merkle.verify_inclusion(leaf.leaf_hash, leaf.seq, head.tree_size, list(leaf.proof), head.root_hash)
            except merkle.MerkleError as e:
                problems.append(f"{what} is not in the signed tree: {e}")
                breaks.append(f"{what} is not proven to be in the signed audit log: it may have been inserted or "
                              "its proof altered")
                continue
            if leaf.subject != m.envelope_id:
                problems.append(f"{what} is about {leaf.subject[:80]!r}, not envelope {m.envelope_id}")
                breaks.append(f"{what} belongs to another subject: the bundle mixes in foreign evidence")
        if problems:
            self.add(name, False, "; ".join(problems), "; ".join(breaks))
        else:
            self.add(name, True, f"{len(leaves)} leaves, each matching its hash and proven in the tree of size "
                                 f"{head.tree_size}")
        return leaves

    # 6
    def events(self, m: Manifest, leaves: list[Leaf] | None) -> None:
        name = "events"
        raw = self.entries.get(EVENTS)
        if raw is None:
            self.add(name, False, f"{EVENTS} is missing", "the envelope's event log is missing")
            return
        events = parse_events(raw)
        if leaves is None:
            self.add(name, False, f"{len(events)} events not compared: no audit leaves",
                     "no event can be shown to be in the audit log")
            return
        by_event: dict[int, Leaf] = {}
        problems: list[str] = []
        breaks: list[str] = []
        for leaf in leaves:
            if leaf.kind.startswith("envelope."):
                eid = leaf.payload.get("event_id")
                if isinstance(eid, bool) or not isinstance(eid, int) or eid in by_event:
                    problems.append(f"audit leaf {leaf.seq} ({leaf.kind[:80]}) names no event or one named before")
                    breaks.append(f"audit leaf {leaf.seq} cannot be matched to one event")
                    continue
                by_event[eid] = leaf
        for e in events:
            matched = by_event.pop(e.id, None)
            what = f"event {e.id} ({e.type[:80]})"
            if matched is None:
                problems.append(f"{what} has no audit leaf")
                breaks.append(f"{what} is not in the audit log: the event log was altered")
            elif (matched.kind != f"envelope.{e.type}" or matched.subject != m.envelope_id
                  or _canonical(matched.payload) is None
                  or _canonical(matched.payload) not in {_canonical(p) for p in e.leaf_payloads()}):
                problems.append(f"{what} differs from audit leaf {matched.seq} ({matched.kind[:80]})")
                breaks.append(f"{what} in {EVENTS} does not match the audit log: the event log was altered")
        for eid, leaf in by_event.items():
            problems.append(f"audit leaf {leaf.seq} ({leaf.kind[:80]}) names event {eid}, not in {EVENTS}")
            breaks.append(f"an event logged in the audit log (leaf {leaf.seq}) was removed from {EVENTS}")
        if problems:
            self.add(name, False, "; ".join(problems), "; ".join(breaks))
        else:
            self.add(name, True, f"{len(events)} events, each with its audit leaf, and no envelope leaf without "
                                 "its event")

    # 7
    async def pdf(self, entry: str, expected_sha256: str | None) -> None:
        name = f"pdf:{entry}"
        breaks = f"{entry} is not a valid sealed document: its signatures cannot be relied on"
        data = self.entries.get(entry)
        if data is None:
            self.add(name, False, f"{entry} is missing", f"{entry} is missing: its signatures cannot be shown")
            return
        problems, lines = await _validate_sealed_pdf(data, self.roots, self.seal_policies, self.now)
        if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
            problems.insert(0, f"SHA-256 {hashlib.sha256(data).hexdigest()} is not the manifest's sealed_sha256 "
                               f"{expected_sha256}")
        if problems:
            self.add(name, False, "; ".join(problems + lines), breaks)
        else:
            self.add(name, True, "; ".join(lines))

    # 8
    async def cades(self, doc: Document) -> None:
        entry = doc.path
        name = f"cades:{entry}"
        breaks = f"{entry} has no valid countersigned signature: who signed it cannot be shown"
        data, sigs = self.entries.get(entry), self.entries.get(entry + ".p7s.json")
        if data is None or sigs is None:
            self.add(name, False, f"{entry if data is None else entry + '.p7s.json'} is missing", breaks)
            return
        o = _obj(_json(sigs, f"{entry}.p7s.json"), f"{entry}.p7s.json", ("format", "signatures"))
        if o["format"] != CADES_SET_FORMAT or not isinstance(o["signatures"], list) or not o["signatures"]:
            raise EvidenceError(f"{entry}.p7s.json is not a {CADES_SET_FORMAT} with signatures")
        problems: list[str] = []
        lines: list[str] = []
        for i, b64 in enumerate(o["signatures"]):
            try:
                der = base64.b64decode(_str(b64, f"signature {i}"), validate=True)
            except (binascii.Error, ValueError):
                raise EvidenceError(f"{entry}.p7s.json signature {i} is not base64") from None
            p, line = await _validate_countersigned(data, der, self.roots, self.seal_policies)
            problems += [f"signature {i + 1}: {x}" for x in p]
            lines.append(f"signature {i + 1}: {line}")
        if hashlib.sha256(data).hexdigest() != doc.sealed_sha256:
            problems.insert(0, f"SHA-256 of {entry} is not the manifest's sealed_sha256 {doc.sealed_sha256}")
        if problems:
            self.add(name, False, "; ".join(problems + lines), breaks)
        else:
            self.add(name, True, "; ".join(lines))


def _meaning(entry: str) -> str:
    if entry.startswith("documents/") or entry == CERTIFICATE:
        return "its signatures cannot be relied on"
    if entry.startswith("audit/") or entry == EVENTS:
        return "the event log cannot be relied on"
    if entry.startswith("certs/"):
        return "the certificates shipped with the bundle cannot be relied on"
    return "it is not the file exported"


class _RefuseFetching:
    """A fetcher backend that refuses: validation here is offline, so anything that asks for it fails closed."""

    def get_fetchers(self) -> Any:
        raise EvidenceError("offline verification: nothing may be fetched")

    async def close(self) -> None:
        return None


def _pdf_spec(trust_roots: Sequence[bytes]) -> Any:
    from asn1crypto import x509
    from pyhanko.sign.validation.policy_decl import (
        CertificateFetchingRule,
        PdfSignatureValidationSpec,
        RevinfoOnlineFetchingRule,
        RevocationInfoGatheringSpec,
        SignatureValidationSpec,
    )
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.fetchers.api import FetcherBackend
    from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
    from pyhanko_certvalidator.registry import SimpleTrustManager

    class Refuse(_RefuseFetching, FetcherBackend):
        pass

    roots = [x509.Certificate.load(r) for r in trust_roots]
    return PdfSignatureValidationSpec(SignatureValidationSpec(
        cert_validation_policy=CertValidationPolicySpec(trust_manager=SimpleTrustManager.build(trust_roots=roots),
                                                        revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO)),
        revinfo_gathering_policy=RevocationInfoGatheringSpec(
            online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY,
            certificate_fetching_rule=CertificateFetchingRule.NEVER_FETCH,
            fetcher_backend=Refuse())))


async def _validate_sealed_pdf(data: bytes, trust_roots: Sequence[bytes], seal_policies: frozenset[str],
                               now: Any) -> tuple[list[str], list[str]]:
    """(problems, one line per signature) of pyHanko's PAdES LTA validation of a sealed PDF, offline."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.ades.report import AdESPassed
    from pyhanko.sign.validation import ades
    from pyhanko_certvalidator.ltv.types import ValidationTimingInfo

    reader = PdfFileReader(io.BytesIO(data), strict=False)
    spec = _pdf_spec(trust_roots)
    problems: list[str] = []
    lines: list[str] = []
    regular = list(reader.embedded_regular_signatures)
    stamps = list(reader.embedded_timestamp_signatures)
    timing = ValidationTimingInfo(now, now, False) if now is not None else None
    for sig in regular:
        res = await ades.ades_lta_validation(sig, spec, timing_info=timing)
        who = _subject(sig.signer_cert) if sig.signer_cert is not None else "unknown signer"
        verdict = res.ades_subindic
        line = f"{sig.field_name} by {who}: {getattr(verdict, 'name', verdict)}"
        lines.append(line)
        if verdict is not AdESPassed.OK:
            problems.append(f"signature {line}")
    seals = [s for s in regular if s.field_name.startswith(SEAL_FIELD)]
    if not regular:
        problems.append("no signature")
    if not seals:
        problems.append(f"no seal signature ({SEAL_FIELD})")
    for s in seals:
        if s.signer_cert is None or not _policies(s.signer_cert) & seal_policies:
            problems.append(f"{s.field_name} is not signed by the platform seal")
    if not stamps:
        problems.append("no document timestamp")
    else:
        last = max(stamps, key=lambda s: s.signed_revision)
        if any(s.signed_revision > last.signed_revision for s in regular):
            problems.append("a signature after the last document timestamp")
        lines.append(f"document timestamp{'s' if len(stamps) > 1 else ''}: {len(stamps)}")
    return problems, lines


async def _validate_countersigned(content: bytes, der: bytes, trust_roots: Sequence[bytes],
                                  seal_policies: frozenset[str]) -> tuple[list[str], str]:
    """(problems, summary) of one party's countersigned detached CAdES signature of ``content``."""
    sd = _signed_data(der, "a CAdES signature")
    if _present(sd["encap_content_info"]["content"]):
        return ["not a detached signature"], "-"
    status = await _detached_cms(content, sd, trust_roots)
    party = status.signing_cert
    who = _subject(party) if party is not None else "unknown signer"
    problems: list[str] = []
    if not (status.intact and status.valid):
        problems.append(f"the signature by {who} does not verify over the file")
    elif not status.trusted:
        problems.append(f"the signer {who} does not chain to a trusted root ({status.trust_problem_indic})")
    certs = _certificates(sd)
    seal_who = "-"
    for si in sd["signer_infos"]:
        unsigned = si["unsigned_attrs"]
        counters = [v for a in (unsigned if _present(unsigned) else [])
                    if a["type"].native == "counter_signature" for v in a["values"]]
        if not counters:
            problems.append(f"the signature by {who} has no platform countersignature")
            continue
        for counter in counters:
            seal_who, p = await _check_countersignature(si, counter, certs, trust_roots, seal_policies)
            problems += p
    return problems, f"{who}; countersigned by {seal_who}" + ("" if problems else ", timestamped")


async def _check_countersignature(si: Any, counter: Any, certs: Sequence[Any], trust_roots: Sequence[bytes],
                                  seal_policies: frozenset[str]) -> tuple[str, list[str]]:
    """(the countersigner, problems) of one RFC 5652 countersignature of the party's SignerInfo ``si``."""
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko.sign.validation.status import TimestampSignatureStatus

    problems: list[str] = []
    signed = counter["signed_attrs"]
    if not _present(signed):
        return "-", ["a countersignature without signed attributes"]
    digest_name = counter["digest_algorithm"]["algorithm"].native
    digests = [a["values"][0].native for a in signed if a["type"].native == "message_digest"]
    if len(digests) != 1 or digests[0] != _digest(digest_name, si["signature"].native):
        problems.append("the countersignature's message digest is not the hash of the party's signature value")
    cert = _find_cert(counter["sid"], certs)
    if cert is None:
        return "-", [*problems, "the countersignature's certificate is not in the CMS"]
    who = _subject(cert)
    if not _verify_raw(cert, counter["signature"].native, signed.untag().dump(), digest_name):
        problems.append(f"the countersignature does not verify with {who}")
    why = await _chain(cert, certs, trust_roots)
    if why is not None:
        problems.append(f"the countersigner {who} does not chain to a trusted root: {why}")
    if not _policies(cert) & seal_policies:
        problems.append(f"the countersigner {who} is not the platform seal")
    unsigned = counter["unsigned_attrs"]
    tokens = [v for a in (unsigned if _present(unsigned) else [])
              if a["type"].native == "signature_time_stamp_token" for v in a["values"]]
    if len(tokens) != 1:
        return who, [*problems, "the countersignature has no signature timestamp"]
    token = tokens[0]
    if token["content_type"].native != "signed_data":
        return who, [*problems, "the countersignature's timestamp is not a timestamp token"]
    value = counter["signature"].native
    tst = token["content"]
    kwargs = await validate_tst_signed_data(tst, _offline_context(trust_roots, _certificates(tst)),
                                            lambda algo: _digest(algo, value))
    ts = TimestampSignatureStatus(**kwargs)
    if not ts.intact:
        problems.append("the countersignature's timestamp is not over its signature value (or is damaged)")
    elif not (ts.valid and ts.trusted):
        problems.append("the countersignature's timestamp does not verify under the trust root")
    return who, problems


# --- entry point -----------------------------------------------------------------------------------------------


def verify_bundle(source: bytes | bytearray | memoryview | str | os.PathLike[str], trust_roots: Sequence[bytes], *,
                  seal_policies: Sequence[str] = (SEAL_POLICY,), limits: Limits = Limits(),
                  now: Any = None) -> EvidenceReport:
    """Check an evidence bundle (a path or its bytes) offline under ``trust_roots`` (DER certificates): the
    checks of the module docstring, in order.  Never raises for a bad bundle: a failed check says what is wrong.
    ``now`` (an aware datetime) is the validation time of the PDFs (default: now)."""
    if not trust_roots:
        raise ValueError("at least one trust root is needed")
    try:
        entries = read_bundle(source, limits)
    except EvidenceError as e:
        return EvidenceReport((Check("archive", False, str(e), "the bundle cannot be read: nothing in it can be "
                                     "checked"),))
    run = _Run(entries, trust_roots, frozenset(seal_policies), now)
    run.add("archive", True, f"{len(entries)} entries within limits ({MAX_ENTRIES} entries, {MAX_TOTAL >> 20} MiB "
                             f"uncompressed, {MAX_ENTRY >> 20} MiB each)")
    return asyncio.run(_verify(run))


async def _verify(run: _Run) -> EvidenceReport:
    await run.guarded("manifest-signature",
                      "the manifest signature is broken: no file in the bundle can be trusted",
                      run.manifest_signature)
    try:
        m = parse_manifest(run.entries.get(MANIFEST, b""))
    except EvidenceError as e:
        run.add("manifest", False, str(e), "the manifest cannot be read: no file in the bundle can be checked")
        return EvidenceReport(tuple(run.checks))
    run.files(m)
    head: list[Head | None] = [None]

    async def audit_head() -> None:
        head[0] = await run.audit_head(m)

    await run.guarded("audit-head", "the audit tree head is not authentic: no audit leaf or event in the bundle "
                                    "can be relied on", audit_head)
    leaves: list[list[Leaf] | None] = [None]

    async def audit_leaves() -> None:
        leaves[0] = run.audit_leaves(m, head[0])

    await run.guarded("audit-leaves", "the audit leaves cannot be read: the event log cannot be relied on",
                      audit_leaves)

    async def events() -> None:
        run.events(m, leaves[0])

    await run.guarded("events", "the event log cannot be read: what happened to the envelope cannot be shown",
                      events)
    pdfs: list[tuple[str, str | None]] = [(d.path, d.sealed_sha256) for d in m.documents if d.is_pdf]
    pdfs.append((CERTIFICATE, None))
    for entry, sha in pdfs:
        await run.guarded(f"pdf:{entry}", f"{entry} is not a valid sealed document: its signatures cannot be "
                                          "relied on", _bind(run.pdf, entry, sha))
    for d in m.documents:
        if not d.is_pdf:
            await run.guarded(f"cades:{d.path}", f"{d.path} has no valid countersigned signature: who signed it "
                                                 "cannot be shown", _bind(run.cades, d))
    return EvidenceReport(tuple(run.checks), m.envelope_id)


def _bind(fn: Callable[..., Awaitable[None]], *args: Any) -> Callable[[], Awaitable[None]]:
    return lambda: fn(*args)


__all__ = [
    "CADES_SET_FORMAT",
    "FORMAT",
    "MAX_ENTRIES",
    "MAX_ENTRY",
    "MAX_TOTAL",
    "SEAL_POLICY",
    "Check",
    "Document",
    "Event",
    "EvidenceError",
    "EvidenceReport",
    "Head",
    "Leaf",
    "Limits",
    "Manifest",
    "check_leaf",
    "parse_events",
    "parse_head",
    "parse_leaf",
    "parse_leaves",
    "parse_manifest",
    "pem_certificates",
    "read_bundle",
    "verify_bundle",
]
