"""Identity hardening: known login addresses, and an index on refresh_tokens.parent_id

``login_known_addresses`` records the client addresses that logged in to an account, so
that the account-wide progressive login delay spares its owner's devices. The index on
``refresh_tokens.parent_id`` serves the successor look-up of a refresh retry.

Revision ID: 0004_identity_hardening
Revises: 0003_results_state
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import src.app.core.database

revision: str = "0004_identity_hardening"
down_revision: str | None = "0003_results_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_known_addresses",
        sa.Column("pair_key", sa.String(length=64), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", src.app.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", src.app.core.database.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_known_addresses")),
        sa.UniqueConstraint("pair_key", name=op.f("uq_login_known_addresses_pair_key")),
    )
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_refresh_tokens_parent_id", ["parent_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_refresh_tokens_parent_id")
    op.drop_table("login_known_addresses")
