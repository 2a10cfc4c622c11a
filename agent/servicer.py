"""AgentService: the gRPC edge.  Each method decodes its request, calls the agent's parts and encodes the answer;
:mod:`agent.rpc` identifies the caller, maps errors and journals refusals."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from importlib import metadata

import grpc

from hsm.watcher import TokenInserted
from signet.v1 import agent_pb2, agent_pb2_grpc, common_pb2

from . import convert
from .app import Agent
from .callers import caller_of
from .config import LOCAL_CALLER
from .errors import InvalidRequest, PermissionDenied
from .journal import Entry
from .policy import caller_matches
from .rpc import Call, pin_of, rpc, rpc_stream
from .streaming import sign_stream


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.cfg = agent.config
        self.journal = agent.journal
        try:
            self.version = metadata.version("signet")
        except metadata.PackageNotFoundError:
            self.version = "unknown"

    def identify(self, context: grpc.ServicerContext) -> str:
        return caller_of(context, self.agent.tls_clients)

    def _admin(self, caller: str) -> None:
        if not any(caller_matches(p, caller) for p in self.cfg.admin_callers):
            raise PermissionDenied(f"caller {caller!r} may not manage keys on this agent (policy.admin_callers)")

    def _may_try_pins(self, caller: str) -> None:
        """A caller the policy lets use no key at all (and who is no admin) may not try PINs either."""
        if not (self.agent.auth.policy.may_use_any(caller)
                or any(caller_matches(p, caller) for p in self.cfg.admin_callers)):
            raise PermissionDenied(f"caller {caller!r} may use no key on this agent, so it may not try PINs")

    # -- info and tokens ------------------------------------------------------
    @rpc("get_info")
    def GetInfo(self, request: agent_pb2.GetInfoRequest, call: Call) -> agent_pb2.GetInfoResponse:
        return agent_pb2.GetInfoResponse(
            agent_version=self.version, pkcs11_module=self.agent.hsm.module.path, caller=call.caller,
            max_message_bytes=self.cfg.max_message_bytes, max_document_bytes=self.cfg.max_document_bytes,
            unlock_max_seconds=self.cfg.unlock.max_seconds, unlock_max_signatures=self.cfg.unlock.max_signatures,
            max_inline_bytes=self.cfg.max_inline_bytes,
            state_dir=str(self.cfg.state_dir) if call.caller == LOCAL_CALLER else "",
            timestamp_urls=list(self.cfg.timestamp_urls))

    @rpc("list_tokens")
    def ListTokens(self, request: agent_pb2.ListTokensRequest, call: Call) -> agent_pb2.ListTokensResponse:
        return agent_pb2.ListTokensResponse(
            tokens=[convert.token_msg(t) for t in self.agent.directory.list()],
            unlocked_serials=self.agent.unlock.unlocked_serials(call.caller))

    @rpc_stream("watch_tokens")
    def WatchTokens(self, request: agent_pb2.WatchTokensRequest,
                    call: Call) -> Iterator[agent_pb2.WatchTokensResponse]:
        watcher = self.agent.directory.watcher
        if watcher is None:
            raise InvalidRequest("this agent does not watch tokens")
        events: queue.Queue[object] = queue.Queue()
        unsubscribe = watcher.subscribe(events.put)
        try:
            for t in self.agent.directory.list():
                yield agent_pb2.WatchTokensResponse(kind=agent_pb2.WatchTokensResponse.KIND_INSERTED,
                                                    token=convert.token_msg(t))
            while call.context.is_active():
                try:
                    ev = events.get(timeout=0.5)
                except queue.Empty:
                    continue
                if isinstance(ev, TokenInserted):
                    yield agent_pb2.WatchTokensResponse(kind=agent_pb2.WatchTokensResponse.KIND_INSERTED,
                                                        token=convert.token_msg(ev.token))
                else:
                    yield agent_pb2.WatchTokensResponse(
                        kind=agent_pb2.WatchTokensResponse.KIND_REMOVED,
                        token=common_pb2.Token(serial=getattr(ev, "serial", ""), label=getattr(ev, "label", "")))
        finally:
            unsubscribe()

    # -- keys -----------------------------------------------------------------
    @rpc("list_keys")
    def ListKeys(self, request: agent_pb2.ListKeysRequest, call: Call) -> agent_pb2.ListKeysResponse:
        token = self.agent.directory.resolve(request.token.serial, request.token.label)
        call.serial = token.serial
        pin = pin_of(request.credential)
        self._may_try_pins(call.caller)  # a caller that may use no key sees no key list either
        with self.agent.unlock.use(call.caller, token, pin, 0, call.grant):
            return agent_pb2.ListKeysResponse(keys=[convert.key_msg(k) for k in token.keys()])

    @rpc("generate_key")
    def GenerateKey(self, request: agent_pb2.GenerateKeyRequest,
                    call: Call) -> agent_pb2.GenerateKeyResponse:
        self._admin(call.caller)
        algo = convert.algorithm(request.algorithm)
        token = self.agent.directory.resolve(request.token.serial, request.token.label)
        call.serial = token.serial
        with self.agent.unlock.use(call.caller, token, pin_of(request.credential), 0, call.grant):
            info = token.generate_key(algo, request.label)
        self.agent.signing.material.forget(token.serial)
        self.journal.record([Entry("generate_key", call.caller, token.serial, info.key_id, "", algo.name)])
        return agent_pb2.GenerateKeyResponse(key=convert.key_msg(info))

    @rpc("create_csr")
    def CreateCertificateRequest(self, request: agent_pb2.CreateCertificateRequestRequest,
                                 call: Call) -> agent_pb2.CreateCertificateRequestResponse:
        """Admin callers only: a PKCS#10 request proves possession of a key for enrollment; it is not a use of
        the key that a document signer should be able to trigger (its digest shows nobody anything)."""
        self._admin(call.caller)
        if not request.subject:
            raise InvalidRequest("a certificate request needs a subject (at least common_name)")
        token = self.agent.directory.resolve(request.token.serial, request.token.label)
        call.serial, call.key_id = token.serial, request.key_id
        with self.agent.unlock.use(call.caller, token, pin_of(request.credential), 0, call.grant):
            der = token.create_csr(request.key_id, dict(request.subject), dns_names=list(request.dns_names),
                                   emails=list(request.emails))
        self.journal.record([Entry("create_csr", call.caller, token.serial, request.key_id, "", "pkcs10")])
        return agent_pb2.CreateCertificateRequestResponse(csr_der=der)

    @rpc("import_certificate")
    def ImportCertificate(self, request: agent_pb2.ImportCertificateRequest,
                          call: Call) -> agent_pb2.ImportCertificateResponse:
        self._admin(call.caller)
        token = self.agent.directory.resolve(request.token.serial, request.token.label)
        call.serial, call.key_id = token.serial, request.key_id
        with self.agent.unlock.use(call.caller, token, pin_of(request.credential), 0, call.grant):
            token.import_certificate(request.key_id, request.certificate_der, list(request.chain_der))
        self.agent.signing.material.forget(token.serial)
        self.journal.record([Entry("import_certificate", call.caller, token.serial, request.key_id)])
        return agent_pb2.ImportCertificateResponse()

    @rpc("delete_key")
    def DeleteKey(self, request: agent_pb2.DeleteKeyRequest, call: Call) -> agent_pb2.DeleteKeyResponse:
        self._admin(call.caller)
        token = self.agent.directory.resolve(request.token.serial, request.token.label)
        call.serial, call.key_id = token.serial, request.key_id
        with self.agent.unlock.use(call.caller, token, pin_of(request.credential), 0, call.grant):
            token.delete_key(request.key_id)
        self.agent.signing.material.forget(token.serial)
        self.journal.record([Entry("delete_key", call.caller, token.serial, request.key_id)])
        return agent_pb2.DeleteKeyResponse()

    # -- unlock ---------------------------------------------------------------
    @rpc("unlock")
    def Unlock(self, request: agent_pb2.UnlockRequest, call: Call) -> agent_pb2.UnlockResponse:
        self._may_try_pins(call.caller)
        call.serial = request.token.serial
        token = self.agent.directory.resolve(request.token.serial, request.token.label)
        call.serial = token.serial
        handle, grant = self.agent.unlock.unlock(call.caller, token, request.pin, request.ttl_seconds,
                                                 request.max_signatures)
        self.journal.record([Entry("unlock", call.caller, token.serial)])
        return agent_pb2.UnlockResponse(token_serial=token.serial, expires_at=int(grant.expires_at.timestamp()),
                                        signatures_left=grant.left, grant=handle)

    @rpc("lock")
    def Lock(self, request: agent_pb2.LockRequest, call: Call) -> agent_pb2.LockResponse:
        token = self.agent.directory.resolve(request.token.serial, request.token.label)
        call.serial = token.serial
        out = self.agent.unlock.lock(call.caller, token.serial, call.grant)
        self.journal.record([Entry("lock", call.caller, token.serial)])
        return agent_pb2.LockResponse(logged_out=out)

    @rpc("pin_reset")
    def PinReset(self, request: agent_pb2.PinResetRequest, call: Call) -> agent_pb2.PinResetResponse:
        self._admin(call.caller)
        token = self.agent.directory.resolve(request.token.serial, request.token.label)
        call.serial = token.serial
        proof = request.WhichOneof("proof")
        if proof is None or not getattr(request, proof):
            raise InvalidRequest("give the user PIN or the SO PIN to clear the lock")
        self.agent.unlock.reset_pin_lock(call.caller, token, request.pin if proof == "pin" else None,
                                         request.so_pin if proof == "so_pin" else None)
        self.journal.record([Entry("pin_reset", call.caller, token.serial, format=proof)])
        return agent_pb2.PinResetResponse(token_serial=token.serial, pin_tries_left=token.pin_tries_left())

    # -- digests --------------------------------------------------------------
    @rpc("sign_digest")
    def SignDigest(self, request: agent_pb2.SignDigestRequest, call: Call) -> agent_pb2.SignDigestResponse:
        call.serial, call.key_id = request.token.serial, request.key_id
        pin = pin_of(request.credential)
        if pin:
            self._may_try_pins(call.caller)
        serial, sigs, _ = self.agent.signing.sign_digests(
            call.caller, serial=request.token.serial, label=request.token.label, key_id=request.key_id,
            digests=[request.digest], hash_name=convert.hash_name(request.hash), scheme=convert.scheme(request.scheme),
            pin=pin, handle=call.grant, alive=call.alive)
        return agent_pb2.SignDigestResponse(signature=sigs[0], token_serial=serial)

    @rpc_stream("sign_digest")
    def SignDigestStream(self, request_iterator: Iterator[agent_pb2.SignDigestStreamRequest],
                         call: Call) -> Iterator[agent_pb2.SignDigestStreamResponse]:
        return sign_stream(self.agent.signing, request_iterator, call)

    # -- documents ------------------------------------------------------------
    @rpc_stream("sign_pdf")
    def SignPdf(self, request_iterator: Iterator[agent_pb2.SignPdfRequest],
                call: Call) -> Iterator[agent_pb2.SignPdfResponse]:
        return self.agent.documents.sign(request_iterator, call, "sign_pdf")

    @rpc_stream("sign_detached")
    def SignDetached(self, request_iterator: Iterator[agent_pb2.SignDetachedRequest],
                     call: Call) -> Iterator[agent_pb2.SignDetachedResponse]:
        return self.agent.documents.sign(request_iterator, call, "sign_detached")

    @rpc("verify_pdf")
    def VerifyPdf(self, request_iterator: Iterator[agent_pb2.VerifyPdfRequest],
                  call: Call) -> agent_pb2.VerifyResponse:
        return self.agent.documents.verify(request_iterator, call, "verify_pdf")

    @rpc("verify_detached")
    def VerifyDetached(self, request_iterator: Iterator[agent_pb2.VerifyDetachedRequest],
                       call: Call) -> agent_pb2.VerifyResponse:
        return self.agent.documents.verify(request_iterator, call, "verify_detached")
