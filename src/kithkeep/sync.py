"""Sync: run a source and commit what it yields, batch by batch, with checkpoints."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kithkeep.interfaces import CalendarSource, MailSource, Source, SyncContext
from kithkeep.records import EventBatch, MailBatch
from kithkeep.store import Store

log = logging.getLogger(__name__)

Progress = Callable[[str, str, int, "int | None"], None]


class StoreSyncContext(SyncContext):
    def __init__(
        self,
        store: Store,
        source: str,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self._store = store
        self._source = source
        self._progress = progress
        self._should_stop = should_stop

    def checkpoints(self) -> dict[str, dict[str, Any]]:
        return self._store.checkpoints(self._source)

    def known_uids(self, folder: str) -> dict[str, frozenset[str]]:
        return self._store.known_uids(self._source, folder)

    def progress(self, scope: str, done: int, total: int | None) -> None:
        if self._progress is not None:
            self._progress(self._source, scope, done, total)

    def should_stop(self) -> bool:
        return self._should_stop() if self._should_stop is not None else False


@dataclass
class SyncResult:
    source: str
    batches: int = 0
    records: int = 0
    flag_updates: int = 0
    deleted: int = 0
    stopped: bool = False


def sync_source(
    store: Store,
    source: Source,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> SyncResult:
    """Sync one source into the store. Errors propagate as SourceError after
    every batch before the failure has been committed."""
    result = SyncResult(source.name)
    ctx = StoreSyncContext(store, source.name, progress, should_stop)
    batches: Iterator[MailBatch | EventBatch]
    if isinstance(source, (MailSource, CalendarSource)):
        batches = source.sync(ctx)
    else:  # pragma: no cover - the registry only builds these two kinds
        raise TypeError(f"not a source: {source!r}")
    # Each batch is stored in this thread, before the source reads on. A
    # writer thread of its own paid off while a C writer stored mail without
    # the GIL; in Python it made a first IMAP sync slower or no faster, even
    # with only the SQL left to it: the two threads take turns at the GIL
    # (docs/performance.md, "IMAP sync").
    for batch in batches:
        if isinstance(batch, MailBatch):
            store.apply_mail_batch(batch, source.name)
            result.flag_updates += len(batch.flag_updates)
        else:
            store.apply_event_batch(batch, source.name)
            result.deleted += len(batch.deleted)
        result.batches += 1
        result.records += len(batch.records)
        if ctx.should_stop():
            result.stopped = True
            break
    else:
        # the source may have seen the request first and ended early
        result.stopped = ctx.should_stop()
    log.info(
        "synced %s: %d records, %d flag changes in %d batches",
        source.name,
        result.records,
        result.flag_updates,
        result.batches,
    )
    return result
