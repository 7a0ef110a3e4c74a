"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 03:51:53.121030
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:

    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("person", sa.String(length=300), nullable=False),
        sa.Column("rule", sa.String(length=60), nullable=True),
        sa.Column("until", sa.DateTime(), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_person"), ["person"], unique=False)

    op.create_table(
        "derived_findings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("rule", sa.String(length=60), nullable=False),
        sa.Column("person_id", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("due", sa.DateTime(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("suggestion", sa.Text(), nullable=False),
        sa.Column("evidence_json", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("remind", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_derived_findings")),
        sa.UniqueConstraint("key", name=op.f("uq_derived_findings_key")),
    )
    with op.batch_alter_table("derived_findings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_derived_findings_person_id"), ["person_id"], unique=False
        )

    op.create_table(
        "derived_people",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("addresses_json", sa.Text(), nullable=False),
        sa.Column("is_tie", sa.Boolean(), nullable=False),
        sa.Column("tier", sa.String(length=20), nullable=True),
        sa.Column("strength", sa.Float(), nullable=False),
        sa.Column("last_contact", sa.DateTime(), nullable=True),
        sa.Column("stats_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_derived_people")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("uid", sa.String(length=500), nullable=False),
        sa.Column("recurrence_id", sa.String(length=100), nullable=False),
        sa.Column("start", sa.DateTime(), nullable=False),
        sa.Column("end", sa.DateTime(), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("organizer", sa.String(length=300), nullable=True),
        sa.Column("attendees_json", sa.Text(), nullable=False),
        sa.Column("my_status", sa.String(length=40), nullable=True),
        sa.Column("own", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("source", "uid", "recurrence_id", name="uq_events_occurrence"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("folder", sa.String(length=500), nullable=False),
        sa.Column("uid", sa.String(length=200), nullable=False),
        sa.Column("message_id", sa.String(length=500), nullable=False),
        sa.Column("date", sa.DateTime(), nullable=True),
        sa.Column("internal_date", sa.DateTime(), nullable=True),
        sa.Column("from_json", sa.Text(), nullable=False),
        sa.Column("to_json", sa.Text(), nullable=False),
        sa.Column("cc_json", sa.Text(), nullable=False),
        sa.Column("bcc_json", sa.Text(), nullable=False),
        sa.Column("in_reply_to", sa.String(length=500), nullable=True),
        sa.Column("references_json", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("list_id", sa.String(length=300), nullable=True),
        sa.Column("list_post", sa.String(length=300), nullable=True),
        sa.Column("list_unsubscribe", sa.Boolean(), nullable=False),
        sa.Column("precedence", sa.String(length=40), nullable=True),
        sa.Column("auto_submitted", sa.String(length=40), nullable=True),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("gm_msgid", sa.BigInteger(), nullable=True),
        sa.Column("gm_thrid", sa.BigInteger(), nullable=True),
        sa.Column("in_sent_folder", sa.Boolean(), nullable=False),
        sa.Column("parse_errors", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("account", "folder", "uid", name="uq_messages_location"),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_gm_msgid"), ["gm_msgid"], unique=False)
        batch_op.create_index("ix_messages_message_id", ["message_id"], unique=False)

    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_meta")),
    )
    op.create_table(
        "reminder_state",
        sa.Column("sink", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("uid", sa.String(length=300), nullable=False),
        sa.Column("start", sa.DateTime(), nullable=False),
        sa.Column("end", sa.DateTime(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sink", "key", name=op.f("pk_reminder_state")),
    )
    op.create_table(
        "sync_state",
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("scope", sa.String(length=500), nullable=False),
        sa.Column("state_json", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "scope", name=op.f("pk_sync_state")),
    )


def downgrade() -> None:

    op.drop_table("sync_state")
    op.drop_table("reminder_state")
    op.drop_table("meta")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_message_id")
        batch_op.drop_index(batch_op.f("ix_messages_gm_msgid"))

    op.drop_table("messages")
    op.drop_table("events")
    op.drop_table("derived_people")
    with op.batch_alter_table("derived_findings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_derived_findings_person_id"))

    op.drop_table("derived_findings")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_person"))

    op.drop_table("decisions")
