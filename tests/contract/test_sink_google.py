"""The sink contract on Google Calendar, through a fake of the Calendar API's HTTP side.

Google's API has no real counterpart here, so this is the one seam with a
fake (STYLE.md, 11): :class:`FakeGoogleCalendar` is an ``HttpMockSequence``
(it records every request the client sends) whose answers are computed from
an in-memory calendar instead of a fixed script, shaped like the documented
responses: event resources, ``calendar#events`` pages, a cancelled tombstone
for a deleted event and 409 ``duplicate`` when its id is inserted again, 412
on a stale ``If-Match``, ``calendar#freeBusy``. ``fail`` queues error
statuses to answer before the next requests. Exact request-by-request
scripts are in test_google_calendar.py.
"""

from __future__ import annotations

import itertools
import json
import os
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import googleapiclient
import httplib2
import pytest
from googleapiclient.discovery import build_from_document
from googleapiclient.http import HttpMockSequence

from kithkeep.connectors.google_calendar import GoogleCalendarSink, GoogleCalendarSinkConfig
from kithkeep.errors import SinkError
from kithkeep.interfaces import ReminderSink, SinkEvent
from kithkeep.reminders import load_state
from kithkeep.store import Store
from tests.contract.sink_contract import CONFIG, FINDINGS, NOW, SinkContract

DISCOVERY = (
    __import__("pathlib").Path(os.path.dirname(googleapiclient.__file__))
    / "discovery_cache/documents/calendar.v3.json"
).read_text()
PREFIX = "/calendar/v3/"


def service(http: Any) -> Any:
    return build_from_document(DISCOVERY, http=http)


def error_body(code: int, reason: str, message: str) -> str:
    return json.dumps(
        {
            "error": {
                "errors": [{"domain": "global", "reason": reason, "message": message}],
                "code": code,
                "message": message,
            }
        }
    )


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeGoogleCalendar(HttpMockSequence):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__([])
        self.events: dict[str, dict[str, Any]] = {}
        self.fail: list[tuple[int, str]] = []
        self._etags = itertools.count(1)

    def _etag(self) -> str:
        return f'"{3100000000000000 + next(self._etags)}"'

    def request(
        self,
        uri: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        redirections: int = 1,
        connection_type: Any = None,
    ) -> Any:
        self._iterable.append(self._answer(uri, method, body, headers or {}))
        return super().request(uri, method, body, headers, redirections, connection_type)

    def _answer(
        self, uri: str, method: str, body: Any, headers: dict[str, str]
    ) -> tuple[dict[str, str], str]:
        if self.fail:
            status, reason = self.fail.pop(0)
            return {"status": str(status)}, error_body(status, reason, "fake failure")
        parts = urllib.parse.urlsplit(uri)
        path = parts.path.removeprefix(PREFIX).split("/")
        query = urllib.parse.parse_qs(parts.query)
        data = json.loads(body) if body else {}
        ok = {"status": "200", "content-type": "application/json; charset=UTF-8"}
        if path == ["freeBusy"]:
            cals = {item["id"]: {"busy": []} for item in data["items"]}
            return ok, json.dumps(
                {
                    "kind": "calendar#freeBusy",
                    "timeMin": data["timeMin"],
                    "timeMax": data["timeMax"],
                    "calendars": cals,
                }
            )
        assert path[0] == "calendars" and path[2] == "events", uri
        if len(path) == 3 and method == "GET":
            items = [e for e in self.events.values() if e["status"] != "cancelled"]
            for prop in query.get("privateExtendedProperty", []):
                k, _, v = prop.partition("=")
                items = [
                    e
                    for e in items
                    if e.get("extendedProperties", {}).get("private", {}).get(k) == v
                ]
            return ok, json.dumps(
                {
                    "kind": "calendar#events",
                    "etag": '"p1"',
                    "summary": "kithkeep",
                    "updated": "2026-11-23T07:00:00.000Z",
                    "timeZone": "UTC",
                    "accessRole": "owner",
                    "defaultReminders": [],
                    "nextSyncToken": "CPDAlvWDx70CEPDAlvWDx70CGAU=",
                    "items": sorted(items, key=lambda e: e["id"]),
                }
            )
        if len(path) == 3 and method == "POST":
            if data["id"] in self.events:
                return {"status": "409"}, error_body(
                    409, "duplicate", "The requested identifier already exists."
                )
            event = {
                "kind": "calendar#event",
                "etag": self._etag(),
                "status": "confirmed",
                "htmlLink": f"https://www.google.com/calendar/event?eid={data['id']}",
                "created": "2026-11-23T07:00:00.000Z",
                "updated": "2026-11-23T07:00:00.000Z",
                "creator": {"email": "me@example.org", "self": True},
                "organizer": {"email": "me@example.org", "self": True},
                "iCalUID": f"{data['id']}@google.com",
                "sequence": 0,
                **data,
            }
            self.events[data["id"]] = event
            return ok, json.dumps(event)
        event_id = path[3]
        event = self.events.get(event_id)
        if event is None:
            return {"status": "404"}, error_body(404, "notFound", "Not Found")
        if method == "GET":
            return ok, json.dumps(event)
        if method == "PATCH":
            if headers.get("If-Match") not in (None, event["etag"]):
                return {"status": "412"}, error_body(412, "conditionNotMet", "Precondition Failed")
            event.update(data)
            event["etag"] = self._etag()
            event["sequence"] += 1
            return ok, json.dumps(event)
        if method == "DELETE":
            if event["status"] == "cancelled":
                return {"status": "410"}, error_body(410, "deleted", "Resource has been deleted")
            event["status"] = "cancelled"
            return {"status": "204"}, ""
        raise AssertionError(f"unexpected {method} {uri}")

    # what the user does in Google Calendar
    def user_move(self, event_id: str, start: datetime, end: datetime) -> None:
        ev = self.events[event_id]
        ev["start"] = {"dateTime": _rfc3339(start), "timeZone": "UTC"}
        ev["end"] = {"dateTime": _rfc3339(end), "timeZone": "UTC"}
        ev["etag"] = self._etag()

    def user_delete(self, event_id: str) -> None:
        self.events[event_id]["status"] = "cancelled"
        self.events[event_id]["etag"] = self._etag()


