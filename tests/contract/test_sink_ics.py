"""The sink contract on the .ics file sink; the user edits the file as a calendar app would."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import icalendar
import pytest

from kithkeep.connectors.ics import IcsSink
from kithkeep.interfaces import ReminderSink, SinkEvent
from tests.contract.sink_contract import SinkContract


class TestIcsSink(SinkContract):
    @pytest.fixture(autouse=True)
    def _file(self, tmp_path: Path) -> None:
        self.path = tmp_path / "reminders.ics"

    def make_sink(self) -> ReminderSink:
        return IcsSink("file", self.path)

    def _edit(
        self, uid: str, change: str, start: datetime | None = None, end: datetime | None = None
    ) -> None:
        cal = icalendar.Calendar.from_ical(self.path.read_bytes())
        out = icalendar.Calendar()
        for k, v in cal.items():
            out.add(k, v)
        for comp in cal.subcomponents:
            if str(comp.get("UID")) == uid:
                if change == "delete":
                    continue
                comp.pop("DTSTART")
                comp.pop("DTEND")
                comp.add("DTSTART", start)
                comp.add("DTEND", end)
            out.add_component(comp)
        self.path.write_bytes(out.to_ical())

    def user_move(self, ev: SinkEvent, start: datetime, end: datetime) -> None:
        self._edit(ev.uid, "move", start, end)

    def user_delete(self, ev: SinkEvent) -> None:
        self._edit(ev.uid, "delete")


def test_foreign_events_survive_and_alarm_is_written(tmp_path: Path) -> None:
    from tests.contract.sink_contract import NOW, reminder

    path = tmp_path / "r.ics"
    path.write_bytes(
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:theirs\r\n"
        b"DTSTAMP:20260101T000000Z\r\nDTSTART:20261124T100000Z\r\nSUMMARY:Dentist\r\n"
        b"END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    sink = IcsSink("file", path)
    sink.create(reminder("k:1", NOW))
    sink.flush()
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    uids = sorted(str(c.get("UID")) for c in cal.walk("VEVENT"))
    assert "theirs" in uids and len(uids) == 2
    alarms = cal.walk("VALARM")
    assert len(alarms) == 1 and alarms[0]["TRIGGER"].dt.total_seconds() == -600
