"""Segments under an object-store prefix (``s3://bucket/prefix``) read as one store.

DuckDB reads object stores through its ``httpfs`` extension, which the sandbox never loads (no
extension, no network, no file beyond those listed: ``store.readonly``, ``store.segments``). So
the objects are fetched here, in Python, through pyarrow's S3 file system, into a private
temporary folder (mode 0700), and that folder is opened by ``open_segments`` as any local one:
DuckDB may read exactly those copies, with external access off and its configuration locked. The
copy is deleted when the store is closed. A local copy, rather than Arrow datasets streamed into
DuckDB, because a report scans the spans several times: each byte crosses the network once.

The bucket is treated as hostile, with limits in bytes:

- only keys laid out as segments count (``table=…/date=YYYY-MM-DD/hour=HH/<name>.parquet``, the
  same names as on disk); anything else under the prefix is skipped, and no key can name a path
  outside the copy;
- at most ``max_objects`` listed entries and ``max_bytes`` of segments in all (checked on the
  listed sizes before anything is fetched, and again while fetching, in case an object grew);
  the temporary folder's free space is checked too;
- an object that is not Parquet (magic bytes) is refused with its key; a Parquet file of other
  data (no key columns) and segments of a newer schema are refused by ``open_segments``.

Credentials come from the AWS SDK's usual places (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
``AWS_SESSION_TOKEN``, ``~/.aws/credentials`` and ``~/.aws/config``, ``AWS_PROFILE``, an instance
role), never from the URL or the command line (they would land in shell history and process
lists). The endpoint of an S3-compatible store (MinIO, Ceph, R2, …) is ``OTEL_SHADOW_S3_ENDPOINT``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs

from ..environment_variables import (
    OTEL_SHADOW_S3_ENDPOINT,
    OTEL_SHADOW_S3_MAX_BYTES,
    OTEL_SHADOW_S3_MAX_OBJECTS,
    env_int,
)
from ..errors import ConfigError, StoreError
from .database import Store
from .segments import _DATE, _FILE, _HOUR, SEGMENT_TABLES, is_compacted, open_segments, read_manifest

__all__ = ["ObjectLimits", "SegmentCopy", "open_object_segments"]

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3's bucket naming rules
_CHUNK = 1024 * 1024
_PARALLEL = 8  # objects fetched at a time (latency-bound; each holds one chunk)
_MAGIC = b"PAR1"
_MAX_OBJECTS = 100_000
_MAX_BYTES = 16 * 1024**3


@dataclass(frozen=True, slots=True)
class ObjectLimits:
    """What one read of a prefix may fetch: entries listed, bytes of segments in all."""

    max_objects: int = _MAX_OBJECTS
    max_bytes: int = _MAX_BYTES

    @classmethod
    def from_env(cls) -> ObjectLimits:
        return cls(
            max_objects=env_int(OTEL_SHADOW_S3_MAX_OBJECTS, _MAX_OBJECTS),
            max_bytes=env_int(OTEL_SHADOW_S3_MAX_BYTES, _MAX_BYTES),
        )


class SegmentCopy(Store):
    """The read-only store over the local copy of a prefix; closing it deletes the copy."""

    def __init__(self, store: Store, url: str, copy: Path) -> None:
        super().__init__(store.con, url, read_only=True)
        self.copy = copy

    def close(self) -> None:
        try:
            super().close()
        finally:
            shutil.rmtree(self.copy, ignore_errors=True)


def open_object_segments(url: str, *, endpoint: str | None = None, limits: ObjectLimits | None = None) -> Store:
    """A read-only ``Store`` over every segment under ``url`` (``s3://bucket/prefix``), fetched
    into a private temporary folder (deleted by ``close``). ``endpoint``: an S3-compatible
    store's URL (default ``OTEL_SHADOW_S3_ENDPOINT``, else AWS)."""
    bucket, prefix = _parse(url)
    limits = limits or ObjectLimits.from_env()
    fs = _filesystem(endpoint if endpoint is not None else os.environ.get(OTEL_SHADOW_S3_ENDPOINT) or None)
    objects = _list(fs, url, bucket, prefix, limits)
    if not any(table == "spans" for table, _, _ in objects):
        raise StoreError(
            f"no closed segments under '{url}' (no table=spans/date=…/hour=…/*.parquet object); check the "
            f"prefix, and {OTEL_SHADOW_S3_ENDPOINT} for a store other than AWS S3"
        )
    copy = Path(tempfile.mkdtemp(prefix="otel-shadow-s3-"))  # mode 0700: this user only
    try:
        budget = _Budget(limits.max_bytes, url)
        # the compacted spans files first: their manifests say which other objects no longer count
        # (a prefix synced without --delete keeps a compaction's inputs for ever): those are skipped
        manifests = [o for o in objects if o[0] == "spans" and is_compacted(_stem(o[1]))]
        _check_room(url, manifests, limits, copy)
        _fetch(fs, url, bucket, prefix, manifests, copy, budget)
        wanted = _counted(objects, copy)
        _check_room(url, wanted, limits, copy)
        _fetch(fs, url, bucket, prefix, [o for o in wanted if o not in manifests], copy, budget)
        return SegmentCopy(open_segments(copy), url, copy)
    except StoreError as exc:  # name the objects, not the copy
        shutil.rmtree(copy, ignore_errors=True)
        raise type(exc)(str(exc).replace(str(copy), url.rstrip("/"))) from exc
    except BaseException:
        shutil.rmtree(copy, ignore_errors=True)
        raise


def _stem(key: str) -> str:
    return key.rsplit("/", 1)[1][: -len(".parquet")]


def _counted(objects: list[tuple[str, str, int]], copy: Path) -> list[tuple[str, str, int]]:
    """The objects a reader counts (``Partition.live``), from the manifests already in ``copy``."""
    gone: set[tuple[str, str]] = set()  # (partition, segment name)
    committed: set[tuple[str, str]] = set()
    for table, key, _ in objects:
        partition, name = key.split("/", 1)[1].rsplit("/", 1)[0], _stem(key)
        if table == "spans" and is_compacted(name):
            committed.add((partition, name))
            gone.update((partition, merged) for merged in read_manifest(copy / key))
    out = []
    for table, key, size in objects:
        where = (key.split("/", 1)[1].rsplit("/", 1)[0], _stem(key))
        if where not in gone and (not is_compacted(where[1]) or where in committed):
            out.append((table, key, size))
    return out


def _check_room(url: str, objects: list[tuple[str, str, int]], limits: ObjectLimits, copy: Path) -> None:
    """``objects`` fit in the byte limit and in the temporary folder, on their listed sizes."""
    total = sum(size for _, _, size in objects)
    if total > limits.max_bytes:
        raise StoreError(
            f"the segments under '{url}' hold {total} bytes in {len(objects)} objects, more than the "
            f"{limits.max_bytes} allowed; compact them (otel-shadow compact-segments), point at a narrower "
            f"prefix, or raise {OTEL_SHADOW_S3_MAX_BYTES}"
        )
    free = shutil.disk_usage(copy).free
    if free < total:
        raise StoreError(
            f"the segments under '{url}' hold {total} bytes, and the temporary folder '{copy.parent}' has "
            f"{free} free; set TMPDIR to a folder with room"
        )


def _parse(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "s3":
        raise ConfigError(
            f"--segments {url[:80]!r}: only s3:// prefixes are read (any S3-compatible store, with "
            f"{OTEL_SHADOW_S3_ENDPOINT}); sync other stores to a local folder"
        )
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise ConfigError(
            "--segments s3://…: give only s3://bucket/prefix; credentials come from AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or ~/.aws/credentials, AWS_PROFILE), never from the URL"
        )
    if not _BUCKET.match(parts.netloc):
        raise ConfigError(f"--segments {url[:80]!r}: {parts.netloc[:64]!r} is not an S3 bucket name")
    prefix = parts.path.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise ConfigError(f"--segments {url[:80]!r}: the prefix has an empty, '.' or '..' part")
    return parts.netloc, prefix


def _filesystem(endpoint: str | None) -> pafs.S3FileSystem:
    options: dict[str, object] = {"connect_timeout": 10.0, "request_timeout": 60.0}
    if endpoint:
        parts = urllib.parse.urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query:
            raise ConfigError(
                f"{OTEL_SHADOW_S3_ENDPOINT}={endpoint[:80]!r} is not an endpoint URL such as "
                "https://minio.example:9000 (scheme, host and port only)"
            )
        if parts.username or parts.password:
            raise ConfigError(
                f"{OTEL_SHADOW_S3_ENDPOINT} must not hold credentials; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or use ~/.aws/credentials)"
            )
        options.update(endpoint_override=parts.netloc, scheme=parts.scheme)
    try:
        return pafs.S3FileSystem(**options)
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"cannot set up the S3 client: {exc}") from exc


def _list(
    fs: pafs.S3FileSystem, url: str, bucket: str, prefix: str, limits: ObjectLimits
) -> list[tuple[str, str, int]]:
    """(table, key below the prefix, size) of every object laid out as a segment, listed one
    folder level at a time (only the levels a segment can be in), within ``limits.max_objects``."""
    base = f"{bucket}/{prefix}".rstrip("/")
    listed = 0

    def entries(path: str) -> list[pafs.FileInfo]:
        nonlocal listed
        try:
            found = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"cannot list '{url}': {exc}") from exc
        listed += len(found)
        if listed > limits.max_objects:
            raise StoreError(
                f"more than {limits.max_objects} entries under '{url}'; compact the segments (otel-shadow "
                f"compact-segments), point at a narrower prefix, or raise {OTEL_SHADOW_S3_MAX_OBJECTS}"
            )
        return found

    out: list[tuple[str, str, int]] = []
    tables = {f"table={t}": t for t in SEGMENT_TABLES}
    for table_dir in entries(base):
        if table_dir.type != pafs.FileType.Directory or table_dir.base_name not in tables:
            continue
        for date_dir in entries(table_dir.path):
            if date_dir.type != pafs.FileType.Directory or not _DATE.match(date_dir.base_name):
                continue
            for hour_dir in entries(date_dir.path):
                if hour_dir.type != pafs.FileType.Directory or not _HOUR.match(hour_dir.base_name):
                    continue
                for obj in entries(hour_dir.path):
                    if obj.type == pafs.FileType.File and _FILE.match(obj.base_name):
                        key = f"{table_dir.base_name}/{date_dir.base_name}/{hour_dir.base_name}/{obj.base_name}"
                        out.append((tables[table_dir.base_name], key, int(obj.size or 0)))
    return out


