"""Request and response bodies of evidence uploads, records and flags."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field, field_validator

from src.app.core.schemas import RequestModel, ResourceModel, UTCTimestamp
from src.app.evidence.models import Evidence, EvidenceFlag, EvidenceKind

MAX_METADATA_BYTES = 64 * 1024
KIND_DESCRIPTION = (
    "What the file shows: `photo` and `tag` (a service tag) need an image; `video` an "
    "MP4/QuickTime video; `document` and `signature` a PDF or an image; `other` anything "
    "allowed."
)
SHA256_DESCRIPTION = (
    "SHA-256 of the file as computed by the device, 64 hex digits; it must equal the hash "
    "of the bytes that arrive (otherwise 422 and nothing is kept)."
)


class UploadForm(RequestModel):
    """The text fields of the multipart upload (the file travels in the `file` part)."""

    session_id: uuid.UUID = Field(description="The test session the evidence belongs to.")
    asset_id: uuid.UUID | None = Field(
        None, description="The asset shown (one of the organisation's assets)."
    )
    defect_id: uuid.UUID | None = Field(None, description="The defect the evidence documents.")
    kind: EvidenceKind = Field(description=KIND_DESCRIPTION)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description=SHA256_DESCRIPTION)
    captured_at: AwareDatetime | None = Field(
        None, description="When the device captured it (RFC 3339 with a time zone)."
    )
    device_id: str | None = Field(None, min_length=1, max_length=128)
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="A JSON object (sent as JSON text), at most 64 KiB."
    )

    @field_validator("sha256", mode="before")
    @classmethod
    def _lower_hex(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("metadata", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if len(value.encode()) > MAX_METADATA_BYTES:
            raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes of JSON")
        try:
            parsed = json.loads(value)
        except ValueError:
            raise ValueError("must be a JSON object") from None
        if not isinstance(parsed, dict):
            raise ValueError("must be a JSON object")
        return parsed

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> UploadForm:
        """Empty optional fields (HTML forms send them) count as absent."""
        present: dict[str, Any] = {k: v for k, v in fields.items() if v.strip() != ""}
        return cls.model_validate(present)


class FlagCreate(RequestModel):
    reason: str = Field(
        min_length=1, max_length=2000, description="Why the item is flagged (shown to readers)."
    )


class FlagOut(ResourceModel):
    evidence_id: uuid.UUID
    reason: str
    flagged_by: uuid.UUID | None

    @classmethod
    def of(cls, flag: EvidenceFlag) -> FlagOut:
        return cls.model_validate(flag)


class GpsOut(BaseModel):
    latitude: float = Field(description="Decimal degrees, north positive.")
    longitude: float = Field(description="Decimal degrees, east positive.")
    altitude_m: float | None = Field(None, description="Metres above sea level.")


class EmbeddedOut(BaseModel):
    """What an image file says about itself (EXIF), read at upload; empty for others."""

    width: int | None = None
    height: int | None = None
    captured_at_local: str | None = Field(
        None, description="EXIF DateTimeOriginal as written by the camera (local time)."
    )
    utc_offset: str | None = Field(None, description="EXIF OffsetTimeOriginal, e.g. +10:00.")
    camera_make: str | None = None
    camera_model: str | None = None
    gps: GpsOut | None = None
    image_readable: bool | None = Field(
        None, description="`false` when the image could not be decoded (kept as sent)."
    )


class EvidenceOut(ResourceModel):
    session_id: uuid.UUID
    asset_id: uuid.UUID | None
    defect_id: uuid.UUID | None
    kind: EvidenceKind
    sha256: str = Field(description="SHA-256 of the stored bytes; also the content's ETag.")
    size_bytes: int
    content_type: str = Field(description="Decided from the file's bytes, not the client.")
    filename: str = Field(description="The client's file name (path removed).")
    captured_at: UTCTimestamp | None
    device_id: str | None
    metadata: dict[str, Any]
    embedded: EmbeddedOut
    uploaded_by: uuid.UUID | None
    flags: list[FlagOut] = Field(
        description="Admin flags, oldest first; evidence is never removed."
    )
    content_url: str

    @classmethod
    def of(cls, evidence: Evidence, flags: Sequence[EvidenceFlag] = ()) -> EvidenceOut:
        return cls(
            id=evidence.id,
            created_at=evidence.created_at,
            updated_at=evidence.updated_at,
            session_id=evidence.session_id,
            asset_id=evidence.asset_id,
            defect_id=evidence.defect_id,
            kind=EvidenceKind(evidence.kind),
            sha256=evidence.sha256,
            size_bytes=evidence.size_bytes,
            content_type=evidence.content_type,
            filename=evidence.filename,
            captured_at=evidence.captured_at,
            device_id=evidence.device_id,
            metadata=evidence.metadata_,
            embedded=EmbeddedOut.model_validate(evidence.embedded),
            uploaded_by=evidence.uploaded_by,
            flags=[FlagOut.of(f) for f in flags],
            content_url=f"/v1/evidence/{evidence.id}/content",
        )
