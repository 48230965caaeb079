"""Buildings and their equipment register."""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.database import Base, IdentifiedMixin


class AssetType(StrEnum):
    """Equipment classes routinely serviced under AS 1851 (``other`` for anything else)."""

    fire_extinguisher = "fire_extinguisher"
    fire_blanket = "fire_blanket"
    fire_hose_reel = "fire_hose_reel"
    fire_hydrant = "fire_hydrant"
    sprinkler_valve_set = "sprinkler_valve_set"
    fire_pump = "fire_pump"
    fire_detection_panel = "fire_detection_panel"
    smoke_detector = "smoke_detector"
    heat_detector = "heat_detector"
    ewis = "ewis"
    emergency_light = "emergency_light"
    exit_sign = "exit_sign"
    fire_door = "fire_door"
    smoke_damper = "smoke_damper"
    fire_damper = "fire_damper"
    other = "other"


class Building(IdentifiedMixin, Base):
    __tablename__ = "buildings"

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(Text)
    building_type: Mapped[str] = mapped_column(String(64))
    # "metadata" is reserved on declarative classes; the column keeps the API's name.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


class Asset(IdentifiedMixin, Base):
    __tablename__ = "assets"
    __table_args__ = (UniqueConstraint("organisation_id", "barcode"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    building_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("buildings.id"))
    asset_type: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(500), default="")
    barcode: Mapped[str | None] = mapped_column(String(128), default=None)
    installed_on: Mapped[date | None] = mapped_column(default=None)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)


# Keyset pagination indexes: organisation first, then the list's equality filter, then the
# sort key, so every page (first or deep) is one index range scan without a sort.
Index(
    "ix_buildings_organisation_id_created_at_id",
    Building.organisation_id,
    Building.created_at.desc(),
    Building.id.desc(),
)
Index(
    "ix_buildings_organisation_id_building_type_created_at_id",
    Building.organisation_id,
    Building.building_type,
    Building.created_at.desc(),
    Building.id.desc(),
)
# GET /v1/buildings/{id}/assets, and deleting a building's register with it.
Index(
    "ix_assets_organisation_id_building_id_created_at_id",
    Asset.organisation_id,
    Asset.building_id,
    Asset.created_at.desc(),
    Asset.id.desc(),
)
# The foreign key's own look-up (PostgreSQL's check when a building row is deleted).
Index("ix_assets_building_id", Asset.building_id)
