"""Access tokens (JWT, one pinned algorithm) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from src.app.core.settings import Settings

ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105  (RFC 9068 header "typ", not a secret)
REQUIRED_CLAIMS = ["iss", "aud", "sub", "org", "role", "jti", "iat", "nbf", "exp"]


class InvalidToken(Exception):
    """The token is not a valid access token. The message is safe to show to the client."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    organisation_id: uuid.UUID
    role: str
    jti: str
    issued_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    claims: AccessClaims
    expires_in: int


def issue_access_token(
    settings: Settings,
    *,
    user_id: uuid.UUID,
    organisation_id: uuid.UUID,
    role: str,
    now: datetime | None = None,
) -> IssuedAccessToken:
    now = now or datetime.now(UTC)
    issued_at = now.replace(microsecond=0)
    lifetime = settings.access_token_ttl_seconds
    expires_at = issued_at + timedelta(seconds=lifetime)
    jti = str(uuid.uuid4())
    payload = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "org": str(organisation_id),
        "role": role,
        "jti": jti,
        "iat": int(issued_at.timestamp()),
        "nbf": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
    }
    token = jwt.encode(
        payload,
        settings.signing_secret(),
        algorithm=ALGORITHM,
        headers={"typ": ACCESS_TOKEN_TYPE},
    )
    claims = AccessClaims(user_id, organisation_id, role, jti, issued_at, expires_at)
    return IssuedAccessToken(token=token, claims=claims, expires_in=lifetime)


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    """Verify signature, algorithm, type and every registered claim; raise InvalidToken."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("The access token is malformed") from exc
    if header.get("typ") != ACCESS_TOKEN_TYPE:
        raise InvalidToken("The token is not an access token")
    try:
        payload = jwt.decode(
            token,
            settings.signing_secret(),
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_seconds,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("The access token has expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise InvalidToken("The access token is not valid yet") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("The access token is invalid") from exc
    try:
        return AccessClaims(
            user_id=uuid.UUID(str(payload["sub"])),
            organisation_id=uuid.UUID(str(payload["org"])),
            role=str(payload["role"]),
            jti=str(payload["jti"]),
            issued_at=datetime.fromtimestamp(int(payload["iat"]), UTC),
            expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
        )
    except (ValueError, TypeError) as exc:
        raise InvalidToken("The access token's claims are malformed") from exc


def new_refresh_token() -> str:
    """256 bits of randomness, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
