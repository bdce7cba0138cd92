"""Segments under an s3:// prefix, read as one store: a real S3 server (moto) on loopback."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from otel_shadow.cli import main
from otel_shadow.environment_variables import OTEL_SHADOW_S3_ENDPOINT, OTEL_SHADOW_S3_MAX_BYTES
from otel_shadow.errors import ConfigError, ReadOnlyQuery, StoreError
from otel_shadow.store.compaction import compact_segments
from otel_shadow.store.object_store import ObjectLimits, SegmentCopy, open_object_segments
from otel_shadow.store.segments import open_segments

from .test_compaction import Crash, _collect
from .test_segments import _report, _requests

moto_server = pytest.importorskip("moto.server")

HOUR = "date=2026-11-29/hour=12"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pafs.S3FileSystem:
    """The AWS SDK's standard variables, as an operator sets them; no other credentials are found."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv(OTEL_SHADOW_S3_ENDPOINT, s3_endpoint)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the copies go
    (tmp_path / "tmp").mkdir()
    host = s3_endpoint.removeprefix("http://")
    return pafs.S3FileSystem(endpoint_override=host, scheme="http", allow_bucket_creation=True)


def _upload(s3: pafs.S3FileSystem, folder: Path, bucket: str, prefix: str) -> None:
    s3.create_dir(bucket)
    pafs.copy_files(str(folder), f"{bucket}/{prefix}", destination_filesystem=s3)


def _copies(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "tmp").iterdir())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two collectors' segments over two hours, as test_compaction writes them."""
    bodies = _requests(400, seed=41)
    _collect(tmp_path / "seg", tmp_path / "c1.duckdb", bodies[::2], per_segment=1)
    _collect(tmp_path / "seg", tmp_path / "c2.duckdb", bodies[1::2], per_segment=1)
    return tmp_path / "seg"