def _fetch(
    fs: pafs.S3FileSystem,
    url: str,
    bucket: str,
    prefix: str,
    objects: list[tuple[str, str, int]],
    copy: Path,
    budget: _Budget,
) -> None:
    """Every listed object → the same relative path under ``copy``; an object that is not Parquet
    or that grew past the byte limit stops the whole read."""
    base = f"{bucket}/{prefix}".rstrip("/")
    for key in {k.rsplit("/", 1)[0] for _, k, _ in objects}:
        (copy / key).mkdir(parents=True, exist_ok=True)

    def one(key: str) -> None:
        where = f"{url.rstrip('/')}/{key}"
        target = copy / key
        try:
            with fs.open_input_stream(f"{base}/{key}") as source, open(target, "wb") as out:
                while chunk := source.read(_CHUNK):
                    budget.take(len(chunk))
                    out.write(chunk)
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"cannot fetch '{where}': {exc}") from exc
        with open(target, "rb") as f:
            head = f.read(4)
            f.seek(max(0, target.stat().st_size - 4))
            tail = f.read(4)
        if head != _MAGIC or tail != _MAGIC:
            raise StoreError(f"'{where}' is not a Parquet file; remove it from the prefix (it is named as a segment)")

    with ThreadPoolExecutor(max_workers=_PARALLEL, thread_name_prefix="otel-shadow-s3") as pool:
        futures = [pool.submit(one, key) for _, key, _ in objects]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:  # the first failure stops the read: fetch nothing more
                future.cancel()
            raise


class _Budget:
    """Bytes fetched so far, shared by the fetching threads, refused past the limit."""

    def __init__(self, limit: int, url: str) -> None:
        self.limit, self.url, self.used = limit, url, 0
        self._lock = threading.Lock()

    def take(self, n: int) -> None:
        with self._lock:
            self.used += n
            if self.used > self.limit:
                raise StoreError(
                    f"the objects under '{self.url}' grew past the {self.limit} bytes allowed while they were "
                    f"fetched; raise {OTEL_SHADOW_S3_MAX_BYTES}, or point at a narrower prefix"
                )