def record_backoff(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The client's backoff waits, recorded instead of slept.

    googleapiclient sleeps ``rand() * 2**n`` seconds before its n-th retry;
    rand() returns 1 here, so the waits are 2, 4, 8, ... seconds.
    """
    import googleapiclient.http as client_http

    sleeps: list[float] = []
    monkeypatch.setattr(client_http.time, "sleep", sleeps.append)
    monkeypatch.setattr(client_http.random, "random", lambda: 1.0)
    return sleeps


class TestGoogleSink(SinkContract):
    @pytest.fixture(autouse=True)
    def _calendar(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.http = FakeGoogleCalendar()
        self.sleeps = record_backoff(monkeypatch)

    def make_sink(self) -> ReminderSink:
        return GoogleCalendarSink("google", GoogleCalendarSinkConfig(), service(self.http))

    def user_move(self, ev: SinkEvent, start: datetime, end: datetime) -> None:
        self.http.user_move(ev.uid, start, end)

    def user_delete(self, ev: SinkEvent) -> None:
        self.http.user_delete(ev.uid)

    def test_requests_have_the_documented_shape(self, store: Store) -> None:
        self.run(store, FINDINGS[:1])
        methods = [
            (m, urllib.parse.urlsplit(u).path) for u, m, _b, _h in self.http.request_sequence
        ]
        event_id = next(iter(self.http.events))
        assert methods == [
            ("GET", "/calendar/v3/calendars/primary/events"),
            ("POST", "/calendar/v3/freeBusy"),
            ("POST", "/calendar/v3/calendars/primary/events"),
        ]
        assert event_id == self.http.events[event_id]["id"]
        assert len(event_id) == 52 and set(event_id) <= set("0123456789abcdefghijklmnopqrstuv")
        assert (
            self.http.events[event_id]["extendedProperties"]["private"]["kithkeepKey"]
            == FINDINGS[0].key
        )

    def test_500_until_retries_run_out_then_next_run_converges(self, store: Store) -> None:
        self.run(store, FINDINGS[:1])
        # Ana's reminder exists; Bo's insert goes through, Cy's meets 500s until
        # the retries run out
        sink = self.make_sink()
        original = sink.create

        def failing_create(r: Any) -> SinkEvent:
            if r.key == FINDINGS[2].key:
                self.http.fail = [(500, "backendError")] * 6
            return original(r)

        sink.create = failing_create  # type: ignore[method-assign]
        from kithkeep.reminders import reconcile

        with pytest.raises(SinkError) as info:
            reconcile(sink, FINDINGS, CONFIG, store, NOW)
        assert info.value.format_message() == (
            "sink google: create a reminder failed 6 times (HTTP 500 backendError); "
            "giving up for now (nothing was lost: the next run tries again)"
        )
        assert self.sleeps == [2.0, 4.0, 8.0, 16.0, 32.0]
        # Bo was created before the failure and is recorded: nothing lost
        state = load_state(store, "google")
        assert state[FINDINGS[1].key].status == "written"
        assert FINDINGS[2].key not in state
        assert self.run(store, FINDINGS) == {"create": 1}
        assert self.run(store, FINDINGS) == {}
        assert len(self.own()) == 3

    def test_429_twice_then_success(self, store: Store) -> None:
        self.http.fail = [(429, "rateLimitExceeded"), (403, "rateLimitExceeded")]
        assert self.run(store, FINDINGS[:1]) == {"create": 1}
        assert self.sleeps == [2.0, 4.0]

    def test_forbidden_is_not_retried(self, store: Store) -> None:
        self.http.fail = [(403, "forbidden")]
        with pytest.raises(SinkError, match="access denied"):
            self.run(store, FINDINGS[:1])
        assert self.sleeps == []

    def test_crash_after_insert_is_adopted_not_duplicated(self, store: Store) -> None:
        # the insert went through but its answer was lost (a 5xx after the write):
        # the retry meets 409 on a live event and takes it
        sink = self.make_sink()
        from tests.contract.sink_contract import reminder

        r = reminder(FINDINGS[0].key, NOW + timedelta(hours=2))
        sink.create(r)
        again = sink.create(r)
        assert again.key == r.key
        assert [m for _u, m, _b, _h in self.http.request_sequence] == ["POST", "POST", "GET"]


def test_a_change_made_meanwhile_is_not_overwritten() -> None:
    http = FakeGoogleCalendar()
    sink = GoogleCalendarSink("google", GoogleCalendarSinkConfig(), service(http))
    from tests.contract.sink_contract import reminder

    sink.create(reminder("k:1", NOW))
    listed = sink.list_own()[0]
    http.user_move(listed.uid, NOW + timedelta(days=1), NOW + timedelta(days=1, hours=1))
    # our copy is stale: Google answers 412 to If-Match, the user's version stays
    assert sink.update(listed, reminder("k:1", NOW, title="Reply to Ana")) == listed
    _uri, method, _body, headers = http.request_sequence[-1]
    assert (method, headers["If-Match"]) == ("PATCH", listed.etag)
    got = sink.list_own()[0]
    assert (got.title, got.start) == ("Reconnect with Ana Silva", NOW + timedelta(days=1))


class _Dropping(HttpMockSequence):  # type: ignore[misc]
    """Raises the given network errors on the first requests, then answers ``{}``."""

    def __init__(self, failures: list[Exception]) -> None:
        super().__init__([])
        self.failures = failures
        self.calls = 0

    def request(self, uri: str, method: str = "GET", *a: Any, **kw: Any) -> Any:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return httplib2.Response({"status": "200"}), b"{}"


def test_dropped_connections_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    from kithkeep.connectors.google_calendar import Api

    sleeps = record_backoff(monkeypatch)
    http = _Dropping([ConnectionResetError(104, "reset"), TimeoutError("timed out")])
    api = Api("sink g", SinkError, max_retries=3)
    assert api.execute(service(http).calendars().get(calendarId="primary"), "read") == {}
    assert (http.calls, sleeps) == (3, [2.0, 4.0])
    # still dropped after the retries: one line that says so, nothing lost
    sleeps.clear()
    http = _Dropping([TimeoutError("timed out")] * 4)
    with pytest.raises(SinkError) as info:
        api.execute(service(http).calendars().get(calendarId="primary"), "list")
    assert info.value.format_message() == (
        "sink g: list failed 4 times (TimeoutError: timed out); giving up for now "
        "(nothing was lost: the next run tries again)"
    )
    assert sleeps == [2.0, 4.0, 8.0]


def test_a_revoked_token_is_one_line_saying_what_to_run() -> None:
    from google.auth.exceptions import RefreshError

    from kithkeep.connectors.google_calendar import Api
    from kithkeep.errors import AuthError, SourceError

    class Revoked(HttpMockSequence):  # type: ignore[misc]
        def request(self, *a: Any, **kw: Any) -> Any:
            raise RefreshError("invalid_grant: Token has been expired or revoked.")

    with pytest.raises(AuthError) as info:
        Api("source g", SourceError).execute(
            service(Revoked([])).events().list(calendarId="primary"), "list events"
        )
    assert info.value.format_message() == (
        "source g: Google refused the token while trying to list events "
        "(run `kithkeep auth google` again)"
    )


@pytest.mark.parametrize("reason", ["quotaExceeded", "dailyLimitExceeded"])
def test_a_used_up_quota_is_named_and_not_retried(
    reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kithkeep.connectors.google_calendar import Api

    sleeps = record_backoff(monkeypatch)
    http = HttpMockSequence(
        [({"status": "403"}, error_body(403, reason, "Calendar usage limits exceeded."))]
    )
    with pytest.raises(SinkError) as info:
        Api("sink g", SinkError).execute(
            service(http).events().insert(calendarId="primary", body={}), "create a reminder"
        )
    assert info.value.format_message() == (
        f"sink g: create a reminder: Google's usage limit for this project or calendar is "
        f"used up (HTTP 403 {reason}) (nothing was lost: the next run tries again once the "
        "limit resets; daily quotas reset at midnight Pacific time)"
    )
    assert "calendar id" not in info.value.format_message()
    assert sleeps == []
