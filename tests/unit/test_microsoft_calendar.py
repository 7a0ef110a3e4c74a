"""The Microsoft Graph calendar source against the HTTP-level Graph fake, into a real store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from kithkeep.connectors.microsoft_calendar import (
    MicrosoftCalendarSource,
    MicrosoftCalendarSourceConfig,
    event_record,
    ical_uid,
)
from kithkeep.records import EventRecord
from kithkeep.store import Store
from kithkeep.sync import sync_source
from tests.graph_fake import ACCOUNT, TOKEN, GraphFake, graph_dt

DATA = Path(__file__).parent.parent / "data" / "graph"
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[GraphFake]:
    f = GraphFake()
    yield f
    f.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'kk.sqlite3'}")
    yield s
    s.close()


def source(fake: GraphFake, **extra: Any) -> MicrosoftCalendarSource:
    cfg = MicrosoftCalendarSourceConfig(
        account=ACCOUNT, graph_url=fake.url, token_command=f"echo {TOKEN}", page_size=2, **extra
    )
    return MicrosoftCalendarSource("outlook-cal", cfg, UTC)


def sync(fake: GraphFake, store: Store, **extra: Any) -> Any:
    src = source(fake, **extra)
    try:
        return sync_source(store, src)
    finally:
        src.close()


def events(store: Store) -> dict[str, EventRecord]:
    return {e.summary: e for e in store.iter_events()}


def person(address: str, kind: str = "required", response: str = "accepted") -> dict[str, Any]:
    return {
        "type": kind,
        "status": {"response": response, "time": "2026-11-01T10:00:00Z"},
        "emailAddress": {"name": address.split("@", maxsplit=1)[0], "address": address},
    }


# An Outlook meeting's global object id, and the same meeting's occurrence of 16 Nov 2026
SERIES = (
    "040000008200E00074C5B7101A82E00800000000DA2B357D94B5D20100000000000000001000000"
    "0EC4597557F0CB34EA4CC2887EA7B17C3"
)
OCCURRENCE = SERIES[:32] + "07EA0B10" + SERIES[40:]
# a meeting from another system: its UID wrapped after "vCal-Uid"
FOREIGN = (
    "040000008200E00074C5B7101A82E00800000000000000000000000000000000000000003300000076"
    "43616C2D55696401000000" + b"{81412D3C-2A24-4E9D-B20E-11F7BBE92799}".hex().upper() + "00"
)


def test_ical_uid_is_the_uid_the_invitation_carried() -> None:
    assert ical_uid(SERIES) == SERIES
    assert ical_uid(OCCURRENCE) == SERIES  # the instance date zeroed
    assert ical_uid(OCCURRENCE.lower()) == SERIES
    assert ical_uid(FOREIGN) == "{81412D3C-2A24-4E9D-B20E-11F7BBE92799}"
    assert ical_uid("abc123@google.com") == "abc123@google.com"
    # MS-ASEMAIL 4.3, example 1: an OutlookID with its instance date set
    assert ical_uid(
        "040000008200E00074C5B7101A82E00807D40910E040C9C12685C401000000000000000010000000"
        "0BF0ED4B6E4EE94E9E39E3867B378EF3"
    ) == (
        "040000008200E00074C5B7101A82E00800000000E040C9C12685C401000000000000000010000000"
        "0BF0ED4B6E4EE94E9E39E3867B378EF3"
    )


@freeze_time("2026-11-23 07:00:00")
def test_first_sync_reads_occurrences_attendees_and_answers(fake: GraphFake, store: Store) -> None:
    fake.add_event(
        subject="Weekly 1:1",
        type="occurrence",
        seriesMasterId="AAMkmaster",
        iCalUId=OCCURRENCE,
        originalStart="2026-11-16T09:00:00Z",
        start=graph_dt(datetime(2026, 11, 16, 9, 30, tzinfo=UTC)),  # moved by half an hour
        end=graph_dt(datetime(2026, 11, 16, 10, tzinfo=UTC)),
        isOrganizer=False,
        responseStatus={"response": "tentativelyAccepted", "time": "2026-11-01T10:00:00Z"},
        organizer={"emailAddress": {"name": "Ana", "address": "Ana@Example.org"}},
        attendees=[
            person("Ana@Example.org"),
            person("bo@example.org", "optional", "declined"),
            person("room1@contoso.com", "resource"),
            person(ACCOUNT, response="none"),
        ],
    )
    fake.add_event(subject="Coffee", iCalUId=SERIES.replace("EC45", "AAAA"))
    fake.add_event(subject="Cancelled", isCancelled=True)
    fake.add_event(
        subject="Holiday",
        isAllDay=True,
        start={"dateTime": "2026-11-12T00:00:00.0000000", "timeZone": "UTC"},
        end={"dateTime": "2026-11-13T00:00:00.0000000", "timeZone": "UTC"},
    )
    fake.add_event(subject="Reminder", transactionId="kithkeep-0123456789abcdef")
    fake.add_event(
        subject="Too old",
        start=graph_dt(NOW - timedelta(days=800)),
        end=graph_dt(NOW - timedelta(days=800) + timedelta(hours=1)),
    )
    result = sync(fake, store)
    assert result.records == 5
    got = events(store)
    one = got["Weekly 1:1"]
    assert (one.uid, one.recurrence_id) == (SERIES, "2026-11-16T09:00:00+00:00")
    assert one.start == datetime(2026, 11, 16, 9, 30, tzinfo=UTC)
    assert one.my_status == "TENTATIVE" and one.organizer == "ana@example.org"
    assert [(a.email, a.partstat, a.cutype, a.role) for a in one.attendees] == [
        ("ana@example.org", "ACCEPTED", "INDIVIDUAL", "REQ-PARTICIPANT"),
        ("bo@example.org", "DECLINED", "INDIVIDUAL", "OPT-PARTICIPANT"),
        ("room1@contoso.com", "ACCEPTED", "RESOURCE", "NON-PARTICIPANT"),
        (ACCOUNT, "NEEDS-ACTION", "INDIVIDUAL", "REQ-PARTICIPANT"),
    ]
    assert got["Coffee"].recurrence_id == "" and got["Coffee"].my_status == "ACCEPTED"
    assert got["Cancelled"].status == "CANCELLED"
    assert got["Holiday"].all_day and got["Holiday"].start == datetime(2026, 11, 12, tzinfo=UTC)
    assert got["Reminder"].own and not got["Coffee"].own
    # the window: two years back, sixty days ahead; no $select (delta takes none)
    first = fake.sent("GET", "/calendarView/delta")[0]
    assert (first.query["startDateTime"], first.query["endDateTime"]) == (
        "2024-11-23T07:00:00Z",
        "2027-01-22T07:00:00Z",
    )
    assert "$select" not in first.query and first.headers["prefer"] == "odata.maxpagesize=2"
    assert store.checkpoints("outlook-cal")["calendar"]["complete"] is True


def test_all_day_events_are_dates_in_the_users_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    rec = event_record(
        {
            "id": "x",
            "iCalUId": "u1",
            "isAllDay": True,
            "type": "singleInstance",
            "start": {"dateTime": "2026-11-12T00:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-13T00:00:00.0000000", "timeZone": "UTC"},
        },
        "s",
        berlin,
    )
    assert rec.start == datetime(2026, 11, 11, 23, tzinfo=UTC)


def test_changes_arrive_incrementally_and_expiry_lists_again(fake: GraphFake, store: Store) -> None:
    with freeze_time("2026-11-23 07:00:00"):
        a = fake.add_event(subject="A")
        fake.add_event(subject="B")
        sync(fake, store)
        fake.requests.clear()
        fake.cancel_event(a)
        fake.add_event(subject="C")
        assert sync(fake, store).records == 2
        assert events(store)["A"].status == "CANCELLED" and "C" in events(store)
        assert all(
            set(r.query) <= {"$deltatoken", "$skiptoken"}
            for r in fake.sent("GET", "/calendarView/delta")
        )
        fake.user_delete(a)
        fake.expire_links()
        fake.requests.clear()
        sync(fake, store)
        # 410: a full listing replaced the stored events
        assert sorted(events(store)) == ["B", "C"]
        assert [sorted(r.query)[0] for r in fake.sent("GET", "/calendarView/delta")][:2] == [
            "$deltatoken",
            "endDateTime",
        ]
    with freeze_time("2026-12-05 07:00:00"):
        fake.requests.clear()
        sync(fake, store)  # twelve days later: a periodic full listing
        assert "startDateTime" in fake.sent("GET", "/calendarView/delta")[0].query


@freeze_time("2026-11-23 07:00:00")
def test_check_names_the_calendar_with_its_count(fake: GraphFake) -> None:
    fake.add_event(subject="A")
    fake.add_event(subject="B")
    assert [(s.name, s.count) for s in source(fake).check()] == [("Calendar", 2)]


def test_recorded_sample_of_calendarview_delta_parses() -> None:
    page = json.loads((DATA / "event-delta.json").read_text())
    recs = [event_record(e, "s", UTC) for e in page["value"] if "@removed" not in e]
    assert recs and all(r.uid and r.start <= r.end for r in recs)
