"""What every Signet gRPC listener serves besides its own services: health checking and server reflection.

Reflection is offered as ``grpc.reflection.v1`` (what grpcurl and current tools ask first) and as
``grpc.reflection.v1alpha``.  grpcio-reflection ships only v1alpha; the two protocols are the same messages
under another package name, so the one servicer answers both.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"


def add_health_and_reflection(server: grpc.Server, service_names: Iterable[str]) -> health.HealthServicer:
    """Register health (every named service and "" SERVING) and reflection v1 + v1alpha; returns the health
    servicer (call ``enter_graceful_shutdown()`` on it before stopping)."""
    names = list(service_names)
    checker = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    for name in ["", *names]:
        checker.set(name, health_pb2.HealthCheckResponse.SERVING)
    listed = [*names, health.SERVICE_NAME, reflection.SERVICE_NAME, REFLECTION_V1]
    servicer = reflection.ReflectionServicer(listed)
    for service in (reflection.SERVICE_NAME, REFLECTION_V1):
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString),
        }),))
    return checker
