"""Google Calendar, request by request, through HttpMockSequence and the offline discovery document.

Each test scripts the answers Google gives (shaped like the documented
responses of events.list, events.insert, events.get and freebusy.query) and
asserts on every request the client sends: method, path, query and body.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from freezegun import freeze_time
from googleapiclient.http import HttpMockSequence

from kithkeep import google_auth
from kithkeep.connectors.google_calendar import (
    GoogleCalendarSink,
    GoogleCalendarSinkConfig,
    GoogleCalendarSource,
    GoogleCalendarSourceConfig,
    event_id_for_key,
)
from kithkeep.errors import AuthError, KithkeepError, SourceError
from kithkeep.reminders import load_state, reconcile
from kithkeep.store import Store
from kithkeep.sync import sync_source
from tests.contract.sink_contract import CONFIG, FINDINGS, NOW
from tests.contract.test_sink_google import error_body, record_backoff, service

OK = {"status": "200", "content-type": "application/json; charset=UTF-8"}
EVENTS = "/calendar/v3/calendars/primary/events"
SYNC_1 = "CPDAlvWDx70CEPDAlvWDx70CGAU="
SYNC_2 = "CKCbrKvpn8gCEKCbrKvpn8gCGAU="


def page(items: list[dict[str, Any]], *, next_page: str = "", next_sync: str = "") -> str:
    body: dict[str, Any] = {
        "kind": "calendar#events",
        "etag": '"p32ofplf4bk8ts0g"',
        "summary": "me@example.org",
        "updated": "2026-11-22T18:00:00.000Z",
        "timeZone": "Europe/Berlin",
        "accessRole": "owner",
        "defaultReminders": [{"method": "popup", "minutes": 10}],
        "items": items,
    }
    if next_page:
        body["nextPageToken"] = next_page
    if next_sync:
        body["nextSyncToken"] = next_sync
    return json.dumps(body)


def event(event_id: str, start: str, end: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "calendar#event",
        "etag": '"3312345678901000"',
        "id": event_id,
        "status": "confirmed",
        "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
        "created": "2026-10-01T10:00:00.000Z",
        "updated": "2026-10-01T10:00:00.000Z",
        "summary": "Coffee",
        "creator": {"email": "me@example.org", "self": True},
        "organizer": {"email": "me@example.org", "self": True},
        "start": {"dateTime": start, "timeZone": "Europe/Berlin"},
        "end": {"dateTime": end, "timeZone": "Europe/Berlin"},
        "iCalUID": f"{event_id}@google.com",
        "sequence": 0,
        "reminders": {"useDefault": True},
        "eventType": "default",
        **extra,
    }


MEETING = event(
    "m1meeting",
    "2026-11-10T10:00:00+01:00",
    "2026-11-10T11:00:00+01:00",
    attendees=[
        {"email": "me@example.org", "self": True, "organizer": True, "responseStatus": "accepted"},
        {"email": "Ana@Example.org", "displayName": "Ana Silva", "responseStatus": "accepted"},
        {"email": "bo@example.org", "responseStatus": "declined", "optional": True},
        {
            "email": "c_1888@resource.calendar.google.com",
            "displayName": "Room 1",
            "resource": True,
            "responseStatus": "accepted",
        },
    ],
)
ALL_DAY = {
    **event("d1allday", "", ""),
    "start": {"date": "2026-11-12"},
    "end": {"date": "2026-11-13"},
}
INSTANCE = event(
    "w1weekly_20261116T090000Z",
    "2026-11-16T10:00:00+01:00",
    "2026-11-16T10:30:00+01:00",
    # an instance carries its series' iCalUID
    iCalUID="w1weekly@google.com",
    recurringEventId="w1weekly",
    originalStartTime={"dateTime": "2026-11-16T10:00:00+01:00", "timeZone": "Europe/Berlin"},
)
OWN = event(
    "own1",
    "2026-11-11T09:00:00Z",
    "2026-11-11T09:15:00Z",
    extendedProperties={"private": {"kithkeep": "1", "kithkeepKey": "neglected:p:1"}},
)


def requests(http: HttpMockSequence) -> list[tuple[str, str, dict[str, list[str]], Any]]:
    out = []
    for uri, method, body, _headers in http.request_sequence:
        parts = urllib.parse.urlsplit(uri)
        out.append(
            (
                method,
                parts.path,
                urllib.parse.parse_qs(parts.query),
                json.loads(body) if body else None,
            )
        )
    return out


def list_query(**extra: str) -> dict[str, list[str]]:
    q = {"singleEvents": ["true"], "maxResults": ["250"], "alt": ["json"]}
    q.update({k: [v] for k, v in extra.items()})
    return q


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'kk.sqlite3'}")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _clock() -> Iterator[None]:
    with freeze_time("2026-11-23 07:00:00"):
        yield


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    return record_backoff(monkeypatch)


def source(http: HttpMockSequence) -> GoogleCalendarSource:
    return GoogleCalendarSource("gcal", GoogleCalendarSourceConfig(), service(http), UTC)


def stored(store: Store) -> dict[tuple[str, str], Any]:
    return {(e.uid, e.recurrence_id): e for e in store.iter_events()}


def full_sync(store: Store) -> None:
    http = HttpMockSequence(
        [
            (OK, page([MEETING, ALL_DAY], next_page="pg2")),
            (OK, page([INSTANCE, OWN], next_sync=SYNC_1)),
        ]
    )
    sync_source(store, source(http))


def test_full_sync_then_incremental(store: Store) -> None:
    http = HttpMockSequence(
        [
            (OK, page([MEETING, ALL_DAY], next_page="pg2")),
            (OK, page([INSTANCE, OWN], next_sync=SYNC_1)),
        ]
    )
    sync_source(store, source(http))
    assert requests(http) == [
        ("GET", EVENTS, list_query(), None),
        ("GET", EVENTS, list_query(pageToken="pg2"), None),
    ]
    got = stored(store)
    assert set(got) == {
        ("m1meeting@google.com", ""),
        ("d1allday@google.com", ""),
        ("w1weekly@google.com", "2026-11-16T09:00:00+00:00"),
        ("own1@google.com", ""),
    }
    m = got[("m1meeting@google.com", "")]
    assert m.start == datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
    assert m.my_status == "ACCEPTED" and m.organizer == "me@example.org"
    assert [(a.email, a.partstat, a.cutype, a.role) for a in m.attendees] == [
        ("me@example.org", "ACCEPTED", "INDIVIDUAL", "REQ-PARTICIPANT"),
        ("ana@example.org", "ACCEPTED", "INDIVIDUAL", "REQ-PARTICIPANT"),
        ("bo@example.org", "DECLINED", "INDIVIDUAL", "OPT-PARTICIPANT"),
        ("c_1888@resource.calendar.google.com", "ACCEPTED", "RESOURCE", "REQ-PARTICIPANT"),
    ]
    assert got[("d1allday@google.com", "")].all_day
    assert got[("own1@google.com", "")].own and not m.own
    assert store.checkpoints("gcal")["primary"]["sync_token"] == SYNC_1

    # incremental: one event deleted, one occurrence cancelled, one changed
    changed = {**ALL_DAY, "summary": "Holiday"}
    http = HttpMockSequence(
        [
            (
                OK,
                page(
                    [
                        {
                            "kind": "calendar#event",
                            "etag": '"1"',
                            "id": "m1meeting",
                            "status": "cancelled",
                        },
                        {
                            "kind": "calendar#event",
                            "etag": '"2"',
                            "id": "w1weekly_20261116T090000Z",
                            "status": "cancelled",
                            "recurringEventId": "w1weekly",
                            "originalStartTime": {"dateTime": "2026-11-16T10:00:00+01:00"},
                        },
                        changed,
                    ],
                    next_sync=SYNC_2,
                ),
            )
        ]
    )
    sync_source(store, source(http))
    assert requests(http) == [("GET", EVENTS, list_query(syncToken=SYNC_1), None)]
    got = stored(store)
    assert set(got) == {("d1allday@google.com", ""), ("own1@google.com", "")}
    assert got[("d1allday@google.com", "")].summary == "Holiday"
    assert store.checkpoints("gcal")["primary"]["sync_token"] == SYNC_2


def test_410_gone_means_full_sync(store: Store) -> None:
    full_sync(store)
    gone = error_body(
        410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required."
    )
    http = HttpMockSequence(
        [
            ({"status": "410"}, gone),
            (OK, page([OWN], next_sync=SYNC_2)),
        ]
    )
    sync_source(store, source(http))
    assert requests(http) == [
        ("GET", EVENTS, list_query(syncToken=SYNC_1), None),
        ("GET", EVENTS, list_query(), None),
    ]
    # the full sync replaced what was stored
    assert set(stored(store)) == {("own1@google.com", "")}
    assert store.checkpoints("gcal")["primary"]["sync_token"] == SYNC_2


def test_429_twice_then_success(store: Store, sleeps: list[float]) -> None:
    limited = error_body(429, "rateLimitExceeded", "Rate Limit Exceeded")
    http = HttpMockSequence(
        [
            ({"status": "429"}, limited),
            ({"status": "429"}, limited),
            (OK, page([MEETING], next_sync=SYNC_1)),
        ]
    )
    sync_source(store, source(http))
    assert [r[:3] for r in requests(http)] == [("GET", EVENTS, list_query())] * 3
    assert sleeps == [2.0, 4.0]
    assert set(stored(store)) == {("m1meeting@google.com", "")}


def test_500_until_retries_run_out(store: Store, sleeps: list[float]) -> None:
    full_sync(store)
    before = stored(store)
    broken = error_body(500, "backendError", "Backend Error")
    http = HttpMockSequence([({"status": "500"}, broken)] * 6)
    with pytest.raises(SourceError) as info:
        sync_source(store, source(http))
    assert info.value.format_message() == (
        "source gcal: list events failed 6 times (HTTP 500 backendError); giving up for now "
        "(nothing was lost: the next run tries again)"
    )
    assert sleeps == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert len(http.request_sequence) == 6
    # nothing lost: the events and the sync token are as they were
    assert stored(store) == before
    assert store.checkpoints("gcal")["primary"]["sync_token"] == SYNC_1
    # and the next run converges from the saved token
    http = HttpMockSequence([(OK, page([], next_sync=SYNC_2))])
    sync_source(store, source(http))
    assert requests(http) == [("GET", EVENTS, list_query(syncToken=SYNC_1), None)]
    assert stored(store) == before


def test_not_found_is_not_retried(store: Store, sleeps: list[float]) -> None:
    http = HttpMockSequence([({"status": "404"}, error_body(404, "notFound", "Not Found"))])
    with pytest.raises(SourceError, match="not found"):
        sync_source(store, source(http))
    assert sleeps == []


# ------------------------------------------------------------------ sink


def test_event_id_is_base32hex() -> None:
    eid = event_id_for_key("neglected:p-ana:2026-08-25")
    assert eid == event_id_for_key("neglected:p-ana:2026-08-25")
    assert eid != event_id_for_key("neglected:p-ana:2026-08-26")
    assert 5 <= len(eid) <= 1024 and set(eid) <= set("0123456789abcdefghijklmnopqrstuv")


def test_sink_writes_and_a_user_deleted_reminder_is_dismissed(store: Store) -> None:
    ana = FINDINGS[0]
    ana_id = event_id_for_key(ana.key)
    busy = {
        "kind": "calendar#freeBusy",
        "timeMin": "2026-11-23T07:00:00.000Z",
        "timeMax": "2027-01-22T07:00:00.000Z",
        "calendars": {
            "primary": {"busy": [{"start": "2026-11-23T09:00:00Z", "end": "2026-11-23T10:00:00Z"}]}
        },
    }
    created = {
        **event(ana_id, "2026-11-23T10:00:00Z", "2026-11-23T10:15:00Z"),
        "transparency": "transparent",
        "extendedProperties": {"private": {"kithkeep": "1", "kithkeepKey": ana.key}},
    }
    http = HttpMockSequence(
        [
            (OK, page([])),
            (OK, json.dumps(busy)),
            (OK, json.dumps(created)),
        ]
    )
    sink = GoogleCalendarSink("google", GoogleCalendarSinkConfig(), service(http))
    assert reconcile(sink, [ana], CONFIG, store, NOW) == {"create": 1}
    sent = requests(http)
    assert sent[0] == (
        "GET",
        EVENTS,
        {"privateExtendedProperty": ["kithkeep=1"], "maxResults": ["250"], "alt": ["json"]},
        None,
    )
    assert sent[1] == (
        "POST",
        "/calendar/v3/freeBusy",
        {"alt": ["json"]},
        {
            "timeMin": "2026-11-23T07:00:00Z",
            "timeMax": "2027-01-22T07:00:00Z",
            "items": [{"id": "primary"}],
        },
    )
    method, path, _q, body = sent[2]
    assert (method, path) == ("POST", EVENTS)
    # the first free slot after the busy hour
    assert body == {
        "id": ana_id,
        "summary": "Reconnect with Ana Silva",
        "description": body["description"],
        "start": {"dateTime": "2026-11-23T10:00:00Z"},
        "end": {"dateTime": "2026-11-23T10:15:00Z"},
        "transparency": "transparent",
        "reminders": {"useDefault": False, "overrides": [{"method": "popup", "minutes": 10}]},
        "extendedProperties": {"private": {"kithkeep": "1", "kithkeepKey": ana.key}},
    }
    assert body["description"].endswith("Details: kithkeep show p-ana")
    assert body["description"].startswith("Offer something useful")

    # the user deleted it in Google Calendar, and kithkeep's state was lost too
    # (a fresh store): the insert meets the cancelled event's id
    fresh = Store.open("sqlite://")
    cancelled = {**created, "status": "cancelled"}
    http = HttpMockSequence(
        [
            (OK, page([])),
            (OK, json.dumps({**busy, "calendars": {"primary": {"busy": []}}})),
            (
                {"status": "409"},
                error_body(409, "duplicate", "The requested identifier already exists."),
            ),
            (OK, json.dumps(cancelled)),
        ]
    )
    sink = GoogleCalendarSink("google", GoogleCalendarSinkConfig(), service(http))
    assert reconcile(sink, [ana], CONFIG, fresh, NOW) == {"forget": 1}
    assert [(m, p) for m, p, _q, _b in requests(http)] == [
        ("GET", EVENTS),
        ("POST", "/calendar/v3/freeBusy"),
        ("POST", EVENTS),
        ("GET", f"{EVENTS}/{ana_id}"),
    ]
    assert load_state(fresh, "google")[ana.key].status == "dismissed"
    fresh.close()


def test_sink_creates_its_calendar(store: Store) -> None:
    http = HttpMockSequence(
        [
            (
                OK,
                json.dumps(
                    {
                        "kind": "calendar#calendarList",
                        "etag": '"p1"',
                        "nextSyncToken": "x",
                        "items": [
                            {
                                "kind": "calendar#calendarListEntry",
                                "id": "me@example.org",
                                "summary": "me@example.org",
                                "accessRole": "owner",
                            }
                        ],
                    }
                ),
            ),
            (
                OK,
                json.dumps(
                    {
                        "kind": "calendar#calendar",
                        "etag": '"c1"',
                        "id": "abc@group.calendar.google.com",
                        "summary": "kithkeep",
                    }
                ),
            ),
            (OK, page([])),
        ]
    )
    sink = GoogleCalendarSink(
        "google", GoogleCalendarSinkConfig(create_calendar=True), service(http)
    )
    assert sink.list_own() == []
    assert requests(http) == [
        (
            "GET",
            "/calendar/v3/users/me/calendarList",
            {"minAccessRole": ["owner"], "alt": ["json"]},
            None,
        ),
        ("POST", "/calendar/v3/calendars", {"alt": ["json"]}, {"summary": "kithkeep"}),
        (
            "GET",
            "/calendar/v3/calendars/abc%40group.calendar.google.com/events",
            {"privateExtendedProperty": ["kithkeep=1"], "maxResults": ["250"], "alt": ["json"]},
            None,
        ),
    ]


# ------------------------------------------------------------------ OAuth token


class _TokenEndpoint(http.server.BaseHTTPRequestHandler):
    posts: ClassVar[list[dict[str, list[str]]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        _TokenEndpoint.posts.append(urllib.parse.parse_qs(self.rfile.read(length).decode()))
        body = json.dumps(
            {
                "access_token": "ya29.fresh-token",
                "expires_in": 3599,
                "token_type": "Bearer",
                "refresh_token": "1//refresh-token",
                "scope": google_auth.CALENDAR_SCOPE,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def token_endpoint() -> Iterator[str]:
    _TokenEndpoint.posts = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "kithkeep" / "google-token.json"


def test_console_flow_stores_the_token_privately(
    token_endpoint: str, state_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # oauthlib insists on https; the fake token endpoint is plain http on 127.0.0.1
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    secrets = tmp_path / "client.json"
    secrets.write_text(
        json.dumps(
            {
                "installed": {
                    "client_id": "123.apps.googleusercontent.com",
                    "client_secret": "client-secret-value",
                    "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                    "token_uri": token_endpoint,
                    "redirect_uris": ["http://localhost"],
                }
            }
        )
    )
    said: list[str] = []
    creds = google_auth.authorize_console(
        secrets,
        [google_auth.CALENDAR_SCOPE],
        ask=lambda _prompt: "http://127.0.0.1:1/?state=x&code=4/0AVG-code&scope=calendar",
        say=said.append,
    )
    assert "https://accounts.google.com/o/oauth2/auth?" in said[0]
    assert "access_type=offline" in said[0]
    assert _TokenEndpoint.posts[0]["code"] == ["4/0AVG-code"]
    assert _TokenEndpoint.posts[0]["redirect_uri"] == [google_auth.CONSOLE_REDIRECT]
    path = google_auth.save_credentials(creds)
    assert path == state_home
    assert path.stat().st_mode & 0o777 == 0o600
    stored = json.loads(path.read_text())
    assert stored["token"] == "ya29.fresh-token"
    assert stored["refresh_token"] == "1//refresh-token"


class _FakeTokenTransport:
    """google.auth.transport.Request at the seam: Google's token endpoint, answered here."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, list[str]]]] = []

    def __call__(
        self, url: str, method: str = "GET", body: Any = None, headers: Any = None, **kw: Any
    ) -> Any:
        from google.auth.transport import Response

        form = urllib.parse.parse_qs(body.decode() if isinstance(body, bytes) else body)
        self.calls.append((method, url, form))

        class _Resp(Response):  # type: ignore[misc]
            status = 200
            headers: ClassVar[dict[str, str]] = {"content-type": "application/json"}
            data = json.dumps(
                {"access_token": "ya29.fresh-token", "expires_in": 3599, "token_type": "Bearer"}
            ).encode()

        return _Resp()


