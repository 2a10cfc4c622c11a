"""Client side of AgentService: channels (Unix socket or mutual TLS), uploads in chunks, PIN sources.

Document signing (:class:`DocumentSigning`) puts a small file whole into the header and asks for the output
inline in the result when the agent supports it (``GetInfoResponse.max_inline_bytes``): one message each
way instead of header + chunks + chunks + result.  That one request is sent as a unary-stream call of the
same SignPdf/SignDetached method (identical on the wire) on a channel whose unary-stream calls run in the
calling thread: Python gRPC's client-streaming calls start a request-consumer thread per call and read
responses through the channel's spin thread, ~1.4 ms of a 2-core machine per call; this costs ~0.3 ms.
Larger files are streamed in chunks as before.

Used by the `signet` CLI, the end-to-end tests and the benchmark.
"""

from __future__ import annotations

import getpass
import io
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import grpc
from signet.v1 import agent_pb2, agent_pb2_grpc, common_pb2

from .config import default_socket_path
from .status import parse_detail

ALGOS = {"rsa-2048": common_pb2.KEY_ALGORITHM_RSA_2048, "rsa-3072": common_pb2.KEY_ALGORITHM_RSA_3072,
         "rsa-4096": common_pb2.KEY_ALGORITHM_RSA_4096, "p256": common_pb2.KEY_ALGORITHM_EC_P256,
         "p384": common_pb2.KEY_ALGORITHM_EC_P384}

CHUNK = 1024 * 1024
MAX_MESSAGE = 8 * 1024 * 1024
Progress = Callable[[int], None]


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
        return cls(socket=Path(os.environ.get("SIGNET_AGENT_SOCKET") or default_socket_path()))


def channel(target: Target, single_threaded_streams: bool = False) -> grpc.Channel:
    """A channel to the agent; ``single_threaded_streams``: unary-stream calls run in the calling thread
    (grpc's experimental SingleThreadedUnaryStream; a Python-side option, so the connection is shared)."""
    opts: list[tuple[str, Any]] = [("grpc.max_receive_message_length", MAX_MESSAGE),
                                   ("grpc.max_send_message_length", MAX_MESSAGE)]
    if single_threaded_streams:
        opts.append((grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1))
    if target.tcp:
        creds = grpc.ssl_channel_credentials(
            root_certificates=target.ca.read_bytes() if target.ca else None,
            private_key=target.key.read_bytes() if target.key else None,
            certificate_chain=target.cert.read_bytes() if target.cert else None,
        )
        if target.server_name:
            opts.append(("grpc.ssl_target_name_override", target.server_name))
        return grpc.secure_channel(target.tcp, creds, options=opts)
    return grpc.insecure_channel(f"unix:{target.socket}", options=opts)


def stub(target: Target) -> agent_pb2_grpc.AgentServiceStub:
    return agent_pb2_grpc.AgentServiceStub(channel(target))


def selector(label: str | None = None, serial: str | None = None) -> agent_pb2.TokenSelector:
    return agent_pb2.TokenSelector(serial=serial) if serial else agent_pb2.TokenSelector(label=label or "")


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

    ``header`` (a SignPdfHeader or SignDetachedHeader) gets ``inline_result`` whenever ``limit`` says the
    agent knows the fields (``limit`` > 0), and ``document`` + ``size`` for a small file.  The file is read
    once; the decision reads at most ``limit`` + 1 bytes, so a file that grows meanwhile is still sent whole
    (in chunks).
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


def receive(responses: Iterator[Any], sink: BinaryIO, progress: Progress | None = None) -> Any:
    """Write the output of a signing call to ``sink`` (streamed chunks, or the result's inline content).

    Returns the SignResult without its ``content`` (already written to ``sink``).
    """
    result = None
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


def download(responses: Iterator[Any], out: Path, progress: Progress | None = None) -> Any:
    """Write the signed output to ``out`` (0644 via a temp file, renamed at the end); returns the result."""
    tmp = out.with_name(f".{out.name}.part")
    try:
        with open(tmp, "wb") as f:
            result = receive(responses, f, progress)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
        return result
    finally:
        tmp.unlink(missing_ok=True)


