"""The sink contract on Microsoft Graph, through the HTTP-level Graph fake (tests/graph_fake.py).

The fake keeps the calendar; the user's moves and deletions happen in it
behind kithkeep's back, as in Outlook. Below the contract: the requests the
sink sends (transactionId, the extended property, If-Match, the text body),
a retried create, a change made meanwhile, and free/busy for work and
personal accounts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kithkeep.connectors.microsoft_calendar import (
    KEY_PROP,
    MicrosoftCalendarSink,
    MicrosoftSinkConfig,
    transaction_id,
)
from kithkeep.interfaces import ReminderSink, SinkEvent
from kithkeep.store import Store
from tests.contract.sink_contract import FINDINGS, NOW, SinkContract, reminder
from tests.graph_fake import ACCOUNT, TOKEN, GraphFake, graph_dt


def make(fake: GraphFake, sleeps: list[float] | None = None, **extra: Any) -> MicrosoftCalendarSink:
    cfg = MicrosoftSinkConfig(
        account=ACCOUNT, graph_url=fake.url, token_command=f"echo {TOKEN}", **extra
    )
    return MicrosoftCalendarSink(
        "outlook", cfg, sleep=(sleeps if sleeps is not None else []).append, jitter=lambda: 0.5
    )


class TestMicrosoftSink(SinkContract):
    @pytest.fixture(autouse=True)
    def _fake(self) -> Iterator[None]:
        self.fake = GraphFake()
        yield
        self.fake.close()

    def make_sink(self) -> ReminderSink:
        return make(self.fake, calendar="kithkeep")

    def user_move(self, ev: SinkEvent, start: datetime, end: datetime) -> None:
        self.fake.user_move(ev.uid, start, end)

    def user_delete(self, ev: SinkEvent) -> None:
        self.fake.user_delete(ev.uid)

    def test_requests_carry_the_key_the_transaction_and_the_etag(self, store: Store) -> None:
        assert self.run(store, FINDINGS[:1]) == {"create": 1}
        cal = next(c for c, v in self.fake.calendars.items() if v["name"] == "kithkeep")
        post = self.fake.sent("POST", "/events")[0]
        assert post.path == f"/v1.0/me/calendars/{cal}/events"
        assert post.body["transactionId"] == transaction_id(cal, FINDINGS[0].key)
        assert post.body["singleValueExtendedProperties"] == [
            {"id": KEY_PROP, "value": FINDINGS[0].key}
        ]
        assert post.body["showAs"] == "free" and post.body["body"]["contentType"] == "text"
        assert post.body["start"] == {"dateTime": "2026-11-23T09:00:00", "timeZone": "UTC"}
        # found again by the extended property, bodies as text
        listing = self.fake.sent("GET", "/events")[-1]
        assert listing.query["$filter"] == (
            f"singleValueExtendedProperties/Any(ep: ep/id eq '{KEY_PROP}' and ep/value ne '')"
        )
        assert (
            listing.query["$expand"] == f"singleValueExtendedProperties($filter=id eq '{KEY_PROP}')"
        )
        assert listing.headers["prefer"] == 'outlook.body-content-type="text"'
        changed = [FINDINGS[0].__class__(**{**FINDINGS[0].__dict__, "explanation": "Changed."})]
        assert self.run(store, changed) == {"update": 1}
        patch = self.fake.sent("PATCH")[0]
        ev = self.fake.events[patch.path.rsplit("/", 1)[-1]]
        assert patch.headers["if-match"] != ev["@odata.etag"]  # the etag it had before
        assert patch.headers["if-match"].startswith('W/"')
        assert "transactionId" not in patch.body
        # free/busy from getSchedule for the account
        sched = self.fake.sent("POST", "getSchedule")[0]
        assert sched.body["schedules"] == [ACCOUNT]

    def test_a_retried_create_returns_the_first_event(self) -> None:
        # the POST went through but its answer was lost; the retry replays the transactionId
        sink = self.make_sink()
        r = reminder(FINDINGS[0].key, NOW + timedelta(hours=2))
        first = sink.create(r)
        again = sink.create(r)
        assert again.uid == first.uid and again.key == r.key
        assert len(self.fake.events) == 1
        assert len(self.own()) == 1

    def test_a_change_made_meanwhile_is_not_overwritten(self) -> None:
        sink = self.make_sink()
        sink.create(reminder("k:1", NOW))
        listed = sink.list_own()[0]
        moved = NOW + timedelta(days=1)
        self.fake.user_move(listed.uid, moved, moved + timedelta(hours=1))
        # our etag is stale: Graph answers 412, the user's version stays
        assert sink.update(listed, reminder("k:1", NOW, title="Reply to Ana")) == listed
        assert self.fake.requests[-1].headers["if-match"] == listed.etag
        got = sink.list_own()[0]
        assert (got.title, got.start) == ("Reconnect with Ana Silva", moved)

    def test_throttled_writes_are_retried(self, store: Store) -> None:
        from tests.graph_fake import error

        sleeps: list[float] = []
        sink = make(self.fake, sleeps)
        self.fake.fail = [
            error(429, "TooManyRequests", "Please retry again later.", {"Retry-After": "3"})
        ]
        sink.create(reminder("k:1", NOW))
        assert sleeps == [3.0]
        assert len(self.fake.events) == 1

    def test_busy_time_comes_from_getschedule(self) -> None:
        self.fake.add_event(
            subject="Dentist",
            start=graph_dt(NOW + timedelta(hours=3)),
            end=graph_dt(NOW + timedelta(hours=4)),
        )
        self.fake.add_event(
            subject="Lunch (free)",
            showAs="free",
            start=graph_dt(NOW + timedelta(hours=5)),
            end=graph_dt(NOW + timedelta(hours=6)),
        )
        sink = make(self.fake)
        assert sink.busy(NOW, NOW + timedelta(days=1)) == [
            (NOW + timedelta(hours=3), NOW + timedelta(hours=4))
        ]
        assert [r.path for r in self.fake.sent("POST")] == ["/v1.0/me/calendar/getSchedule"]


def test_a_personal_account_reads_busy_time_from_the_calendar_view() -> None:
    fake = GraphFake(personal=True)
    try:
        fake.add_event(
            subject="Dentist",
            start=graph_dt(NOW + timedelta(hours=3)),
            end=graph_dt(NOW + timedelta(hours=4)),
        )
        fake.add_event(
            subject="Off",
            isCancelled=True,
            start=graph_dt(NOW + timedelta(hours=5)),
            end=graph_dt(NOW + timedelta(hours=6)),
        )
        sink = make(fake)
        assert sink.busy(NOW, NOW + timedelta(days=1)) == [
            (NOW + timedelta(hours=3), NOW + timedelta(hours=4))
        ]
        view = fake.sent("GET", "/calendarView")[0]
        assert (view.query["startDateTime"], view.query["endDateTime"]) == (
            "2026-11-23T07:00:00Z",
            "2026-11-24T07:00:00Z",
        )
    finally:
        fake.close()


def test_the_default_calendar_and_a_missing_named_one() -> None:
    from kithkeep.errors import SinkError

    fake = GraphFake()
    try:
        sink = make(fake)
        sink.create(reminder("k:1", datetime(2026, 11, 24, 9, tzinfo=UTC)))
        assert fake.sent("POST")[0].path == f"/v1.0/me/calendars/{fake.default_calendar}/events"
        with pytest.raises(SinkError, match="no calendar named 'Nope'"):
            make(fake, calendar="Nope", create_calendar=False).list_own()
    finally:
        fake.close()