def test_expired_token_is_refreshed_and_saved(state_home: Path) -> None:
    state_home.parent.mkdir(parents=True)
    state_home.write_text(
        json.dumps(
            {
                "token": "ya29.old",
                "refresh_token": "1//refresh-token",
                "token_uri": "https://oauth2.googleapis.com/token",
                "client_id": "123.apps.googleusercontent.com",
                "client_secret": "client-secret-value",
                "scopes": [google_auth.CALENDAR_SCOPE],
                "expiry": "2026-11-23T06:00:00Z",
            }
        )
    )
    transport = _FakeTokenTransport()
    creds = google_auth.load_credentials(transport=transport)
    assert creds.token == "ya29.fresh-token"
    [(method, url, form)] = transport.calls
    assert (method, url) == ("POST", "https://oauth2.googleapis.com/token")
    assert form["grant_type"] == ["refresh_token"]
    assert form["refresh_token"] == ["1//refresh-token"]
    assert json.loads(state_home.read_text())["token"] == "ya29.fresh-token"
    assert state_home.stat().st_mode & 0o777 == 0o600
    # still valid: no second request
    google_auth.load_credentials(transport=transport)
    assert len(transport.calls) == 1


def test_missing_token_says_what_to_run(state_home: Path) -> None:
    with pytest.raises(AuthError) as info:
        google_auth.load_credentials()
    assert "kithkeep auth google" in info.value.format_message()


