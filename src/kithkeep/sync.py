"""Sync: run a source and commit what it yields, batch by batch, with checkpoints."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kithkeep.interfaces import CalendarSource, MailSource, Source, SyncContext
from kithkeep.records import MailBatch
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
        before_read: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._source = source
        self._progress = progress
        self._should_stop = should_stop
        # commits what was handed over, so reads see the source's own writes
        self._before_read = before_read

    def checkpoints(self) -> dict[str, dict[str, Any]]:
        if self._before_read is not None:
            self._before_read()
        return self._store.checkpoints(self._source)

    def known_uids(self, folder: str) -> dict[str, frozenset[str]]:
        if self._before_read is not None:
            self._before_read()
        return self._store.known_uids(self._source, folder)

    def progress(self, scope: str, done: int, total: int | None) -> None:
        if self._progress is not None:
            self._progress(self._source, scope, done, total)

    def should_stop(self) -> bool:
        return self._should_stop() if self._should_stop is not None else False


class _BatchWriter:
    """Commits a mail source's batches in a thread of its own, in order.

    A first IMAP sync spends about as long storing a chunk as reading and
    parsing it; SQLite and psycopg release the GIL while they work, so
    storing chunk N while the source reads chunk N+1 uses the second core.
    At most one batch waits while another is being written (memory stays
    at two chunks). Each batch still commits with its checkpoint in one
    transaction, in the order given, so a crash leaves a prefix of the
    batches, and the next run resumes from the last committed checkpoint.
    ``flush`` waits for everything handed over to be committed: the source
    context calls it before it reads checkpoints or stored flags.
    """

    def __init__(self, store: Store, account: str) -> None:
        self._store = store
        self._account = account
        self._queue: queue.Queue[MailBatch | None] = queue.Queue(maxsize=1)
        # the first failure: every later batch is dropped (its checkpoint
        # would skip the failed one's messages), and it is raised once
        self._error: BaseException | None = None
        self._reported = False
        self._thread = threading.Thread(target=self._run, name=f"store-{account}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                if self._error is None:  # after a failure, the rest is dropped
                    self._store.apply_mail_batch(batch, self._account)
            except BaseException as exc:  # reported in the source's thread
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None and not self._reported:
            self._reported = True
            raise self._error

    def put(self, batch: MailBatch) -> None:
        self._raise()
        if self._error is None:
            self._queue.put(batch)

    def flush(self) -> None:
        self._queue.join()
        self._raise()

    def close(self) -> None:
        """Commit what is left and end the thread (raises the writer's error, if any)."""
        self._queue.put(None)
        self._thread.join()
        self._raise()


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
    if isinstance(source, MailSource):
        writer = _BatchWriter(store, source.name) if store.threadsafe else None
        apply = writer.put if writer else lambda b: store.apply_mail_batch(b, source.name)
        ctx = StoreSyncContext(
            store, source.name, progress, should_stop, writer.flush if writer else None
        )
        try:
            for mb in source.sync(ctx):
                apply(mb)
                result.batches += 1
                result.records += len(mb.records)
                result.flag_updates += len(mb.flag_updates)
                if ctx.should_stop():
                    result.stopped = True
                    break
            else:
                # the source may have seen the request first and ended early
                result.stopped = ctx.should_stop()
        finally:
            # what the source handed over is committed before any error is reported
            if writer is not None:
                writer.close()
    elif isinstance(source, CalendarSource):
        ctx = StoreSyncContext(store, source.name, progress, should_stop)
        for eb in source.sync(ctx):
            store.apply_event_batch(eb, source.name)
            result.batches += 1
            result.records += len(eb.records)
            result.deleted += len(eb.deleted)
            if ctx.should_stop():
                result.stopped = True
                break
    else:  # pragma: no cover - the registry only builds these two kinds
        raise TypeError(f"not a source: {source!r}")
    log.info(
        "synced %s: %d records, %d flag changes in %d batches",
        source.name,
        result.records,
        result.flag_updates,
        result.batches,
    )
    return result
