"""Serving stored bytes: ranges, ETags, and the SHA-256 re-checked on the way out.

Damage (bytes that no longer hash to the record's SHA-256, or a missing blob) found
before the first byte is sent is answered with a FIRE-410 problem document. Found
mid-stream (whole reads of blobs over ``evidence_verify_before_send_bytes``), the last
chunk is withheld and the connection is cut, so the client receives fewer bytes than
Content-Length announced and cannot mistake the body for a complete one. Both are logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.responses import Response, StreamingResponse

from src.app.core.errors import ApiError
from src.app.core.settings import Settings
from src.app.evidence import images
from src.app.evidence.models import Evidence
from src.app.evidence.ranges import ByteRange, Unsatisfiable, parse_range
from src.app.evidence.service import blob_key, staging_dir, thumbnail_key
from src.app.evidence.storage import BlobStore

logger = logging.getLogger("firemode.evidence")


class BlobDamaged(Exception):
    """Raised mid-stream: ends the response without its last bytes."""


def damaged(evidence: Evidence, reason: str) -> ApiError:
    logger.error(
        "evidence blob damaged",
        extra={"evidence_id": str(evidence.id), "sha256": evidence.sha256, "reason": reason},
    )
    return ApiError(
        410,
        f"The stored content of evidence {evidence.id} is damaged (it no longer matches its "
        "SHA-256) and cannot be served; the incident has been logged for an administrator",
        retryable=False,
    )


@dataclass(frozen=True, slots=True)
class Representation:
    key: str
    size: int
    etag: str
    media_type: str
    filename: str
    verify_sha256: str | None  # None: derived bytes (thumbnails), not verified


def _etag_matches(header: str | None, etag: str) -> bool:
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


async def _whole_hash(store: BlobStore, key: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    async for chunk in store.read(key):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


async def verify_blob(store: BlobStore, evidence: Evidence) -> None:
    """Read the whole blob and compare with the record; FIRE-410 when it differs."""
    key = blob_key(evidence.organisation_id, evidence.sha256)
    try:
        sha256, size = await _whole_hash(store, key)
    except (FileNotFoundError, OSError) as exc:
        raise damaged(evidence, f"unreadable: {type(exc).__name__}") from exc
    except Exception as exc:
        if "NoSuchKey" in type(exc).__name__ or "NoSuchKey" in str(exc):
            raise damaged(evidence, "missing") from exc
        raise
    if sha256 != evidence.sha256 or size != evidence.size_bytes:
        raise damaged(evidence, "hash mismatch")


async def _verified_stream(store: BlobStore, evidence: Evidence, key: str) -> AsyncIterator[bytes]:
    digest = hashlib.sha256()
    held: bytes | None = None
    async for chunk in store.read(key):
        if held is not None:
            yield held
        digest.update(chunk)
        held = chunk
    if digest.hexdigest() != evidence.sha256:
        damaged(evidence, "hash mismatch mid-stream")
        raise BlobDamaged(str(evidence.id))
    if held is not None:
        yield held


def _disposition(filename: str, inline: bool) -> str:
    kind = "inline" if inline else "attachment"
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_")
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{urllib.parse.quote(filename)}"


async def original(store: BlobStore, evidence: Evidence) -> Representation:
    key = blob_key(evidence.organisation_id, evidence.sha256)
    if await store.size(key) != evidence.size_bytes:
        raise damaged(evidence, "missing or wrong size")
    return Representation(
        key=key,
        size=evidence.size_bytes,
        etag=f'"{evidence.sha256}"',
        media_type=evidence.content_type,
        filename=evidence.filename,
        verify_sha256=evidence.sha256,
    )


async def thumbnail(store: BlobStore, evidence: Evidence, settings: Settings) -> Representation:
    """The cached thumbnail, made on first request. 409 for non-images."""
    if (
        not evidence.content_type.startswith("image/")
        or evidence.embedded.get("image_readable") is False
    ):
        raise ApiError(
            409,
            f"Evidence {evidence.id} is {evidence.content_type}, not a readable image: "
            "it has no thumbnail (request the original content)",
        )
    key = thumbnail_key(evidence.organisation_id, evidence.sha256)
    size = await store.size(key)
    if size is None:
        await verify_blob(store, evidence)
        data = await _render_thumbnail(store, evidence, settings)
        await store.put_bytes(key, data)
        size = len(data)
    stem = evidence.filename.rsplit(".", 1)[0] or "evidence"
    return Representation(
        key=key,
        size=size,
        etag=f'"{evidence.sha256}-thumb"',
        media_type="image/jpeg",
        filename=f"{stem}-thumb.jpg",
        verify_sha256=None,
    )


async def _render_thumbnail(store: BlobStore, evidence: Evidence, settings: Settings) -> bytes:
    directory = staging_dir(settings)
    directory.mkdir(parents=True, exist_ok=True)
    local = directory / f"{uuid.uuid4().hex}.thumb.part"
    try:
        with local.open("xb") as handle:
            async for chunk in store.read(blob_key(evidence.organisation_id, evidence.sha256)):
                handle.write(chunk)
        try:
            return await asyncio.to_thread(images.make_thumbnail, local)
        except images.NotAnImage as exc:
            raise ApiError(
                409, f"Evidence {evidence.id} cannot be decoded as an image: it has no thumbnail"
            ) from exc
    finally:
        local.unlink(missing_ok=True)


async def respond(
    store: BlobStore,
    evidence: Evidence,
    representation: Representation,
    *,
    range_header: str | None,
    if_range: str | None,
    if_none_match: str | None,
    settings: Settings,
) -> Response:
    """200 (whole), 206 (one range), 304 (the client's copy is current) or 416."""
    rep = representation
    headers = {
        "ETag": rep.etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": _disposition(rep.filename, inline=True),
        # Content-addressed: the bytes behind this URL never change.
        "Cache-Control": "private, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
    }
    if _etag_matches(if_none_match, rep.etag):
        return Response(status_code=304, headers=headers)
    if if_range is not None and if_range.strip() != rep.etag:
        range_header = None  # the client's partial copy is of other bytes: send all
    try:
        wanted = parse_range(range_header, rep.size)
    except Unsatisfiable:
        raise ApiError(
            416,
            f"The requested range is outside the content ({rep.size} bytes)",
            headers={"Content-Range": f"bytes */{rep.size}"},
        ) from None
    small = rep.size <= settings.evidence_verify_before_send_bytes
    if rep.verify_sha256 is not None and small:  # ranges of large blobs go unverified
        await verify_blob(store, evidence)
    if wanted is None:
        if rep.verify_sha256 is not None and not small:
            body = _verified_stream(store, evidence, rep.key)
        else:
            body = store.read(rep.key)
        headers["Content-Length"] = str(rep.size)
        return StreamingResponse(body, status_code=200, headers=headers, media_type=rep.media_type)
    return _partial(store, rep, wanted, headers)


def _partial(
    store: BlobStore, rep: Representation, wanted: ByteRange, headers: dict[str, str]
) -> Response:
    headers["Content-Range"] = wanted.content_range(rep.size)
    headers["Content-Length"] = str(wanted.length)
    return StreamingResponse(
        store.read(rep.key, wanted.start, wanted.end),
        status_code=206,
        headers=headers,
        media_type=rep.media_type,
    )
