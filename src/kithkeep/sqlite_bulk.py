"""Transactions of prepared rows on a SQLite store, with the GIL released.

The store's mail batches are a few statements with many rows each
(``Steps``). On SQLite, :class:`BulkWriter` runs them through the compiled
``_sqlitebulk`` module (kithkeep/_sqlitebulk.c): every value is converted
first, then the whole transaction runs without the GIL, so a writer thread
stores one chunk while the IMAP connector parses the next one on the other
core. The stdlib sqlite3 module releases the GIL only around each row's step,
and the two threads then spent about as long handing the GIL to each other
as working (bench/imap_sync.py).

The module opens a connection of its own to the store's file, with the same
SQLite library as the stdlib's (the import fails otherwise).
:func:`bulk_writer` returns None when the module is missing or the store is
not a plain SQLite file (in memory, URI options); the store then runs the
same steps through SQLAlchemy's connection (:func:`run_steps_dbapi`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

# [(sql, rows), ...]: each statement executed once per row, in order
Steps = Sequence[tuple[str, Sequence[tuple[Any, ...]]]]

_bulk: ModuleType | None
try:
    from kithkeep import _sqlitebulk as _bulk
except ImportError as exc:  # not built, or sqlite3 has its SQLite linked in statically
    log.debug("bulk SQLite writes unavailable (%s); using the sqlite3 module", exc)
    _bulk = None

COMPILED = _bulk is not None


class BulkWriter:
    """A connection of its own to one SQLite file; one transaction at a time."""

    def __init__(self, path: Path, busy_timeout_ms: int = 10_000) -> None:
        assert _bulk is not None
        self._conn = _bulk.Connection(str(path), busy_timeout_ms)
        # transaction() refuses to run in two threads at once; callers may
        # come from the sync's writer thread and from the main thread
        self._lock = threading.Lock()

    def run(self, steps: Steps, before_commit: Callable[[], object] | None = None) -> None:
        """All steps in one transaction, or none of them (raises sqlite3.Error).

        ``before_commit`` runs inside the transaction after its statements
        (the crash tests die there); an exception from it rolls back.
        """
        with self._lock:
            self._conn.transaction(steps, before_commit)  # it skips steps without rows

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def sqlite_file(engine: Engine) -> Path | None:
    """The absolute path of a file SQLite store; None for any other store."""
    url = engine.url
    if engine.dialect.name != "sqlite" or url.query or url.database in (None, "", ":memory:"):
        return None
    assert url.database is not None
    if url.database.startswith("file:"):  # a URI filename: options the bulk path does not read
        return None
    return Path(url.database).resolve()


def bulk_writer(engine: Engine) -> BulkWriter | None:
    """A BulkWriter for a file SQLite store, when the compiled module is there."""
    path = sqlite_file(engine)
    if _bulk is None or path is None:
        return None
    return BulkWriter(path)


def run_steps_dbapi(conn: Connection, steps: Steps) -> None:
    """The same steps through an SQLAlchemy connection (inside its transaction)."""
    for sql, rows in steps:
        if rows:
            conn.exec_driver_sql(sql, list(rows))
