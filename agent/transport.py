"""Listeners: the Unix socket (0600 in a 0700 directory) and the optional TCP listener with mutual TLS.

Python gRPC gives the servicer no peer credentials on a Unix socket, so the
file modes are the access control: only the agent's own user can connect.  A
stale socket from a crashed agent is replaced; a live one (another agent
answers) is refused.  Health checking (grpc.health.v1) and server reflection
are registered so `grpcurl` works without the .proto files.
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
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from signet.v1 import agent_pb2, agent_pb2_grpc

from .config import AgentConfig, TlsConfig
from .errors import ConfigError

log = logging.getLogger(__name__)
SERVICE_NAME = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name


def prepare_socket(path: Path) -> None:
    """Create the socket's directory 0700 (refusing one owned by someone else) and clear a stale socket."""
    d = path.parent
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = d.stat()
    if st.st_uid != os.getuid():
        raise ConfigError(f"socket directory {d} belongs to uid {st.st_uid}, not to this user")
    os.chmod(d, 0o700)
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
    """A started-ready server (not yet started) and the bound TCP port, if any."""
    server = grpc.server(ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="rpc"),
                         options=server_options(cfg), maximum_concurrent_rpcs=cfg.workers * 8)
    agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)
    hs = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    hs.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    hs.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)

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
