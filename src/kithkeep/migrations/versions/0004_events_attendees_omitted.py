"""events: attendees_omitted, for a meeting whose attendee list the server cut

Google sets ``attendeesOmitted`` when it lists only the user: the meeting's
size is unknown, so it must not count as a small meeting.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(
            sa.Column("attendees_omitted", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("attendees_omitted")
