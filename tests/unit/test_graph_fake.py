"""The Graph fake answers in the documented shapes, and the connectors read the recorded samples.

``tests/data/graph/`` keeps one response per endpoint kithkeep calls, taken
from the examples of Microsoft's Graph documentation. Each test here puts the
fake's answer to the same request next to the sample: every property of the
documented object is in the fake's object with the same JSON type (the fake
may say more; Graph's own examples are shortened). The samples also go
through the connectors' parsers, so a parser that only understood the fake
would fail here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from kithkeep.connectors.graph_client import parse_graph_time
from kithkeep.connectors.microsoft_calendar import KEY_PROP, event_record, sink_event
from kithkeep.connectors.microsoft_mail import message_record
from tests.graph_fake import TOKEN, GraphFake, graph_dt

DATA = Path(__file__).parent.parent / "data" / "graph"


def sample(name: str) -> Any:
    return json.loads((DATA / name).read_text())


@pytest.fixture
def fake() -> Iterator[GraphFake]:
    f = GraphFake()
    yield f
    f.close()


def call(fake: GraphFake, method: str, path: str, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
    return requests.request(method, f"{fake.url}/{path}", headers=headers, timeout=10, **kwargs)


def same_shape(documented: Any, ours: Any, where: str = "$") -> None:
    """Every key of the documented object is in ours, with the same JSON type."""
    if isinstance(documented, dict):
        assert isinstance(ours, dict), where
        for key, value in documented.items():
            if key in ("@odata.nextLink", "@odata.deltaLink"):
                continue  # one or the other, by page
            assert key in ours, f"{where}.{key} missing"
            if value is not None and ours[key] is not None:
                same_shape(value, ours[key], f"{where}.{key}")
    elif isinstance(documented, list):
        assert isinstance(ours, list), where
        if documented and ours:
            same_shape(documented[0], ours[0], f"{where}[0]")
    elif isinstance(documented, bool) or isinstance(ours, bool):
        # the documentation itself writes isRead as "true" once (the next-round sample)
        assert isinstance(ours, bool) or str(ours).lower() in ("true", "false"), where
    else:
        assert type(documented) is type(ours) or {type(documented), type(ours)} <= {int, float}, (
            f"{where}: {type(documented).__name__} vs {type(ours).__name__}"
        )


def test_message_delta_pages(fake: GraphFake) -> None:
    for i in range(3):
        fake.add_message("inbox", subject=f"m{i}")
    first = call(
        fake,
        "GET",
        "me/mailFolders/inbox/messages/delta",
        params={"$select": "subject,sender,isRead"},
        headers={"Prefer": "odata.maxpagesize=2"},
    )
    assert first.status_code == 200
    page = first.json()
    same_shape(sample("message-delta.json"), page)
    assert "@odata.nextLink" in page and len(page["value"]) == 2
    assert set(page["value"][0]) == {
        "@odata.type",
        "@odata.etag",
        "subject",
        "sender",
        "isRead",
        "id",
    }
    last = requests.get(
        page["@odata.nextLink"], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).json()
    fake.delete_message(page["value"][0]["id"])
    fake.update_message(page["value"][1]["id"], isRead=True)
    nxt = requests.get(
        last["@odata.deltaLink"], headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).json()
    same_shape(sample("message-delta-next-round.json"), nxt)
    assert nxt["value"][0]["@removed"] == {"reason": "deleted"}


def test_mail_folders(fake: GraphFake) -> None:
    same_shape(sample("mailfolder-get.json"), call(fake, "GET", "me/mailFolders/inbox").json())
    same_shape(sample("mailfolder-list.json"), call(fake, "GET", "me/mailFolders").json())


def test_calendar_view_delta(fake: GraphFake) -> None:
    fake.add_event(subject="Plan shopping list")
    got = call(
        fake,
        "GET",
        "me/calendarView/delta",
        params={"startDateTime": "2026-01-01T00:00:00Z", "endDateTime": "2027-01-01T00:00:00Z"},
    ).json()
    same_shape(sample("event-delta.json"), got)


def test_event_create_list_and_schedule(fake: GraphFake) -> None:
    start = datetime(2026, 11, 23, 9, tzinfo=UTC)
    created = call(
        fake,
        "POST",
        "me/calendar/events",
        json={
            "subject": "Reconnect with Ana Silva",
            "body": {"contentType": "text", "content": "Because."},
            "start": {"dateTime": "2026-11-23T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-23T09:15:00", "timeZone": "UTC"},
            "transactionId": "kithkeep-1",
            "singleValueExtendedProperties": [
                {"id": KEY_PROP, "value": "neglected:p-ana:2026-08-25"}
            ],
        },
    )
    assert created.status_code == 201
    same_shape(sample("event-create.json"), created.json())
    listed = call(
        fake,
        "GET",
        "me/calendar/events",
        params={
            "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{KEY_PROP}' "
            "and ep/value ne '')",
            "$expand": f"singleValueExtendedProperties($filter=id eq '{KEY_PROP}')",
            "$select": "subject,body,start,end",
        },
        headers={"Prefer": 'outlook.body-content-type="text"'},
    ).json()
    same_shape(sample("event-list-extended.json"), listed)
    fake.add_event(start=graph_dt(start), end=graph_dt(start + timedelta(hours=1)))
    sched = call(
        fake,
        "POST",
        "me/calendar/getSchedule",
        json={
            "schedules": ["me@contoso.com"],
            "startTime": {"dateTime": "2026-11-23T00:00:00", "timeZone": "UTC"},
            "endTime": {"dateTime": "2026-11-24T00:00:00", "timeZone": "UTC"},
            "availabilityViewInterval": 15,
        },
    ).json()
    same_shape(sample("getschedule.json"), sched)
    same_shape(sample("calendar-list.json"), call(fake, "GET", "me/calendars").json())


def test_errors(fake: GraphFake) -> None:
    fake.expire_links()
    expired = call(
        fake,
        "GET",
        "me/mailFolders/inbox/messages/delta",
        params={"$deltatoken": "eyJtb2RlIjogImRlbHRhIiwgImciOiAtMX0"},
    )
    assert expired.status_code == 410
    same_shape(sample("error-410.json"), expired.json())
    refused = requests.get(f"{fake.url}/me/calendar", timeout=10)
    assert refused.status_code == 401
    same_shape(sample("error-429.json")["error"] | {"innerError": {}}, refused.json()["error"])


def test_connectors_read_the_recorded_samples() -> None:
    page = sample("message-delta.json")
    recs = [message_record(m, account="a", folder="Inbox", sent=False) for m in page["value"]]
    assert [r.from_[0].email for r in recs] == ["danas@contoso.com", "samanthab@contoso.com"]
    assert [r.flags for r in recs] == [frozenset(), frozenset({"\\Seen"})]
    assert all(r.message_id.startswith("kk-") for r in recs)  # no internetMessageId selected
    nxt = sample("message-delta-next-round.json")["value"][1]
    assert message_record(nxt, account="a", folder="Inbox", sent=False).flags == {"\\Seen"}
    created = event_record(sample("event-create.json"), "s", UTC)
    assert created.uid == sample("event-create.json")["iCalUId"]
    # "Pacific Standard Time" is a Windows zone name: read as UTC (kithkeep asks for UTC)
    assert created.start == datetime(2017, 4, 15, 11, tzinfo=UTC)
    own = sink_event(sample("event-list-extended.json")["value"][0])
    assert (own.key, own.title, own.description) == (
        "neglected:p-ana:2026-08-25",
        "Reconnect with Ana Silva",
        "Because.",
    )
    item = sample("getschedule.json")["value"][0]["scheduleItems"][0]
    assert parse_graph_time(item["start"]) == datetime(2019, 3, 15, 12, tzinfo=UTC)
