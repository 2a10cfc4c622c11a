"""Client side of AgentService: channels (Unix socket or mutual TLS), uploads in chunks, PIN sources.

Used by the `signet` CLI, the end-to-end tests and the benchmark.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def channel(target: Target) -> grpc.Channel:
    opts: list[tuple[str, Any]] = [("grpc.max_receive_message_length", MAX_MESSAGE),
                                   ("grpc.max_send_message_length", MAX_MESSAGE)]
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


def download(responses: Iterator[Any], out: Path, progress: Progress | None = None) -> Any:
    """Write the streamed chunks to ``out`` (0644 via a temp file, renamed at the end); returns the result."""
    tmp = out.with_name(f".{out.name}.part")
    result = None
    done = 0
    try:
        with open(tmp, "wb") as f:
            for r in responses:
                if r.WhichOneof("part") == "chunk":
                    f.write(r.chunk)
                    done += len(r.chunk)
                    if progress:
                        progress(done)
                else:
                    result = r.result
            f.flush()
            os.fsync(f.fileno())
        if result is None:
            raise RuntimeError("the agent ended the stream without a result")
        os.replace(tmp, out)
        return result
    finally:
        tmp.unlink(missing_ok=True)


def error_detail(e: grpc.RpcError) -> Any:
    try:
        return parse_detail(e.trailing_metadata())  # type: ignore[attr-defined]
    except Exception:
        return None


def read_pin(pin_file: str | None = None, pin_env: str | None = None, prompt: str = "PIN: ",
             interactive: bool = True) -> str | None:
    """The PIN from a file (first line), an environment variable, or a prompt; None when none is available."""
    if pin_file:
        text = Path(pin_file).read_text()
        return text.splitlines()[0] if text else ""
    if pin_env:
        value = os.environ.get(pin_env)
        if value is None:
            raise ValueError(f"environment variable {pin_env} is not set")
        return value
    if "SIGNET_PIN" in os.environ:
        return os.environ["SIGNET_PIN"]
    if interactive and sys.stdin.isatty():
        return getpass.getpass(prompt)
    return None
