"""OTLP/gRPC: ``opentelemetry.proto.collector.trace.v1.TraceService/Export`` on a real grpcio server.

The handler receives the request's raw bytes (no deserializer), so the batch ledger hashes exactly
what arrived and the bytes are parsed once, in the pipeline. gzip is handled by gRPC itself; the
size limit is ``grpc.max_receive_message_length`` (over it gRPC answers RESOURCE_EXHAUSTED).
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any

import grpc
from google.rpc import code_pb2

from ..errors import PermanentError, RetryableError
from .pipeline import Pipeline
from .status import RETRY_INFO_KEY, STATUS_DETAILS_KEY, export_response, retry_info, retry_info_status

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
        handler = grpc.unary_unary_rpc_method_handler(
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

    def _export(self, body: bytes, context: grpc.ServicerContext) -> Any:
        if self.token is not None:
            metadata = dict(context.invocation_metadata())
            if metadata.get("authorization") != f"Bearer {self.token}":
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        try:
            result = self.pipeline.store(body, "protobuf", "otlp-grpc")
        except PermanentError as exc:
            code = grpc.StatusCode.RESOURCE_EXHAUSTED if exc.too_large else grpc.StatusCode.INVALID_ARGUMENT
            context.abort(code, str(exc))
        except RetryableError as exc:
            self._abort_retryable(context, str(exc), exc.retry_after)
        except TimeoutError:
            self._abort_retryable(context, "the store did not commit in time", 5.0)
        return export_response(result)

    @staticmethod
    def _abort_retryable(context: grpc.ServicerContext, message: str, retry_after: float) -> None:
        status = retry_info_status(message, retry_after)
        context.set_trailing_metadata(
            (
                (STATUS_DETAILS_KEY, status.SerializeToString()),
                (RETRY_INFO_KEY, retry_info(retry_after).SerializeToString()),
            )
        )
        assert status.code == code_pb2.UNAVAILABLE
        context.abort(grpc.StatusCode.UNAVAILABLE, message)

    def start(self) -> None:
        self.server.start()

    def stop(self, grace: float) -> None:
        self.server.stop(grace).wait(grace + 1)
