"""Authentication (/v1/auth) and user management (/v1/users): the HTTP surface only.

The flows live in ``auth.py`` (login, refresh, logout), ``revocations.py`` (admin
revocations) and ``users.py`` (user management).
"""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.database import get_db
from src.app.core.errors import error_responses
from src.app.core.idempotency import (
    IDEMPOTENCY_ERROR_STATUSES,
    IdempotentRequest,
    idempotency_optional,
)
from src.app.core.pagination import Page, PageParams, page_params, paginate
from src.app.core.responses import json_response
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal, Role, get_owned
from src.app.identity import auth, revocations, users
from src.app.identity.dependencies import get_current_principal, require_admin, require_reader
from src.app.identity.models import RevokedToken, User
from src.app.identity.revocation import RevocationChecker, get_revocation_checker
from src.app.identity.schemas import (
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RevocationCreate,
    RevocationOut,
    TokenPair,
    UserCreate,
    UserOut,
    UserUpdate,
    normalise_email,
)
from src.app.identity.service import IssuedSession
from src.app.identity.throttle import LoginThrottle

logger = logging.getLogger("firemode.identity")

auth_router = APIRouter(prefix="/auth", tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["users"])


def get_login_throttle(
    request: Request, checker: RevocationChecker = Depends(get_revocation_checker)
) -> LoginThrottle:
    settings: Settings = request.app.state.settings
    return LoginThrottle(settings, checker.redis)


def _token_response(response: Response, issued: IssuedSession) -> TokenPair:
    # RFC 6749 section 5.1: responses carrying tokens must not be cached.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return TokenPair(
        access_token=issued.access.token,
        refresh_token=issued.refresh_token,
        expires_in=issued.access.expires_in,
    )


# -- /v1/auth ------------------------------------------------------------------------


@auth_router.post(
    "/login",
    response_model=TokenPair,
    summary="Log in with email and password",
    description="Wrong email and wrong password give the same 401. After "
    "`FIREMODE_LOGIN_MAX_FAILURES` (5) failures for one email, or "
    "`FIREMODE_LOGIN_MAX_FAILURES_PER_ADDRESS` (50) from one client address, within "
    "`FIREMODE_LOGIN_WINDOW_SECONDS` (15 minutes), attempts get 429 with `Retry-After` "
    "until the window has moved on.",
    responses=error_responses(401, 429),
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    db: AsyncSession = Depends(get_db),
    throttle: LoginThrottle = Depends(get_login_throttle),
) -> TokenPair:
    issued = await auth.log_in(
        db,
        settings=request.app.state.settings,
        throttle=throttle,
        email=normalise_email(body.email),
        password=body.password,
        client=request.client.host if request.client else None,
    )
    return _token_response(response, issued)


@auth_router.post(
    "/refresh",
    response_model=TokenPair,
    summary="Exchange a refresh token for a new pair (rotation)",
    description="Every refresh token works once. Presenting one that was already used "
    "revokes its whole family (every refresh token of that login and every access token "
    "issued with them): whoever holds a stolen copy is locked out, and so is the owner, "
    "who logs in again.\n\n"
    "Retry grace: a client that lost the response may present the same refresh token "
    "again within `FIREMODE_REFRESH_REUSE_GRACE_SECONDS` (30; 0 disables) of its first "
    "use, as long as the pair issued then has not been used. It gets a new pair, and the "
    "unused pair it never received is revoked (refresh and access token); presenting "
    "that revoked refresh token later counts as reuse and revokes the family. Outside the "
    "grace interval, or once the successor was used, reuse revokes the family.",
    responses=error_responses(401, 503),
)
async def refresh(
    body: RefreshRequest,
    request: Request,
    response: Response,
    db: AsyncSession = Depends(get_db),
    checker: RevocationChecker = Depends(get_revocation_checker),
) -> TokenPair:
    issued = await auth.refresh(
        db, settings=request.app.state.settings, checker=checker, token=body.refresh_token
    )
    return _token_response(response, issued)


@auth_router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    summary="End this session",
    description="Puts the access token's `jti` in the revocation list until the token "
    "expires, and revokes the refresh-token family it was issued with (every refresh "
    "token of this login, and the access tokens issued with them). Other sessions of the "
    "user (other devices) stay logged in. The body is optional: a `refresh_token` of the "
    "caller's given there is revoked with its family too; one that is unknown or not the "
    "caller's is ignored (RFC 7009), so logout always succeeds for a valid access token "
    "(503 with `Retry-After`, nothing revoked, while the revocation cache cannot be "
    "written).",
    responses=error_responses(401, 503),
)
async def logout(
    body: LogoutRequest | None = Body(default=None),
    principal: Principal = Depends(get_current_principal),
    db: AsyncSession = Depends(get_db),
    checker: RevocationChecker = Depends(get_revocation_checker),
) -> Response:
    refresh_token = body.refresh_token if body is not None else None
    await auth.log_out(db, checker=checker, principal=principal, refresh_token=refresh_token)
    return Response(status_code=204)


