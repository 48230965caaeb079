"""Request and response bodies of /v1/auth and /v1/users."""

from __future__ import annotations

import re
import uuid
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from src.app.core.schemas import RequestModel, ResourceModel, UTCTimestamp
from src.app.core.tenancy import Role
from src.app.identity.models import RevokedToken
from src.app.identity.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH

# Deliberately plain: one "@", no spaces, a dotted domain. Deliverability is not ours to
# judge; uniqueness is, and that is case-insensitive (stored lower-cased).
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def normalise_email(value: str) -> str:
    return value.strip().lower()


def valid_email(value: str) -> str:
    email = normalise_email(value)
    if len(email) > 320 or not _EMAIL.match(email):
        raise ValueError("must be an email address such as name@example.com")
    return email


class LoginRequest(RequestModel):
    email: str = Field(min_length=1, max_length=320, examples=["admin@demo.firemode.example"])
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class RefreshRequest(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(RequestModel):
    """Optional. The session of the access token is always ended; a refresh token given
    here is revoked (with its family) too, if it is the caller's."""

    refresh_token: str | None = Field(default=None, min_length=1, max_length=512)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105  (RFC 6750 type)
    expires_in: int = Field(description="Seconds until the access token expires.")


class UserOut(ResourceModel):
    email: str
    role: Role
    organisation_id: uuid.UUID
    is_active: bool


class UserCreate(RequestModel):
    email: str = Field(max_length=320, examples=["technician@example.com"])
    password: str = Field(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_LENGTH,
        description=f"At least {MIN_PASSWORD_LENGTH} characters.",
    )
    role: Role

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return valid_email(value)


class UserUpdate(RequestModel):
    """Changing the role or deactivating revokes all of the user's tokens (they carry the
    role, and a deactivated user must be out at once); reactivating revokes nothing."""

    role: Role | None = None
    is_active: bool | None = None

    @field_validator("role", "is_active")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value

    @model_validator(mode="after")
    def _something(self) -> UserUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one of: role, is_active")
        return self


class RevocationCreate(RequestModel):
    """Exactly one of ``jti`` (one access token, and the session it belongs to) or
    ``user_id`` (every token of that user: revoke-all)."""

    jti: str | None = Field(default=None, min_length=1, max_length=64)
    user_id: uuid.UUID | None = None
    reason: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _exactly_one(self) -> RevocationCreate:
        if (self.jti is None) == (self.user_id is None):
            raise ValueError("give exactly one of: jti, user_id")
        return self


class RevocationOut(BaseModel):
    id: uuid.UUID
    kind: Literal["token", "all_tokens"]
    jti: str | None
    user_id: uuid.UUID
    reason: str
    revoked_by: uuid.UUID | None
    expires_at: UTCTimestamp = Field(
        description="After this instant the revocation has no more effect (every token it "
        "refuses has expired) and the record may be purged."
    )
    created_at: UTCTimestamp
    updated_at: UTCTimestamp

    @classmethod
    def of(cls, row: RevokedToken) -> RevocationOut:
        return cls(
            id=row.id,
            kind="all_tokens" if row.kind == "all_tokens" else "token",
            jti=row.jti,
            user_id=row.user_id,
            reason=row.reason,
            revoked_by=row.revoked_by_id,
            expires_at=row.expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
