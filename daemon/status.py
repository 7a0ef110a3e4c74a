"""Per-source run status (table ``source_status``) and the backoff schedule.

The daemon writes one row per source (and one for the reminders sink) after
every attempt: when it last succeeded, the last error, how many failures in a
row, and when it will run next. ``kithkeep status`` reads the rows. A failing
source is retried after one interval, then two, four, ... up to the
configured maximum, while the other sources keep their own schedule.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kithkeep.records import RunStatus
from kithkeep.store import Store

SOURCE = "source"
SINK = "sink"


def backoff_delay(failures: int, interval: timedelta, max_backoff: timedelta) -> timedelta:
    """How long to wait before the next attempt after ``failures`` failures in a row.

    No failure: the interval. Then interval x 2^(failures-1), capped at
    ``max_backoff`` but never below the interval itself.
    """
    if failures <= 0:
        return interval
    # cap the exponent: 2**60 intervals would overflow timedelta long before the cap applies
    factor = 2 ** min(failures - 1, 30)
    delay: timedelta = max(interval, min(interval * factor, max_backoff))
    return delay


def load(store: Store) -> dict[tuple[str, str], RunStatus]:
    """Every row, by (kind, name)."""
    return store.run_statuses()


def _upsert(store: Store, kind: str, name: str, values: dict[str, object]) -> None:
    store.update_run_status(kind, name, **values)


def record_success(
    store: Store, kind: str, name: str, at: datetime, next_run: datetime | None
) -> None:
    """A run went through: failures reset; the last error stays for reference."""
    _upsert(store, kind, name, {"last_success": at, "failures": 0, "next_run": next_run})


def record_failure(
    store: Store,
    kind: str,
    name: str,
    error: str,
    at: datetime,
    failures: int,
    next_run: datetime | None,
) -> None:
    _upsert(
        store,
        kind,
        name,
        {
            "last_error": error,
            "last_error_at": at,
            "failures": failures,
            "next_run": next_run,
        },
    )


def set_next_run(store: Store, kind: str, name: str, next_run: datetime | None) -> None:
    _upsert(store, kind, name, {"next_run": next_run})


def record_results(store: Store, synced: list[str], errors: dict[str, str], at: datetime) -> None:
    """Record a one-off run's outcome (``kithkeep run``/``sync``, the timer unit)."""
    previous = load(store)
    for name in synced:
        record_success(store, SOURCE, name, at, None)
    for name, error in errors.items():
        before = previous.get((SOURCE, name))
        failures = (before.failures if before else 0) + 1
        record_failure(store, SOURCE, name, error, at, failures, None)


def record_sink(store: Store, name: str, error: str | None, at: datetime) -> None:
    """Record an analysis-and-reminders outcome under its sink (a daemon cycle, a one-off
    run): a success clears the failures, a failure counts one more."""
    if error is None:
        record_success(store, SINK, name, at, None)
        return
    before = load(store).get((SINK, name))
    record_failure(store, SINK, name, error, at, (before.failures if before else 0) + 1, None)
