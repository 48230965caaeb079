"""`firemode audit verify` and `firemode audit seal`."""

from __future__ import annotations

import asyncio
import json
import uuid

import typer

from src.app.audit.sealer import run_sealer, seal_all
from src.app.audit.verify import ChainReport, organisations_with_entries, verify_organisation
from src.app.core.database import Database
from src.app.core.logging import configure_logging
from src.app.core.settings import get_settings

audit_cli = typer.Typer(help="The audit trail's hash chains.", no_args_is_help=True)


def register(cli: typer.Typer) -> None:
    cli.add_typer(audit_cli, name="audit")


def _anchor(value: str | None) -> tuple[int, str] | None:
    if value is None:
        return None
    position, _, digest = value.partition(":")
    if not position.isdigit() or len(digest) != 64:
        raise typer.BadParameter("expected POSITION:HASH (the hash as 64 hex digits)")
    return int(position), digest.lower()


async def verify(
    database: Database,
    organisation_id: uuid.UUID | None = None,
    anchor: tuple[int, str] | None = None,
) -> list[ChainReport]:
    """Seal what is ready, then verify one organisation's chain or every one."""
    await seal_all(database)
    async with database.sessionmaker() as db:
        orgs = [organisation_id] if organisation_id else await organisations_with_entries(db)
        return [await verify_organisation(db, org, anchor=anchor) for org in orgs]


@audit_cli.command("verify")
def verify_command(
    org: uuid.UUID | None = typer.Option(None, "--org", help="Only this organisation."),
    anchor: str | None = typer.Option(
        None, "--anchor", help="POSITION:HASH from GET /v1/audit/head; needs --org."
    ),
) -> None:
    """Recompute the chains; print one JSON report per organisation; exit 1 if broken."""
    settings = get_settings()
    configure_logging(settings.log_level)
    if anchor is not None and org is None:
        raise typer.BadParameter("--anchor needs --org")

    async def run() -> list[ChainReport]:
        database = Database(settings.database_url)
        try:
            return await verify(database, org, _anchor(anchor))
        finally:
            await database.dispose()

    reports = asyncio.run(run())
    for report in reports:
        typer.echo(json.dumps(report.as_dict()))
    if not all(report.ok for report in reports):
        raise typer.Exit(1)


@audit_cli.command("seal")
def seal_command(
    loop: bool = typer.Option(False, "--loop", help="Keep sealing until interrupted."),
    interval: float = typer.Option(1.0, min=0.05, help="Seconds between passes (--loop)."),
) -> None:
    """Seal committed entries into their chains (once, or every INTERVAL with --loop)."""
    settings = get_settings()
    configure_logging(settings.log_level)

    async def run() -> int:
        database = Database(settings.database_url)
        try:
            if loop:
                await run_sealer(database, interval_seconds=interval)
            return await seal_all(database)
        finally:
            await database.dispose()

    try:
        typer.echo(json.dumps({"sealed": asyncio.run(run())}))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
