"""Results commands: `firemode results rebuild`."""

from __future__ import annotations

import asyncio
import json
import uuid

import typer
from sqlalchemy import select

from src.app.core.database import Database
from src.app.core.logging import configure_logging
from src.app.core.settings import get_settings
from src.app.results.models import ResultOp
from src.app.results.store import rebuild

results_cli = typer.Typer(help="Results sync.", no_args_is_help=True)


def register(cli: typer.Typer) -> None:
    """Adds the results command group to the ``firemode`` command."""
    cli.add_typer(results_cli, name="results")


async def rebuild_sessions(
    database: Database, session_ids: list[uuid.UUID] | None
) -> dict[str, int]:
    """Recompute heads and per-path state from the op log; {session id: version}."""
    async with database.sessionmaker() as db:
        if session_ids is None:
            session_ids = list((await db.scalars(select(ResultOp.session_id).distinct())).all())
    done: dict[str, int] = {}
    for session_id in session_ids:  # one transaction per session: a long log locks one
        async with database.sessionmaker() as db, db.begin():
            conn = await db.connection()
            done[str(session_id)] = await rebuild(conn, session_id)
    return done


@results_cli.command("rebuild")
def rebuild_command(
    session: list[str] = typer.Option(
        None, "--session", help="A session id (repeatable); default: every session"
    ),
) -> None:
    """Recompute the per-path state of sessions from their op log (the truth)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    ids = [uuid.UUID(s) for s in session] if session else None

    async def run() -> dict[str, int]:
        database = Database(settings.database_url)
        try:
            return await rebuild_sessions(database, ids)
        finally:
            await database.dispose()

    typer.echo(json.dumps({"rebuilt": asyncio.run(run())}))
