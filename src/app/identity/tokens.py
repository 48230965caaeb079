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
# ``iat`` is whole seconds (RFC 7519 NumericDate, what every JWT library expects); the
# private claim ``iat_us`` carries the same instant in microseconds, so that a token issued
# in the same second as a user's revoke-all can be ordered against it exactly.
ISSUED_AT_US_CLAIM = "iat_us"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "org", "role", "jti", "iat", "nbf", "exp", "iat_us"]


class InvalidToken(Exception):
    """The token is not a valid access token. The message is safe to show to the client."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: uuid.UUID
    organisation_id: uuid.UUID
    role: str
    jti: str
    # Microsecond precision (from ``iat_us``): compared with the user's revoke-all time.
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
    issued_at = (now or datetime.now(UTC)).astimezone(UTC)
    issued_us = to_epoch_us(issued_at)
    issued_s = issued_us // 1_000_000
    lifetime = settings.access_token_ttl_seconds
    expires_at = datetime.fromtimestamp(issued_s + lifetime, UTC)
    jti = str(uuid.uuid4())
    payload = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "org": str(organisation_id),
        "role": role,
        "jti": jti,
        "iat": issued_s,
        "nbf": issued_s,
        "exp": issued_s + lifetime,
        ISSUED_AT_US_CLAIM: issued_us,
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
        issued_us = payload[ISSUED_AT_US_CLAIM]
        if not isinstance(issued_us, int) or isinstance(issued_us, bool):
            raise TypeError("iat_us must be an integer")
        # Both name the same instant in every token this server issues.
        if issued_us // 1_000_000 != int(payload["iat"]):
            raise ValueError("iat_us does not match iat")
        jti = payload["jti"]
        if not isinstance(jti, str) or not 1 <= len(jti) <= 64:
            raise ValueError("jti must be a string of 1 to 64 characters")
        return AccessClaims(
            user_id=uuid.UUID(str(payload["sub"])),
            organisation_id=uuid.UUID(str(payload["org"])),
            role=str(payload["role"]),
            jti=jti,
            issued_at=from_epoch_us(issued_us),
            expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
        )
    except (ValueError, TypeError, OverflowError, OSError) as exc:
        raise InvalidToken("The access token's claims are malformed") from exc


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_epoch_us(value: datetime) -> int:
    """Exact microseconds since the epoch (no float rounding)."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def from_epoch_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def new_refresh_token() -> str:
    """256 bits of randomness, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
