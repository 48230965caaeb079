"""Identity commands: `firemode users create`, `firemode demo seed`.

Passwords are printed only where the command's whole point is to show them once (the
demo seed), never logged, and never echoed when typed.
"""

from __future__ import annotations

import asyncio
import os
import secrets

import typer
from sqlalchemy import func, select

from src.app.core.database import Database
from src.app.core.logging import configure_logging
from src.app.core.settings import Settings, get_settings
from src.app.core.tenancy import Role
from src.app.identity.models import Organisation, User
from src.app.identity.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, hash_password
from src.app.identity.schemas import valid_email
from src.app.identity.service import EmailTaken, create_user, get_or_create_organisation

NEW_PASSWORD_ENV = "FIREMODE_NEW_PASSWORD"  # noqa: S105  (the variable's name)
DEMO_ORGANISATION = "FireMode Demo"
DEMO_USERS = (
    (Role.admin, "admin@demo.firemode.example"),
    (Role.technician, "technician@demo.firemode.example"),
    (Role.viewer, "viewer@demo.firemode.example"),
)

users_cli = typer.Typer(help="Manage users.", no_args_is_help=True)
demo_cli = typer.Typer(help="Demo data for a first look at the API.", no_args_is_help=True)


def register(cli: typer.Typer) -> None:
    """Adds the identity command groups to the ``firemode`` command."""
    cli.add_typer(users_cli, name="users")
    cli.add_typer(demo_cli, name="demo")


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _choose_password(given: str | None) -> str:
    password = given or os.environ.get(NEW_PASSWORD_ENV)
    if not password:
        password = str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise _fail(
            f"the password needs {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters", 2
        )
    return password


@users_cli.command("create")
def users_create(
    org: str = typer.Option(..., "--org", help="Organisation name; created if missing."),
    email: str = typer.Option(..., "--email", help="Login email (case-insensitive)."),
    role: Role = typer.Option(..., "--role", help="admin, technician or viewer."),
    password: str | None = typer.Option(
        None,
        "--password",
        help=f"Else ${NEW_PASSWORD_ENV}, else a hidden prompt. (A command-line argument is "
        "visible to other local users in the process list: prefer the other two.)",
    ),
) -> None:
    """Create a user (and its organisation if it does not exist yet)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    organisation_name = org.strip()
    if not 1 <= len(organisation_name) <= 200:
        raise _fail("the organisation name needs 1 to 200 characters", 2)
    try:
        address = valid_email(email)
    except ValueError as exc:
        raise _fail(f"--email {exc}", 2) from exc
    secret = _choose_password(password)

    async def run() -> tuple[User, Organisation]:
        password_hash = await hash_password(secret)
        database = Database(settings.database_url)
        try:
            async with database.sessionmaker() as db:
                organisation = await get_or_create_organisation(db, organisation_name)
                user = await create_user(
                    db,
                    organisation_id=organisation.id,
                    email=address,
                    password_hash=password_hash,
                    role=role,
                )
                await db.commit()
                return user, organisation
        finally:
            await database.dispose()

    try:
        user, organisation = asyncio.run(run())
    except EmailTaken:
        raise _fail(f"a user with the email {address} already exists") from None
    typer.echo(
        f"Created {user.role} {user.email} (id {user.id}) "
        f"in organisation {organisation.name!r} (id {organisation.id})."
    )


@demo_cli.command("seed")
def demo_seed(
    if_empty: bool = typer.Option(
        False, "--if-empty", help="Do nothing (successfully) when any user exists already."
    ),
) -> None:
    """Create the demo organisation with one user of each role; print their credentials."""
    settings = get_settings()
    configure_logging(settings.log_level)
    outcome = asyncio.run(_seed(settings, if_empty=if_empty))
    if outcome is None:
        typer.echo("Users exist already: demo seed skipped.")
        return
    if isinstance(outcome, str):
        raise _fail(outcome)
    typer.echo(f"Demo organisation {DEMO_ORGANISATION!r} created. Its users (shown only once):")
    for role, email, password in outcome:
        typer.echo(f"  {role.value:<10}  {email:<36}  {password}")
    typer.echo("Log in with POST /v1/auth/login, then Authorize in /docs with the access token.")


async def _seed(settings: Settings, *, if_empty: bool) -> list[tuple[Role, str, str]] | str | None:
    database = Database(settings.database_url)
    try:
        async with database.sessionmaker() as db:
            if if_empty:
                count = (await db.execute(select(func.count()).select_from(User))).scalar()
                if count:
                    return None
            taken = await db.execute(
                select(func.count()).where(User.email.in_([email for _, email in DEMO_USERS]))
            )
            existing = await db.execute(
                select(Organisation.id).where(Organisation.name == DEMO_ORGANISATION)
            )
            if taken.scalar() or existing.first() is not None:
                return "the demo organisation or its users exist already"
            organisation = await get_or_create_organisation(db, DEMO_ORGANISATION)
            credentials: list[tuple[Role, str, str]] = []
            for role, email in DEMO_USERS:
                password = secrets.token_urlsafe(15)  # 20 characters, 120 bits
                await create_user(
                    db,
                    organisation_id=organisation.id,
                    email=email,
                    password_hash=await hash_password(password),
                    role=role,
                )
                credentials.append((role, email, password))
            await db.commit()
            return credentials
    finally:
        await database.dispose()
