"""The clock kithkeep judges by: now, or a day the user names.

``kithkeep --now 2024-03-01 review`` (or ``KITHKEEP_NOW``) asks what kithkeep
would have said on that day, for example over an archive of old mail. It
changes nothing but the clock: every "now" of the CLI, the pipeline, the
daemon and the calendar windows comes from :func:`now`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, time

from kithkeep.errors import UsageError

ENV = "KITHKEEP_NOW"

_fixed: datetime | None = None


def parse(text: str) -> datetime:
    """``2024-03-01``, ``2024-03-01T09:30`` or with an offset; a date alone is its noon
    UTC (a naive time is UTC)."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(datetime.fromisoformat(value).date(), time(12), UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{text!r} is not a date or time",
            hint="use an ISO date such as 2024-03-01 or 2024-03-01T09:30+01:00",
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def set_now(value: datetime | None) -> None:
    """Fix the clock (None: the real one again)."""
    global _fixed  # noqa: PLW0603 - one clock per process, set once by the CLI
    _fixed = value


def now() -> datetime:
    """The time kithkeep judges by: the fixed one, else $KITHKEEP_NOW, else the real one."""
    if _fixed is not None:
        return _fixed
    env = os.environ.get(ENV, "").strip()
    if env:
        return parse(env)
    return datetime.now(UTC)
