"""Response bodies of the audit routes."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from src.app.core.schemas import UTCTimestamp


class ChainLinkOut(BaseModel):
    position: int = Field(description="Place in the organisation's chain, from 1.")
    hash: str = Field(
        description="SHA-256 (hex) of the previous link's hash followed by this entry's "
        "canonical JSON."
    )


class AuditEntryOut(BaseModel):
    id: uuid.UUID
    created_at: UTCTimestamp = Field(description="When the change was made.")
    updated_at: UTCTimestamp = Field(description="Always `created_at`: entries never change.")
    seq: int = Field(description="Insertion sequence (global; gaps are normal).")
    organisation_id: uuid.UUID
    actor_type: str = Field(description="`user`, or `system` for commands and workers.")
    actor_id: uuid.UUID | None = Field(description="The user who acted; null for `system`.")
    action: str = Field(description="What happened, e.g. `test_session.status_changed`.")
    subject_type: str = Field(description="Kind of thing changed, e.g. `test_session`.")
    subject_id: str = Field(description="Its id.")
    payload: dict[str, Any] = Field(description="What changed (never a secret).")
    transaction_id: str = Field(description="`X-Transaction-ID` of the request that did it.")
    chain: ChainLinkOut | None = Field(
        description="The entry's link in the chain; null until the sealer has reached it "
        "(normally within seconds)."
    )


class AuditHeadOut(BaseModel):
    organisation_id: uuid.UUID
    position: int = Field(description="Number of sealed entries (0: none yet).")
    hash: str = Field(
        description="Hash of the last sealed link (for position 0, the genesis hash). "
        "Write it down somewhere outside FireMode to anchor the chain."
    )
    entry_id: uuid.UUID | None = Field(description="The entry at the head.")
    entry_seq: int | None
    entry_created_at: UTCTimestamp | None
    sealed_at: UTCTimestamp | None
    unsealed: int = Field(description="Entries recorded but not sealed yet.")
