"""messages.signals: what machines' headers said of a message

The header parser now reads Return-Path, Content-Type, Content-Class,
Feedback-ID, List-Unsubscribe-Post, X-Auto-Response-Suppress, X-Autoreply and
X-Autorespond into signal words (kithkeep.headers.SIGNALS). Messages stored
before keep NULL: their headers were not fetched, and are not fetched again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("signals", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("signals")
