"""The rule catalogue's tables: a rule (one code) and its immutable published versions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, event, text
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.database import Base, IdentifiedMixin, JSONType, UTCDateTime


class Rule(IdentifiedMixin, Base):
    """One routine (a code). Its asset type and frequency never change between versions:
    another frequency is another routine, hence another code."""

    __tablename__ = "rules"

    # Null for the shipped catalogue (visible to every organisation, read-only).
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organisations.id"), default=None
    )
    code: Mapped[str] = mapped_column(String(64))
    asset_type: Mapped[str] = mapped_column(String(64))
    frequency: Mapped[str] = mapped_column(String(16))
    # Of the latest version (list filter); each version keeps its own.
    standard: Mapped[str] = mapped_column(String(64))
    latest_version: Mapped[str] = mapped_column(String(32))


class RuleVersion(IdentifiedMixin, Base):
    """A published version: never updated nor deleted, so records made under it keep
    their meaning."""

    __tablename__ = "rule_versions"

    rule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("rules.id"))
    version: Mapped[str] = mapped_column(String(32))
    major: Mapped[int] = mapped_column(Integer)
    minor: Mapped[int] = mapped_column(Integer)
    patch: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    standard: Mapped[str] = mapped_column(String(64))
    clause: Mapped[str] = mapped_column(String(64))
    # Asset variants (``attributes.variant`` of an asset) it applies to; empty: all.
    variants: Mapped[list[str]] = mapped_column(JSONType, default=list)
    checklist: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


@event.listens_for(RuleVersion, "before_update")
def _versions_are_immutable(_mapper: Any, _connection: Any, target: RuleVersion) -> None:
    raise RuntimeError(f"rule version {target.id} is published and cannot change")


# A shipped code is unique among shipped rules; an organisation's code within it. (Codes
# of the shipped catalogue are reserved, so the two never collide.)
Index(
    "uq_rules_shipped_code",
    Rule.code,
    unique=True,
    postgresql_where=text("organisation_id IS NULL"),
    sqlite_where=text("organisation_id IS NULL"),
)
Index("uq_rules_organisation_id_code", Rule.organisation_id, Rule.code, unique=True)
# GET /v1/rules: shipped and own rules newest first, filtered by asset type.
Index(
    "ix_rules_organisation_id_created_at_id",
    Rule.organisation_id,
    Rule.created_at.desc(),
    Rule.id.desc(),
)
Index(
    "ix_rules_asset_type_created_at_id",
    Rule.asset_type,
    Rule.created_at.desc(),
    Rule.id.desc(),
)
Index(
    "uq_rule_versions_rule_id_major_minor_patch",
    RuleVersion.rule_id,
    RuleVersion.major,
    RuleVersion.minor,
    RuleVersion.patch,
    unique=True,
)
