"""Where PostgreSQL's CPU of one results write goes: the write function with one part
left out at a time.

Writes go through the app in process (as ``bench/results_inprocess``: 5 ops, a new key
each, a fleet of 200 sessions, the document in the answer) against a throwaway database.
Between rounds the write function (``firemode_results_write``, migration
``0009_results_write_lean``) is replaced by a variant:

- ``as migrated``: the function as the migration creates it;
- ``no audit entry``: without the ``results.accepted`` audit entry;
- ``no idempotency record``: without storing the response under its key;
- ``no document rows``: without the document's rows in the answer (as with
  ``Prefer: return=minimal``);
- ``no audit entry and no document rows``: both at once;
- ``no advisory lock``: without the key's advisory lock;
- ``no session row lock``: reading the session's status without ``FOR NO KEY UPDATE``;
- ``no per-path upsert``: without writing ``result_paths``;
- ``no op-log insert``: without writing ``result_ops``;
- ``writes nothing``: answering a fixed success at once, the floor of any write;
- ``custom plans``: as migrated, run with ``plan_cache_mode = force_custom_plan`` (what
  planning every call would cost; the function's statements use generic plans).

A variant is a measuring device, never a proposal: most of them answer wrongly. Each
round measures every variant once, in turn, so that the machine's drift hits all alike;
the figure is the CPU of the database's backends (Linux ``/proc``, 10 ms ticks: use a
few hundred writes per round) and of this process, per write.

Run::

    .venv/bin/python -m bench.results_write_parts
    .venv/bin/python -m bench.results_write_parts --rounds 5 --writes 600
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import time
from pathlib import Path

import asyncpg
import uvloop
from sqlalchemy import make_url

from bench._server import (
    DEFAULT_SERVER_URL,
    SERVER_URL_ENV,
    throwaway_database,
)
from bench.results_inprocess import FLEET, app_with_writes
from bench.results_load.measurements import postgres_backends, processes_cpu_seconds

_MIGRATION = (
    Path(__file__).resolve().parent.parent / "migrations/versions/0009_results_write_lean.py"
)


def _migrated_function() -> tuple[str, str]:
    """(``CREATE FUNCTION`` text, argument types) of the migration that serves writes."""
    spec = importlib.util.spec_from_file_location("_results_write_lean", _MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.WRITE_FUNCTION), str(module._SIGNATURE)


def _without_cte(function: str, name: str) -> str:
    """``function`` without its data-modifying CTE ``name`` (up to the next one, or to the
    final SELECT)."""
    start = function.index(f"), {name} AS (")
    rest = re.search(r"\n    \), w_|\n    \)\n    SELECT", function[start + 2 :])
    assert rest is not None, name
    return function[:start] + function[start + 2 + rest.start() :]


def _replaced(function: str, old: str, new: str) -> str:
    assert function.count(old) >= 1, old  # the migration changed: update the variant
    return function.replace(old, new, 1)


def _without_document(function: str) -> str:
    """``function`` answering without the document's rows (as for ``return=minimal``)."""
    return _replaced(
        function, "CASE WHEN p_want_document AND o.refusal IS NULL THEN (", "CASE WHEN false THEN ("
    )


def _nothing_written(function: str) -> str:
    """The function answering a fixed success at once: the floor of a write (the round
    trip, the statement with its revocation check, the call, the transaction)."""
    begin, end = function.index("\nBEGIN\n"), function.index("\nEND\n")
    answer = (
        "\nBEGIN\n    o_outcome := 'ok'; o_version := 0; o_applied := 0; o_duplicates := 0;"
        " o_status := 200; o_headers := p_headers;\n"
        '    o_body := convert_to(format(\'{"session_id":"%s","version":0,'
        '"applied":0,"duplicates":0,"server_ts":"%s"}\', p_session, p_server_ts),'
        " 'UTF8');\n    RETURN NEXT;"
    )
    return function[:begin] + answer + function[end:]


