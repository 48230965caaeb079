"""Upload rules that need no I/O: which media types each kind accepts, the record's
fingerprint, and the stored file name."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from src.app.evidence.models import EvidenceKind
from src.app.evidence.signatures import PDF, MediaType

MAX_FILENAME_CHARS = 255


def kind_refusal(kind: EvidenceKind, media: MediaType) -> str | None:
    """Why a file of ``media`` cannot be evidence of ``kind``, or None when it can."""
    if kind in (EvidenceKind.photo, EvidenceKind.tag) and not media.is_image:
        return (
            f"kind '{kind.value}' needs an image (JPEG, PNG, HEIC/HEIF or WebP), not {media.mime}"
        )
    if kind is EvidenceKind.video and not media.is_video:
        return f"kind 'video' needs an MP4 or QuickTime video, not {media.mime}"
    if kind in (EvidenceKind.document, EvidenceKind.signature) and not (
        media.is_image or media == PDF
    ):
        return f"kind '{kind.value}' needs a PDF or an image, not {media.mime}"
    return None


def record_fingerprint(fields: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of every declared field (content hash included).

    Two uploads with equal fingerprints are the same upload: the second gets the first's
    record. Key order of ``metadata`` does not matter.
    """
    canonical = json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\/]')


def clean_filename(raw: str | None, extension: str) -> str:
    """The client's file name without a path, control characters or quotes; the sniffed
    extension when none is left. Only ever shown back in Content-Disposition."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        name = ""
    if not name:
        return f"evidence.{extension}"
    return name[:MAX_FILENAME_CHARS]