_SIGN_METHODS = {"pdf": ("SignPdf", agent_pb2.SignPdfRequest, agent_pb2.SignPdfResponse),
                 "detached": ("SignDetached", agent_pb2.SignDetachedRequest, agent_pb2.SignDetachedResponse)}


class DocumentSigning:
    """SignPdf ("pdf") and SignDetached ("detached") of files: inline for small files, chunked for large ones.

    Asks the agent once (GetInfo) how large an inline document may be; an agent that predates inline
    transfers says 0 and gets the chunked framing.
    """

    def __init__(self, target: Target, agent: agent_pb2_grpc.AgentServiceStub | None = None) -> None:
        self.stub = agent or stub(target)
        once = self._channel = channel(target, single_threaded_streams=True)  # kept: closed when collected
        self._once = {kind: once.unary_stream(f"/signet.v1.AgentService/{name}",
                                              request_serializer=req.SerializeToString,
                                              response_deserializer=resp.FromString, _registered_method=True)
                      for kind, (name, req, resp) in _SIGN_METHODS.items()}
        self._limit: int | None = None

    @property
    def inline_limit(self) -> int:
        """The largest document the agent takes inline (0: an agent without inline transfers)."""
        if self._limit is None:
            self._limit = int(self.stub.GetInfo(agent_pb2.GetInfoRequest()).max_inline_bytes)
        return self._limit

    def responses(self, kind: str, header: Any, path: Path, progress: Progress | None = None,
                  timeout: float | None = None) -> Iterator[Any]:
        """Start the call for ``path`` (``kind`` "pdf" or "detached"); its response stream."""
        name, request_cls, _ = _SIGN_METHODS[kind]
        requests = document_requests(header, request_cls, path, self.inline_limit, progress)
        first = next(requests)
        if first.header.HasField("document"):  # the only request: no client-streaming machinery
            return self._once[kind](first, timeout=timeout)  # type: ignore[no-any-return]
        return getattr(self.stub, name)(itertools.chain([first], requests), timeout=timeout)  # type: ignore[no-any-return]

    def to_file(self, kind: str, header: Any, path: Path, out: Path, upload: Progress | None = None,
                download_progress: Progress | None = None, timeout: float | None = None) -> Any:
        """Sign ``path`` into ``out`` (see :func:`download`); returns the SignResult."""
        return download(self.responses(kind, header, path, upload, timeout), out, download_progress)

    def close(self) -> None:
        self._channel.close()

    def to_bytes(self, kind: str, header: Any, path: Path, timeout: float | None = None) -> tuple[Any, bytes]:
        """Sign ``path``; returns (SignResult, output in memory) -- for programs signing many small files."""
        buf = io.BytesIO()
        result = receive(self.responses(kind, header, path, timeout=timeout), buf)
        return result, buf.getvalue()


def error_detail(e: grpc.RpcError) -> Any:
    try:
        return parse_detail(e.trailing_metadata())  # type: ignore[attr-defined]
    except Exception:
        return None


def read_secret(from_file: str | None = None, from_env: str | None = None) -> str | None:
    """A secret (PIN, one-time code) from a file's first line or an environment variable; None when neither is given.

    Secrets are never taken from command-line arguments, which other users can read in the process list.
    """
    if from_file:
        text = Path(from_file).read_text()
        return text.splitlines()[0] if text else ""
    if from_env:
        value = os.environ.get(from_env)
        if value is None:
            raise ValueError(f"environment variable {from_env} is not set")
        return value
    return None


def read_pin(pin_file: str | None = None, pin_env: str | None = None, prompt: str = "PIN: ",
             interactive: bool = True) -> str | None:
    """The PIN from a file (first line), an environment variable, $SIGNET_PIN or a prompt; None when none."""
    pin = read_secret(pin_file, pin_env)
    if pin is not None:
        return pin
    if "SIGNET_PIN" in os.environ:
        return os.environ["SIGNET_PIN"]
    if interactive and sys.stdin.isatty():
        return getpass.getpass(prompt)
    return None
