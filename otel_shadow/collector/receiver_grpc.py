"""OTLP/gRPC: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` on a real grpcio server.

The handler receives the request's raw bytes (no deserializer), so the batch ledger hashes exactly
what arrived and the bytes are parsed once, in the pipeline. gzip is handled by gRPC itself; the
size limit is ``grpc.max_receive_message_length`` (over it gRPC answers RESOURCE_EXHAUSTED).

gRPC hands over a message only once it has received all of it, so the pipeline's in-flight limit
applies from there, before anything is decoded; until then a message is bounded by the size limit,
and at most ``workers`` messages are being received at once. Answers come from ``status``'s table.
"""

from __future__ import annotations

import hmac
import logging
from concurrent import futures
from typing import Any

import grpc

from .pipeline import Pipeline
from .status import Outcome, Refusal, export_response, grpc_trailers, refusal_of

__all__ = ["GrpcReceiver"]

logger = logging.getLogger("otel_shadow.collector")

SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


class GrpcReceiver:
    def __init__(
        self,
        pipeline: Pipeline,
        *,
        host: str,
        port: int,
        max_request_bytes: int,
        token: str | None = None,
        tls: tuple[bytes, bytes] | None = None,
        workers: int = 16,
    ) -> None:
        self.pipeline = pipeline
        self.token = token
        options = [
            ("grpc.max_receive_message_length", max_request_bytes),
            ("grpc.max_send_message_length", 4 * 2**20),
            ("grpc.so_reuseport", 0),
        ]
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="otel-shadow-grpc"),
            options=options,
            maximum_concurrent_rpcs=workers * 2,
        )
        handler: grpc.RpcMethodHandler[bytes, Any] = grpc.unary_unary_rpc_method_handler(
            self._export, request_deserializer=None, response_serializer=lambda r: r.SerializeToString()
        )
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {"Export": handler}),))
        address = f"{host}:{port}"
        if tls is not None:
            key, cert = tls
            credentials = grpc.ssl_server_credentials([(key, cert)])
            self.port = self.server.add_secure_port(address, credentials)
        else:
            self.port = self.server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen for OTLP/gRPC on {address} (port in use?)")

    def _authorized(self, context: grpc.ServicerContext) -> bool:
        if self.token is None:
            return True
        offered = dict(context.invocation_metadata()).get("authorization", "")
        if not isinstance(offered, str):
            return False
        return hmac.compare_digest(offered.encode(), f"Bearer {self.token}".encode())

    def _export(self, body: bytes, context: grpc.ServicerContext) -> Any:
        if not self._authorized(context):
            self._abort(context, Refusal(Outcome.UNAUTHENTICATED, "missing or wrong bearer token"))
        try:
            result = self.pipeline.store(body, "protobuf", "otlp-grpc")
        except Exception as exc:
            refusal = refusal_of(exc)
            if refusal.outcome is Outcome.INTERNAL:
                logger.exception("OTLP/gRPC request failed inside the collector")
            self._abort(context, refusal)
        return export_response(result)

    @staticmethod
    def _abort(context: grpc.ServicerContext, refusal: Refusal) -> None:
        trailers = grpc_trailers(refusal)
        if trailers:
            context.set_trailing_metadata(trailers)
        context.abort(refusal.answer.grpc, refusal.message)

    def start(self) -> None:
        self.server.start()

    def stop(self, grace: float) -> None:
        self.server.stop(grace).wait(grace + 1)
