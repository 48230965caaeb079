"""Schedule commands: `firemode schedule sweep` (run it daily, e.g. from cron)."""

from __future__ import annotations

import asyncio
from datetime import date

import typer

from src.app.core.database import Database
from src.app.core.logging import configure_logging
from src.app.core.settings import Settings, get_settings
from src.app.core.transactions import begin_write
from src.app.schedule import service

schedule_cli = typer.Typer(help="The service schedule.", no_args_is_help=True)


def register(cli: typer.Typer) -> None:
    """Adds the schedule command group to the ``firemode`` command."""
    cli.add_typer(schedule_cli, name="schedule")


async def run_sweep(settings: Settings, today: date | None = None) -> int:
    database = Database(settings.database_url)
    try:
        async with database.sessionmaker() as db:
            await begin_write(db)
            written = await service.sweep(db, settings=settings, today=today)
            await db.commit()
            return written
    finally:
        await database.dispose()


@schedule_cli.command("sweep")
def sweep(
    today: str | None = typer.Option(None, help="Run as of this day (YYYY-MM-DD; tests)."),
) -> None:
    """Write the out-of-tolerance events of occurrences whose window ended, and move every
    routine's materialised horizon forward."""
    settings = get_settings()
    configure_logging(settings.log_level)
    written = asyncio.run(run_sweep(settings, date.fromisoformat(today) if today else None))
    typer.echo(f"schedule swept: {written} out-of-tolerance event(s) written")
