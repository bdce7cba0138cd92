"""Bearer tokens on both transports and the SQL access; TLS on both transports."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from ..store.otlp import pair, request
from .test_otlp import SERVICE, grpc_export, http_url, query


def test_token_is_required_on_every_door(start_collector: Any) -> None:
    collector = start_collector(token="s3cret")
    body = request(*pair()).SerializeToString()
    with pytest.raises(grpc.RpcError) as info:
        grpc_export(collector, body)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError):
        grpc_export(collector, body, metadata=[("authorization", "Bearer wrong")])
    assert (
        httpx.post(http_url(collector), content=body, headers={"Content-Type": "application/x-protobuf"}).status_code
        == 401
    )
    assert httpx.post(http_url(collector, "/v1/sql"), json={"sql": "SELECT 1"}).status_code == 401
    assert query(collector, "SELECT count(*) FROM spans") == [(0,)]
    grpc_export(collector, body, metadata=[("authorization", "Bearer s3cret")])
    auth = {"Authorization": "Bearer s3cret"}
    assert httpx.post(http_url(collector, "/v1/sql"), json={"sql": "SELECT count(*) FROM spans"}, headers=auth).json()[
        "rows"
    ] == [[2]]


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_on_both_transports(start_collector: Any, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    collector = start_collector(tls_cert=str(cert), tls_key=str(key))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    channel = grpc.secure_channel(f"localhost:{collector.grpc.port}", credentials)
    channel.unary_unary(SERVICE)(request(*pair()).SerializeToString(), timeout=20)
    channel.close()
    url = f"https://localhost:{collector.http_port}/v1/traces"
    answer = httpx.post(
        url,
        content=request(*pair()).SerializeToString(),
        headers={"Content-Type": "application/x-protobuf"},
        verify=ssl.create_default_context(cafile=str(cert)),
    )
    assert answer.status_code == 200
    assert query(collector, "SELECT count(*) FROM shadow_pairs") == [(2,)]
    with pytest.raises(httpx.HTTPError):  # plain HTTP is not served
        httpx.post(f"http://127.0.0.1:{collector.http_port}/v1/traces", content=b"", timeout=5)
