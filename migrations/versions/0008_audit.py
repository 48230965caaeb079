"""Audit trail: append-only entries and their seals into per-organisation hash chains

Tables ``audit_entries`` and ``audit_seals`` (generated with ``alembic revision
--autogenerate``, reviewed by hand). Added by hand:

- triggers refusing UPDATE, DELETE and TRUNCATE on both tables (PostgreSQL and SQLite);
- PostgreSQL: a trigger stamping each entry with its writer's transaction id (the
  sealer's horizon is expressed in it, so a writer cannot choose its place);
- PostgreSQL: REVOKE UPDATE, DELETE, TRUNCATE on both tables from PUBLIC and, when
  ``FIREMODE_DB_APP_ROLE`` names the role the application connects as (migrations then
  run as the owner), from that role, which keeps SELECT and INSERT.

Revision ID: 0008_audit
Revises: 0003_results_state
Create Date: 2026-12-02 17:50:09.207264
"""

import os
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import src.app.core.database

revision: str = "0008_audit"
down_revision: str | None = "0003_results_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("audit_entries", "audit_seals")
APP_ROLE_ENV = "FIREMODE_DB_APP_ROLE"

PG_FUNCTIONS = (
    """CREATE FUNCTION firemode_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END
$$""",
    """CREATE FUNCTION firemode_audit_stamp_txid() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.txid := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END
$$""",
)


def _pg_triggers() -> list[str]:
    statements = [
        "CREATE TRIGGER audit_entries_stamp_txid BEFORE INSERT ON audit_entries "
        "FOR EACH ROW EXECUTE FUNCTION firemode_audit_stamp_txid()"
    ]
    for table in TABLES:
        statements += [
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION firemode_audit_append_only()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION firemode_audit_append_only()",
        ]
    return statements


def _sqlite_triggers() -> list[str]:
    return [
        f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
        "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
        for table in TABLES
        for verb in ("UPDATE", "DELETE")
    ]


def _app_role() -> str | None:
    role = os.environ.get(APP_ROLE_ENV, "").strip()
    if not role:
        return None
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", role):
        raise ValueError(f"{APP_ROLE_ENV} must be a plain role name")
    return role


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=64), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("payload", src.app.core.database.JSONType, nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=True),
        sa.Column("created_at", src.app.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "actor_type IN ('user', 'system')", name=op.f("ck_audit_entries_actor_type_valid")
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_audit_entries_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_entries")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_entries_organisation_id_actor_id_created_at_id",
            [
                "organisation_id",
                "actor_id",
                sa.literal_column("created_at DESC"),
                sa.literal_column("id DESC"),
            ],
            unique=False,
        )
        batch_op.create_index(
            "ix_audit_entries_organisation_id_created_at_id",
            ["organisation_id", sa.literal_column("created_at DESC"), sa.literal_column("id DESC")],
            unique=False,
        )
        batch_op.create_index(
            "ix_audit_entries_organisation_id_subject_created_at_id",
            [
                "organisation_id",
                "subject_type",
                "subject_id",
                sa.literal_column("created_at DESC"),
                sa.literal_column("id DESC"),
            ],
            unique=False,
        )
        batch_op.create_index("ix_audit_entries_txid_seq", ["txid", "seq"], unique=False)

    op.create_table(
        "audit_seals",
        sa.Column(
            "entry_seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("organisation_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("horizon", sa.BigInteger(), nullable=False),
        sa.Column("sealed_at", src.app.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_seq"],
            ["audit_entries.seq"],
            name=op.f("fk_audit_seals_entry_seq_audit_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_audit_seals_organisation_id_organisations"),
        ),
        sa.PrimaryKeyConstraint("entry_seq", name=op.f("pk_audit_seals")),
        sa.UniqueConstraint(
            "organisation_id", "position", name=op.f("uq_audit_seals_organisation_id_position")
        ),
    )
    with op.batch_alter_table("audit_seals", schema=None) as batch_op:
        batch_op.create_index("ix_audit_seals_horizon", ["horizon"], unique=False)

    if op.get_context().dialect.name == "postgresql":
        for statement in (*PG_FUNCTIONS, *_pg_triggers()):
            op.execute(statement)
        tables = ", ".join(TABLES)
        op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {tables} FROM PUBLIC")
        role = _app_role()
        if role is not None:
            op.execute(f'REVOKE UPDATE, DELETE, TRUNCATE ON {tables} FROM "{role}"')
            op.execute(f'GRANT SELECT, INSERT ON {tables} TO "{role}"')
            op.execute(f'GRANT USAGE ON SEQUENCE audit_entries_seq_seq TO "{role}"')
    else:
        for statement in _sqlite_triggers():
            op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TABLE audit_seals")
        op.execute("DROP TABLE audit_entries")
        op.execute("DROP FUNCTION firemode_audit_stamp_txid()")
        op.execute("DROP FUNCTION firemode_audit_append_only()")
        return
    for statement in _sqlite_triggers():
        op.execute(f"DROP TRIGGER {statement.split()[2]}")
    with op.batch_alter_table("audit_seals", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_seals_horizon")
    op.drop_table("audit_seals")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_txid_seq")
        batch_op.drop_index("ix_audit_entries_organisation_id_subject_created_at_id")
        batch_op.drop_index("ix_audit_entries_organisation_id_created_at_id")
        batch_op.drop_index("ix_audit_entries_organisation_id_actor_id_created_at_id")
    op.drop_table("audit_entries")
