"""The ``firemode`` command: serve, migrate, manage users, seed demo data, housekeeping."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil

import typer
import uvicorn

from src.app.audit import cli as audit_cli
from src.app.core import migrations
from src.app.core.clock import utc_now
from src.app.core.database import Database
from src.app.core.logging import configure_logging
from src.app.core.settings import VAR_DIR, get_settings
from src.app.identity import cli as identity_cli
from src.app.results import cli as results_cli
from src.app.rules import cli as rules_cli
from src.app.schedule import cli as schedule_cli

cli = typer.Typer(help="FireMode: fire-safety compliance backend.", no_args_is_help=True)
db_cli = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
maintenance_cli = typer.Typer(help="Housekeeping.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(maintenance_cli, name="maintenance")
identity_cli.register(cli)
results_cli.register(cli)
audit_cli.register(cli)
rules_cli.register(cli)
schedule_cli.register(cli)

logger = logging.getLogger("firemode.cli")


@cli.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (default FIREMODE_HOST)."),
    port: int | None = typer.Option(None, help="Port (default FIREMODE_PORT)."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
) -> None:
    """Serve the API (migrate first with `firemode db upgrade`)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Workers share metrics through files; stale files from a previous run are removed.
        metrics_dir = VAR_DIR / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
    uvicorn.run(
        "src.app.main:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        # A worker importing the app on a busy machine can take several seconds.
        timeout_worker_healthcheck=30,
    )


@db_cli.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    if settings.uses_default_database:
        logger.warning(
            "no FIREMODE_DATABASE_URL configured: migrating the embedded SQLite database"
        )
    migrations.upgrade(settings.database_url, revision)
    if revision == "head":
        # Reference data follows the schema: the shipped rule catalogue (idempotent).
        asyncio.run(rules_cli.load_catalogue(settings.database_url))


@db_cli.command("downgrade")
def db_downgrade(
    revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base."),
) -> None:
    """Revert migrations down to REVISION."""
    migrations.downgrade(get_settings().database_url, revision)


@cli.command()
def worker() -> None:
    """Run the background worker: overdue sweeps and webhook deliveries (any number may run)."""
    import signal

    from prometheus_client import start_http_server

    from src.app.worker import Worker

    settings = get_settings()
    configure_logging(settings.log_level)
    if settings.worker_metrics_port is not None:
        start_http_server(settings.worker_metrics_port, addr=settings.host)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        database = Database(settings.database_url, pool_size=2, max_overflow=2)
        runner = Worker(database, settings)
        logger.info("worker started")
        try:
            await runner.run_forever(stop)
        finally:
            await runner.aclose()
            await database.dispose()
        logger.info("worker stopped")

    asyncio.run(run())


@maintenance_cli.command("purge")
def maintenance_purge() -> None:
    """Delete expired revocations, refresh tokens, throttle state, idempotency records,
    evidence past its retention, and unreferenced evidence files."""
    from src.app.maintenance import purge_expired

    settings = get_settings()
    configure_logging(settings.log_level)

    async def run() -> dict[str, int]:
        database = Database(settings.database_url)
        try:
            async with database.sessionmaker() as db:
                return await purge_expired(db, settings, utc_now())
        finally:
            await database.dispose()

    typer.echo(json.dumps(asyncio.run(run())))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
