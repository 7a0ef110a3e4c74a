"""User decisions: snooze, dismiss, done, ignore, cadence, tier, merge.

Decisions are raw data (they cannot be recomputed) and always win over rules.
A decision names a person by address, so it survives rebuilding the derived
people table; ``active`` is cleared when a decision is undone or superseded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from kithkeep.schema import Base
from kithkeep.store import Store

DECISIONS: sa.Table = Base.metadata.tables["decisions"]

KINDS = ("snooze", "dismiss", "done", "ignore", "cadence", "tier", "merge", "unmerge")


@dataclass(frozen=True)
class DecisionRecord:
    id: int
    kind: str
    person: str
    rule: str | None
    until: datetime | None
    value: str | None
    note: str | None
    created_at: datetime


def add_decision(
    store: Store,
    kind: str,
    person: str,
    *,
    rule: str | None = None,
    until: datetime | None = None,
    value: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> int:
    if kind not in KINDS:
        raise ValueError(f"unknown decision kind {kind!r}")
    with store.transaction() as s:
        res = s.execute(
            sa.insert(DECISIONS)
            .returning(DECISIONS.c.id)
            .values(
                kind=kind,
                person=person,
                rule=rule,
                until=until,
                value=value,
                note=note,
                created_at=now or datetime.now(UTC),
                active=True,
            )
        )
        return int(res.scalar_one())


def deactivate(store: Store, decision_ids: list[int]) -> None:
    with store.transaction() as s:
        s.execute(sa.update(DECISIONS).where(DECISIONS.c.id.in_(decision_ids)).values(active=False))


def active_decisions(store: Store) -> list[DecisionRecord]:
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(DECISIONS).where(DECISIONS.c.active.is_(True)).order_by(DECISIONS.c.id)
        )
        return [
            DecisionRecord(r.id, r.kind, r.person, r.rule, r.until, r.value, r.note, r.created_at)
            for r in rows
        ]
