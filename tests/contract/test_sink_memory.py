"""The sink contract on an in-memory sink: the reference for what a sink does."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from kithkeep.interfaces import Reminder, ReminderSink, SinkEvent
from tests.contract.sink_contract import SinkContract


class MemoryCalendar:
    """What a calendar server holds: events by uid, with a version for ETags."""

    def __init__(self) -> None:
        self.events: dict[str, SinkEvent] = {}
        self.version = 0

    def etag(self) -> str:
        self.version += 1
        return f'"{self.version}"'


class MemorySink(ReminderSink):
    def __init__(self, name: str, cal: MemoryCalendar) -> None:
        super().__init__(name)
        self.cal = cal

    def list_own(self) -> list[SinkEvent]:
        return sorted(self.cal.events.values(), key=lambda e: e.key)

    def create(self, reminder: Reminder) -> SinkEvent:
        assert reminder.uid not in self.cal.events, "create of an existing event"
        ev = SinkEvent(
            reminder.key,
            reminder.uid,
            reminder.start,
            reminder.end,
            reminder.title,
            reminder.description,
            self.cal.etag(),
        )
        self.cal.events[reminder.uid] = ev
        return ev

    def update(self, current: SinkEvent, reminder: Reminder) -> SinkEvent:
        assert self.cal.events[current.uid].etag == current.etag, "update of a stale version"
        ev = SinkEvent(
            reminder.key,
            current.uid,
            reminder.start,
            reminder.end,
            reminder.title,
            reminder.description,
            self.cal.etag(),
        )
        self.cal.events[current.uid] = ev
        return ev

    def delete(self, current: SinkEvent) -> None:
        self.cal.events.pop(current.uid, None)


class TestMemorySink(SinkContract):
    @pytest.fixture(autouse=True)
    def _calendar(self) -> None:
        self.cal = MemoryCalendar()

    def make_sink(self) -> ReminderSink:
        return MemorySink("memory", self.cal)

    def user_move(self, ev: SinkEvent, start: datetime, end: datetime) -> None:
        self.cal.events[ev.uid] = replace(ev, start=start, end=end, etag=self.cal.etag())

    def user_delete(self, ev: SinkEvent) -> None:
        del self.cal.events[ev.uid]
