"""Client side of AgentService: :class:`AgentClient`, the typed facade the `signet` CLI, the demo, tests and
benchmarks use; channels (Unix socket or mutual TLS); uploads; grant handles.

This module and the CLI never load PKCS#11 or pyHanko (import-linter checks it): a command starts in the time
it takes to import gRPC and the generated messages.

Document signing puts a small file whole into the header and asks for the output inline in the result when
the agent supports it (``GetInfoResponse.max_inline_bytes``): one message each way.  That one request is sent
as a unary-stream call of the same SignPdf/SignDetached method (identical on the wire) on a channel whose
unary-stream calls run in the calling thread (~0.3 ms instead of ~1.4 ms of client-streaming machinery).
Larger files are streamed in chunks.  Before it connects to a Unix socket, the client checks that the socket's
directory is private (ours, 0700, not a symlink): a PIN is never sent to a socket someone else could own.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import grpc
from google.protobuf.message import Message

from signet.durable import open_atomic
from signet.private import check_private_dir
from signet.v1 import agent_pb2, agent_pb2_grpc, common_pb2
from signet.wire import GRANT_METADATA, KEY_ALGORITHMS

from .grantfiles import GrantFiles
from .paths import default_socket_path

CHUNK = 1024 * 1024
MAX_MESSAGE = 8 * 1024 * 1024
Progress = Callable[[int], None]


class NoAgent(Exception):
    """No agent to talk to: no socket configured, or a socket directory that is not private."""


@dataclass(frozen=True)
class Target:
    """Where the agent is: a Unix socket, or HOST:PORT with client certificate, key and CA for mTLS."""

    socket: Path | None = None
    tcp: str | None = None
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    server_name: str | None = None

    @classmethod
    def default(cls) -> Target:
        explicit = os.environ.get("SIGNET_AGENT_SOCKET")
        path = Path(explicit) if explicit else default_socket_path()
        if path is None:
            raise NoAgent("no agent socket: set SIGNET_AGENT_SOCKET or XDG_RUNTIME_DIR, or give --socket")
        return cls(socket=path)


def channel(target: Target, single_threaded_streams: bool = False) -> grpc.Channel:
    """A channel to the agent; ``single_threaded_streams``: unary-stream calls run in the calling thread
    (grpc's experimental SingleThreadedUnaryStream; a Python-side option, so the connection is shared)."""
    opts: list[tuple[str, Any]] = [("grpc.max_receive_message_length", MAX_MESSAGE),
                                   ("grpc.max_send_message_length", MAX_MESSAGE)]
    if single_threaded_streams:
        opts.append(("SingleThreadedUnaryStream", 1))  # grpc.experimental.ChannelOptions (untyped in the stubs)
    if target.tcp:
        creds = grpc.ssl_channel_credentials(
            root_certificates=target.ca.read_bytes() if target.ca else None,
            private_key=target.key.read_bytes() if target.key else None,
            certificate_chain=target.cert.read_bytes() if target.cert else None,
        )
        if target.server_name:
            opts.append(("grpc.ssl_target_name_override", target.server_name))
        return grpc.secure_channel(target.tcp, creds, options=opts)
    if target.socket is None:
        raise NoAgent("no agent socket given")
    try:
        check_private_dir(target.socket.parent)
    except PermissionError as e:
        raise NoAgent(f"refusing to talk to the agent socket {target.socket}: {e}") from None
    return grpc.insecure_channel(f"unix:{target.socket}", options=opts)


@dataclass(frozen=True)
class TokenRef:
    """A token chosen by label (follows whatever token carries it) or by serial (pins one physical token)."""

    label: str = ""
    serial: str = ""

    def message(self) -> agent_pb2.TokenSelector:
        return agent_pb2.TokenSelector(serial=self.serial) if self.serial else agent_pb2.TokenSelector(label=self.label)


def _cred(pin: str | None) -> agent_pb2.PinCredential | None:
    return agent_pb2.PinCredential(pin=pin) if pin else None


def file_chunks(path: Path, progress: Progress | None = None, chunk: int = CHUNK) -> Iterator[bytes]:
    done = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            done += len(block)
            if progress:
                progress(done)
            yield block


def upload(header_field: str, header: Any, request_cls: Any, chunks: Iterator[bytes]) -> Iterator[Any]:
    yield request_cls(**{header_field: header})
    for c in chunks:
        yield request_cls(chunk=c)


def document_requests(header: Any, request_cls: Any, path: Path, limit: int, progress: Progress | None = None,
                      chunk: int = CHUNK) -> Iterator[Any]:
    """The requests of a SignPdf/SignDetached upload of ``path``: one, inline, when it has at most ``limit`` bytes.

    ``header`` gets ``inline_result`` whenever ``limit`` says the agent knows the fields (``limit`` > 0), and
    ``document`` + ``size`` for a small file.  The file is read once; the decision reads at most ``limit`` + 1
    bytes, so a file that grows meanwhile is still sent whole (in chunks).
    """
    with open(path, "rb") as f:
        head = f.read(limit + 1) if limit > 0 else b""
        if limit > 0:
            header.inline_result = True
            if len(head) <= limit:
                header.document, header.size = head, len(head)
                if progress:
                    progress(len(head))
                yield request_cls(header=header)
                return
        yield request_cls(header=header)
        done = 0
        pending = head
        while True:
            if not pending:
                pending = f.read(chunk)
                if not pending:
                    return
            elif len(pending) < chunk:  # top the read-ahead up to a whole chunk
                pending += f.read(chunk - len(pending))
            block, pending = pending[:chunk], pending[chunk:]
            done += len(block)
            if progress:
                progress(done)
            yield request_cls(chunk=block)


def receive(responses: Iterator[Any], sink: BinaryIO, progress: Progress | None = None) -> agent_pb2.SignResult:
    """Write the output of a signing call to ``sink`` (streamed chunks, or the result's inline content).

    Returns the SignResult without its ``content`` (already written to ``sink``).
    """
    result: agent_pb2.SignResult | None = None
    done = 0
    for r in responses:
        if r.WhichOneof("part") == "chunk":
            sink.write(r.chunk)
            done += len(r.chunk)
            if progress:
                progress(done)
        else:
            result = r.result
    if result is None:
        raise RuntimeError("the agent ended the stream without a result")
    if result.content:
        sink.write(result.content)
        if progress:
            progress(done + len(result.content))
        result.ClearField("content")
    return result


_SIGN_METHODS: dict[str, tuple[str, type[Message], type[Message]]] = {
    "pdf": ("SignPdf", agent_pb2.SignPdfRequest, agent_pb2.SignPdfResponse),
    "detached": ("SignDetached", agent_pb2.SignDetachedRequest, agent_pb2.SignDetachedResponse)}


@dataclass(frozen=True)
class PdfOptions:
    field_name: str = ""
    reason: str = ""
    location: str = ""
    contact_info: str = ""
    visible: tuple[int, float, float, float, float] | None = None  # page, x1, y1, x2, y2 (points)
    timestamp_url: str = ""  # B-T when set
    form_values: Mapping[str, str] = field(default_factory=dict)  # form fields to fill (name -> value)


class AgentClient:
    """Every AgentService call the CLI makes, with plain arguments; answers are the API's messages."""

    def __init__(self, target: Target, grants: GrantFiles | None = None) -> None:
        self.target = target
        self._channel = channel(target)
        self.stub = agent_pb2_grpc.AgentServiceStub(self._channel)
        self.grants = grants if grants is not None else GrantFiles()
        self._once_channel: grpc.Channel | None = None
        self._limit: int | None = None

    def close(self) -> None:
        self._channel.close()
        if self._once_channel is not None:
            self._once_channel.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _grant(self, token: TokenRef, grant: str | None) -> tuple[tuple[str, str], ...] | None:
        handle = grant or self.grants.load(serial=token.serial, label=token.label)
        return ((GRANT_METADATA, handle),) if handle else None

    # -- info, tokens, keys ---------------------------------------------------------------------------------
    def info(self) -> agent_pb2.GetInfoResponse:
        return self.stub.GetInfo(agent_pb2.GetInfoRequest())

    def tokens(self) -> agent_pb2.ListTokensResponse:
        return self.stub.ListTokens(agent_pb2.ListTokensRequest())

    def watch(self) -> Iterator[agent_pb2.WatchTokensResponse]:
        return self.stub.WatchTokens(agent_pb2.WatchTokensRequest())

    def keys(self, token: TokenRef, pin: str | None = None, grant: str | None = None) -> agent_pb2.ListKeysResponse:
        return self.stub.ListKeys(agent_pb2.ListKeysRequest(token=token.message(), credential=_cred(pin)),
                                  metadata=self._grant(token, grant))

    def generate_key(self, token: TokenRef, algorithm: str, label: str, pin: str | None = None) -> common_pb2.Key:
        return self.stub.GenerateKey(agent_pb2.GenerateKeyRequest(
            token=token.message(), algorithm=KEY_ALGORITHMS[algorithm], label=label, credential=_cred(pin)),
            metadata=self._grant(token, None)).key

    def certificate_request(self, token: TokenRef, key_id: str, subject: dict[str, str], *,
                            dns: list[str] | None = None, emails: list[str] | None = None,
                            pin: str | None = None) -> bytes:
        return self.stub.CreateCertificateRequest(agent_pb2.CreateCertificateRequestRequest(
            token=token.message(), key_id=key_id, subject=subject, dns_names=dns or [], emails=emails or [],
            credential=_cred(pin)), metadata=self._grant(token, None)).csr_der

    def import_certificate(self, token: TokenRef, key_id: str, certificate: bytes, chain: list[bytes],
                           pin: str | None = None) -> None:
        self.stub.ImportCertificate(agent_pb2.ImportCertificateRequest(
            token=token.message(), key_id=key_id, certificate_der=certificate, chain_der=chain, credential=_cred(pin)),
            metadata=self._grant(token, None))

    def delete_key(self, token: TokenRef, key_id: str, pin: str | None = None) -> None:
        self.stub.DeleteKey(agent_pb2.DeleteKeyRequest(token=token.message(), key_id=key_id, credential=_cred(pin)),
                            metadata=self._grant(token, None))

    # -- unlock ---------------------------------------------------------------------------------------------
    def unlock(self, token: TokenRef, pin: str, ttl: int = 0, max_signatures: int = 0, *,
               keep: bool = True) -> agent_pb2.UnlockResponse:
        """Unlock; with ``keep`` the grant handle is stored for later commands (:mod:`agent.grantfiles`)."""
        r = self.stub.Unlock(agent_pb2.UnlockRequest(token=token.message(), pin=pin, ttl_seconds=ttl,
                                                     max_signatures=max_signatures))
        if keep:
            self.grants.save(r.grant, serial=r.token_serial, label=token.label)
        return r

    def lock(self, token: TokenRef) -> agent_pb2.LockResponse:
        r = self.stub.Lock(agent_pb2.LockRequest(token=token.message()))
        self.grants.forget(serial=token.serial, label=token.label)
        return r

    def pin_reset(self, token: TokenRef, *, pin: str | None = None, so_pin: str | None = None
                  ) -> agent_pb2.PinResetResponse:
        req = agent_pb2.PinResetRequest(token=token.message(), pin=pin) if pin else \
            agent_pb2.PinResetRequest(token=token.message(), so_pin=so_pin or "")
        return self.stub.PinReset(req)

    # -- signing and verification ----------------------------------------------------------------------------
    @property
    def inline_limit(self) -> int:
        """The largest document the agent takes inline (0: an agent without inline transfers)."""
        if self._limit is None:
            self._limit = int(self.info().max_inline_bytes)
        return self._limit

    def _responses(self, kind: str, header: Any, path: Path, token: TokenRef, *, grant: str | None,
                   progress: Progress | None, timeout: float | None) -> Iterator[Any]:
        name, request_cls, resp_cls = _SIGN_METHODS[kind]
        requests = document_requests(header, request_cls, path, self.inline_limit, progress)
        first = next(requests)
        metadata = self._grant(token, grant)
        if first.header.HasField("document"):  # the only request: no client-streaming machinery
            if self._once_channel is None:
                self._once_channel = channel(self.target, single_threaded_streams=True)
            # _registered_method: the call path the generated stubs use (not in the grpc stubs' signature)
            once: Any = cast(Any, self._once_channel).unary_stream(
                f"/signet.v1.AgentService/{name}", request_serializer=request_cls.SerializeToString,
                response_deserializer=resp_cls.FromString, _registered_method=True)
            responses: Iterator[Any] = once(first, timeout=timeout, metadata=metadata)
            return responses
        method = getattr(self.stub, name)
        streamed: Iterator[Any] = method(itertools.chain([first], requests), timeout=timeout, metadata=metadata)
        return streamed

    def sign_responses(self, kind: str, header: Any, path: Path, *, grant: str | None = None,
                       progress: Progress | None = None, timeout: float | None = None) -> Iterator[Any]:
        """The raw response stream of signing ``path`` with a prepared SignPdfHeader ("pdf") or SignDetachedHeader
        ("detached"): one inline result, or chunks then the result."""
        sel = header.token
        return self._responses(kind, header, path, TokenRef(sel.label, sel.serial), grant=grant, progress=progress,
                               timeout=timeout)

    def _header(self, pdf: bool, token: TokenRef, key_id: str, pin: str | None, *, size: int, file_name: str,
                options: PdfOptions, timestamp_url: str) -> Any:
        if not pdf:
            return agent_pb2.SignDetachedHeader(token=token.message(), key_id=key_id, credential=_cred(pin), size=size,
                                                timestamp_url=timestamp_url, file_name=file_name)
        h = agent_pb2.SignPdfHeader(
            token=token.message(), key_id=key_id, credential=_cred(pin), size=size, field_name=options.field_name,
            reason=options.reason, location=options.location, contact_info=options.contact_info,
            level=agent_pb2.PADES_LEVEL_B_T if options.timestamp_url else agent_pb2.PADES_LEVEL_B_B,
            timestamp_url=options.timestamp_url, file_name=file_name, form_values=dict(options.form_values))
        if options.visible is not None:
            page, x1, y1, x2, y2 = options.visible
            h.appearance.CopyFrom(agent_pb2.Appearance(page=int(page), x1=x1, y1=y1, x2=x2, y2=y2))
        return h

    def sign_file(self, path: Path, out: Path, *, pdf: bool, token: TokenRef, key_id: str, pin: str | None = None,
                  grant: str | None = None, options: PdfOptions | None = None, timestamp_url: str = "",
                  upload_progress: Progress | None = None, download_progress: Progress | None = None,
                  timeout: float | None = None) -> agent_pb2.SignResult:
        """Sign ``path`` into ``out`` (PAdES when ``pdf``, else a detached .p7s), written atomically."""
        options = options or PdfOptions()
        header = self._header(pdf, token, key_id, pin, size=path.stat().st_size, file_name=path.name, options=options,
                              timestamp_url=timestamp_url)
        responses = self._responses("pdf" if pdf else "detached", header, path, token, grant=grant,
                                    progress=upload_progress, timeout=timeout)
        with open_atomic(out, 0o644) as f:
            return receive(responses, f, download_progress)

    def sign_to_bytes(self, path: Path, *, pdf: bool, token: TokenRef, key_id: str, pin: str | None = None,
                      grant: str | None = None, options: PdfOptions | None = None, timestamp_url: str = "",
                      timeout: float | None = None) -> tuple[agent_pb2.SignResult, bytes]:
        """Sign ``path``; (SignResult, output in memory) -- for programs signing many small files."""
        options = options or PdfOptions()
        header = self._header(pdf, token, key_id, pin, size=path.stat().st_size, file_name=path.name, options=options,
                              timestamp_url=timestamp_url)
        buf = io.BytesIO()
        responses = self._responses("pdf" if pdf else "detached", header, path, token, grant=grant, progress=None,
                                    timeout=timeout)
        result = receive(responses, buf)
        return result, buf.getvalue()

    def verify_file(self, path: Path, *, signature: bytes | None = None, trust_roots: list[bytes] | None = None,
                    offline: bool = False, progress: Progress | None = None) -> agent_pb2.VerifyResponse:
        size = path.stat().st_size
        chunks = file_chunks(path, progress)
        if signature is not None:
            h = agent_pb2.VerifyDetachedHeader(size=size, signature_der=signature, trust_roots_der=trust_roots or [],
                                               offline=offline)
            return self.stub.VerifyDetached(upload("header", h, agent_pb2.VerifyDetachedRequest, chunks))
        h2 = agent_pb2.VerifyPdfHeader(size=size, trust_roots_der=trust_roots or [], offline=offline)
        return self.stub.VerifyPdf(upload("header", h2, agent_pb2.VerifyPdfRequest, chunks))
