"""Document jobs and the framing of the pipe between the agent and its worker processes (plain bytes, no pickle).

A frame is ``len(header) (4 bytes, big-endian) | header (UTF-8 JSON) | blob bytes``; the header holds the message
kind, plain JSON fields and the name and length of each binary blob.  Nothing in a frame can make the receiver
run code, and a malformed frame is a :class:`FrameError`.

Conversation: agent -> ``job``; worker -> at most one ``sign`` (a digest, its hash name, the page count);
agent -> ``sig`` or ``err``; worker -> ``ok`` (result) or ``fail`` (error kind + message).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_HEADER = 1 << 20


class FrameError(ValueError):
    """A frame that does not decode (truncated, oversized header, bad JSON, blob lengths that do not add up)."""


def encode(kind: str, fields: dict[str, Any] | None = None, blobs: dict[str, bytes] | None = None) -> bytes:
    blobs = blobs or {}
    header = json.dumps({"kind": kind, "fields": fields or {}, "blobs": [[k, len(v)] for k, v in blobs.items()]},
                        separators=(",", ":")).encode("utf-8")
    return len(header).to_bytes(4, "big") + header + b"".join(blobs.values())


def decode(frame: bytes) -> tuple[str, dict[str, Any], dict[str, bytes]]:
    if len(frame) < 4:
        raise FrameError("frame shorter than its length prefix")
    n = int.from_bytes(frame[:4], "big")
    if n > MAX_HEADER or 4 + n > len(frame):
        raise FrameError("frame header length out of range")
    try:
        header = json.loads(frame[4:4 + n].decode("utf-8"))
        kind, fields, spec = header["kind"], header["fields"], header["blobs"]
    except (ValueError, KeyError, TypeError, RecursionError) as e:  # RecursionError: nesting deeper than the stack
        raise FrameError(f"frame header is not valid ({type(e).__name__})") from None
    if not isinstance(kind, str) or not isinstance(fields, dict) or not isinstance(spec, list):
        raise FrameError("frame header has the wrong shape")
    blobs: dict[str, bytes] = {}
    pos = 4 + n
    for item in spec:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str) and isinstance(item[1], int)
                and item[1] >= 0):
            raise FrameError("frame blob list has the wrong shape")
        name, size = item
        if pos + size > len(frame):
            raise FrameError("frame shorter than its blobs")
        blobs[name] = frame[pos:pos + size]
        pos += size
    if pos != len(frame):
        raise FrameError("frame longer than its blobs")
    return kind, fields, blobs


@dataclass(frozen=True)
class SignJob:
    """PAdES (``sign_pdf``) or detached CAdES (``sign_detached``) with one token key, built in a worker."""

    kind: str
    key_id: str
    spki: bytes
    certificate: bytes
    chain: tuple[bytes, ...]
    in_path: str | None = None  # the spooled document (PDF always; large detached files)
    document: bytes | None = None  # a small detached file in memory
    out_path: str | None = None  # PDF: where the signed document goes
    pdf_options: dict[str, Any] = field(default_factory=dict)  # formats.PdfSignOptions fields (JSON values)
    timestamp_url: str | None = None
    count_pages: bool = False  # send the page count with the signature request (for the confirmation)

    def frame(self) -> bytes:
        blobs = {"spki": self.spki, "certificate": self.certificate}
        blobs.update({f"chain{i}": c for i, c in enumerate(self.chain)})
        if self.document is not None:
            blobs["document"] = self.document
        return encode("job", {"kind": self.kind, "key_id": self.key_id, "chain": len(self.chain),
                              "in_path": self.in_path, "out_path": self.out_path, "pdf_options": self.pdf_options,
                              "timestamp_url": self.timestamp_url, "count_pages": self.count_pages}, blobs)


@dataclass(frozen=True)
class VerifyJob:
    """Verification of a spooled PDF (``verify_pdf``) or of a file against a .p7s (``verify_detached``)."""

    kind: str
    path: str
    trust_roots: tuple[bytes, ...]
    signature: bytes | None = None
    revocation: str = "online"
    fetch_timeout: float = 10.0

    def frame(self) -> bytes:
        blobs = {f"root{i}": r for i, r in enumerate(self.trust_roots)}
        if self.signature is not None:
            blobs["signature"] = self.signature
        return encode("job", {"kind": self.kind, "path": self.path, "roots": len(self.trust_roots),
                              "revocation": self.revocation, "fetch_timeout": self.fetch_timeout}, blobs)


Job = SignJob | VerifyJob


def job_from_frame(fields: dict[str, Any], blobs: dict[str, bytes]) -> Job:
    """The job a worker received (FrameError when the fields do not make a job)."""
    try:
        kind = fields["kind"]
        if kind in ("sign_pdf", "sign_detached"):
            return SignJob(kind=kind, key_id=str(fields["key_id"]), spki=blobs["spki"],
                           certificate=blobs["certificate"],
                           chain=tuple(blobs[f"chain{i}"] for i in range(int(fields["chain"]))),
                           in_path=fields["in_path"], document=blobs.get("document"), out_path=fields["out_path"],
                           pdf_options=dict(fields["pdf_options"] or {}), timestamp_url=fields["timestamp_url"],
                           count_pages=bool(fields["count_pages"]))
        if kind in ("verify_pdf", "verify_detached"):
            return VerifyJob(kind=kind, path=str(fields["path"]),
                             trust_roots=tuple(blobs[f"root{i}"] for i in range(int(fields["roots"]))),
                             signature=blobs.get("signature"), revocation=str(fields["revocation"]),
                             fetch_timeout=float(fields["fetch_timeout"]))
    except (KeyError, TypeError, ValueError) as e:
        raise FrameError(f"job fields are not valid ({type(e).__name__})") from None
    raise FrameError(f"unknown job kind {kind!r}")


@dataclass(frozen=True)
class SignRequest:
    """What a worker asks the agent to sign: exactly one digest per job."""

    digest: bytes
    hash_name: str
    pages: int | None


@dataclass(frozen=True)
class JobResult:
    """What came back: PDF result fields, or the .p7s of a detached signature, or a verification report."""

    fields: dict[str, Any]
    p7s: bytes | None = None
