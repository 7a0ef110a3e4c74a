"""The incremental analysis equals a full rebuild on PostgreSQL too.

The state machine of tests/unit/test_incremental.py (new mail, copies, flags,
rescanned folders, meetings, merges, unmerges, decisions, a contacts card,
another address of the user's, the clock), run on two databases of a real
PostgreSQL server instead of two in-memory SQLite stores: the index, the
change counters and the derived tables go through the other backend's SQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from kithkeep.schema import Base
from kithkeep.store import Store
from tests.fixtures.postgres import PostgresServer
from tests.unit import test_incremental


@pytest.fixture
def two_stores(postgres_server: PostgresServer) -> Iterator[tuple[Store, Store]]:
    stores = (
        Store.open(postgres_server.new_database()),
        Store.open(postgres_server.new_database()),
    )
    try:
        yield stores
    finally:
        for store in stores:
            store.close()


def test_incremental_equals_a_full_rebuild_on_postgresql(
    two_stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fresh() -> tuple[Store, Store]:
        for store in two_stores:
            with store.transaction() as s:
                for table in reversed(Base.metadata.sorted_tables):
                    s.execute(sa.delete(table))
        return two_stores

    monkeypatch.setattr(test_incremental, "_fresh_stores", fresh)
    run_state_machine_as_test(
        test_incremental.IncrementalMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=10,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    # the machine ran on these databases (its last example's analysis is there)
    assert all(store.get_meta("analysis_state") for store in two_stores)
