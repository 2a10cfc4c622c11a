"""AgentService: the gRPC edge. Decodes requests, calls the agent's parts, maps errors (agent.status)."""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from importlib import metadata
from typing import Any

import grpc
from signet.v1 import agent_pb2, agent_pb2_grpc

from hsm.watcher import TokenInserted

from . import convert
from .app import Agent
from .config import LOCAL_CALLER
from .errors import DeadlineExpired, DocumentTooLarge, InvalidRequest, PermissionDenied
from .journal import Entry, Ticket
from .policy import caller_matches
from .signing import KeyMaterial
from .spool import read_chunks, spool, temp_path
from .status import abort

log = logging.getLogger(__name__)


def caller_of(context: grpc.ServicerContext) -> str:
    """"local" on the Unix socket (its 0600 mode is the access control); "tls:<CN>" over mutual TLS."""
    auth = context.auth_context()
    if auth.get("transport_security_type") == [b"ssl"]:
        cn = auth.get("x509_common_name")
        if not cn:
            raise PermissionDenied("a client certificate with a common name is required")
        return "tls:" + cn[0].decode("utf-8", "replace")
    if context.peer().startswith("unix:"):
        return LOCAL_CALLER
    raise PermissionDenied("only Unix-socket and mutual-TLS callers are served")


def alive_check(context: grpc.ServicerContext):  # type: ignore[no-untyped-def]
    def alive() -> bool:
        remaining = context.time_remaining()
        return context.is_active() and (remaining is None or remaining > 0)
    return alive


def _pin(cred: Any) -> str | None:
    return cred.pin or None if cred is not None else None


def _selector(sel: agent_pb2.TokenSelector) -> tuple[str, str]:
    return sel.serial, sel.label


def _upload(first: Any, rest: Iterator[Any], what: str) -> Any:
    if first is None or first.WhichOneof("part") != "header":
        raise InvalidRequest(f"the first {what} message must be the header")
    return first.header


def _chunks(requests: Iterator[Any]) -> Iterator[bytes]:
    for r in requests:
        if r.WhichOneof("part") != "chunk":
            raise InvalidRequest("only chunks may follow the header")
        yield r.chunk