def test_pasted_address_or_code() -> None:
    assert (
        google_auth.code_from_pasted(" http://127.0.0.1:1/?state=s&code=4/abc&scope=x ") == "4/abc"
    )
    assert google_auth.code_from_pasted("4/abc") == "4/abc"
    with pytest.raises(AuthError):
        google_auth.code_from_pasted("http://127.0.0.1:1/?error=access_denied&code=")


def test_without_a_token_only_the_google_source_fails(
    state_home: Path, tmp_path: Path, store: Store
) -> None:
    from kithkeep.config import parse_config
    from kithkeep.connectors import registry
    from kithkeep.pipeline import sync_all

    ics = tmp_path / "cal.ics"
    ics.write_bytes(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nEND:VCALENDAR\r\n")
    config = parse_config(
        {
            "sources": {
                "gcal": {"type": "google"},
                "file": {"type": "ics", "path": str(ics)},
            },
            "sinks": {"greminders": {"type": "google", "create_calendar": True}},
        },
        None,
    )
    registry.validate(config)
    results, errors, _me = sync_all(config, store)
    assert [r.source for r in results] == ["file"]
    assert errors == {
        "gcal": f"source gcal: no Google token at {state_home} (run `kithkeep auth google` first)"
    }
    sink = registry.build_sink(config, config.sinks[0])  # builds without touching the token
    with pytest.raises(KithkeepError, match="no Google token"):
        sink.list_own()


# ------------------------------------------------------------------ identity


def cancelled(event_id: str) -> dict[str, Any]:
    """A deleted event as incremental sync may report it: the documented minimum."""
    return {"kind": "calendar#event", "etag": '"9"', "id": event_id, "status": "cancelled"}


SERIES_2 = event(
    "w1weekly_20261123T090000Z",
    "2026-11-23T10:00:00+01:00",
    "2026-11-23T10:30:00+01:00",
    iCalUID="w1weekly@google.com",
    recurringEventId="w1weekly",
    originalStartTime={"dateTime": "2026-11-23T10:00:00+01:00", "timeZone": "Europe/Berlin"},
)
ALL_DAY_INSTANCE = {
    **event("a1daily_20261120", "", ""),
    "iCalUID": "a1daily@google.com",
    "recurringEventId": "a1daily",
    "originalStartTime": {"date": "2026-11-20"},
    "start": {"date": "2026-11-20"},
    "end": {"date": "2026-11-21"},
}
# an invitation from another calendar system keeps its own iCalUID
IMPORTED = event(
    "imp0rted",
    "2026-11-18T15:00:00Z",
    "2026-11-18T16:00:00Z",
    iCalUID="040000008200E00074C5B7101A82E008@example.com",
)


def test_deleted_instances_reported_by_id_only_are_deleted(store: Store) -> None:
    http = HttpMockSequence(
        [(OK, page([INSTANCE, SERIES_2, ALL_DAY_INSTANCE, IMPORTED], next_sync=SYNC_1))]
    )
    sync_source(store, source(http))
    assert set(stored(store)) == {
        ("w1weekly@google.com", "2026-11-16T09:00:00+00:00"),
        ("w1weekly@google.com", "2026-11-23T09:00:00+00:00"),
        ("a1daily@google.com", "2026-11-20T00:00:00+00:00"),
        ("040000008200E00074C5B7101A82E008@example.com", ""),
    }
    # the next run: three deletions with nothing but their ids (an instance's id
    # is its series' id and its original start, in UTC)
    http = HttpMockSequence(
        [
            (
                OK,
                page(
                    [
                        cancelled("w1weekly_20261116T090000Z"),
                        cancelled("a1daily_20261120"),
                        cancelled("imp0rted"),
                    ],
                    next_sync=SYNC_2,
                ),
            )
        ]
    )
    sync_source(store, source(http))
    assert requests(http) == [("GET", EVENTS, list_query(syncToken=SYNC_1), None)]
    assert set(stored(store)) == {("w1weekly@google.com", "2026-11-23T09:00:00+00:00")}


def test_a_checkpoint_from_before_icaluids_means_a_full_sync(store: Store) -> None:
    from kithkeep.records import Checkpoint, EventBatch

    # stored by Google's event id, as before: a full sync stores them again
    store.apply_event_batch(
        EventBatch(checkpoint=Checkpoint("gcal", "primary", {"sync_token": SYNC_1})), "gcal"
    )
    http = HttpMockSequence([(OK, page([MEETING], next_sync=SYNC_2))])
    sync_source(store, source(http))
    assert requests(http) == [("GET", EVENTS, list_query(), None)]
    assert set(stored(store)) == {("m1meeting@google.com", "")}


def test_one_meeting_seen_through_google_and_an_ics_file_is_one_occurrence(
    store: Store, tmp_path: Path
) -> None:
    from kithkeep.config import AnalysisConfig, Config
    from kithkeep.connectors.ics import IcsSource, IcsSourceConfig
    from kithkeep.model.meetings import meetings_from_events

    uid = "weekly-sync-7f3a@example.org"
    people = [
        {"email": "me@example.org", "self": True, "responseStatus": "accepted"},
        {"email": "ana@example.org", "responseStatus": "accepted"},
    ]
    google = [
        event(
            "s3ries_20261109T090000Z",
            "2026-11-09T09:00:00Z",
            "2026-11-09T10:00:00Z",
            iCalUID=uid,
            recurringEventId="s3ries",
            originalStartTime={"dateTime": "2026-11-09T09:00:00Z"},
            attendees=people,
        ),
        # moved to the afternoon: its identity is still where the rule put it
        event(
            "s3ries_20261116T090000Z",
            "2026-11-16T14:00:00Z",
            "2026-11-16T15:00:00Z",
            iCalUID=uid,
            recurringEventId="s3ries",
            originalStartTime={"dateTime": "2026-11-16T09:00:00Z"},
            attendees=people,
        ),
    ]
    sync_source(store, source(HttpMockSequence([(OK, page(google, next_sync=SYNC_1))])))
    ics = tmp_path / "export.ics"
    attendees = (
        "ORGANIZER:mailto:me@example.org\r\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:me@example.org\r\n"
        "ATTENDEE;PARTSTAT=ACCEPTED:mailto:ana@example.org\r\n"
    )
    ics.write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261101T000000Z\r\n"
        "DTSTART:20261109T090000Z\r\nDTEND:20261109T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=2\r\n"
        f"SUMMARY:Sync\r\n{attendees}END:VEVENT\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261101T000000Z\r\n"
        "RECURRENCE-ID:20261116T090000Z\r\n"
        "DTSTART:20261116T140000Z\r\nDTEND:20261116T150000Z\r\n"
        f"SUMMARY:Sync\r\n{attendees}END:VEVENT\r\nEND:VCALENDAR\r\n",
        newline="",
    )
    sync_source(store, IcsSource.from_config("file", IcsSourceConfig(path=str(ics)), Config()))
    by_source: dict[str, set[tuple[str, str]]] = {}
    for e in store.iter_events():
        by_source.setdefault(e.source, set()).add((e.uid, e.recurrence_id))
    assert (
        by_source["gcal"]
        == by_source["file"]
        == {
            (uid, "2026-11-09T09:00:00+00:00"),
            (uid, "2026-11-16T09:00:00+00:00"),
        }
    )
    meetings = meetings_from_events(
        store.iter_events(),
        frozenset({"me@example.org"}),
        AnalysisConfig(),
        datetime(2026, 11, 23, 7, 0, tzinfo=UTC),
        lambda _addr: True,
    )
    assert [mt.meeting.date for mt in meetings] == [
        datetime(2026, 11, 9, 10, 0, tzinfo=UTC),
        datetime(2026, 11, 16, 15, 0, tzinfo=UTC),
    ]