def test_the_report_over_an_s3_prefix_equals_the_report_over_the_local_folder(
    s3: pafs.S3FileSystem, folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with open_segments(folder) as local:
        expected = _report(local)
        expected_pairs = local.query("SELECT * FROM shadow_pairs ORDER BY candidate_span_id").rows
    _upload(s3, folder, "shadow", "tier/segments")
    s3.create_dir("shadow/tier/segments/notes")  # other objects under the prefix are not segments
    with s3.open_output_stream("shadow/tier/segments/README.txt") as out:
        out.write(b"not a segment")
    with open_object_segments("s3://shadow/tier/segments") as store:
        assert _report(store) == expected
        assert store.query("SELECT * FROM shadow_pairs ORDER BY candidate_span_id").rows == expected_pairs
        assert store.path == "s3://shadow/tier/segments"
        assert len(_copies(tmp_path)) == 1  # the private copy, while the store is open
    assert _copies(tmp_path) == []  # deleted by close
    main(["report", "--segments", str(folder), "--format", "json"])
    from_folder = json.loads(capsys.readouterr().out)
    main(["report", "--segments", "s3://shadow/tier/segments/", "--format", "json"])
    assert json.loads(capsys.readouterr().out) == from_folder
    main(["sql", "--segments", "s3://shadow/tier/segments", "SELECT count(*) AS n FROM spans", "--format", "csv"])
    assert capsys.readouterr().out.split() == ["n", "800"]


def test_a_prefix_holding_a_stopped_compaction_reads_each_row_once(
    s3: pafs.S3FileSystem, folder: Path, tmp_path: Path
) -> None:
    with open_segments(folder) as local:
        expected = _report(local)

    def crash(partition: str, step: str) -> None:
        if step == "committed":
            raise Crash(step)

    with pytest.raises(Crash):  # the merged file and its inputs are both in the folder
        compact_segments(folder, partitions={HOUR}, on_step=crash)
    _upload(s3, folder, "compacting", "seg")
    with open_object_segments("s3://compacting/seg") as store:
        assert store.query("SELECT count(*), count(DISTINCT (trace_id, span_id)) FROM spans").rows == [(800, 800)]
        assert _report(store) == expected


def test_sql_over_an_s3_prefix_is_sandboxed_as_over_a_folder(s3: pafs.S3FileSystem, folder: Path) -> None:
    _upload(s3, folder, "sandbox", "seg")
    with open_object_segments("s3://sandbox/seg") as store:
        assert isinstance(store, SegmentCopy)
        copy = store.copy
        assert store.query("SELECT current_setting('enable_external_access')").rows == [(False,)]
        for sql in (
            "SELECT * FROM read_text('/etc/passwd')",
            f"SELECT * FROM glob('{copy}/*')",
            "SELECT * FROM read_parquet('s3://sandbox/seg/table=spans/*/*/*.parquet')",
        ):
            with pytest.raises(ReadOnlyQuery, match="reads no file"):
                store.query(sql)


def test_a_prefix_larger_than_the_byte_limit_is_refused_before_anything_is_fetched(
    s3: pafs.S3FileSystem, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _upload(s3, folder, "big", "seg")
    total = sum(p.stat().st_size for p in folder.rglob("*.parquet"))
    with pytest.raises(StoreError, match=rf"hold {total} bytes in 24 objects, more than the 1000 allowed"):
        open_object_segments("s3://big/seg", limits=ObjectLimits(max_bytes=1000))
    assert _copies(tmp_path) == []
    monkeypatch.setenv(OTEL_SHADOW_S3_MAX_BYTES, str(total - 1))  # the variable sets the same limit
    with pytest.raises(StoreError, match=OTEL_SHADOW_S3_MAX_BYTES):
        open_object_segments("s3://big/seg")
    with pytest.raises(StoreError, match="more than 10 entries under 's3://big/seg'"):
        open_object_segments("s3://big/seg", limits=ObjectLimits(max_objects=10))
    with open_object_segments("s3://big/seg", limits=ObjectLimits(max_bytes=total)) as store:
        assert store.query("SELECT count(*) FROM spans").rows == [(800,)]


def test_an_object_named_as_a_segment_that_is_not_parquet_is_refused_by_its_key(
    s3: pafs.S3FileSystem, folder: Path, tmp_path: Path
) -> None:
    _upload(s3, folder, "junk", "seg")
    key = f"table=span_links/{HOUR}/c1-0000000099.parquet"
    with s3.open_output_stream(f"junk/seg/{key}") as out:
        out.write(b"<html>not parquet</html>")
    with pytest.raises(StoreError, match=rf"'s3://junk/seg/{key}' is not a Parquet file"):
        open_object_segments("s3://junk/seg")
    assert _copies(tmp_path) == []


def test_a_parquet_object_of_other_data_is_refused_naming_its_key(s3: pafs.S3FileSystem, folder: Path) -> None:
    _upload(s3, folder, "other", "seg")
    with s3.open_output_stream(f"other/seg/table=spans/{HOUR}/x-0000000001.parquet") as out:
        pq.write_table(pa.table({"card_number": ["4111"]}), out)
    with pytest.raises(StoreError, match=r"s3://other/seg/table=spans/.*x-0000000001.parquet.*not a segment"):
        open_object_segments("s3://other/seg")


def test_an_empty_or_missing_prefix_is_a_clear_error(s3: pafs.S3FileSystem) -> None:
    s3.create_dir("empty")
    for url in ("s3://empty/segments", "s3://empty"):
        with pytest.raises(StoreError, match="no closed segments under"):
            open_object_segments(url)


def test_credentials_and_other_schemes_in_the_url_are_refused(s3: pafs.S3FileSystem) -> None:
    with pytest.raises(ConfigError, match="never from the URL"):
        open_object_segments("s3://AKIA:secret@bucket/prefix")
    with pytest.raises(ConfigError, match="only s3:// prefixes"):
        open_object_segments("gs://bucket/prefix")
    with pytest.raises(ConfigError, match="not an S3 bucket name"):
        open_object_segments("s3://Bad_Bucket/prefix")
    with pytest.raises(ConfigError, match="'..' part"):
        open_object_segments("s3://bucket/a/../b")
    with pytest.raises(ConfigError, match="must not hold credentials"):
        open_object_segments("s3://bucket/p", endpoint="http://user:pw@127.0.0.1:9000")
    with pytest.raises(ConfigError, match="not an endpoint URL"):
        open_object_segments("s3://bucket/p", endpoint="127.0.0.1:9000")


def test_a_compactions_inputs_left_in_the_bucket_are_neither_fetched_nor_counted(
    s3: pafs.S3FileSystem, folder: Path
) -> None:
    with open_segments(folder) as local:
        expected = _report(local)
    _upload(s3, folder, "synced", "seg")
    compact_segments(folder)
    _upload(s3, folder, "synced", "seg")  # synced again without --delete: the inputs stay in the bucket
    compacted = sum(p.stat().st_size for p in folder.rglob("*.parquet"))
    listed = sum(info.size for info in s3.get_file_info(pafs.FileSelector("synced/seg", recursive=True)) if info.size)
    assert listed > 2 * compacted
    with open_object_segments("s3://synced/seg", limits=ObjectLimits(max_bytes=compacted)) as store:
        assert isinstance(store, SegmentCopy)
        fetched = sorted(p.name for p in store.copy.rglob("*.parquet"))
        assert len(fetched) == 6 and all(name.startswith("compacted-") for name in fetched)
        assert _report(store) == expected
