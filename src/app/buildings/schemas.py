"""Request and response bodies of buildings and their equipment register."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator

from src.app.buildings.models import Asset, AssetType, AustralianState, Building
from src.app.core.schemas import CalendarDate, RequestModel, ResourceModel

# Free-form JSON objects are bounded, so one row cannot grow without limit.
MAX_JSON_OBJECT_BYTES = 64 * 1024


def _bounded_object(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, separators=(",", ":")).encode()) > MAX_JSON_OBJECT_BYTES:
        raise ValueError(f"must serialise to at most {MAX_JSON_OBJECT_BYTES} bytes of JSON")
    return value


JSONObject = Annotated[dict[str, Any], AfterValidator(_bounded_object)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Address = Annotated[str, Field(min_length=1, max_length=1000)]
BuildingType = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="Free text, matched exactly by the list filter (e.g. office, hospital).",
        examples=["office"],
    ),
]
Location = Annotated[
    str, Field(max_length=500, description="Where the item is, e.g. Level 2 lobby")
]
Barcode = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        description="The item's tag; unique within the organisation (duplicate → 409).",
    ),
]

STATE_DESCRIPTION = (
    "Australian state or territory (" + ", ".join(s.value for s in AustralianState) + "): "
    "its public holidays decide the working days of the service schedule's tolerance "
    "windows. Null when unknown: working days are then Monday to Friday."
)
ASSET_TYPE_DESCRIPTION = "Equipment class: one of " + ", ".join(t.value for t in AssetType) + "."


class BuildingCreate(RequestModel):
    name: Name
    address: Address
    building_type: BuildingType
    metadata: JSONObject = Field(
        default_factory=dict, description="Free-form JSON object (at most 64 KiB)."
    )
    state: AustralianState | None = Field(default=None, description=STATE_DESCRIPTION)


class BuildingUpdate(RequestModel):
    """Only the fields sent change; ``metadata`` is replaced whole."""

    name: Name | None = None
    address: Address | None = None
    building_type: BuildingType | None = None
    metadata: JSONObject | None = None
    state: AustralianState | None = Field(
        default=None, description=STATE_DESCRIPTION + " Send null to clear it."
    )

    @field_validator("name", "address", "building_type", "metadata", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value


class BuildingOut(ResourceModel):
    name: str
    address: str
    building_type: str
    metadata: dict[str, Any]
    state: AustralianState | None = Field(description=STATE_DESCRIPTION)

    @classmethod
    def of(cls, building: Building) -> BuildingOut:
        # Read explicitly: ``Building.metadata`` is SQLAlchemy's MetaData, not the column.
        return cls(
            id=building.id,
            created_at=building.created_at,
            updated_at=building.updated_at,
            name=building.name,
            address=building.address,
            building_type=building.building_type,
            metadata=building.metadata_,
            state=AustralianState(building.state) if building.state else None,
        )


class AssetCreate(RequestModel):
    asset_type: AssetType = Field(description=ASSET_TYPE_DESCRIPTION)
    location: Location = ""
    barcode: Barcode | None = None
    installed_on: CalendarDate | None = None
    attributes: JSONObject = Field(
        default_factory=dict,
        description="Free-form JSON object (at most 64 KiB), e.g. size, agent, make.",
    )


class AssetUpdate(RequestModel):
    """Only the fields sent change; ``barcode`` and ``installed_on`` may be cleared with
    null; ``building_id`` moves the item to another of the organisation's buildings."""

    building_id: uuid.UUID | None = None
    asset_type: AssetType | None = Field(default=None, description=ASSET_TYPE_DESCRIPTION)
    location: Location | None = None
    barcode: Barcode | None = None
    installed_on: CalendarDate | None = None
    attributes: JSONObject | None = None

    @field_validator("building_id", "asset_type", "location", "attributes", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value


class AssetOut(ResourceModel):
    building_id: uuid.UUID
    asset_type: AssetType = Field(description=ASSET_TYPE_DESCRIPTION)
    location: str
    barcode: str | None
    installed_on: CalendarDate | None
    attributes: dict[str, Any]

    @classmethod
    def of(cls, asset: Asset) -> AssetOut:
        return cls.model_validate(asset)