@auth_router.post(
    "/revocations",
    response_model=RevocationOut,
    status_code=201,
    summary="Revoke one access token (by jti) or all of a user's tokens (by user_id)",
    description='`{"jti"}`: the access token enters the revocation list and the session '
    "it belongs to (its refresh-token family) is revoked; revoking an already revoked "
    'jti answers 200 with the existing record. `{"user_id"}`: revoke-all, every access '
    "token issued to the user until now is refused and every refresh token revoked; the "
    "user may log in again at once. Admins only; effective at once on every process: "
    "with Redis configured, when the revocation cannot be written to Redis nothing is "
    "recorded and the answer is 503 with `Retry-After`. Honours `Idempotency-Key`.",
    responses=error_responses(404, 503, *IDEMPOTENCY_ERROR_STATUSES),
)
async def create_revocation(
    body: RevocationCreate,
    request: Request,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
    checker: RevocationChecker = Depends(get_revocation_checker),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    reason = body.reason or revocations.DEFAULT_REASON
    revoked: list[str] = []  # what was revoked (not replayed), for the log

    async def work() -> Response:
        if body.user_id is not None:
            record = await revocations.revoke_user(
                db,
                settings=request.app.state.settings,
                checker=checker,
                principal=principal,
                user_id=body.user_id,
                reason=reason,
            )
            revoked.append("all_tokens")
            return json_response(RevocationOut.of(record), status_code=201)
        assert body.jti is not None
        record, created = await revocations.revoke_token(
            db, checker=checker, principal=principal, jti=body.jti, reason=reason
        )
        if created:
            revoked.append("token")
        return json_response(RevocationOut.of(record), status_code=201 if created else 200)

    response = await idempotency.run(principal, work)
    if revoked:
        logger.info("revocation", extra={"kind": revoked[0], "revoked_by": str(principal.user_id)})
    return response


@auth_router.get(
    "/revocations",
    response_model=Page[RevocationOut],
    summary="The organisation's revocation list, newest first",
    responses=error_responses(400),
)
async def list_revocations(
    user_id: uuid.UUID | None = Query(None, description="Only this user's revocations."),
    principal: Principal = Depends(require_admin),
    params: PageParams = Depends(page_params),
    db: AsyncSession = Depends(get_db),
) -> Page[RevocationOut]:
    rows, next_cursor = await paginate(
        db,
        revocations.list_revocations_query(principal, user_id),
        RevokedToken,
        params,
        endpoint="auth.revocations",
        filters={"user_id": str(user_id) if user_id else None},
        organisation_id=principal.organisation_id,
    )
    return Page[RevocationOut](data=[RevocationOut.of(r) for r in rows], next_cursor=next_cursor)


# -- /v1/users -----------------------------------------------------------------------


@users_router.get("/me", response_model=UserOut, summary="The caller")
async def me(
    principal: Principal = Depends(require_reader),
    db: AsyncSession = Depends(get_db),
) -> UserOut:
    user = await get_owned(db, User, principal.user_id, principal, what="User")
    return UserOut.model_validate(user)


@users_router.post(
    "",
    response_model=UserOut,
    status_code=201,
    summary="Create a user in the caller's organisation",
    description="Emails are unique across FireMode, case-insensitively (login is by email "
    "alone). Passwords need at least 12 characters. Honours `Idempotency-Key`.",
    responses=error_responses(409, *IDEMPOTENCY_ERROR_STATUSES),
)
async def create_user_route(
    body: UserCreate,
    request: Request,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    password_hash = await users.hash_new_password(request.app.state.settings, body.password)

    async def work() -> Response:
        user = await users.create(
            db, principal=principal, email=body.email, password_hash=password_hash, role=body.role
        )
        return json_response(UserOut.model_validate(user), status_code=201)

    return await idempotency.run(principal, work)


@users_router.get(
    "",
    response_model=Page[UserOut],
    summary="The organisation's users, newest first",
    responses=error_responses(400),
)
async def list_users(
    role: Role | None = Query(None),
    is_active: bool | None = Query(None),
    principal: Principal = Depends(require_admin),
    params: PageParams = Depends(page_params),
    db: AsyncSession = Depends(get_db),
) -> Page[UserOut]:
    rows, next_cursor = await paginate(
        db,
        users.list_users_query(principal, role, is_active),
        User,
        params,
        endpoint="users.list",
        filters={"role": role.value if role else None, "is_active": is_active},
        organisation_id=principal.organisation_id,
    )
    return Page[UserOut](data=[UserOut.model_validate(r) for r in rows], next_cursor=next_cursor)


@users_router.get("/{user_id}", response_model=UserOut, summary="One user of the organisation")
async def get_user(
    user_id: uuid.UUID,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
) -> UserOut:
    return UserOut.model_validate(await get_owned(db, User, user_id, principal, what="User"))


@users_router.patch(
    "/{user_id}",
    response_model=UserOut,
    summary="Change a user's role or active flag",
    description="A role change or a deactivation revokes all of the user's tokens at once "
    "(access tokens carry the role). Reactivating revokes nothing and restores nothing: "
    "the user logs in again. An admin cannot demote or deactivate themselves (409), a "
    "caller who stopped being an active admin meanwhile (another admin demoted them a "
    "moment ago) changes nothing (409), and no change may leave the organisation without "
    "an active admin (409). With Redis configured, 503 with `Retry-After` (nothing "
    "changed) while the revocation cache cannot be written.",
    responses=error_responses(404, 409, 503),
)
async def update_user(
    user_id: uuid.UUID,
    body: UserUpdate,
    request: Request,
    principal: Principal = Depends(require_admin),
    db: AsyncSession = Depends(get_db),
    checker: RevocationChecker = Depends(get_revocation_checker),
) -> UserOut:
    user = await users.update(
        db,
        settings=request.app.state.settings,
        checker=checker,
        principal=principal,
        user_id=user_id,
        role=body.role,
        is_active=body.is_active,
    )
    return UserOut.model_validate(user)
