"""The floor under every unary agent call: a bare gRPC server on a Unix socket whose ``GetInfo`` does nothing (no
agent, no authentication, an empty answer), served by grpcio's thread-pool server or by ``grpc.aio``.

``bench/agent_unary.py`` drives it with the same clients as the agent, so its lines say what this machine's Python
gRPC can do at all: a unary target above the floor cannot be met by any handler, and the aio line says whether
moving the agent to ``grpc.aio`` would raise the floor.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from types import TracebackType
from typing import Any

KINDS = ("sync", "aio")
SERVICE = "signet.v1.AgentService"


def _serve(kind: str, socket: str, workers: int) -> None:
    import grpc

    from signet.v1 import agent_pb2

    def info(request: agent_pb2.GetInfoRequest, context: object) -> agent_pb2.GetInfoResponse:
        return agent_pb2.GetInfoResponse()

    async def info_aio(request: agent_pb2.GetInfoRequest, context: object) -> agent_pb2.GetInfoResponse:
        return agent_pb2.GetInfoResponse()

    def handlers(fn: Callable[..., Any]) -> grpc.GenericRpcHandler:
        # the agent's own service and method name, so the agent's clients call it unchanged
        return grpc.method_handlers_generic_handler(SERVICE, {"GetInfo": grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=agent_pb2.GetInfoRequest.FromString,
            response_serializer=agent_pb2.GetInfoResponse.SerializeToString)})

    if kind == "sync":
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
        server.add_generic_rpc_handlers((handlers(info),))
        server.add_insecure_port(f"unix://{socket}")
        server.start()
        server.wait_for_termination()
        return

    async def run() -> None:
        aserver = grpc.aio.server()
        aserver.add_generic_rpc_handlers((handlers(info_aio),))
        aserver.add_insecure_port(f"unix://{socket}")
        await aserver.start()
        await aserver.wait_for_termination()

    asyncio.run(run())


class FloorServer:
    """``with FloorServer("sync", path) as s:`` a bare server process listening on ``s.socket``."""

    def __init__(self, kind: str, socket: Path, workers: int = 16) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        self.kind, self.socket, self.workers = kind, socket, workers
        self._proc: mp.process.BaseProcess | None = None

    def __enter__(self) -> FloorServer:
        if self.socket.exists():
            self.socket.unlink()
        self._proc = mp.get_context("spawn").Process(target=_serve, args=(self.kind, str(self.socket), self.workers),
                                                     daemon=True)
        self._proc.start()
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if not self._proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the bare {self.kind} gRPC server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(10)
        if os.path.exists(self.socket):
            self.socket.unlink()
