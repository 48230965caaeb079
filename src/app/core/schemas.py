"""Base models every domain's request and response bodies build on."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PlainSerializer

from src.app.core.clock import to_rfc3339

UTCTimestamp = Annotated[datetime, PlainSerializer(to_rfc3339, return_type=str, when_used="json")]


class RequestModel(BaseModel):
    """Request bodies reject unknown fields, so a client's typo never passes silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ResourceModel(BaseModel):
    """Every resource representation carries id, created_at and updated_at."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: UTCTimestamp
    updated_at: UTCTimestamp
