"""The reminders sinks' check(): can the next run write there? Nothing is written.

The .ics sink on real folders; Google's calendar through HttpMockSequence and
the offline discovery document, answers shaped like the documented
``calendarList`` resources (CalDAV's check runs against Radicale in
tests/system/test_sink_check_caldav.py; `kithkeep check` itself is in
test_check_cli.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from googleapiclient.http import HttpMockSequence

from kithkeep.connectors.google_calendar import GoogleCalendarSink, GoogleCalendarSinkConfig
from kithkeep.connectors.ics import IcsSink
from kithkeep.errors import SinkError
from tests.contract.test_sink_google import error_body, service
from tests.unit.test_google_calendar import OK, page, requests

ENTRY = {"kind": "calendar#calendarListEntry", "etag": '"e1"', "id": "primary",
         "summary": "Sam", "accessRole": "owner"}  # fmt: skip


# ------------------------------------------------------------------ the .ics sink


def test_ics_sink_check(tmp_path: Path) -> None:
    ok = IcsSink("r", tmp_path / "r.ics").check()
    assert [(s.name, s.count, s.note) for s in ok] == [
        (str(tmp_path / "r.ics"), 0, "writable; created on the first run")
    ]
    with pytest.raises(SinkError, match=f"sink r: folder {tmp_path / 'no'} does not exist"):
        IcsSink("r", tmp_path / "no" / "r.ics").check()
    (tmp_path / "bad.ics").write_text("not a calendar")
    with pytest.raises(SinkError, match="is not a valid iCalendar file"):
        IcsSink("r", tmp_path / "bad.ics").check()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_ics_sink_check_refuses_a_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(SinkError, match=f"folder {ro} is not writable"):
        IcsSink("r", ro / "r.ics").check()


# ------------------------------------------------------------------ Google


def test_google_check_reads_the_calendar_and_its_reminders() -> None:
    http = HttpMockSequence([(OK, json.dumps(ENTRY)), (OK, page([]))])
    sink = GoogleCalendarSink("g", GoogleCalendarSinkConfig(), service(http))
    assert [(s.name, s.count) for s in sink.check()] == [("primary", 0)]
    assert [(m, p) for m, p, _, _ in requests(http)] == [
        ("GET", "/calendar/v3/users/me/calendarList/primary"),
        ("GET", "/calendar/v3/calendars/primary/events"),
    ]


def test_google_check_refuses_a_read_only_calendar_and_a_missing_one() -> None:
    reader = {**ENTRY, "id": "team@group.calendar.google.com", "accessRole": "reader"}
    http = HttpMockSequence([(OK, json.dumps(reader))])
    cfg = GoogleCalendarSinkConfig(calendar_id="team@group.calendar.google.com")
    with pytest.raises(
        SinkError, match=r"calendar 'team@group\.calendar\.google\.com' is read-only"
    ):
        GoogleCalendarSink("g", cfg, service(http)).check()
    http = HttpMockSequence([({"status": "404"}, error_body(404, "notFound", "Not Found"))])
    with pytest.raises(SinkError, match="not found"):
        GoogleCalendarSink("g", cfg, service(http)).check()


def test_google_check_never_creates_the_calendar() -> None:
    listing = {"kind": "calendar#calendarList", "etag": '"p1"', "items": [ENTRY]}
    http = HttpMockSequence([(OK, json.dumps(listing))])
    sink = GoogleCalendarSink("g", GoogleCalendarSinkConfig(create_calendar=True), service(http))
    assert [(s.name, s.count, s.note) for s in sink.check()] == [
        ("kithkeep", 0, "created on the first run")
    ]
    assert [m for m, _, _, _ in requests(http)] == ["GET"]  # no POST /calendars
