"""Imports every domain's models so that Alembic and the metadata see the whole schema."""

from src.app.audit.models import AuditSeal
from src.app.buildings.models import Asset, Building
from src.app.core.audit_model import AuditEntry
from src.app.core.database import Base
from src.app.core.idempotency_model import IdempotencyRecord
from src.app.core.outbox import OutboxEvent
from src.app.defects.models import Defect, DefectDeadline, DefectEvent
from src.app.evidence.models import Evidence, EvidenceFlag
from src.app.identity.models import LoginFailure, Organisation, RefreshToken, RevokedToken, User
from src.app.reports.models import ConditionReport
from src.app.results.models import ResultHead, ResultOp, ResultPath
from src.app.rules.models import Rule, RuleVersion
from src.app.schedule.models import (
    AssetBaseline,
    ScheduleOccurrence,
    ScheduleRoutine,
    SessionRoutine,
)
from src.app.sessions.models import TestSession
from src.app.webhooks.models import WebhookDelivery, WebhookSubscription

__all__ = [
    "Asset",
    "AssetBaseline",
    "AuditEntry",
    "AuditSeal",
    "Base",
    "Building",
    "ConditionReport",
    "Defect",
    "DefectDeadline",
    "DefectEvent",
    "Evidence",
    "EvidenceFlag",
    "IdempotencyRecord",
    "LoginFailure",
    "Organisation",
    "OutboxEvent",
    "RefreshToken",
    "ResultHead",
    "ResultOp",
    "ResultPath",
    "RevokedToken",
    "Rule",
    "RuleVersion",
    "ScheduleOccurrence",
    "ScheduleRoutine",
    "SessionRoutine",
    "TestSession",
    "User",
    "WebhookDelivery",
    "WebhookSubscription",
]
