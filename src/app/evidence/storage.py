"""Where evidence bytes live: one small interface, a filesystem store (the default) and an
S3-compatible store with object lock (production). Keys are ``/``-separated paths such as
``blobs/<organisation>/<sha256[:2]>/<sha256>``; see docs/api/evidence.md for the layout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from src.app.core.clock import utc_now
from src.app.core.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

READ_CHUNK = 256 * 1024
TEMP_SUFFIX = ".tmp"


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    modified_at: datetime


class BlobStore(Protocol):
    """What the evidence domain needs from a store. Every method is safe to call from the
    event loop (blocking work runs in a thread)."""

    async def put(self, key: str, staged: Path) -> bool:
        """Store the staged file under ``key`` unless ``key`` exists already (content
        addressing: same key, same bytes). True when stored now. ``staged`` is gone after."""
        ...

    async def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small derived object (a thumbnail), replacing any previous one."""
        ...

    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when it does not exist."""
        ...

    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes ``start``..``end`` (inclusive; None: to the end), in chunks."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove the object; False when it did not exist or the store refuses (lock)."""
        ...

    def objects(self, prefix: str) -> AsyncIterator[StoredObject]:
        """Every object whose key starts with ``prefix``."""
        ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore:
    """Objects as files under ``root``. Writes are atomic: a temporary file on the same
    filesystem is fsynced, linked or renamed into place, and the directory fsynced."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"bad object key {key!r}")
        return self.root.joinpath(*parts)

    async def put(self, key: str, staged: Path) -> bool:
        return await asyncio.to_thread(self._put, key, staged)

    def _put(self, key: str, staged: Path) -> bool:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(staged, 0o444)  # stored evidence is never written again
            # link, not rename: it never replaces an existing blob.
            os.link(staged, final)
            created = True
        except FileExistsError:
            # Keeps a just-reused blob out of the orphan sweep's reach (its grace period).
            os.utime(final)
            created = False
        finally:
            staged.unlink(missing_ok=True)
        _fsync_dir(final.parent)
        return created

    async def put_bytes(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put_bytes, key, data)

    def _put_bytes(self, key: str, data: bytes) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        temp = final.parent / f".{final.name}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
        try:
            with temp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, final)
        finally:
            temp.unlink(missing_ok=True)
        _fsync_dir(final.parent)

    async def size(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(self._path(key).stat)).st_size
        except FileNotFoundError:
            return None

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(self._path(key).open, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                want = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def delete(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self._path(key).unlink)
        except FileNotFoundError:
            return False
        return True

    async def objects(self, prefix: str) -> AsyncIterator[StoredObject]:
        for item in await asyncio.to_thread(self._scan, prefix):
            yield item

    def _scan(self, prefix: str) -> list[StoredObject]:
        found: list[StoredObject] = []
        for directory, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(directory, name)
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    stat = path.stat()
                    modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                    found.append(StoredObject(key, stat.st_size, modified))
        return found


class S3Store:
    """An S3-compatible bucket. Blobs get object lock (COMPLIANCE by default) until the
    retention period ends, so nobody, not even this service, can alter or delete them;
    the bucket must have been created with object lock enabled (which implies versioning).
    boto3 is synchronous: every call runs in a thread."""

    def __init__(self, settings: Settings) -> None:
        assert settings.evidence_s3_bucket is not None
        self.bucket = settings.evidence_s3_bucket
        self.prefix = settings.evidence_s3_prefix
        self.lock_mode = settings.evidence_s3_lock_mode
        self.retention = timedelta(days=settings.evidence_retention_days)
        self._settings = settings
        self._client: S3Client | None = None

    @property
    def client(self) -> S3Client:
        if self._client is None:
            import boto3

            secret = self._settings.evidence_s3_secret_access_key
            self._client = boto3.client(
                "s3",
                endpoint_url=self._settings.evidence_s3_endpoint_url,
                region_name=self._settings.evidence_s3_region,
                aws_access_key_id=self._settings.evidence_s3_access_key_id,
                aws_secret_access_key=secret.get_secret_value() if secret else None,
            )
        return self._client

    def _key(self, key: str) -> str:
        return self.prefix + key

    @staticmethod
    def _missing(exc: Exception) -> bool:
        response: dict[str, Any] = getattr(exc, "response", {}) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    async def put(self, key: str, staged: Path) -> bool:
        try:
            if await self.size(key) is not None:
                return False
            extra: dict[str, Any] = {}
            if self.lock_mode is not None:
                extra["ObjectLockMode"] = self.lock_mode
                extra["ObjectLockRetainUntilDate"] = utc_now() + self.retention
            await asyncio.to_thread(
                self.client.upload_file, str(staged), self.bucket, self._key(key), ExtraArgs=extra
            )
            return True
        finally:
            await asyncio.to_thread(staged.unlink, missing_ok=True)

    async def put_bytes(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(
            self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data
        )

    async def size(self, key: str) -> int | None:
        try:
            head = await asyncio.to_thread(
                self.client.head_object, Bucket=self.bucket, Key=self._key(key)
            )
        except Exception as exc:
            if self._missing(exc):
                return None
            raise
        return int(head["ContentLength"])

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        byte_range = f"bytes={start}-{'' if end is None else end}"
        response = await asyncio.to_thread(
            self.client.get_object, Bucket=self.bucket, Key=self._key(key), Range=byte_range
        )
        body = response["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, READ_CHUNK):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> bool:
        full = self._key(key)
        listing = await asyncio.to_thread(
            self.client.list_object_versions, Bucket=self.bucket, Prefix=full
        )
        versions = [v for v in listing.get("Versions", []) if v.get("Key") == full]
        markers = [m for m in listing.get("DeleteMarkers", []) if m.get("Key") == full]
        if not versions:
            return False
        try:
            for version in [*versions, *markers]:
                await asyncio.to_thread(
                    self.client.delete_object,
                    Bucket=self.bucket,
                    Key=full,
                    VersionId=str(version["VersionId"]),
                )
        except Exception as exc:
            response: dict[str, Any] = getattr(exc, "response", {}) or {}
            if response.get("Error", {}).get("Code") == "AccessDenied":
                return False  # still under object lock
            raise
        return True

    async def objects(self, prefix: str) -> AsyncIterator[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = await asyncio.to_thread(
            lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)))
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = str(item["Key"]).removeprefix(self.prefix)
                yield StoredObject(key, int(item["Size"]), item["LastModified"].astimezone(UTC))


def build_store(settings: Settings) -> BlobStore:
    """The store the settings configure: S3 when a bucket is named, else the filesystem."""
    if settings.evidence_s3_bucket:
        return S3Store(settings)
    return FileStore(settings.evidence_dir / "objects")
