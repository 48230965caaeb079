"""Imports every domain's models so that Alembic and the metadata see the whole schema."""

from src.app.audit.models import AuditSeal
from src.app.buildings.models import Asset, Building
from src.app.core.audit_model import AuditEntry
from src.app.core.database import Base
from src.app.core.idempotency_model import IdempotencyRecord
from src.app.identity.models import LoginFailure, Organisation, RefreshToken, RevokedToken, User
from src.app.results.models import ResultHead, ResultOp, ResultPath
from src.app.sessions.models import TestSession

__all__ = [
    "Asset",
    "AuditEntry",
    "AuditSeal",
    "Base",
    "Building",
    "IdempotencyRecord",
    "LoginFailure",
    "Organisation",
    "RefreshToken",
    "ResultHead",
    "ResultOp",
    "ResultPath",
    "RevokedToken",
    "TestSession",
    "User",
]
