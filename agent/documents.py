"""SignPdf, SignDetached, VerifyPdf and VerifyDetached: upload, job in a worker, answer.

Signing: the header is checked (options, timestamp authority on the allow-list, token, the caller's right to
the key, a PIN or a live grant) before any chunk is read; the document is received inline or spooled to a
private file; the worker builds the signature and asks for exactly one token signature, which goes through
the signing path (revocation of the certificate, the signer's confirmation, usage limit, journal with the
digest signed).  The answer is the output in chunks and then the result, or -- when the header asked for
``inline_result`` and the output is at most ``max_inline_bytes`` -- the result alone, carrying the output.
Nothing leaves before the signature's journal row is on disk.  Verification runs in its own worker pool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from formats.errors import InvalidDocument
from signet.v1 import agent_pb2

from . import convert
from .config import AgentConfig
from .errors import InvalidRequest, TimestampUrlRefused
from .jobs import SignJob, SignRequest, VerifyJob
from .journal import Entry, Journal, Ticket
from .rpc import Call, pin_of
from .signing import Shown, SigningService
from .spool import read_chunks, temp_path
from .uploads import DocumentGate, Upload, inline_document, spool
from .workers import DocumentWorkers


@dataclass
class Documents:
    config: AgentConfig
    signing: SigningService
    sign_workers: DocumentWorkers
    verify_workers: DocumentWorkers
    journal: Journal
    gate: DocumentGate
    trust_roots: list[bytes]

    def _upload(self, requests: Iterator[Any]) -> Upload:
        return Upload(requests, self.config.upload_idle_seconds, self.config.upload_seconds)

    def _timestamp_url(self, url: str) -> str | None:
        if not url:
            return None
        if url not in self.config.timestamp_urls:
            raise TimestampUrlRefused("this agent does not use that timestamp authority: its administrator lists "
                                      "the ones it may use in agent.timestamp_urls")
        return url

    # -- signing ----------------------------------------------------------------------------------------------
    def sign(self, requests: Iterator[Any], call: Call, kind: str) -> Iterator[Any]:
        resp_cls = agent_pb2.SignPdfResponse if kind == "sign_pdf" else agent_pb2.SignDetachedResponse
        with self.gate.admit(), ExitStack() as files:
            upload = self._upload(requests)
            files.callback(upload.close)
            h = upload.header(kind)
            call.serial, call.key_id = h.token.serial, h.key_id
            options: dict[str, Any] = {}
            if kind == "sign_pdf":
                options = convert.pdf_options(h)
                options["timestamp_url"] = self._timestamp_url(h.timestamp_url)
            timestamp_url = self._timestamp_url(h.timestamp_url) if kind == "sign_detached" else None
            pin, handle = pin_of(h.credential), call.grant
            self.signing.precheck(call.caller, h.token.serial, h.token.label, h.key_id, pin, handle)
            # the body: inline in the header (one message, at most one write) or chunks spooled to a private file
            source: dict[str, Any] = {}
            if h.HasField("document"):
                data = inline_document(h, upload, self.config.max_inline_bytes, self.config.max_document_bytes)
                size, call.document_sha256 = len(data), hashlib.sha256(data).hexdigest()
                if kind == "sign_pdf":
                    inp = files.enter_context(temp_path(self.config.spool_dir, ".pdf"))
                    inp.write_bytes(data)
                    source["in_path"] = str(inp)
                else:
                    source["document"] = data  # a small detached file stays in memory
            else:
                inp = files.enter_context(temp_path(self.config.spool_dir, ".pdf" if kind == "sign_pdf" else ".bin"))
                up = spool(upload.chunks(), inp, self.config.max_document_bytes, h.size)
                size, call.document_sha256 = up.size, up.sha256
                source["in_path"] = str(inp)
            if size == 0:
                raise InvalidDocument("the document is empty (0 bytes); there is nothing to sign")
            out = files.enter_context(temp_path(self.config.spool_dir, ".pdf")) if kind == "sign_pdf" else None
            shown = Shown(kind, h.file_name or "", call.document_sha256, size)
            res, ref = self._sign_job(call, h, kind, source, out=out, options=options,
                                          timestamp_url=timestamp_url, shown=shown, pin=pin, handle=handle)
            step = self.config.chunk_bytes
            if out is not None:
                out_sha, out_size = str(res.fields["sha256"]), int(res.fields["size"])
                blocks: Iterator[bytes] = read_chunks(out, step)
            else:  # detached: the .p7s (a few KiB) came back in memory and is never written to the spool
                p7s = res.p7s or b""
                out_sha, out_size = hashlib.sha256(p7s).hexdigest(), len(p7s)
                blocks = (p7s[i:i + step] for i in range(0, out_size, step))
            result = agent_pb2.SignResult(
                token_serial=ref.serial, key_id=ref.key_id, document_sha256=call.document_sha256,
                output_sha256=out_sha, output_size=out_size, field_name=str(res.fields.get("field_name", "")),
                signer_subject=str(res.fields.get("signer_subject", "")))
            if h.inline_result and out_size <= self.config.max_inline_bytes:
                result.content = b"".join(blocks)
            else:
                for block in blocks:
                    yield resp_cls(chunk=block)
            yield resp_cls(result=result)

    def _sign_job(self, call: Call, h: Any, kind: str, source: dict[str, Any], *, out: Any, options: dict[str, Any],
                  timestamp_url: str | None, shown: Shown, pin: str | None, handle: str | None) -> tuple[Any, Any]:
        signing = self.signing
        with signing.key(call.caller, h.token.serial, h.token.label, h.key_id, pin, signatures=1,
                         handle=handle) as ref:
            call.serial, call.key_id = ref.serial, ref.key_id
            material = signing.material.get(ref)
            job = SignJob(kind=kind, key_id=ref.key_id, spki=material.spki, certificate=material.certificate,
                          chain=material.chain, in_path=source.get("in_path"), document=source.get("document"),
                          out_path=str(out) if out is not None else None, pdf_options=options,
                          timestamp_url=timestamp_url, count_pages=signing.confirmation(ref) is not None)
            tickets: list[Ticket] = []

            def sign(request: SignRequest) -> bytes:
                sig, ticket = signing.sign_document_digest(call.caller, ref, shown, material,
                                                           digest=request.digest, hash_name=request.hash_name,
                                                           pages=request.pages, alive=call.alive)
                tickets.append(ticket)  # durable while the worker embeds the signature; waited for below
                return sig

            res = self.sign_workers.run(job, sign)
            if not tickets:
                raise InvalidRequest("the document was not signed")  # a job that never asked for a signature
            for t in tickets:
                t.wait()
        return res, ref

    # -- verification -------------------------------------------------------------------------------------------
    def verify(self, requests: Iterator[Any], call: Call, kind: str) -> agent_pb2.VerifyResponse:
        with self.gate.admit(), ExitStack() as files:
            upload = self._upload(requests)
            files.callback(upload.close)
            h = upload.header(kind)
            if kind == "verify_detached" and not h.signature_der:
                raise InvalidRequest("signature_der (the .p7s) is required")
            inp = files.enter_context(temp_path(self.config.spool_dir))
            up = spool(upload.chunks(), inp, self.config.max_document_bytes, h.size)
            call.document_sha256 = up.sha256
            revocation = "offline" if h.offline else self.config.verify.revocation
            job = VerifyJob(kind=kind, path=str(inp), trust_roots=(*self.trust_roots, *h.trust_roots_der),
                            signature=h.signature_der if kind == "verify_detached" else None, revocation=revocation,
                            fetch_timeout=self.config.verify.fetch_timeout_seconds)
            report = self.verify_workers.run(job).fields
        report.setdefault("document_sha256", up.sha256)
        verdict = "valid" if report.get("valid") else "invalid"
        self.journal.record([Entry(kind, call.caller, document_sha256=up.sha256, format=kind, outcome=verdict)])
        return convert.verify_msg(report)
