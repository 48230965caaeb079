"""The one authentication dependency and the one role guard."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.clock import utc_now
from src.app.core.database import get_db
from src.app.core.errors import ApiError
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal, Role
from src.app.identity.revocation import RevocationChecker, get_revocation_checker
from src.app.identity.tokens import AccessClaims, InvalidToken, decode_access_token

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /v1/auth/login")

TokenDecoder = Callable[[str], AccessClaims]


def _unauthorized(detail: str) -> ApiError:
    return ApiError(401, detail, headers={"WWW-Authenticate": 'Bearer realm="firemode"'})


async def get_access_token_decoder(request: Request) -> TokenDecoder:
    """The token-decoding step, alone, so tests may map a fixed token to fixed claims.

    ``async`` (like every dependency on the hot path): FastAPI runs plain ``def``
    dependencies in a thread pool, a costly hop for a function that does no I/O."""

    settings: Settings = request.app.state.settings
    verified = _verified_tokens(request)
    leeway = timedelta(seconds=settings.jwt_leeway_seconds)

    def decode(token: str) -> AccessClaims:
        # A token verified before is not parsed and verified again: only its expiry can
        # have changed. Revocation is checked on every request, after this.
        claims = verified.get(token)
        if claims is None or utc_now() > claims.expires_at + leeway:
            claims = decode_access_token(settings, token)
            if len(verified) >= _VERIFIED_TOKENS_MAX:
                verified.pop(next(iter(verified)))
            verified[token] = claims
        return claims

    return decode


_VERIFIED_TOKENS_MAX = 4096


def _verified_tokens(request: Request) -> dict[str, AccessClaims]:
    """This app's verified tokens (per app: each has its own signing secret)."""
    state = request.app.state
    cache: dict[str, AccessClaims] | None = getattr(state, "verified_tokens", None)
    if cache is None:
        cache = state.verified_tokens = {}
    return cache


async def get_access_claims(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    decode: TokenDecoder = Depends(get_access_token_decoder),
) -> AccessClaims:
    """The bearer token's verified claims (401 otherwise), revocation not yet checked."""
    if credentials is None:
        header = request.headers.get("authorization")
        raise _unauthorized(
            "Authentication required: send Authorization: Bearer <access token>"
            if header is None
            else "The Authorization header must be 'Bearer <access token>'"
        )
    if credentials.scheme.lower() != "bearer":
        raise _unauthorized("The Authorization header must be 'Bearer <access token>'")
    try:
        claims = decode(credentials.credentials)
    except InvalidToken as exc:
        raise _unauthorized(str(exc)) from exc
    if claims.role not in _ROLE_NAMES:
        raise _unauthorized("The access token's role is unknown")
    request.state.principal_user_id = str(claims.user_id)
    return claims


_ROLE_NAMES = frozenset(role.value for role in Role)


def principal_of(claims: AccessClaims) -> Principal:
    return Principal(
        claims.user_id, claims.organisation_id, Role(claims.role), claims.jti, claims.expires_at
    )


async def get_current_principal(
    claims: AccessClaims = Depends(get_access_claims),
    db: AsyncSession = Depends(get_db),
    revocations: RevocationChecker = Depends(get_revocation_checker),
) -> Principal:
    refusal = await revocations.refusal(db, claims)
    if refusal is not None:
        raise _unauthorized(refusal)
    return principal_of(claims)


def revoked(reason: str) -> ApiError:
    """The 401 of a revoked token, for a route that checks revocation itself."""
    return _unauthorized(reason)


@dataclass(frozen=True, slots=True)
class PendingRevocationCheck:
    """A caller whose token is verified and whose role is allowed, but whose revocation
    check the route makes itself, in the same database round trip as its work (the
    results write path: ``revocation.passes_sql``). Nothing may be read or written
    for it before that check."""

    principal: Principal
    claims: AccessClaims


def _role_refusal(role: Role, allowed: frozenset[Role]) -> ApiError | None:
    if role in allowed:
        return None
    names = ", ".join(sorted(r.value for r in allowed))
    return ApiError(403, f"This action needs one of the roles: {names}")


def require_role(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """The role guard: 403 unless the caller has one of ``roles``."""
    allowed = frozenset(roles)

    async def guard(principal: Principal = Depends(get_current_principal)) -> Principal:
        refusal = _role_refusal(principal.role, allowed)
        if refusal is not None:
            raise refusal
        return principal

    return guard


async def require_writer_checking_revocation_later(
    claims: AccessClaims = Depends(get_access_claims),
) -> PendingRevocationCheck:
    """``require_writer`` for a route that checks revocation in its own statement."""
    principal = principal_of(claims)
    refusal = _role_refusal(principal.role, _WRITERS)
    if refusal is not None:
        raise refusal
    return PendingRevocationCheck(principal, claims)


async def writer_pending_revocation_check(request: Request) -> PendingRevocationCheck | None:
    """What ``require_writer_checking_revocation_later`` gives for a request it lets
    through, without FastAPI's dependency machinery (for the results route's lean
    handler); None whenever the dependency would refuse, or might decide differently
    (dependency overrides in tests): the caller then takes the declared path, which
    answers the refusal exactly as always."""
    overrides = request.app.dependency_overrides
    if overrides and overrides.keys() != {get_access_token_decoder}:
        return None
    header = request.headers.get("authorization")
    if header is None or not header.startswith("Bearer ") or " " in header[7:] or not header[7:]:
        return None
    # An override of the decoder (tests) takes the request, like the real one.
    provided = overrides.get(get_access_token_decoder, get_access_token_decoder)(request)
    decode: TokenDecoder = await provided if inspect.isawaitable(provided) else provided
    try:
        claims = decode(header[7:])
    except InvalidToken:
        return None
    if claims.role not in _WRITER_ROLE_NAMES:  # names: an unknown role is no Role
        return None
    request.state.principal_user_id = str(claims.user_id)
    return PendingRevocationCheck(principal_of(claims), claims)


WRITER_ROLES = (Role.admin, Role.technician)
_WRITERS = frozenset(WRITER_ROLES)
_WRITER_ROLE_NAMES = frozenset(role.value for role in WRITER_ROLES)
require_admin = require_role(Role.admin)
require_writer = require_role(*WRITER_ROLES)
require_reader = require_role(Role.admin, Role.technician, Role.viewer)
