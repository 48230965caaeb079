"""The background worker (``firemode worker``): periodic sweeps, then webhook deliveries.

Each pass runs the registered periodic jobs (the overdue defect sweep, audit sealing), turns new
outbox events into deliveries, and sends the deliveries that are due. Any number of
workers may run side by side. The clock and the random source are injected, so tests drive
retries and backoff without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.audit.sealer import seal_pending
from src.app.core.clock import utc_now
from src.app.core.database import Database
from src.app.core.settings import Settings
from src.app.core.transactions import begin_write
from src.app.defects.service import sweep_overdue
from src.app.webhooks.service import Claim, claim_deliveries, dispatch_events, record_attempt
from src.app.webhooks.signing import (
    ATTEMPT_HEADER,
    DELIVERY_ID_HEADER,
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
)

logger = logging.getLogger("firemode.worker")

T = TypeVar("T")
PeriodicJob = Callable[[AsyncSession, datetime], Awaitable[int]]


async def _overdue_defects(db: AsyncSession, now: datetime) -> int:
    return await sweep_overdue(db, now=now)


async def _seal_audit(db: AsyncSession, _now: datetime) -> int:
    # Links committed audit entries into their chains (commits its own transaction).
    return await seal_pending(db)


PERIODIC_JOBS: dict[str, PeriodicJob] = {
    "defects.overdue": _overdue_defects,
    "audit.seal": _seal_audit,
}
"""Jobs run in their own transaction at the start of every pass (name → job)."""


async def _run_job(job: PeriodicJob, clock: Callable[[], datetime], db: AsyncSession) -> int:
    return await job(db, clock())


@dataclass
class PassReport:
    jobs: dict[str, int] = field(default_factory=dict)
    dispatched: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        return bool(self.dispatched or self.outcomes or any(self.jobs.values()))


class Worker:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311  (jitter, not security)
        self.http = http or httpx.AsyncClient(
            timeout=settings.webhook_timeout_seconds, follow_redirects=False
        )

    async def _in_transaction(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async with self.database.sessionmaker() as db:
            await begin_write(db)
            result = await work(db)
            await db.commit()
            return result

    async def run_once(self) -> PassReport:
        report = PassReport()
        for name, job in PERIODIC_JOBS.items():
            report.jobs[name] = await self._in_transaction(partial(_run_job, job, self.clock))
        limit = self.settings.worker_batch_size
        report.dispatched = await self._in_transaction(
            lambda db: dispatch_events(db, now=self.clock(), limit=limit)
        )
        claims = await self._in_transaction(
            lambda db: claim_deliveries(
                db, now=self.clock(), lease_seconds=self.settings.webhook_lease_seconds, limit=limit
            )
        )
        outcomes = await asyncio.gather(*(self._deliver(c) for c in claims))
        for outcome in outcomes:
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1
        return report

    async def _deliver(self, claim: Claim) -> str:
        timestamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "FireMode-Webhooks/1",
            EVENT_ID_HEADER: str(claim.event_id),
            EVENT_TYPE_HEADER: claim.event_type,
            DELIVERY_ID_HEADER: str(claim.delivery_id),
            ATTEMPT_HEADER: str(claim.attempt),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(claim.secret, timestamp, claim.body),
        }
        status_code: int | None = None
        error: str | None = None
        try:
            response = await self.http.post(claim.url, content=claim.body, headers=headers)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"

        async def record(db: AsyncSession) -> str:
            return await record_attempt(
                db, claim, status_code=status_code, error=error, now=self.clock(),
                settings=self.settings, rng=self.rng,
            )  # fmt: skip

        outcome = await self._in_transaction(record)
        logger.info(
            "webhook delivery attempt",
            extra={"delivery_id": str(claim.delivery_id), "attempt": claim.attempt,
                   "outcome": outcome, "status_code": status_code},
        )  # fmt: skip
        return outcome

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                report = await self.run_once()
            except Exception:
                # A database outage must not end the worker: log, wait, try again.
                logger.exception("worker pass failed")
                report = PassReport()
            if not report.busy:
                # Idle: sleep one poll interval, or less if asked to stop.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.worker_poll_seconds)

    async def aclose(self) -> None:
        await self.http.aclose()
