"""OpenAPI texts of the evidence routes (the multipart upload schema among them)."""

from __future__ import annotations

from typing import Any

from src.app.evidence.models import EvidenceKind
from src.app.evidence.schemas import KIND_DESCRIPTION, MAX_METADATA_BYTES, SHA256_DESCRIPTION
from src.app.evidence.signatures import ALLOWED

ALLOWED_TYPES = ", ".join(media.mime for media in ALLOWED)

UPLOAD_DESCRIPTION = f"""
Uploads one file with what the device knows about it, as `multipart/form-data`. The file
is streamed to storage while it is hashed; it is never held whole in memory.

* **201**: stored, and a new evidence record made (`Location` names it).
* **200**: an identical upload (same file, same fields) was recorded before: its record
  is returned and nothing new is stored. A retry with the same `Idempotency-Key` gets
  the first response again with `Idempotent-Replayed: true`.
* **400**: no `Idempotency-Key`, or a malformed multipart body (no `file` part, two of
  them, a body cut short before its closing boundary).
* **403**: viewers cannot upload.
* **404**: `session_id` or `asset_id` is not one of your organisation's.
* **409**: the session is `completed` and you are not an admin (only admins add late
  paperwork to a completed session), or the same key is still being processed.
* **413**: the file is larger than `FIREMODE_MAX_EVIDENCE_BYTES` (default 50 MiB): refused
  as soon as the limit is crossed (at once when `Content-Length` says so); nothing is kept.
* **415**: the body is not multipart, or the file's bytes are not one of {ALLOWED_TYPES}.
  The type comes from the bytes (magic numbers), never from the file name or part header.
* **422**: a field is invalid, the declared `sha256` differs from the bytes received (a
  torn upload; nothing is kept), or the file does not suit `kind`.

For images, the EXIF capture time, GPS position and camera model are read and returned in
`embedded`; the stored file is the original, byte for byte.
"""

_UPLOAD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file", "session_id", "kind", "sha256"],
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": f"The file: one of {ALLOWED_TYPES}.",
        },
        "session_id": {
            "type": "string",
            "format": "uuid",
            "description": "The test session the evidence belongs to.",
        },
        "asset_id": {
            "type": "string",
            "format": "uuid",
            "description": "Optional: the asset shown (in the session's building).",
        },
        "defect_id": {
            "type": "string",
            "format": "uuid",
            "description": "Optional: the defect the evidence documents.",
        },
        "kind": {
            "type": "string",
            "enum": [kind.value for kind in EvidenceKind],
            "description": KIND_DESCRIPTION,
        },
        "sha256": {
            "type": "string",
            "pattern": "^[0-9a-fA-F]{64}$",
            "description": SHA256_DESCRIPTION,
        },
        "captured_at": {
            "type": "string",
            "format": "date-time",
            "description": "Optional: when the device captured it (RFC 3339 with a zone).",
        },
        "device_id": {
            "type": "string",
            "maxLength": 128,
            "description": "Optional: the capturing device.",
        },
        "metadata": {
            "type": "string",
            "description": f"Optional: a JSON object as text, at most {MAX_METADATA_BYTES} "
            'bytes, e.g. `{"note": "gauge in the green"}`.',
        },
    },
}

UPLOAD_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": _UPLOAD_SCHEMA,
            "encoding": {"file": {"contentType": ", ".join(media.mime for media in ALLOWED)}},
        }
    },
}

CONTENT_DESCRIPTION = """
Streams the stored bytes with `ETag` (the SHA-256, quoted), `Content-Type` (sniffed at
upload), `Content-Disposition` (the original file name) and `Accept-Ranges: bytes`.

* One byte range (`Range: bytes=a-b`, `bytes=a-`, `bytes=-n`) → **206** with
  `Content-Range`; a range outside the content → **416** with `Content-Range: bytes */size`.
  Several ranges, or another unit, are ignored (200 with every byte). `If-Range` with
  another ETag also gives 200. `If-None-Match` with the ETag → **304**.
* The SHA-256 is re-checked: for blobs up to `FIREMODE_EVIDENCE_VERIFY_BEFORE_SEND_BYTES`
  (16 MiB) before the first byte, for larger ones while streaming. Damage found before the
  first byte → **410** (FIRE-410, "damaged"); found mid-stream → the connection is cut
  before the last chunk, so the body is visibly short of `Content-Length`. Ranges of
  larger blobs are served without the check.
* `variant=thumb`: a JPEG at most 320 px on its longer side, made once and cached by
  hash. Not an image (PDF, video) or not decodable → **409**.
"""

CONTENT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The whole content",
        "content": {
            m: {"schema": {"type": "string", "format": "binary"}}
            for m in [*(media.mime for media in ALLOWED)]
        },
        "headers": {
            "ETag": {"description": "The SHA-256, quoted", "schema": {"type": "string"}},
            "Content-Disposition": {"schema": {"type": "string"}},
            "Accept-Ranges": {"schema": {"type": "string", "enum": ["bytes"]}},
            "Content-Length": {"schema": {"type": "integer"}},
        },
    },
    206: {
        "description": "The requested byte range",
        "headers": {
            "Content-Range": {
                "description": "bytes start-end/size",
                "schema": {"type": "string"},
            },
            "ETag": {"schema": {"type": "string"}},
        },
    },
    304: {"description": "The client's copy (If-None-Match) is current"},
}
