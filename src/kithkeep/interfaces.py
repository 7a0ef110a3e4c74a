"""The three connector roles: mail source, calendar source, reminder sink.

The core, the daemon and the CLI only know these interfaces; connectors in
``kithkeep.connectors`` implement them, and the registry there builds them
from config. A source never writes to the store itself: it yields batches and
the core commits each batch with its checkpoint in one transaction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kithkeep.records import EventBatch, MailBatch


class SyncContext(ABC):
    """What a source may know about the store while it syncs."""

    @abstractmethod
    def checkpoints(self) -> dict[str, dict[str, Any]]:
        """This source's saved positions by scope."""

    @abstractmethod
    def known_uids(self, folder: str) -> dict[str, frozenset[str]]:
        """UIDs or file keys stored for a folder of this source, with their flags."""

    def progress(self, scope: str, done: int, total: int | None) -> None:  # noqa: B027
        """Report progress (a progress bar on a terminal; STATUS= under systemd)."""

    def should_stop(self) -> bool:
        """True once a graceful stop was asked for: finish the current chunk and return."""
        return False


@dataclass(frozen=True)
class ScopeInfo:
    """A folder or calendar a source will read, for ``kithkeep check``."""

    name: str
    count: int | None
    note: str = ""


class Source(ABC):  # noqa: B024 - abstract through its two subclasses
    """Common to mail and calendar sources."""

    kind: str = ""

    def __init__(self, name: str) -> None:
        self.name = name

    def me_addresses(self) -> set[str]:
        """Addresses this source knows to be the user's (logins, calendar owners)."""
        return set()

    def check(self) -> list[ScopeInfo]:
        """Connect and list what would be read, without syncing."""
        return []

    def preflight(self) -> None:  # noqa: B027 - optional hook
        """Check what a sync needs from the environment (a secret's variable, ...)
        before anything is written; raise ConfigError naming the key."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MailSource(Source):
    kind = "mail"

    @abstractmethod
    def sync(self, ctx: SyncContext) -> Iterator[MailBatch]:
        """Yield batches of new or changed records since the saved positions."""

    def wait_for_mail(self, timeout: float, should_stop: Callable[[], bool] | None = None) -> bool:
        """Block up to ``timeout`` seconds until the source sees new mail; True if it did.

        Used by the daemon to sync a source early (IMAP IDLE). False at once
        means this source cannot wait (the default, or a server without
        IDLE): the caller keeps to its schedule. ``should_stop`` is polled
        every few seconds; once it returns True the wait ends with False.
        """
        return False


class CalendarSource(Source):
    kind = "calendar"

    @abstractmethod
    def sync(self, ctx: SyncContext) -> Iterator[EventBatch]:
        """Yield batches of calendar changes since the saved positions."""


@dataclass(frozen=True)
class Reminder:
    """A desired reminder event (see kithkeep.reminders)."""

    key: str
    uid: str
    title: str
    description: str
    start: datetime
    end: datetime
    alarm_minutes: int


@dataclass(frozen=True)
class SinkEvent:
    """An event kithkeep finds in a sink that it wrote itself (or the user changed)."""

    key: str
    uid: str
    start: datetime
    end: datetime
    title: str
    description: str
    etag: str | None = None


class ReminderSink(ABC):
    """Where reminders are written. Implementations pass tests/contract_sink.py."""

    def __init__(self, name: str) -> None:
        self.name = name

    def identity(self) -> str:
        """What tells this sink's calendar from any other one (a calendar URL or id, a
        file path); reminder UIDs are derived from it and the key, so that two stores
        writing into two calendars of one account never write the same UID (servers
        that schedule refuse a UID used in another calendar of the account). May
        connect. The default, the sink's name, suits sinks that are one place only."""
        return self.name

    @abstractmethod
    def list_own(self) -> list[SinkEvent]:
        """The events kithkeep wrote that are still in the sink (user moves included).

        Found by the reminder key each carries (not by UID), so that a reminder
        written under an earlier UID scheme is still found, updated and deleted.
        """

    def busy(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Busy intervals in [start, end) of the target calendar (for free slots)."""
        return []

    def check(self) -> list[ScopeInfo]:
        """What ``kithkeep check`` says of the sink: can the next run write here?

        Raise SinkError naming the calendar or path when it cannot. Each scope's
        count is the reminders kithkeep wrote there. The default lists them,
        which connects and reads; sinks
        check more where they can (a file's folder is writable, a calendar
        exists or can be created) without writing anything.
        """
        return [ScopeInfo(self.name, len(self.list_own()))]

    @abstractmethod
    def create(self, reminder: Reminder) -> SinkEvent: ...

    @abstractmethod
    def update(self, current: SinkEvent, reminder: Reminder) -> SinkEvent:
        """Rewrite ``current`` with the reminder's text and times; the event keeps
        its UID (``current.uid``), whatever ``reminder.uid`` says."""

    @abstractmethod
    def delete(self, current: SinkEvent) -> None: ...

    def flush(self) -> None:  # noqa: B027 - optional hook
        """Make the writes durable (file sinks write here, atomically)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


ProgressCallback = Callable[[str, int, "int | None"], None]