def _inline_document(h: Any, requests: Iterator[Any], inline_limit: int, document_limit: int) -> bytes:
    """The document carried whole in the header, checked against the limits; nothing may follow the header."""
    data: bytes = h.document
    size = len(data)
    if size > document_limit:
        raise DocumentTooLarge(f"the document is {size} bytes; this agent accepts at most {document_limit}")
    if size > inline_limit:
        raise InvalidRequest(f"the inline document is {size} bytes; this agent accepts at most {inline_limit} "
                             "inline: send larger documents in chunks after the header")
    if h.size and h.size != size:
        raise InvalidRequest(f"the inline document is {size} bytes; the header announces {h.size}")
    for _ in requests:
        raise InvalidRequest("no chunk may follow a header that carries the document")
    return data


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.cfg = agent.config
        self.material = KeyMaterial()

    # -- info and tokens ------------------------------------------------------
    def GetInfo(self, request: agent_pb2.GetInfoRequest, context: grpc.ServicerContext) -> agent_pb2.GetInfoResponse:
        try:
            caller = caller_of(context)
            try:
                version = metadata.version("signet")
            except metadata.PackageNotFoundError:
                version = "unknown"
            return agent_pb2.GetInfoResponse(
                agent_version=version, pkcs11_module=self.agent.hsm.module.path, caller=caller,
                max_message_bytes=self.cfg.max_message_bytes, max_document_bytes=self.cfg.max_document_bytes,
                unlock_max_seconds=self.cfg.unlock.max_seconds, unlock_max_signatures=self.cfg.unlock.max_signatures,
                max_inline_bytes=self.cfg.max_inline_bytes)
        except Exception as e:
            abort(context, e)

    def ListTokens(self, request: agent_pb2.ListTokensRequest, context: grpc.ServicerContext
                   ) -> agent_pb2.ListTokensResponse:
        try:
            caller = caller_of(context)
            return agent_pb2.ListTokensResponse(
                tokens=[convert.token_msg(t) for t in self.agent.directory.list()],
                unlocked_serials=self.agent.unlock.unlocked_serials(caller))
        except Exception as e:
            abort(context, e)

    def WatchTokens(self, request: agent_pb2.WatchTokensRequest, context: grpc.ServicerContext
                    ) -> Iterator[agent_pb2.WatchTokensResponse]:
        try:
            caller_of(context)
            watcher = self.agent.directory.watcher
            assert watcher is not None
            events: queue.Queue[Any] = queue.Queue()
            unsubscribe = watcher.subscribe(events.put)
        except Exception as e:
            abort(context, e)
        try:
            for t in self.agent.directory.list():
                yield agent_pb2.WatchTokensResponse(kind=agent_pb2.WatchTokensResponse.KIND_INSERTED,
                                                    token=convert.token_msg(t))
            while context.is_active():
                try:
                    ev = events.get(timeout=0.5)
                except queue.Empty:
                    continue
                if isinstance(ev, TokenInserted):
                    yield agent_pb2.WatchTokensResponse(kind=agent_pb2.WatchTokensResponse.KIND_INSERTED,
                                                        token=convert.token_msg(ev.token))
                else:
                    from signet.v1 import common_pb2
                    yield agent_pb2.WatchTokensResponse(kind=agent_pb2.WatchTokensResponse.KIND_REMOVED,
                                                        token=common_pb2.Token(serial=ev.serial, label=ev.label))
        finally:
            unsubscribe()

    # -- keys -----------------------------------------------------------------
    def _is_admin(self, caller: str) -> bool:
        return any(caller_matches(p, caller) for p in self.cfg.admin_callers)

    def _admin(self, caller: str) -> None:
        if not self._is_admin(caller):
            raise PermissionDenied(f"caller {caller!r} may not manage keys on this agent (policy.admin_callers)")

    def ListKeys(self, request: agent_pb2.ListKeysRequest, context: grpc.ServicerContext) -> agent_pb2.ListKeysResponse:
        try:
            caller = caller_of(context)
            token = self.agent.directory.resolve(*_selector(request.token))
            with self.agent.unlock.use(caller, token, _pin(request.credential), 0):
                return agent_pb2.ListKeysResponse(keys=[convert.key_msg(k) for k in token.keys()])
        except Exception as e:
            abort(context, e)

    def GenerateKey(self, request: agent_pb2.GenerateKeyRequest, context: grpc.ServicerContext
                    ) -> agent_pb2.GenerateKeyResponse:
        serial = ""
        try:
            caller = caller_of(context)
            self._admin(caller)
            algo = convert.algorithm(request.algorithm)
            token = self.agent.directory.resolve(*_selector(request.token))
            serial = token.serial
            with self.agent.unlock.use(caller, token, _pin(request.credential), 0):
                info = token.generate_key(algo, request.label)
            self.material.forget(serial)
            self.agent.journal.record([Entry("generate_key", caller, serial, info.key_id, "", algo.name)])
            return agent_pb2.GenerateKeyResponse(key=convert.key_msg(info))
        except Exception as e:
            abort(context, e, serial)

    def CreateCertificateRequest(self, request: agent_pb2.CreateCertificateRequestRequest,
                                 context: grpc.ServicerContext) -> agent_pb2.CreateCertificateRequestResponse:
        try:
            caller = caller_of(context)
            if not request.subject:
                raise InvalidRequest("a certificate request needs a subject (at least common_name)")
            s, lb = _selector(request.token)
            pin = _pin(request.credential)
            if self._is_admin(caller):  # enrollment: not a use of the key that policy counts
                token = self.agent.directory.resolve(s, lb)
                with self.agent.unlock.use(caller, token, pin, 0):
                    der = token.create_csr(request.key_id, dict(request.subject),
                                           dns_names=list(request.dns_names), emails=list(request.emails))
                self.agent.journal.record([Entry("create_csr", caller, token.serial, request.key_id, "", "pkcs10")])
            else:
                with self.agent.signing.key(caller, s, lb, request.key_id, pin, 1) as ref:
                    der = self.agent.signing.call_token(caller, ref, pin, lambda: ref.token.create_csr(  # type: ignore
                        ref.key_id, dict(request.subject), dns_names=list(request.dns_names),
                        emails=list(request.emails)))
                    self.agent.signing.journal_ok("create_csr", caller, ref, "", "pkcs10")
            return agent_pb2.CreateCertificateRequestResponse(csr_der=der)  # type: ignore[arg-type]
        except Exception as e:
            abort(context, e, request.token.serial, request.key_id)

    def ImportCertificate(self, request: agent_pb2.ImportCertificateRequest, context: grpc.ServicerContext
                          ) -> agent_pb2.ImportCertificateResponse:
        try:
            caller = caller_of(context)
            self._admin(caller)
            token = self.agent.directory.resolve(*_selector(request.token))
            with self.agent.unlock.use(caller, token, _pin(request.credential), 0):
                token.import_certificate(request.key_id, request.certificate_der, list(request.chain_der))
            self.material.forget(token.serial)
            self.agent.journal.record([Entry("import_certificate", caller, token.serial, request.key_id)])
            return agent_pb2.ImportCertificateResponse()
        except Exception as e:
            abort(context, e, request.token.serial, request.key_id)

    def DeleteKey(self, request: agent_pb2.DeleteKeyRequest, context: grpc.ServicerContext
                  ) -> agent_pb2.DeleteKeyResponse:
        try:
            caller = caller_of(context)
            self._admin(caller)
            token = self.agent.directory.resolve(*_selector(request.token))
            with self.agent.unlock.use(caller, token, _pin(request.credential), 0):
                token.delete_key(request.key_id)
            self.material.forget(token.serial)
            self.agent.journal.record([Entry("delete_key", caller, token.serial, request.key_id)])
            return agent_pb2.DeleteKeyResponse()
        except Exception as e:
            abort(context, e, request.token.serial, request.key_id)

    # -- unlock ---------------------------------------------------------------
    def Unlock(self, request: agent_pb2.UnlockRequest, context: grpc.ServicerContext) -> agent_pb2.UnlockResponse:
        caller, serial = "", request.token.serial
        try:
            caller = caller_of(context)
            token = self.agent.directory.resolve(*_selector(request.token))
            serial = token.serial
            grant = self.agent.unlock.unlock(caller, token, request.pin, request.ttl_seconds, request.max_signatures)
            self.agent.journal.record([Entry("unlock", caller, serial)])
            return agent_pb2.UnlockResponse(token_serial=serial, expires_at=int(grant.expires_at),
                                            signatures_left=grant.left)
        except Exception as e:
            if caller:
                try:
                    self.agent.journal.record([Entry("unlock", caller, serial,
                                                     outcome=getattr(e, "reason", "ERROR"))])
                except Exception:  # noqa: BLE001 - the PIN error is what the caller must see
                    log.exception("journal row for a failed unlock not written")
            abort(context, e, serial)

    def Lock(self, request: agent_pb2.LockRequest, context: grpc.ServicerContext) -> agent_pb2.LockResponse:
        try:
            caller = caller_of(context)
            token = self.agent.directory.resolve(*_selector(request.token))
            out = self.agent.unlock.lock(caller, token.serial)
            self.agent.journal.record([Entry("lock", caller, token.serial)])
            return agent_pb2.LockResponse(logged_out=out)
        except Exception as e:
            abort(context, e, request.token.serial)

    # -- digests --------------------------------------------------------------
    def SignDigest(self, request: agent_pb2.SignDigestRequest, context: grpc.ServicerContext
                   ) -> agent_pb2.SignDigestResponse:
        try:
            caller = caller_of(context)
            serial, sigs, _ = self.agent.signing.sign_digests(
                caller, serial=request.token.serial, label=request.token.label, key_id=request.key_id,
                digests=[request.digest], hash_name=convert.hash_name(request.hash),
                scheme=convert.scheme(request.scheme), pin=_pin(request.credential), alive=alive_check(context))
            return agent_pb2.SignDigestResponse(signature=sigs[0], token_serial=serial)
        except Exception as e:
            abort(context, e, request.token.serial, request.key_id)

    def SignDigestStream(self, request_iterator: Iterator[agent_pb2.SignDigestStreamRequest],
                         context: grpc.ServicerContext) -> Iterator[agent_pb2.SignDigestStreamResponse]:
        """A reader thread hands each batch to a signing lane and reads on; this thread answers in order.

        Batches of one stream (and of all streams) share the agent's ``sign_threads`` lanes, so the token's
        sessions stay busy while responses are sent and journal rows synced; a response leaves only after its
        journal rows are durable.  After a failure no further batch starts signing (one already running on the
        other lane may finish: its signatures are counted and journaled, but never sent).
        """
        state: dict[str, Any] = {"serial": "", "key_id": ""}
        try:
            caller = caller_of(context)
        except Exception as e:
            abort(context, e)
        out: queue.Queue[Any] = queue.Queue(maxsize=4)
        stop = threading.Event()
        failed = threading.Event()  # set by the first batch that fails: no later batch starts signing

        def put(item: Any) -> None:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.5)
                    return
                except queue.Full:
                    continue

        def produce() -> None:
            sel: agent_pb2.TokenSelector | None = None
            hash_name, scheme, pin = "sha256", None, None
            alive = alive_check(context)
            try:
                for req in request_iterator:
                    if stop.is_set() or failed.is_set():
                        return
                    if req.HasField("token") or req.key_id:
                        sel = req.token
                        state.update(serial=sel.serial, key_id=req.key_id)
                        hash_name, scheme = convert.hash_name(req.hash), convert.scheme(req.scheme)
                        pin = _pin(req.credential)
                    if sel is None:
                        raise InvalidRequest("the first message must select the token and key")
                    put((req.request_id, self.agent.signing.submit_digests(
                        caller, failed=failed, serial=sel.serial, label=sel.label, key_id=state["key_id"],
                        digests=list(req.digests), hash_name=hash_name, scheme=scheme, pin=pin, alive=alive)))
                put(None)
            except Exception as e:  # noqa: BLE001 - handed to the response side, mapped there
                put(e)

        reader = threading.Thread(target=produce, name="sign-stream", daemon=True)
        reader.start()
        try:
            while True:
                item = out.get()
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                request_id, batch = item
                _, sigs, ticket = batch.result()
                ticket.wait()  # the journal rows are durable before the signatures leave
                yield agent_pb2.SignDigestStreamResponse(request_id=request_id, signatures=sigs)
        except Exception as e:
            abort(context, e, state["serial"], state["key_id"])
        finally:
            stop.set()
            while True:  # batches not started yet are not signed at all
                try:
                    item = out.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, tuple):
                    item[1].cancel()

    # -- documents ------------------------------------------------------------
    def _sign_document(self, context: grpc.ServicerContext, request_iterator: Iterator[Any], kind: str,
                       suffix: str) -> Iterator[Any]:
        """Upload (inline in the header, or spooled chunk by chunk), sign in a worker, answer.

        The answer is the output in chunks and then the result, or -- when the header asked for
        ``inline_result`` and the output is at most ``max_inline_bytes`` -- the result alone, carrying the
        output.  Either way nothing leaves before the signature's journal row is on disk.
        """
        resp_cls = agent_pb2.SignPdfResponse if kind == "sign_pdf" else agent_pb2.SignDetachedResponse
        h: Any = None
        caller, ref, doc_sha, fmt = "", None, "", "pades" if kind == "sign_pdf" else "cades-detached"
        try:
            caller = caller_of(context)
            alive = alive_check(context)
            h = _upload(next(request_iterator, None), request_iterator, kind)
            if kind == "sign_pdf":
                opts = convert.pdf_options(h)
                fmt = f"pades-{opts['level'].lower()}"
            with ExitStack() as files:
                # A PDF goes through spool files (pyHanko reads and writes paths); a detached signature's
                # input is read as a stream, so a small one stays in memory, and its .p7s always comes back
                # in memory: no file at all for a small file signed detached.
                out = files.enter_context(temp_path(self.cfg.spool_dir, suffix)) if kind == "sign_pdf" else None
                source: dict[str, Any] = {}
                if h.HasField("document"):  # small document: one message, at most one write (no chunk loop)
                    data = _inline_document(h, request_iterator, self.cfg.max_inline_bytes,
                                            self.cfg.max_document_bytes)
                    doc_sha = hashlib.sha256(data).hexdigest()
                    if out is None:
                        source["document"] = data
                    else:
                        inp = files.enter_context(temp_path(self.cfg.spool_dir, suffix))
                        inp.write_bytes(data)
                        source["in_path"] = str(inp)
                else:
                    inp = files.enter_context(temp_path(self.cfg.spool_dir, suffix))
                    doc_sha = spool(_chunks(request_iterator), inp, self.cfg.max_document_bytes, h.size).sha256
                    source["in_path"] = str(inp)
                pin = _pin(h.credential)
                signing = self.agent.signing
                with signing.key(caller, h.token.serial, h.token.label, h.key_id, pin, 1) as ref:
                    cert, chain, spki = self.material.get(ref)
                    job: dict[str, Any] = {"kind": kind, **source, "spki": spki, "key_id": ref.key_id,
                                           "certificate": cert, "chain": chain}
                    if out is not None:
                        job["out_path"], job["options"] = str(out), opts
                    else:
                        job["timestamp_url"] = h.timestamp_url or None
                    key = ref
                    tickets: list[Ticket] = []

                    def sign(dgst: bytes, hash_name: str) -> bytes:
                        if not alive():
                            raise DeadlineExpired("the deadline passed before signing; nothing was signed")
                        sig = signing.call_token(caller, key, pin, lambda: key.token.sign_digest(  # type: ignore
                            key.key_id, dgst, hash_name=hash_name))
                        # the row goes to disk while the worker embeds the signature; it is waited for below,
                        # before anything leaves (a later failure adds its own row)
                        tickets.append(self.agent.journal.record(
                            [Entry(kind, caller, key.serial, key.key_id, doc_sha, fmt)], wait=False))
                        return sig  # type: ignore[return-value]

                    res = self.agent.workers.run(job, sign)
                    if not tickets:  # cannot happen for a signed result; never release without a row
                        signing.journal_ok(kind, caller, ref, doc_sha, fmt)
                    for t in tickets:
                        t.wait()
                step = self.cfg.chunk_bytes
                if out is not None:
                    out_sha, out_size = res["sha256"], res["size"]
                    blocks: Iterator[bytes] = read_chunks(out, step)
                else:  # detached: the .p7s (a few KiB) came back in memory and is never written to the spool
                    p7s: bytes = res["p7s"]
                    out_sha, out_size = hashlib.sha256(p7s).hexdigest(), len(p7s)
                    blocks = (p7s[i:i + step] for i in range(0, out_size, step))
                result = agent_pb2.SignResult(
                    token_serial=ref.serial, key_id=ref.key_id, document_sha256=doc_sha, output_sha256=out_sha,
                    output_size=out_size, field_name=res.get("field_name", ""),
                    signer_subject=res.get("signer_subject", ""))
                if h.inline_result and out_size <= self.cfg.max_inline_bytes:
                    result.content = b"".join(blocks)
                else:
                    for block in blocks:
                        yield resp_cls(chunk=block)
                yield resp_cls(result=result)
        except Exception as e:
            if caller:
                sel = h.token if h is not None else agent_pb2.TokenSelector()
                self.agent.signing.journal_failure(kind, caller, sel.serial, h.key_id if h else "", ref, fmt, e,
                                                   doc_sha)
            abort(context, e, ref.serial if ref else "", ref.key_id if ref else "")

    def SignPdf(self, request_iterator: Iterator[agent_pb2.SignPdfRequest], context: grpc.ServicerContext
                ) -> Iterator[agent_pb2.SignPdfResponse]:
        yield from self._sign_document(context, request_iterator, "sign_pdf", ".pdf")

    def SignDetached(self, request_iterator: Iterator[agent_pb2.SignDetachedRequest], context: grpc.ServicerContext
                     ) -> Iterator[agent_pb2.SignDetachedResponse]:
        yield from self._sign_document(context, request_iterator, "sign_detached", ".bin")

    def _verify(self, context: grpc.ServicerContext, request_iterator: Iterator[Any], kind: str
                ) -> agent_pb2.VerifyResponse:
        try:
            caller = caller_of(context)
            h = _upload(next(request_iterator, None), request_iterator, kind)
            roots = self.agent.trust_roots + list(h.trust_roots_der)
            with temp_path(self.cfg.spool_dir) as inp:
                up = spool(_chunks(request_iterator), inp, self.cfg.max_document_bytes, h.size)
                job: dict[str, Any] = {"kind": kind, "path": str(inp), "trust_roots": roots}
                if kind == "verify_detached":
                    if not h.signature_der:
                        raise InvalidRequest("signature_der (the .p7s) is required")
                    job["signature"] = h.signature_der
                report = self.agent.workers.run(job)
            report.setdefault("document_sha256", up.sha256)
            verdict = "valid" if report.get("valid") else "invalid"
            self.agent.journal.record([Entry(kind, caller, document_sha256=up.sha256, format=kind, outcome=verdict)])
            return convert.verify_msg(report)
        except Exception as e:
            abort(context, e)

    def VerifyPdf(self, request_iterator: Iterator[agent_pb2.VerifyPdfRequest], context: grpc.ServicerContext
                  ) -> agent_pb2.VerifyResponse:
        return self._verify(context, request_iterator, "verify_pdf")

    def VerifyDetached(self, request_iterator: Iterator[agent_pb2.VerifyDetachedRequest],
                       context: grpc.ServicerContext) -> agent_pb2.VerifyResponse:
        return self._verify(context, request_iterator, "verify_detached")
