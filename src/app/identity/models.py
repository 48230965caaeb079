"""Organisations, users, refresh tokens, the token revocation list and login throttling."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from src.app.core.database import Base, IdentifiedMixin, UTCDateTime


class Organisation(IdentifiedMixin, Base):
    __tablename__ = "organisations"

    name: Mapped[str] = mapped_column(String(200), unique=True)


class User(IdentifiedMixin, Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'technician', 'viewer')", name="role_valid"),
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    # Stored lower-cased: login is by email alone, so it is unique across organisations.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(512))
    role: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    # "Revoke all": access tokens issued before this instant are refused.
    tokens_valid_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RefreshToken(IdentifiedMixin, Base):
    """Opaque refresh tokens, stored only as a SHA-256 hash, rotated on every use."""

    __tablename__ = "refresh_tokens"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    family_id: Mapped[uuid.UUID] = mapped_column(index=True)
    # Indexed: a refresh retry looks up the successors of the token it presents.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    # The access token issued together with this refresh token: logout, an admin's
    # revocation by jti and reuse detection find the session (family) through it.
    access_jti: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RevokedToken(IdentifiedMixin, Base):
    """The token revocation list (RTL). ``jti`` rows live until the token's own expiry;
    ``kind='all_tokens'`` rows record an admin's revoke-all of a user."""

    __tablename__ = "revoked_tokens"
    __table_args__ = (CheckConstraint("kind IN ('token', 'all_tokens')", name="kind_valid"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"))
    kind: Mapped[str] = mapped_column(String(16), default="token")
    jti: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    reason: Mapped[str] = mapped_column(String(200), default="")
    revoked_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class LoginFailure(IdentifiedMixin, Base):
    """One failed login, counted per throttle key (``email:...`` or ``ip:...``)."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_throttle_key_created_at", "throttle_key", "created_at"),
    )

    throttle_key: Mapped[str] = mapped_column(String(400))


class LoginKnownAddress(IdentifiedMixin, Base):
    """A client address that logged in to an account: exempt from the account-wide
    progressive delay (see identity/throttle.py). ``updated_at`` is the latest success."""

    __tablename__ = "login_known_addresses"

    pair_key: Mapped[str] = mapped_column(String(64), unique=True)


# Keyset pagination of the users and revocations lists (organisation, created_at DESC,
# id DESC), and the refresh tokens of one user (logout everywhere, role changes).
Index(
    "ix_users_organisation_id_created_at_id",
    User.organisation_id,
    User.created_at.desc(),
    User.id.desc(),
)
Index(
    "ix_revoked_tokens_organisation_id_created_at_id",
    RevokedToken.organisation_id,
    RevokedToken.created_at.desc(),
    RevokedToken.id.desc(),
)
Index("ix_refresh_tokens_user_id", RefreshToken.user_id)
