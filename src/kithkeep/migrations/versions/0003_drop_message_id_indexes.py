"""messages: drop the indexes on message_id and gm_msgid

No query looks a message up by either: analysis reads the table whole and
de-duplicates in memory. Each index still cost every stored message a
B-tree insert, together about a fifth of SQLite's work per message in a
first IMAP sync (callgrind: 11k of 56k instructions per row).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 08:40:00
"""

from __future__ import annotations

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.drop_index("ix_messages_message_id", table_name="messages")
    op.drop_index("ix_messages_gm_msgid", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_gm_msgid", "messages", ["gm_msgid"])
    op.create_index("ix_messages_message_id", "messages", ["message_id"])
