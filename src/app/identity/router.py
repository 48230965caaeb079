"""Authentication (/v1/auth) and user management (/v1/users)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import NoReturn

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.clock import utc_now
from src.app.core.database import get_db
from src.app.core.errors import ApiError, error_responses
from src.app.core.idempotency import (
    IDEMPOTENCY_ERROR_STATUSES,
    IdempotentRequest,
    idempotency_optional,
)
from src.app.core.pagination import Page, PageParams, page_params, paginate
from src.app.core.responses import json_response
from src.app.core.settings import Settings
from src.app.core.tenancy import Principal, Role, get_owned, scoped
from src.app.core.transactions import begin_write
from src.app.identity.dependencies import get_current_principal, require_admin, require_reader
from src.app.identity.models import RefreshToken, RevokedToken, User
from src.app.identity.passwords import hash_password, verify_password
from src.app.identity.redis_store import RedisUnavailable
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
from src.app.identity.service import (
    EmailTaken,
    IssuedSession,
    RevokedAccess,
    add_to_revocation_list,
    claim_refresh_token,
    create_user,
    family_has_live_token,
    find_refresh_token,
    find_user_by_email,
    revoke_all_tokens,
    revoke_families,
    revoke_successors,
    start_session,
    unused_successors,
    within_reuse_grace,
)
from src.app.identity.throttle import LoginThrottle, throttle_keys

logger = logging.getLogger("firemode.identity")

auth_router = APIRouter(prefix="/auth", tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["users"])

INVALID_CREDENTIALS = "The email or password is incorrect"
INVALID_REFRESH = "The refresh token is invalid, expired or revoked"
REVOCATION_NOT_RECORDED = (
    "The revocation could not be recorded: the revocation cache (Redis) did not answer, "
    "so nothing was changed. Try again"
)
ACTOR_NOT_ADMIN = (
    "You are no longer an active admin (your role or active flag changed meanwhile); "
    "nothing was changed"
)
LAST_ADMIN = "This change would leave the organisation without an active admin"
_WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="firemode"'}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_login_throttle(
    request: Request, revocations: RevocationChecker = Depends(get_revocation_checker)
) -> LoginThrottle:
    return LoginThrottle(_settings(request), revocations.redis)


def _token_response(response: Response, issued: IssuedSession) -> TokenPair:
    # RFC 6749 section 5.1: responses carrying tokens must not be cached.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return TokenPair(
        access_token=issued.access.token,
        refresh_token=issued.refresh_token,
        expires_in=issued.access.expires_in,
    )


async def _publish(
    checker: RevocationChecker,
    *,
    tokens: Iterable[RevokedAccess] = (),
    users: Iterable[User] = (),
) -> None:
    """Write revocations to Redis (when configured). Called inside the write transaction,
    before its commit, so that no process trusting Redis misses a committed revocation.
    Raises RedisUnavailable."""
    for user in users:
        await checker.publish_user(user)
    for entry in tokens:
        await checker.publish_token(entry.jti, entry.expires_at)


async def _publish_or_503(
    session: AsyncSession,
    checker: RevocationChecker,
    *,
    tokens: Iterable[RevokedAccess] = (),
    users: Iterable[User] = (),
) -> None:
    """``_publish``; if Redis does not take it, roll the revocation back and answer 503.
    (A Redis write that succeeded before a failed commit refuses tokens the database
    would still accept: fail-closed, and the retry completes it.)"""
    try:
        await _publish(checker, tokens=tokens, users=users)
    except RedisUnavailable as exc:
        await session.rollback()
        raise ApiError(503, REVOCATION_NOT_RECORDED, headers={"Retry-After": "1"}) from exc


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
    session: AsyncSession = Depends(get_db),
    throttle: LoginThrottle = Depends(get_login_throttle),
) -> TokenPair:
    settings = _settings(request)
    email = normalise_email(body.email)
    client = request.client.host if request.client else None
    reservation = await throttle.reserve(session, throttle_keys(email, client))
    if reservation.retry_after is not None:
        logger.warning("login throttled", extra={"client": client})
        raise ApiError(
            429,
            f"Too many failed logins; try again in {reservation.retry_after} seconds",
            headers={"Retry-After": str(reservation.retry_after)},
        )
    user = await find_user_by_email(session, email)
    valid, new_hash = await verify_password(
        body.password,
        user.password_hash if user is not None else None,
        max_concurrent=settings.max_concurrent_password_hashes,
    )
    if user is None or not valid or not user.is_active:
        # The reserved failure stays: it is this attempt's record.
        logger.info(
            "login failed",
            extra={"user_id": str(user.id) if user else None, "client": client},
        )
        raise ApiError(401, INVALID_CREDENTIALS, headers=_WWW_AUTHENTICATE)
    # A write transaction from here (SQLite: take the write lock before writing).
    await begin_write(session)
    await throttle.succeeded(session, reservation)
    if new_hash is not None:
        user.password_hash = new_hash  # the hashing parameters changed since it was set
    issued = start_session(session, settings, user, now=utc_now())
    await session.commit()
    logger.info("login succeeded", extra={"user_id": str(user.id), "client": client})
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
    session: AsyncSession = Depends(get_db),
    revocations: RevocationChecker = Depends(get_revocation_checker),
) -> TokenPair:
    settings = _settings(request)
    await begin_write(session)
    now = utc_now()
    # Locked on PostgreSQL, so a concurrent use of the same token waits and then sees it used.
    row = await find_refresh_token(session, body.refresh_token, for_update=True)
    if row is None:
        raise ApiError(401, INVALID_REFRESH, headers=_WWW_AUTHENTICATE)
    if row.revoked_at is not None:
        if await family_has_live_token(session, row.family_id, now):
            # Only a successor replaced by a retry is revoked alone while its family lives
            # on: whoever presents it received the response the retrying client had lost.
            await _reuse_detected(session, revocations, row, now)
        raise ApiError(401, INVALID_REFRESH, headers=_WWW_AUTHENTICATE)
    successors: list[RefreshToken] | None = None
    if row.used_at is not None:
        grace = settings.refresh_reuse_grace_seconds
        if within_reuse_grace(row.used_at, now=now, grace_seconds=grace):
            successors = await unused_successors(session, row)
        if successors is None:
            await _reuse_detected(session, revocations, row, now)
    user = await session.get(User, row.user_id)
    if row.expires_at <= now or user is None or not user.is_active:
        raise ApiError(401, INVALID_REFRESH, headers=_WWW_AUTHENTICATE)
    if successors is not None:
        replaced = await revoke_successors(
            session,
            successors,
            now=now,
            user=(row.organisation_id, row.user_id),
            reason="refresh retried: unused successor replaced",
        )
        if replaced is None:  # the successor was used meanwhile (SQLite has no lock)
            await _reuse_detected(session, revocations, row, now)
        await _publish_or_503(session, revocations, tokens=replaced)
        logger.info(
            "refresh retried within the grace interval: unused successor revoked",
            extra={"user_id": str(row.user_id), "family_id": str(row.family_id)},
        )
    elif not await claim_refresh_token(session, row, now):  # used meanwhile (SQLite has no lock)
        await _reuse_detected(session, revocations, row, now)
    issued = start_session(
        session, settings, user, now=now, family_id=row.family_id, parent_id=row.id
    )
    await session.commit()
    return _token_response(response, issued)


async def _reuse_detected(
    session: AsyncSession, revocations: RevocationChecker, row: RefreshToken, now: datetime
) -> NoReturn:
    family_id, user = row.family_id, (row.organisation_id, row.user_id)
    await session.rollback()  # releases the row lock; expires ``row``
    await begin_write(session)
    entries = await revoke_families(
        session,
        {family_id},
        now=now,
        user=user,
        revoked_by=None,
        reason="refresh token reuse detected",
    )
    try:
        await _publish(revocations, tokens=entries)
    except RedisUnavailable:
        # Fail towards revoking: commit anyway. Every refresh reads the database, so the
        # family's refresh tokens are dead everywhere at once; only its still-live access
        # tokens may pass on processes trusting Redis until the next resync. Rolling back
        # instead would leave the thief a working refresh token.
        logger.warning(
            "refresh token reuse: family revoked in the database only (redis unavailable)",
            extra={"user_id": str(user[1]), "family_id": str(family_id)},
        )
    await session.commit()
    logger.warning(
        "refresh token reuse detected: family revoked",
        extra={"user_id": str(user[1]), "family_id": str(family_id)},
    )
    raise ApiError(
        401,
        "The refresh token was already used; its session has been revoked. Log in again",
        headers=_WWW_AUTHENTICATE,
    )


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
    session: AsyncSession = Depends(get_db),
    revocations: RevocationChecker = Depends(get_revocation_checker),
) -> Response:
    await begin_write(session)
    now = utc_now()
    families: set[uuid.UUID] = set()
    own = await session.execute(
        select(RefreshToken.family_id).where(
            RefreshToken.access_jti == principal.jti,
            RefreshToken.user_id == principal.user_id,
        )
    )
    families.update(own.scalars().all())
    if body is not None and body.refresh_token is not None:
        given = await find_refresh_token(session, body.refresh_token)
        if given is not None and given.user_id == principal.user_id:
            families.add(given.family_id)
    user = (principal.organisation_id, principal.user_id)
    current = RevokedAccess(principal.jti, principal.token_expires_at)
    await add_to_revocation_list(
        session, [current], user=user, revoked_by=principal.user_id, reason="logout", now=now
    )
    entries = await revoke_families(
        session, families, now=now, user=user, revoked_by=principal.user_id, reason="logout"
    )
    await _publish_or_503(session, revocations, tokens=[current, *entries])
    await session.commit()
    logger.info("logout", extra={"user_id": str(principal.user_id)})
    return Response(status_code=204)


def _revocation_out(row: RevokedToken) -> RevocationOut:
    return RevocationOut(
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
    session: AsyncSession = Depends(get_db),
    revocations: RevocationChecker = Depends(get_revocation_checker),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    settings = _settings(request)
    reason = body.reason or "revoked by an admin"
    revoked: list[str] = []  # what was revoked (not replayed), for the log

    async def revoke_user(user_id: uuid.UUID) -> Response:
        now = utc_now()
        user = await get_owned(session, User, user_id, principal, what="User", for_update=True)
        record = await revoke_all_tokens(
            session, settings, user, now=now, revoked_by=principal.user_id, reason=reason
        )
        await _publish_or_503(session, revocations, users=[user])
        revoked.append("all_tokens")
        return json_response(_revocation_out(record), status_code=201)

    async def revoke_token(jti: str) -> Response:
        now = utc_now()
        issued = await session.execute(
            scoped(select(RefreshToken), RefreshToken, principal).where(
                RefreshToken.access_jti == jti
            )
        )
        row = issued.scalar_one_or_none()
        if row is None or row.access_expires_at is None:
            raise ApiError(404, f"No access token with jti {jti} was issued in this organisation")
        existing = await _revocation_by_jti(session, principal, jti)
        if existing is not None:
            return json_response(_revocation_out(existing), status_code=200)
        target = RevokedAccess(jti, row.access_expires_at)
        user_ref = (row.organisation_id, row.user_id)
        await add_to_revocation_list(
            session, [target], user=user_ref, revoked_by=principal.user_id, reason=reason, now=now
        )
        entries = await revoke_families(
            session,
            {row.family_id},
            now=now,
            user=user_ref,
            revoked_by=principal.user_id,
            reason=reason,
        )
        await _publish_or_503(session, revocations, tokens=[target, *entries])
        revoked.append("token")
        created = await _revocation_by_jti(session, principal, jti)
        assert created is not None
        return json_response(_revocation_out(created), status_code=201)

    async def work() -> Response:
        if body.user_id is not None:
            return await revoke_user(body.user_id)
        assert body.jti is not None
        return await revoke_token(body.jti)

    response = await idempotency.run(principal, work)
    if revoked:
        logger.info("revocation", extra={"kind": revoked[0], "revoked_by": str(principal.user_id)})
    return response


async def _revocation_by_jti(
    session: AsyncSession, principal: Principal, jti: str
) -> RevokedToken | None:
    found = await session.execute(
        scoped(select(RevokedToken), RevokedToken, principal).where(RevokedToken.jti == jti)
    )
    record: RevokedToken | None = found.scalar_one_or_none()
    return record


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
    session: AsyncSession = Depends(get_db),
) -> Page[RevocationOut]:
    statement = scoped(select(RevokedToken), RevokedToken, principal)
    if user_id is not None:
        statement = statement.where(RevokedToken.user_id == user_id)
    rows, next_cursor = await paginate(
        session,
        statement,
        RevokedToken,
        params,
        endpoint="auth.revocations",
        filters={"user_id": str(user_id) if user_id else None},
        organisation_id=principal.organisation_id,
    )
    return Page[RevocationOut](data=[_revocation_out(r) for r in rows], next_cursor=next_cursor)


# -- /v1/users -----------------------------------------------------------------------


@users_router.get("/me", response_model=UserOut, summary="The caller")
async def me(
    principal: Principal = Depends(require_reader),
    session: AsyncSession = Depends(get_db),
) -> UserOut:
    user = await get_owned(session, User, principal.user_id, principal, what="User")
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
    session: AsyncSession = Depends(get_db),
    idempotency: IdempotentRequest = Depends(idempotency_optional),
) -> Response:
    settings = _settings(request)
    # Hashed before the write transaction starts: it takes a tenth of a second.
    password_hash = await hash_password(
        body.password, max_concurrent=settings.max_concurrent_password_hashes
    )

    async def work() -> Response:
        try:
            user = await create_user(
                session,
                organisation_id=principal.organisation_id,
                email=body.email,
                password_hash=password_hash,
                role=body.role,
            )
        except EmailTaken as exc:
            raise ApiError(409, "A user with this email already exists") from exc
        logger.info("user created", extra={"user_id": str(user.id), "by": str(principal.user_id)})
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
    session: AsyncSession = Depends(get_db),
) -> Page[UserOut]:
    statement = scoped(select(User), User, principal)
    if role is not None:
        statement = statement.where(User.role == role.value)
    if is_active is not None:
        statement = statement.where(User.is_active.is_(is_active))
    rows, next_cursor = await paginate(
        session,
        statement,
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
    session: AsyncSession = Depends(get_db),
) -> UserOut:
    return UserOut.model_validate(await get_owned(session, User, user_id, principal, what="User"))


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
    session: AsyncSession = Depends(get_db),
    revocations: RevocationChecker = Depends(get_revocation_checker),
) -> UserOut:
    await begin_write(session)
    # The target and the caller, locked together in id order (PostgreSQL; SQLite's write
    # lock is held already): two admins demoting each other at once are serialised, and
    # the second sees that its caller is no longer an admin.
    locked = (
        (
            await session.execute(
                scoped(select(User), User, principal)
                .where(User.id.in_({user_id, principal.user_id}))
                .order_by(User.id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .all()
    )
    by_id = {row.id: row for row in locked}
    user = by_id.get(user_id)
    if user is None:
        raise ApiError(404, f"User {user_id} does not exist")
    actor = by_id.get(principal.user_id)
    if actor is None or actor.role != Role.admin.value or not actor.is_active:
        raise ApiError(409, ACTOR_NOT_ADMIN)
    role_changed = body.role is not None and body.role.value != user.role
    deactivate = body.is_active is False and user.is_active
    reactivate = body.is_active is True and not user.is_active
    if user.id == principal.user_id and (
        (body.role is not None and body.role is not Role.admin) or body.is_active is False
    ):
        raise ApiError(409, "An admin cannot demote or deactivate themselves; ask another admin")
    if not (role_changed or deactivate or reactivate):
        return UserOut.model_validate(user)
    loses_admin = user.role == Role.admin.value and user.is_active and (role_changed or deactivate)
    if loses_admin and not await _other_active_admins(session, user):
        raise ApiError(409, LAST_ADMIN)
    now = utc_now()
    if body.role is not None:
        user.role = body.role.value
    if body.is_active is not None:
        user.is_active = body.is_active
    user.updated_at = now
    if role_changed or deactivate:
        await revoke_all_tokens(
            session,
            _settings(request),
            user,
            now=now,
            revoked_by=principal.user_id,
            reason="user deactivated" if deactivate else "role changed",
        )
    # Reactivation too: Redis must not keep saying "inactive" after the database says not.
    await _publish_or_503(session, revocations, users=[user])
    await session.commit()
    logger.info(
        "user updated",
        extra={
            "user_id": str(user.id),
            "by": str(principal.user_id),
            "role": user.role,
            "is_active": user.is_active,
        },
    )
    return UserOut.model_validate(user)


async def _other_active_admins(session: AsyncSession, user: User) -> int:
    """Active admins of ``user``'s organisation besides ``user``."""
    count = await session.scalar(
        select(func.count())
        .select_from(User)
        .where(
            User.organisation_id == user.organisation_id,
            User.role == Role.admin.value,
            User.is_active.is_(True),
            User.id != user.id,
        )
    )
    return int(count or 0)
