"""Listeners: the Unix socket (0600 in a private 0700 directory) and the optional TCP listener with mutual TLS.

Python gRPC gives the servicer no peer credentials on a Unix socket, so the file modes are the access control:
only the agent's own user can connect.  The socket directory is created and checked without following symlinks
(owner and mode read from the opened directory).  A stale socket from a crashed agent is replaced; a live one
(another agent answers) is refused.  Health checking (grpc.health.v1) and server reflection (v1 and v1alpha)
are registered so `grpcurl` works without the .proto files.  The server takes at most ``4 * workers`` calls at
once; more are refused at once by gRPC (RESOURCE_EXHAUSTED) instead of queueing without bound.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from cryptography.hazmat.primitives import serialization

from signet.private import NotPrivate, ensure_private_dir
from signet.serving import add_health_and_reflection
from signet.v1 import agent_pb2, agent_pb2_grpc

from .config import AgentConfig, TlsConfig
from .errors import ConfigError

log = logging.getLogger(__name__)
SERVICE_NAME = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name


def prepare_socket(path: Path) -> None:
    """Create the socket's directory 0700 (refusing a symlink or one owned by someone else); clear a stale socket."""
    try:
        ensure_private_dir(path.parent)
    except NotPrivate as e:
        raise ConfigError(f"agent.socket: {e}") from None
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ConfigError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
            raise ConfigError(f"another agent is listening on {path}")
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink()  # stale: its agent is gone
        finally:
            probe.close()


def tls_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    key = tls.private_key.read_bytes()
    if tls.private_key_password:
        pk = serialization.load_pem_private_key(key, tls.private_key_password.encode())
        key = pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    return grpc.ssl_server_credentials(
        [(key, tls.certificate.read_bytes())], root_certificates=tls.client_ca.read_bytes(),
        require_client_auth=True,  # a client without a certificate from client_ca never gets a stream
    )


def server_options(cfg: AgentConfig) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", cfg.max_message_bytes),
        ("grpc.max_send_message_length", cfg.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]


def build_server(cfg: AgentConfig, servicer: agent_pb2_grpc.AgentServiceServicer) -> tuple[grpc.Server, int | None]:
    """A server ready to start (not yet started) and the bound TCP port, if any."""
    server = grpc.server(ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="rpc"),
                         options=server_options(cfg), maximum_concurrent_rpcs=cfg.workers * 4)
    agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)
    add_health_and_reflection(server, [SERVICE_NAME])
    prepare_socket(cfg.socket)
    old = os.umask(0o177)  # the socket is created 0600, never briefly wider
    try:
        server.add_insecure_port(f"unix:{cfg.socket}")
    finally:
        os.umask(old)
    port = None
    if cfg.tls is not None:
        port = server.add_secure_port(cfg.tls.listen, tls_credentials(cfg.tls))
        if port == 0:
            raise ConfigError(f"cannot listen on {cfg.tls.listen}")
    return server, port


def secure_socket(path: Path) -> None:
    """After start: make sure the socket is 0600 whatever gRPC did."""
    os.chmod(path, 0o600)
