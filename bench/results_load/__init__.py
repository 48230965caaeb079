"""Load benchmark of ``POST /v1/tests/sessions/{id}/results`` against a real server.

What it does, in one run on one machine:

1. creates a throwaway PostgreSQL database on the server named by ``--server-url``
   (default ``$FIREMODE_BENCH_DATABASE_URL``, else
   ``postgresql://postgres@127.0.0.1:5432/postgres``), migrates it, seeds an
   organisation with one technician and issues a real access token;
2. for each worker count (``--workers``, default 2): serves ``bench/echo_app.py`` with
   uvicorn, then the real app (``src.app.main:app``: auth, revocation check, idempotency,
   merge, PostgreSQL), and loads each the same way at each connection count
   (``--connections``, default 16 and 64): keep-alive connections, each request a fresh
   ``Idempotency-Key`` and a batch of ``--ops`` (5) ops on one session, spread over a
   fleet of ``--sessions`` (1,000) sessions plus ``--hot-sessions`` (8) taking
   ``--hot-share`` (10%) of the requests;
3. checks the op log holds every op acknowledged, prints throughput, p50/p95/p99 and CPU
   per request for both, and the targets: p95 < 30 ms at 16 connections, and at least
   15% of the echo's throughput at 64; then drops the database.

Modules: ``load_wrk`` (wrk and its script ``wrk.lua``), ``load_python`` (the fallback
generator), ``measurements`` (figures and CPU by process), ``profiling`` (py-spy),
``report``, ``main``. Write cost by session size and late ops: ``bench/merge_throughput``.

Load generator: ``wrk`` when installed (``apt-get install -y wrk``), else a Python
asyncio generator, which costs far more CPU. Run::

    .venv/bin/python -m bench.results_load --redis-url redis://127.0.0.1:6379/2
    .venv/bin/python -m bench.results_load --duration 5 --connections 64
    .venv/bin/python -m bench.results_load --write-variant "writes nothing"

``--write-variant`` serves the writes with a variant of the write function from
``bench/results_write_parts`` (a measuring device: the targets are not judged).
"""
