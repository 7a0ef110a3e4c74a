"""Alembic migrations on SQLite and PostgreSQL: from empty, and from every earlier revision.

After upgrading, the database must match ``Base.metadata`` exactly: Alembic's
autogenerate comparison (``compare_metadata``, with types and server
defaults) finds no difference. A schema change without its revision, or a
revision that differs from the ORM on one backend, fails here.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from kithkeep.schema import Base
from kithkeep.store import MIGRATIONS, Store, head_revision, migrate


def script() -> ScriptDirectory:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


def revisions() -> list[str]:
    """Every revision, oldest first."""
    return [r.revision for r in reversed(list(script().walk_revisions()))]


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    # Store.open without migrating: the engine with kithkeep's connection setup (SQLite pragmas)
    store = Store.open(database_url, migrate_schema=False)
    try:
        yield store.engine
    finally:
        store.close()


def current(engine: sa.Engine) -> str | None:
    with engine.connect() as c:
        return MigrationContext.configure(c).get_current_revision()


def schema_diff(engine: sa.Engine) -> list[Any]:
    with engine.connect() as c:
        ctx = MigrationContext.configure(
            c, opts={"compare_type": True, "compare_server_default": True}
        )
        diff: list[Any] = compare_metadata(ctx, Base.metadata)
        return diff


def user_tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as c:
        return set(sa.inspect(c).get_table_names()) - {"alembic_version"}


def test_the_revisions_form_one_line() -> None:
    revs = revisions()
    assert revs, "no migrations found"
    assert revs[-1] == head_revision()
    heads = script().get_heads()
    assert heads == [head_revision()], f"several heads: {heads}"
    for older, newer in pairwise(revs):
        assert script().get_revision(newer).down_revision == older


def test_from_empty_to_head_matches_the_models(engine: sa.Engine) -> None:
    assert user_tables(engine) == set()
    migrate(engine)
    assert current(engine) == head_revision()
    assert user_tables(engine) == set(Base.metadata.tables)
    assert schema_diff(engine) == []
    migrate(engine)  # at head: nothing to do
    assert current(engine) == head_revision()


@pytest.mark.parametrize("start", revisions())
def test_from_each_revision_to_head(engine: sa.Engine, start: str) -> None:
    migrate(engine, start)
    assert current(engine) == start
    # a row written at the older revision survives the upgrade
    with engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO messages (account, folder, uid, message_id, from_json, to_json,"
                " cc_json, bcc_json, references_json, subject, list_unsubscribe, flags,"
                " in_sent_folder, parse_errors) VALUES ('a', 'INBOX', '1', 'm@x', '[]', '[]',"
                " '[]', '[]', '[]', 'kept', false, '', false, '')"
            )
        )
    migrate(engine)
    assert current(engine) == head_revision()
    assert schema_diff(engine) == []
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT subject FROM messages")).scalar_one() == "kept"
    # and the store opens on it
    with Store.open(engine.url.render_as_string(hide_password=False)) as store:
        assert [m.subject for m in store.iter_messages()] == ["kept"]


@pytest.mark.parametrize("start", revisions()[:-1] or ["(only one revision)"])
def test_each_revision_changes_the_schema(engine: sa.Engine, start: str) -> None:
    """An older revision is not already the head schema (so the upgrade above is tested)."""
    if start == "(only one revision)":
        pytest.skip("a single revision: nothing older to upgrade from")
    migrate(engine, start)
    assert schema_diff(engine) != []