def test_a_meeting_whose_attendees_google_omitted_is_of_unknown_size(store: Store) -> None:
    from kithkeep.config import AnalysisConfig
    from kithkeep.model.meetings import meetings_from_events

    # Google lists only the user when it omits the others: it looks like a
    # two-person meeting with the organizer, and may be an all-hands
    all_hands = event(
        "a11hands",
        "2026-11-19T16:00:00Z",
        "2026-11-19T17:00:00Z",
        organizer={"email": "ceo@example.org"},
        attendeesOmitted=True,
        attendees=[{"email": "me@example.org", "self": True, "responseStatus": "accepted"}],
    )
    small = event(
        "sma11",
        "2026-11-18T16:00:00Z",
        "2026-11-18T17:00:00Z",
        organizer={"email": "ana@example.org"},
        attendees=[{"email": "me@example.org", "self": True, "responseStatus": "accepted"}],
    )
    sync_source(store, source(HttpMockSequence([(OK, page([all_hands, small], next_sync=SYNC_1))])))
    got = stored(store)
    assert got[("a11hands@google.com", "")].attendees_omitted
    assert not got[("sma11@google.com", "")].attendees_omitted

    def meetings(unknown_size: bool) -> list[tuple[str, int | None, list[str]]]:
        found = meetings_from_events(
            store.iter_events(),
            frozenset({"me@example.org"}),
            AnalysisConfig(),
            datetime(2026, 11, 23, 7, 0, tzinfo=UTC),
            lambda _addr: True,
            unknown_size=unknown_size,
        )
        return [(mt.meeting.key, mt.meeting.size, [a for a, _n in mt.met]) for mt in found]

    # only the small meeting counts; the other is there for `show` to explain
    assert meetings(False) == [("event:sma11@google.com:", 2, ["ana@example.org"])]
    assert meetings(True) == [("event:a11hands@google.com:", None, ["ceo@example.org"])]
    # and `show` lists it with the reason it did not count
    from kithkeep.model.history import contacts_of
    from kithkeep.model.refresh import refresh, setting_of
    from kithkeep.model.stats import PersonStats

    now = datetime(2026, 11, 23, 7, tzinfo=UTC)
    refresh(store, AnalysisConfig(), ("me@example.org",), now, ())  # files the events
    setting = setting_of(store, AnalysisConfig(), ("me@example.org",), now)
    ceo = PersonStats("p-ceo", "CEO", ("ceo@example.org",))
    shown = contacts_of(store, ceo, setting)
    assert [(c.direction, c.subject) for c in shown] == [
        (
            "uncounted",
            "Coffee (not counted: the calendar did not list every attendee, so its size "
            "is unknown)",
        )
    ]
