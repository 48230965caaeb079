"""Creating and rendering yearly condition reports.

A report is built from facts read in one snapshot together with the audit chain's head
(sealed just before), and stored with them. Its id is derived from everything it is
built from (building, period, statement, audit position and hash, facts), so asking again
while nothing changed gives the same report; rendering always starts from the stored
facts, so the JSON and the PDF are the same bytes every time.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.audit.queries import read_head
from src.app.audit.sealer import seal_pending
from src.app.buildings.models import Building
from src.app.core.audit_chain import canonical_json
from src.app.core.clock import utc_now
from src.app.core.database import Database
from src.app.core.errors import ApiError
from src.app.core.tenancy import Principal, get_owned
from src.app.reports.facts import ReportFacts
from src.app.reports.gather import Period, gather_facts
from src.app.reports.layout import ReportMeta, Statement, build_report
from src.app.reports.logbook import logbook_csv
from src.app.reports.models import ConditionReport
from src.app.reports.pdf import render_pdf
from src.app.reports.schemas import YearlyConditionCreate

REPORT_NAMESPACE = uuid.UUID("6d0e5c1e-2b7a-4f44-9a55-61b1f7c0a9e3")
SEAL_LIMIT = 5000


async def _snapshot(db: AsyncSession) -> None:
    """One consistent view for the head and the facts (PostgreSQL: REPEATABLE READ; a
    SQLite reader sees one snapshot for its whole transaction)."""
    if db.get_bind().dialect.name == "postgresql":
        await db.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def report_id(
    building_id: uuid.UUID,
    body: YearlyConditionCreate,
    audit_position: int,
    audit_hash: str,
    facts_sha256: str,
) -> uuid.UUID:
    key = canonical_json(
        {
            "building_id": str(building_id),
            "request": body.model_dump(mode="json"),
            "audit": [audit_position, audit_hash],
            "facts": facts_sha256,
        }
    )
    return uuid.uuid5(REPORT_NAMESPACE, key.decode())


async def build_yearly_condition(
    database: Database,
    principal: Principal,
    building_id: uuid.UUID,
    body: YearlyConditionCreate,
) -> ConditionReport:
    """The report (not saved): the chain is sealed first, then the head and the facts
    are read in one snapshot of their own."""
    async with database.sessionmaker() as sealing:
        await seal_pending(sealing, limit=SEAL_LIMIT)
    async with database.sessionmaker() as db:
        await _snapshot(db)
        building = await get_owned(db, Building, building_id, principal, what="Building")
        head = await read_head(db, principal.organisation_id)
        facts = await gather_facts(db, building, Period(body.period_start, body.period_end))
        await db.rollback()
    facts_json = facts.as_json()
    facts_sha256 = hashlib.sha256(canonical_json(facts_json)).hexdigest()
    now = utc_now()
    return ConditionReport(
        id=report_id(building_id, body, head.position, head.hash, facts_sha256),
        organisation_id=principal.organisation_id,
        building_id=building_id,
        period_start=body.period_start,
        period_end=body.period_end,
        accords_with_design=body.accords_with_design,
        statement=body.statement,
        responsible_person=body.responsible_person,
        licence_number=body.licence_number,
        audit_position=head.position,
        audit_hash=head.hash,
        facts=facts_json,
        facts_sha256=facts_sha256,
        generated_at=now,
        created_by=principal.user_id,
        created_at=now,
        updated_at=now,
    )


async def save_report(db: AsyncSession, report: ConditionReport) -> tuple[ConditionReport, bool]:
    """Store ``report`` unless the identical one exists; (stored report, whether new).
    Flushes, never commits."""
    existing = await db.get(ConditionReport, report.id)
    if existing is not None:
        return existing, False
    try:
        async with db.begin_nested():
            db.add(report)
    except IntegrityError:  # the same report, created by a concurrent identical request
        found = await db.get(ConditionReport, report.id)
        if found is None:  # not that: the building went away meanwhile
            raise ApiError(409, "The building changed meanwhile; retry", retryable=True) from None
        return found, False
    return report, True


def report_document(report: ConditionReport) -> dict[str, object]:
    meta = ReportMeta(
        report_id=report.id,
        organisation_id=report.organisation_id,
        building_id=report.building_id,
        period_start=report.period_start,
        period_end=report.period_end,
        generated_at=report.generated_at,
        statement=Statement(
            report.accords_with_design,
            report.statement,
            report.responsible_person,
            report.licence_number,
        ),
        audit_position=report.audit_position,
        audit_hash=report.audit_hash,
    )
    return build_report(ReportFacts.from_json(report.facts), meta)


@dataclass(frozen=True, slots=True)
class Rendered:
    json: bytes
    pdf: bytes | None


def render(report: ConditionReport, *, pdf: bool) -> Rendered:
    document = report_document(report)
    return Rendered(canonical_json(document), render_pdf(document) if pdf else None)


async def building_logbook(
    db: AsyncSession, principal: Principal, building_id: uuid.UUID, period: Period
) -> str:
    building = await get_owned(db, Building, building_id, principal, what="Building")
    return logbook_csv(await gather_facts(db, building, period))
