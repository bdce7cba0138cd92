"""A real collector on loopback (free ports), started in-process for each test that asks for one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from otel_shadow.collector import Collector, CollectorConfig


@pytest.fixture
def start_collector(tmp_path: Path) -> Iterator[Callable[..., Collector]]:
    started: list[Collector] = []

    def start(**overrides: Any) -> Collector:
        config = CollectorConfig(db=str(tmp_path / "collector.duckdb"), grpc_port=0, http_port=0, stats_interval_s=3600)
        for key, value in overrides.items():
            setattr(config, key, value)
        collector = Collector(config)
        collector.start()
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop(2)


@pytest.fixture
def collector(start_collector: Callable[..., Collector]) -> Collector:
    return start_collector()
