"""The offline bundle of a building: everything a technician needs before losing signal.

The JSON document is generated piece by piece (rows streamed from the database in
batches), gzip-compressed as it goes, and spooled to a temporary file that stays in memory
only while small: the server's memory does not grow with the building. The cap is checked
while spooling, so an oversized bundle is refused (413) before any byte is sent. The ETag
comes from high-water marks (a few index look-ups), never from building the bundle.
Design notes: docs/api/offline-bundle.md.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.app.buildings.models import Asset, Building
from src.app.buildings.schemas import AssetOut, BuildingOut
from src.app.core.clock import to_rfc3339, utc_now
from src.app.core.errors import ApiError
from src.app.defects.lifecycle import DefectStatus
from src.app.defects.models import Defect
from src.app.defects.schemas import DefectOut
from src.app.results.documents import current_document
from src.app.results.models import ResultHead
from src.app.rules.models import Rule, RuleVersion
from src.app.rules.schemas import RuleVersionOut
from src.app.rules.service import applicable_rules, visible_to
from src.app.schedule.models import ScheduleOccurrence, SessionRoutine
from src.app.schedule.schemas import OccurrenceOut
from src.app.sessions.models import SessionStatus, TestSession
from src.app.sessions.schemas import SessionOut

BUNDLE_FORMAT = 1
# Routines due within this many days are in the bundle (with everything overdue).
LOOKAHEAD_DAYS = 31
# Rows read per round trip; bounds memory whatever the building's size.
BATCH = 500
SPOOL_IN_MEMORY_BYTES = 1024 * 1024
_OPEN_SESSION = TestSession.status != SessionStatus.completed.value
_OPEN_DEFECT = Defect.status.not_in([DefectStatus.closed.value, DefectStatus.cancelled.value])
_O = ScheduleOccurrence


@dataclass(frozen=True, slots=True)
class BundleRequest:
    """What the client asked for: a building, optionally a subset, optionally a delta."""

    organisation_id: uuid.UUID
    building_id: uuid.UUID
    today: date
    since: int | None = None  # a bundle_version from an earlier bundle
    floor: str | None = None
    asset_type: str | None = None

    @property
    def since_at(self) -> datetime | None:
        if self.since is None:
            return None
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=self.since)


def version_of(moment: datetime) -> int:
    """A bundle version: microseconds since the epoch of a high-water mark."""
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _assets(request: BundleRequest) -> Select[Any]:
    statement = select(Asset).where(
        Asset.organisation_id == request.organisation_id, Asset.building_id == request.building_id
    )
    if request.asset_type is not None:
        statement = statement.where(Asset.asset_type == request.asset_type)
    if request.floor is not None:
        statement = statement.where(Asset.attributes["floor"].as_string() == request.floor)
    return statement


def _subset(request: BundleRequest, column: Any) -> Any:
    """Rows of the requested assets only (no condition for the whole building)."""
    if request.floor is None and request.asset_type is None:
        return None
    return column.in_(_assets(request).with_only_columns(Asset.id).scalar_subquery())


def _occurrences(request: BundleRequest) -> Select[Any]:
    horizon = request.today + timedelta(days=LOOKAHEAD_DAYS)
    statement = select(_O).where(
        _O.organisation_id == request.organisation_id,
        _O.building_id == request.building_id,
        _O.done_on.is_(None),
        _O.window_end >= request.today,
        _O.due_on <= horizon,
    )
    subset = _subset(request, _O.asset_id)
    if subset is not None:
        statement = statement.where(subset)
    since_at = request.since_at
    if since_at is not None:
        # Changed since, or entered the look-ahead since (dates move, rows do not).
        since_day = since_at.date()
        statement = statement.where(
            or_(
                _O.updated_at > since_at,
                _O.due_on > since_day + timedelta(days=LOOKAHEAD_DAYS),
            )
        )
    return statement.order_by(_O.due_on, _O.id)


def _defects(request: BundleRequest) -> Select[Any]:
    statement = select(Defect).where(
        Defect.organisation_id == request.organisation_id,
        Defect.building_id == request.building_id,
    )
    subset = _subset(request, Defect.asset_id)
    if subset is not None:
        statement = statement.where(subset)
    since_at = request.since_at
    if since_at is None:
        statement = statement.where(_OPEN_DEFECT)
    else:
        # A delta also carries defects closed since, so the device can drop them.
        statement = statement.where(Defect.updated_at > since_at)
    return statement.order_by(Defect.created_at, Defect.id)


def _sessions(request: BundleRequest) -> Select[Any]:
    statement = select(TestSession.id).where(
        TestSession.organisation_id == request.organisation_id,
        TestSession.building_id == request.building_id,
    )
    since_at = request.since_at
    if since_at is None:
        return statement.where(_OPEN_SESSION).order_by(TestSession.created_at, TestSession.id)
    # A delta also carries sessions completed since, so the device can close them.
    return statement.where(TestSession.updated_at > since_at).order_by(
        TestSession.created_at, TestSession.id
    )


async def etag(db: AsyncSession, request: BundleRequest) -> tuple[str, int]:
    """The bundle's ETag and version, from high-water marks and counts (no bundle built).

    Rows are never deleted one by one in these tables, except occurrences, which go only
    with an update of their routine's asset or baseline (both bump a mark below); moving
    an asset away changes the count.
    """
    marks: list[Any] = []
    building = await db.scalar(
        select(Building.updated_at).where(
            Building.id == request.building_id,
            Building.organisation_id == request.organisation_id,
        )
    )
    marks.append(building)
    if request.floor is None and request.asset_type is None:
        # (building_id, updated_at) answers this by an index-only scan.
        asset_marks = select(func.count(), func.max(Asset.updated_at)).where(
            Asset.building_id == request.building_id
        )
    else:
        subset = _assets(request).subquery()
        asset_marks = select(func.count(), func.max(subset.c.updated_at))
    marks.extend((await db.execute(asset_marks)).one())
    # The building is the caller's (checked by the route): no organisation condition, so
    # the (building_id, updated_at) index answers alone.
    occurrence_mark = select(func.max(_O.updated_at)).where(_O.building_id == request.building_id)
    marks.append(await db.scalar(occurrence_mark))
    marks.extend(
        (
            await db.execute(
                select(
                    func.count(),
                    func.max(TestSession.updated_at),
                    func.sum(ResultHead.version),
                )
                .select_from(TestSession)
                .outerjoin(ResultHead, ResultHead.session_id == TestSession.id)
                .where(
                    TestSession.organisation_id == request.organisation_id,
                    TestSession.building_id == request.building_id,
                    _OPEN_SESSION,
                )
            )
        ).one()
    )
    marks.extend(
        (
            await db.execute(
                select(func.count(), func.max(Defect.updated_at)).where(
                    Defect.organisation_id == request.organisation_id,
                    Defect.building_id == request.building_id,
                    _OPEN_DEFECT,
                )
            )
        ).one()
    )
    marks.extend(
        (
            await db.execute(
                select(func.count(RuleVersion.id), func.max(RuleVersion.created_at))
                .join(Rule, Rule.id == RuleVersion.rule_id)
                .where(visible_to(request.organisation_id))
            )
        ).one()
    )
    stamps = [m for m in marks if isinstance(m, datetime)]
    high_water = max(stamps) if stamps else datetime(1970, 1, 1, tzinfo=UTC)
    # Never newer than a minute ago: a transaction still running (statements time out in
    # 15 s) may commit rows stamped before now, and a delta must not miss them.
    high_water = min(high_water, utc_now() - timedelta(seconds=60))
    key = json.dumps(
        [BUNDLE_FORMAT, request.today, request.since, request.floor, request.asset_type, marks],
        default=str,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f'W/"{digest}"', version_of(high_water)


class _GzipSpool:
    """gzip into a spooled temporary file, refusing to grow past ``cap`` bytes."""

    def __init__(self, cap: int, what: str) -> None:
        self.cap = cap
        self.what = what
        # Closed by ``stream`` once sent, or here on failure.
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=SPOOL_IN_MEMORY_BYTES
        )
        self.size = 0
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: gzip framing

    def write(self, text: str) -> None:
        self._put(self._compressor.compress(text.encode()))

    def close(self) -> None:
        self._put(self._compressor.flush())
        self.file.seek(0)

    def _put(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self.size > self.cap:
            self.file.close()
            raise ApiError(
                413,
                f"The offline bundle of {self.what} is larger than {self.cap} bytes "
                "compressed; ask for a subset with floor= or asset_type=",
            )
        self.file.write(chunk)


def _array(spool: _GzipSpool, name: str, items: Iterable[str]) -> None:
    spool.write("," + json.dumps(name) + ":[")
    for index, item in enumerate(items):
        spool.write(item if index == 0 else "," + item)
    spool.write("]")


async def build(
    db: AsyncSession, request: BundleRequest, *, version: int, cap: int
) -> tuple[IO[bytes], int]:
    """The bundle, gzip-compressed, in a spooled file positioned at its start, and its
    compressed size. 413 (``ApiError``) as soon as it would pass ``cap`` bytes."""
    spool = _GzipSpool(cap, f"building {request.building_id}")
    try:
        await _write(db, request, spool, version)
        spool.close()
    except BaseException:
        spool.file.close()
        raise
    return spool.file, spool.size


async def _write(db: AsyncSession, request: BundleRequest, spool: _GzipSpool, version: int) -> None:
    building = await db.get(Building, request.building_id)
    assert building is not None  # checked by the route
    spool.write("{")
    spool.write(f'"format":{BUNDLE_FORMAT},"bundle_version":{version},')
    spool.write(f'"since":{json.dumps(request.since)},')
    spool.write(f'"server_timestamp":{json.dumps(to_rfc3339(utc_now()))},')
    spool.write(f'"today":{json.dumps(request.today.isoformat())},')
    spool.write(
        '"subset":' + json.dumps({"floor": request.floor, "asset_type": request.asset_type}) + ","
    )
    spool.write('"building":' + BuildingOut.of(building).model_dump_json())

    asset_types: set[str] = set()
    asset_ids: list[str] = []
    spool.write(',"assets":[')
    first = True
    since_at = request.since_at
    async for asset in await db.stream_scalars(
        _assets(request).order_by(Asset.created_at, Asset.id).execution_options(yield_per=BATCH)
    ):
        asset_types.add(asset.asset_type)
        asset_ids.append(str(asset.id))
        if since_at is not None and asset.updated_at <= since_at:
            continue
        spool.write(("" if first else ",") + AssetOut.of(asset).model_dump_json())
        first = False
    spool.write("]")
    # Every current asset id, so a device applying a delta can drop the ones that left.
    spool.write(',"asset_ids":' + json.dumps(asset_ids))

    rules = await applicable_rules(
        db, organisation_id=request.organisation_id, asset_types=asset_types or {""}
    )
    _array(
        spool,
        "rules",
        (
            RuleVersionOut.of(a.rule, a.version).model_dump_json()
            for a in rules
            if since_at is None or a.version.created_at > since_at
        ),
    )

    spool.write(',"routines_due":[')
    first = True
    async for row in await db.stream_scalars(
        _occurrences(request).execution_options(yield_per=BATCH)
    ):
        spool.write(("" if first else ",") + OccurrenceOut.of(row, request.today).model_dump_json())
        first = False
    spool.write("]")

    spool.write(',"defects":[')
    first = True
    now = utc_now()
    async for defect in await db.stream_scalars(
        _defects(request).execution_options(yield_per=BATCH)
    ):
        spool.write(("" if first else ",") + DefectOut.of(defect, now).model_dump_json())
        first = False
    spool.write("]")

    await _write_sessions(db, request, spool)
    spool.write("}")


async def _write_sessions(db: AsyncSession, request: BundleRequest, spool: _GzipSpool) -> None:
    session_ids = list((await db.execute(_sessions(request))).scalars())
    spool.write(',"sessions":[')
    for index, session_id in enumerate(session_ids):
        test_session = (
            await db.execute(select(TestSession).where(TestSession.id == session_id))
        ).scalar_one()
        routines = (
            await db.execute(
                select(SessionRoutine.asset_id, SessionRoutine.rule_code)
                .where(SessionRoutine.session_id == session_id)
                .order_by(SessionRoutine.asset_id, SessionRoutine.rule_code)
            )
        ).all()
        results_version, document = await current_document(db, request.organisation_id, session_id)
        spool.write("," if index else "")
        spool.write('{"session":' + SessionOut.of(test_session).model_dump_json())
        spool.write(
            ',"routines":' + json.dumps([{"asset_id": str(a), "rule_code": c} for a, c in routines])
        )
        spool.write(f',"results_version":{results_version},"results":')
        spool.write(json.dumps(document, separators=(",", ":"), ensure_ascii=False))
        spool.write("}")
        db.expunge(test_session)
        del document  # megabytes, perhaps: one at a time
    spool.write("]")


async def stream(file: IO[bytes], chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """The spooled bundle in chunks; closes (and so deletes) the file at the end."""
    try:
        while chunk := file.read(chunk_size):
            yield chunk
    finally:
        file.close()
