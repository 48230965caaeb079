"""Rule commands: `firemode rules load`."""

from __future__ import annotations

import asyncio

import typer

from src.app.core.database import Database
from src.app.core.logging import configure_logging
from src.app.core.settings import get_settings
from src.app.core.transactions import begin_write
from src.app.rules.service import load_shipped_catalogue

rules_cli = typer.Typer(help="The rule catalogue.", no_args_is_help=True)


def register(cli: typer.Typer) -> None:
    """Adds the rules command group to the ``firemode`` command."""
    cli.add_typer(rules_cli, name="rules")


async def load_catalogue(database_url: str) -> int:
    """Loads the shipped catalogue into the database at ``database_url`` (idempotent)."""
    database = Database(database_url)
    try:
        async with database.sessionmaker() as db:
            await begin_write(db)
            added = await load_shipped_catalogue(db)
            await db.commit()
            return added
    finally:
        await database.dispose()


@rules_cli.command("load")
def rules_load() -> None:
    """Load the shipped rule catalogue (idempotent; `firemode db upgrade` also runs it)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    added = asyncio.run(load_catalogue(settings.database_url))
    typer.echo(f"rule catalogue loaded: {added} new version(s)")
