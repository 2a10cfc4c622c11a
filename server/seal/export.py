"""A sealed contract taken out of the archive: the files of ``signet-admin contract export`` (and the evidence
bundle): each sealed document under its own name (a file other than PDF: the file as sent plus
``<name>.p7s.json``, its countersigned CAdES signatures), ``certificate-of-completion.pdf`` and ``events.jsonl``."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from signet.durable import write_atomic

from ..archive import Archive
from ..envelopes import records
from ..errors import FailedPrecondition, NotFound
from ..store import Store
from .sealer import SealedObject


@dataclass(frozen=True)
class ExportedFile:
    name: str
    kind: str
    sha256: str  # the archive object id (SHA-256 of the bytes written)
    size: int
    document_id: str = ""


def _safe(name: str) -> str:
    base = Path(name).name.strip() or "document"
    return base if base not in (".", "..") else "document"


def files(store: Store, archive: Archive, envelope_id: str) -> list[tuple[ExportedFile, bytes]]:
    """Every archived object of the sealed envelope, decrypted, with the file name it is exported under."""
    env = records.load(store, envelope_id)
    if env is None:
        raise NotFound(f"no envelope {envelope_id!r}", reason="ENVELOPE_NOT_FOUND")
    rows = store.query("SELECT * FROM sealed_objects WHERE envelope_id = ? ORDER BY kind, document_id",
                       (envelope_id,))
    if not rows:
        raise FailedPrecondition(f"envelope {envelope_id} is {env.state.value} and not sealed (yet)",
                                 reason="NOT_SEALED")
    objects = [SealedObject(r["kind"], r["document_id"], r["org"], r["sha256"], int(r["size"])) for r in rows]
    names = {d.id: _safe(d.name) for d in env.documents}
    out: list[tuple[ExportedFile, bytes]] = []
    for o in objects:
        data = archive.get(o.org, o.sha256)
        if o.kind == "certificate":
            name = "certificate-of-completion.pdf"
        elif o.kind == "events":
            name = "events.jsonl"
        elif o.kind == "original":
            name = names[o.document_id]
        elif env.document(o.document_id).is_pdf:
            name = names[o.document_id]
        else:
            name = names[o.document_id] + ".p7s.json"
        out.append((ExportedFile(name, o.kind, o.sha256, o.size, o.document_id), data))
    return out


def write(store: Store, archive: Archive, envelope_id: str, directory: Path) -> list[ExportedFile]:
    """Write :func:`files` into ``directory`` (created 0700; each file durably, 0600)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for f, data in files(store, archive, envelope_id):
        write_atomic(directory / f.name, data, 0o600)
        written.append(f)
    return written


def signatures_of(bundle: bytes) -> list[bytes]:
    """The DER CMS signatures of a ``.p7s.json`` export (countersigned CAdES of a file other than PDF)."""
    doc = json.loads(bundle)
    if doc.get("format") != "signet-cades-set-1":
        raise ValueError("not a Signet CAdES set")
    return [base64.b64decode(s) for s in doc["signatures"]]
