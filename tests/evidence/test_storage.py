"""The same interface tests for both stores: the filesystem and a real S3-compatible
server (moto, in its own process) with object lock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from src.app.core.settings import Settings
from src.app.evidence.storage import BlobStore, FileStore, S3Store
from tests.evidence.s3 import locked_bucket_settings


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "filesystem":
        return FileStore(tmp_path / "objects")
    endpoint: str = request.getfixturevalue("s3_endpoint")
    base = Settings(evidence_dir=tmp_path, jwt_secret=SecretStr("s" * 40))
    return S3Store(locked_bucket_settings(endpoint, base))


def staged(tmp_path: Path, data: bytes, name: str = "upload.part") -> Path:
    path = tmp_path / "staging" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


async def read_all(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, start, end)])


async def test_put_is_write_once(store: BlobStore, tmp_path: Path):
    data = bytes(range(256)) * 2000  # 512000 bytes: several read chunks
    first = staged(tmp_path, data)
    assert await store.put("blobs/org/ab/key", first) is True
    assert not first.exists()
    assert await store.size("blobs/org/ab/key") == len(data)
    # Content addressing: the same key again is not stored again, and the staged file goes.
    second = staged(tmp_path, b"other bytes")
    assert await store.put("blobs/org/ab/key", second) is False
    assert not second.exists()
    assert await read_all(store, "blobs/org/ab/key") == data


async def test_ranges_and_missing(store: BlobStore, tmp_path: Path):
    data = bytes(range(256)) * 4000
    await store.put("blobs/o/cd/k", staged(tmp_path, data))
    assert await read_all(store, "blobs/o/cd/k", 10, 19) == data[10:20]
    assert await read_all(store, "blobs/o/cd/k", 300_000) == data[300_000:]
    assert await read_all(store, "blobs/o/cd/k", 0, len(data) - 1) == data
    assert await store.size("blobs/o/cd/missing") is None


async def test_listing_and_derived_objects(store: BlobStore, tmp_path: Path):
    before = datetime.now(UTC) - timedelta(seconds=5)
    await store.put("blobs/o/aa/one", staged(tmp_path, b"1"))
    await store.put("blobs/o/bb/two", staged(tmp_path, b"22"))
    await store.put_bytes("thumbs/o/aa/one.jpg", b"thumb")
    await store.put_bytes("thumbs/o/aa/one.jpg", b"thumb2")  # replaced
    assert await read_all(store, "thumbs/o/aa/one.jpg") == b"thumb2"
    blobs = {item.key: item async for item in store.objects("blobs/")}
    assert {key: item.size for key, item in blobs.items()} == {
        "blobs/o/aa/one": 1,
        "blobs/o/bb/two": 2,
    }
    assert all(item.modified_at > before for item in blobs.values())
    assert [item.key async for item in store.objects("thumbs/")] == ["thumbs/o/aa/one.jpg"]
    assert await store.delete("thumbs/o/aa/one.jpg") is True
    assert await store.delete("thumbs/o/aa/one.jpg") is False
    assert [item.key async for item in store.objects("thumbs/")] == []


async def test_blob_deletion(store: BlobStore, tmp_path: Path):
    await store.put("blobs/o/ee/k", staged(tmp_path, b"evidence"))
    deleted = await store.delete("blobs/o/ee/k")
    if isinstance(store, S3Store):
        # Object lock (COMPLIANCE, for the retention period): nobody can delete it.
        assert deleted is False
        assert await store.size("blobs/o/ee/k") == 8
        head = await asyncio.to_thread(
            store.client.head_object, Bucket=store.bucket, Key=store.prefix + "blobs/o/ee/k"
        )
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=7 * 365)
    else:
        assert deleted is True
        assert await store.size("blobs/o/ee/k") is None


def test_filesystem_blobs_are_read_only(tmp_path: Path):
    store = FileStore(tmp_path / "objects")
    asyncio.run(store.put("blobs/o/ff/k", staged(tmp_path, b"x")))
    path = tmp_path / "objects" / "blobs" / "o" / "ff" / "k"
    assert path.stat().st_mode & 0o777 == 0o444
    with pytest.raises(ValueError, match="bad object key"):
        asyncio.run(store.size("blobs/../../etc/passwd"))
