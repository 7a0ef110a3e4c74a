"""Incremental analysis: change counters, the address index, changed addresses

- ``messages.seq`` and ``events.seq``: the change counter of the batch that last
  wrote a row (indexed: the analysis reads what changed since it last ran);
- ``derived_index``: the messages and events filed under each address;
- ``changed_addresses``: addresses of records deleted since the last analysis;
- ``derived_people.root`` and ``judge_at``; ``derived_findings.data_json``.

The derived people and findings are cleared: their stored form changed, and
the next analysis rebuilds them in full.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kithkeep.schema import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    for table in ("messages", "events"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=False, server_default="0"))
        op.create_index(f"ix_{table}_seq", table, ["seq"])
    op.create_table(
        "derived_index",
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("ref", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("address", "kind", "ref", name="pk_derived_index"),
    )
    op.create_index("ix_derived_index_ref", "derived_index", ["kind", "ref"])
    op.create_table(
        "changed_addresses",
        sa.Column("address", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("address", name="pk_changed_addresses"),
    )
    op.execute("DELETE FROM derived_people")
    op.execute("DELETE FROM derived_findings")
    op.execute("DELETE FROM meta WHERE key LIKE 'analysis%'")
    with op.batch_alter_table("derived_people") as batch:
        batch.add_column(sa.Column("root", sa.String(), nullable=True))
        batch.add_column(sa.Column("judge_at", UTCDateTime(), nullable=True))
    op.create_index("ix_derived_people_root", "derived_people", ["root"])
    op.create_index("ix_derived_people_judge_at", "derived_people", ["judge_at"])
    with op.batch_alter_table("derived_findings") as batch:
        batch.add_column(sa.Column("data_json", sa.Text(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("derived_findings") as batch:
        batch.drop_column("data_json")
    op.drop_index("ix_derived_people_judge_at", table_name="derived_people")
    op.drop_index("ix_derived_people_root", table_name="derived_people")
    with op.batch_alter_table("derived_people") as batch:
        batch.drop_column("judge_at")
        batch.drop_column("root")
    op.drop_table("changed_addresses")
    op.drop_index("ix_derived_index_ref", table_name="derived_index")
    op.drop_table("derived_index")
    for table in ("events", "messages"):
        op.drop_index(f"ix_{table}_seq", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("seq")
