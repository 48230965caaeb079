"""Identity commands: `firemode users create`, `firemode demo seed`, `firemode demo reset`.

Passwords are printed only where the command's whole point is to show them (the demo
users' new passwords), never logged, and never echoed when typed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.core.database import Database
from src.app.core.logging import configure_logging
from src.app.core.settings import Settings, get_settings
from src.app.core.tenancy import Role
from src.app.identity import demo
from src.app.identity.models import Organisation, User
from src.app.identity.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, hash_password
from src.app.identity.schemas import valid_email
from src.app.identity.service import EmailTaken, create_user, get_or_create_organisation

NEW_PASSWORD_ENV = "FIREMODE_NEW_PASSWORD"  # noqa: S105  (the variable's name)
T = TypeVar("T")

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

    async def create(db: AsyncSession) -> tuple[User, Organisation]:
        password_hash = await hash_password(secret)
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

    try:
        user, organisation = asyncio.run(_with_db(settings, create))
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
    try:
        credentials = asyncio.run(_with_db(settings, lambda db: demo.seed(db, if_empty=if_empty)))
    except demo.DemoRefused as exc:
        raise _fail(f"{exc} (new passwords: firemode demo reset)") from None
    if credentials is None:
        typer.echo("Users exist already: demo seed skipped.")
        typer.echo(RECOVER_HINT, err=True)
        return
    typer.echo(f"Demo organisation {demo.DEMO_ORGANISATION!r} created. Its users:")
    _print_credentials(credentials)


@demo_cli.command("reset")
def demo_reset() -> None:
    """Set new passwords for the demo users (creating any that is missing) and print them."""
    settings = get_settings()
    configure_logging(settings.log_level)
    try:
        credentials = asyncio.run(_with_db(settings, demo.reset))
    except demo.DemoRefused as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"New passwords for the users of the demo organisation {demo.DEMO_ORGANISATION!r}:")
    _print_credentials(credentials)


RECOVER_HINT = (
    "Demo passwords lost? `make demo-reset` (or `firemode demo reset`) sets new ones "
    "and prints them."
)


def _print_credentials(credentials: list[demo.DemoCredentials]) -> None:
    for entry in credentials:
        note = "" if entry.is_active else "  (deactivated)"
        typer.echo(f"  {entry.role:<10}  {entry.email:<36}  {entry.password}{note}")
    typer.echo("Log in with POST /v1/auth/login, then Authorize in /docs with the access token.")
    typer.echo("They are shown only now; `firemode demo reset` sets and prints new ones.")


async def _with_db(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    database = Database(settings.database_url)
    try:
        async with database.sessionmaker() as db:
            return await work(db)
    finally:
        await database.dispose()