def variants(function: str, signature: str) -> dict[str, list[str]]:
    """Statements that turn the database's write function into each variant."""
    reset = f"ALTER FUNCTION firemode_results_write({signature}) RESET ALL"
    bodies = {
        "as migrated": function,
        "no audit entry": _without_cte(function, "w_audit"),
        "no idempotency record": _without_cte(function, "w_key"),
        "no document rows": _without_document(function),
        "no advisory lock": _replaced(function, "pg_try_advisory_xact_lock(p_lock)", "true"),
        "no session row lock": _replaced(
            function,
            "s.organisation_id = p_org FOR NO KEY UPDATE;\n    IF NOT FOUND THEN\n        INSERT",
            "s.organisation_id = p_org;\n    IF NOT FOUND THEN\n        INSERT",
        ),
        "no per-path upsert": _without_cte(function, "w_paths"),
        "no op-log insert": _without_cte(function, "w_ops"),
        "no audit entry and no document rows": _without_document(_without_cte(function, "w_audit")),
        "writes nothing": _nothing_written(function),
    }
    out = {name: [body, reset] for name, body in bodies.items()}
    out["custom plans"] = [
        function,
        f"ALTER FUNCTION firemode_results_write({signature})"
        " SET plan_cache_mode = force_custom_plan",
    ]
    return out


def migrated_variants() -> dict[str, list[str]]:
    """:func:`variants` of the function the migrations create."""
    return variants(*_migrated_function())


async def _measure(url: str, rounds: int, writes: int) -> dict[str, list[tuple[float, float]]]:
    app, _sessions, write_at = await app_with_writes(url)
    sent = 0

    async def write() -> None:
        nonlocal sent
        status = await write_at(sent)
        if status != 200:
            raise SystemExit(f"a write answered {status}, expected 200")
        sent += 1

    ways = migrated_variants()
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    admin_url = make_url(url).set(drivername="postgresql")
    database_name = str(admin_url.database)
    admin = await asyncpg.connect(admin_url.render_as_string(hide_password=False))
    try:
        async with app.router.lifespan_context(app):
            for _ in range(2 * FLEET):  # every session created, statements prepared
                await write()
            for _round in range(rounds):
                for name, statements in ways.items():
                    for statement in statements:
                        await admin.execute(statement)
                    for _ in range(30):  # the function's plans cached again
                        await write()
                    pids = postgres_backends(database_name)
                    database_before = processes_cpu_seconds(pids)
                    process_before = time.process_time()
                    for _ in range(writes):
                        await write()
                    database_ms = (processes_cpu_seconds(pids) - database_before) / writes * 1e3
                    process_ms = (time.process_time() - process_before) / writes * 1e3
                    figures[name].append((database_ms, process_ms))
    finally:
        await admin.close()
        await app.state.database.dispose()
    return figures


def print_cpu_table(
    figures: dict[str, list[tuple[float, float]]], heading: str, reference: str
) -> None:
    """Median (min) CPU per write of each row, PostgreSQL's against ``reference``'s."""
    width = max(len(heading), *(len(name) for name in figures))
    baseline = statistics.median(db for db, _ in figures[reference])
    against = "vs " + reference
    print(f"  {heading:<{width}} {'PostgreSQL ms':>16} {against:>16} {'this process ms':>16}")
    for name, rows in figures.items():
        database_ms = [db for db, _ in rows]
        process_ms = [own for _, own in rows]
        median = statistics.median(database_ms)
        print(
            f"  {name:<{width}} {median:7.3f} ({min(database_ms):5.3f})"
            f" {median - baseline:+16.3f}"
            f" {statistics.median(process_ms):7.3f} ({min(process_ms):5.3f})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.results_write_parts")
    parser.add_argument("--server-url", default=os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL))
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--writes", type=int, default=500, help="writes per variant per round")
    args = parser.parse_args(argv)
    with throwaway_database(args.server_url) as database:
        figures = uvloop.run(_measure(database.url, args.rounds, args.writes))
    print(
        f"results write, one part of the write function left out at a time: CPU per write,"
        f" median (min) of {args.rounds} rounds of {args.writes} (5 ops, a new key each,"
        f" {FLEET} sessions, the document in the answer)"
    )
    print_cpu_table(figures, "variant", "as migrated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
