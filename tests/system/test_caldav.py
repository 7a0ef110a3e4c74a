"""CalDAV against a real Radicale: the sink contract, conditional writes, and the source."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kithkeep.connectors.caldav_dav import (
    CalDavSink,
    CalDavSinkConfig,
    CalDavSource,
    CalDavSourceConfig,
)
from kithkeep.errors import AuthError, SinkError
from kithkeep.interfaces import ReminderSink, SinkEvent
from kithkeep.records import EventRecord
from kithkeep.store import Store
from kithkeep.sync import sync_source
from tests.contract.sink_contract import NOW, SinkContract, reminder
from tests.fixtures.xandikos import DavUser


def _client(user: DavUser) -> Any:
    return user.client()


def _conn(user: DavUser) -> dict[str, Any]:
    """The connection keys of a CalDAV config for ``user`` (password from KK_TEST_DAV_PW)."""
    return {
        "url": user.url,
        "username": user.username,
        "password_env": "KK_TEST_DAV_PW",
        "verify_tls": user.verify_tls,
    }


class TestCalDavSink(SinkContract):
    @pytest.fixture(autouse=True)
    def _server(self, dav_user: DavUser, monkeypatch: pytest.MonkeyPatch) -> None:
        self.user = dav_user
        monkeypatch.setenv("KK_TEST_DAV_PW", dav_user.password)
        # the user's calendar app
        self.app = _client(dav_user)

    def make_sink(self) -> ReminderSink:
        cfg = CalDavSinkConfig(**_conn(self.user))
        return CalDavSink("dav", cfg)

    def _object(self, ev: SinkEvent) -> Any:
        cal = next(
            c for c in self.app.principal().calendars() if c.get_display_name() == "kithkeep"
        )
        return cal.event_by_uid(ev.uid)

    def user_move(self, ev: SinkEvent, start: datetime, end: datetime) -> None:
        obj = self._object(ev)
        comp = obj.icalendar_component
        comp.pop("DTSTART")
        comp.pop("DTEND")
        comp.add("DTSTART", start)
        comp.add("DTEND", end)
        obj.save()

    def user_delete(self, ev: SinkEvent) -> None:
        self._object(ev).delete()


def test_writes_are_conditional(dav_user: DavUser, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KK_TEST_DAV_PW", dav_user.password)
    cfg = CalDavSinkConfig(**_conn(dav_user))
    sink = CalDavSink("dav", cfg)
    sent: list[tuple[str, dict[str, str]]] = []
    client = sink.client
    real_request = client.request

    def spy(url: str, method: str = "GET", body: str = "", headers: Any = None, *a: Any) -> Any:
        if method in ("PUT", "DELETE"):
            sent.append((method, dict(headers or {})))
        return real_request(url, method, body, headers, *a)

    monkeypatch.setattr(client, "request", spy)
    created = sink.create(reminder("k:1", NOW))
    assert created.etag
    # a second create of the same key does not overwrite: If-None-Match refuses it
    again = sink.create(reminder("k:1", NOW + timedelta(hours=1), title="other"))
    assert again.start == NOW and again.title == "Reconnect with Ana Silva"
    listed = sink.list_own()[0]
    # the user edits the event: our ETag is stale, the update must not overwrite it
    app = _client(dav_user)
    obj = next(
        c for c in app.principal().calendars() if c.get_display_name() == "kithkeep"
    ).event_by_uid(listed.uid)
    obj.icalendar_component["SUMMARY"] = "my own title"
    obj.save()
    stale = sink.update(listed, reminder("k:1", NOW, title="kithkeep's title"))
    assert stale == listed
    sink.delete(listed)  # stale ETag: refused, kept
    assert sink.list_own()[0].title == "my own title"
    assert [m for m, _ in sent] == ["PUT", "PUT", "PUT", "DELETE"]
    assert sent[0][1]["If-None-Match"] == "*"
    assert sent[1][1]["If-None-Match"] == "*"
    assert sent[2][1]["If-Match"] == listed.etag
    assert sent[3][1]["If-Match"] == listed.etag
    # with a fresh listing the delete goes through
    sink.delete(sink.list_own()[0])
    assert sink.list_own() == []


def test_wrong_password_is_a_clear_error(
    dav_user: DavUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KK_TEST_DAV_PW", "wrong")
    src = CalDavSource(
        "dav",
        CalDavSourceConfig(**_conn(dav_user)),
        UTC,
    )
    with pytest.raises(AuthError, match="refused the credentials"):
        src.check()
    sink = CalDavSink(
        "dav",
        CalDavSinkConfig(**_conn(dav_user)),
    )
    with pytest.raises(SinkError):
        sink.list_own()


# ---------------------------------------------------------------- source

MEETING = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:test
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20260101T000000Z
DTSTART:{start}
DTEND:{end}
SUMMARY:{summary}
ORGANIZER:mailto:me@example.org
ATTENDEE;CN=Ana Silva;PARTSTAT=ACCEPTED:mailto:Ana@Example.org
ATTENDEE;CUTYPE=ROOM;PARTSTAT=ACCEPTED:mailto:room1@example.org
{extra}END:VEVENT
END:VCALENDAR
"""


def _meeting(uid: str, start: datetime, summary: str = "Coffee", extra: str = "") -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    return MEETING.format(
        uid=uid,
        start=start.strftime(fmt),
        end=(start + timedelta(hours=1)).strftime(fmt),
        summary=summary,
        extra=extra,
    ).replace("\n", "\r\n")


def _events(store: Store) -> dict[tuple[str, str], EventRecord]:
    return {(e.uid, e.recurrence_id): e for e in store.iter_events()}


@pytest.mark.parametrize("sync_collection", [True, False], ids=["sync-collection", "etags"])
def test_source_follows_changes(
    dav_user: DavUser,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    sync_collection: bool,
) -> None:
    monkeypatch.setenv("KK_TEST_DAV_PW", dav_user.password)
    app = _client(dav_user)
    cal = app.principal().make_calendar(name="work")
    other = app.principal().make_calendar(name="home")
    now = datetime.now(UTC).replace(microsecond=0)
    cal.save_event(_meeting("m1", now - timedelta(days=3)))
    cal.save_event(_meeting("m2", now - timedelta(days=2)))
    cal.save_event(
        _meeting("weekly", now - timedelta(days=20), extra="RRULE:FREQ=WEEKLY;COUNT=3\n")
    )
    cal.save_event(_meeting("own", now - timedelta(days=1), extra="X-KITHKEEP-KEY:neglected:p:1\n"))
    other.save_event(_meeting("h1", now - timedelta(days=5)))
    cfg = CalDavSourceConfig(
        **_conn(dav_user),
        calendars=("work",),
        sync_collection=sync_collection,
    )
    store = Store.open(f"sqlite:///{tmp_path / 'kk.sqlite3'}")
    src = CalDavSource("dav", cfg, UTC)
    sync_source(store, src)
    got = _events(store)
    assert {k[0] for k in got} == {"m1", "m2", "weekly", "own"}  # not the home calendar
    assert len([k for k in got if k[0] == "weekly"]) == 3
    m1 = got[("m1", "")]
    assert m1.organizer == "me@example.org"
    assert [(a.email, a.partstat, a.cutype) for a in m1.attendees] == [
        ("ana@example.org", "ACCEPTED", "INDIVIDUAL"),
        ("room1@example.org", "ACCEPTED", "ROOM"),
    ]
    assert got[("own", "")].own and not m1.own

    # nothing changed: nothing fetched
    fetched: list[str] = []
    real = src.client.request

    def spy(url: str, method: str = "GET", body: Any = "", *a: Any) -> Any:
        if method == "GET":
            fetched.append(url)
        text = body.decode() if isinstance(body, bytes) else str(body)
        if method == "REPORT" and "calendar-multiget" in text:
            fetched.extend(re.findall(r"<(?:\w+:)?href>([^<]*)</", text))
        return real(url, method, body, *a)

    monkeypatch.setattr(src.client, "request", spy)
    sync_source(store, src)
    assert fetched == []
    assert _events(store) == got

    # change one, delete one, add one
    obj = cal.event_by_uid("m1")
    obj.icalendar_component["SUMMARY"] = "Lunch"
    obj.save()
    cal.event_by_uid("m2").delete()
    cal.save_event(_meeting("m3", now - timedelta(hours=5)))
    sync_source(store, src)
    after = _events(store)
    assert after[("m1", "")].summary == "Lunch"
    assert ("m2", "") not in after
    assert ("m3", "") in after
    # only m1 and m3, in one calendar-multiget
    assert sorted(h.rsplit("/", 1)[-1] for h in fetched) == [
        "m1.ics",
        "m3.ics",
    ]
    store.close()
    src.close()


def test_expired_sync_token_means_full_listing(
    dav_user: DavUser, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("KK_TEST_DAV_PW", dav_user.password)
    app = _client(dav_user)
    cal = app.principal().make_calendar(name="work")
    now = datetime.now(UTC).replace(microsecond=0)
    cal.save_event(_meeting("m1", now - timedelta(days=3)))
    cfg = CalDavSourceConfig(**_conn(dav_user))
    store = Store.open(f"sqlite:///{tmp_path / 'kk.sqlite3'}")
    src = CalDavSource("dav", cfg, UTC)
    sync_source(store, src)
    scope, state = next(iter(store.checkpoints("dav").items()))
    # the server forgot the token (Radicale answers 403 valid-sync-token)
    from kithkeep.records import Checkpoint, EventBatch

    store.apply_event_batch(
        EventBatch(
            checkpoint=Checkpoint(
                "dav", scope, {**state, "sync_token": "http://radicale.org/ns/sync/gone"}
            )
        ),
        "dav",
    )
    cal.event_by_uid("m1").delete()
    cal.save_event(_meeting("m4", now - timedelta(days=1)))
    sync_source(store, src)
    assert {e.uid for e in store.iter_events()} == {"m4"}
    assert store.checkpoints("dav")[scope]["sync_token"] != "http://radicale.org/ns/sync/gone"
    store.close()
    src.close()


# ---------------------------------------------------------------- end to end


def _kk(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from kithkeep.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_cli_run_writes_reminders_to_caldav_and_reads_them_back_as_own(
    dav_user: DavUser, tmp_path: Path
) -> None:
    env = {**os.environ, "KK_TEST_DAV_PW": dav_user.password}
    d = tmp_path / "demo"
    assert _kk("demo", "--dir", str(d), env=env).returncode == 0
    config = d / "config.toml"
    text = config.read_text().replace('sink = "reminders"', 'sink = "dav"')
    text += f"""
[sinks.dav]
type = "caldav"
{dav_user.toml()}
[sources.dav]
type = "caldav"
{dav_user.toml()}"""
    config.write_text(text)
    # a real account has a calendar already; one with none is an error (discovery failed)
    _client(dav_user).principal().make_calendar(name="personal")
    first = _kk("--config", str(config), "run", "--json", env=env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["sink"] == "dav"
    created = report["reminders"].get("create", 0)
    assert created >= 1
    app = _client(dav_user)
    cal = next(c for c in app.principal().calendars() if c.get_display_name() == "kithkeep")
    titles = sorted(str(e.icalendar_component["SUMMARY"]) for e in cal.events())
    assert len(titles) == created
    assert "Reconnect with Ana Silva" in titles
    # the second run reads the reminders back through the source (own events, never
    # meetings) and changes nothing
    second = _kk("--config", str(config), "run", "--json", env=env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["reminders"] == {}
    store = Store.open(f"sqlite:///{d / 'kithkeep.sqlite3'}")
    dav_events = [e for e in store.iter_events() if e.source == "dav"]
    store.close()
    assert len(dav_events) == created and all(e.own for e in dav_events)


def test_reminders_avoid_busy_time_in_other_calendars(
    dav_user: DavUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kithkeep.reminders import reconcile
    from tests.contract.sink_contract import CONFIG, FINDINGS

    monkeypatch.setenv("KK_TEST_DAV_PW", dav_user.password)
    app = _client(dav_user)
    work = app.principal().make_calendar(name="work")
    # Monday 09:00-10:30 is taken; an all-day event and a cancelled one block nothing
    work.save_event(_meeting("standup", datetime(2026, 11, 23, 9, 0, tzinfo=UTC)))
    work.save_event(_meeting("standup2", datetime(2026, 11, 23, 9, 30, tzinfo=UTC)))
    work.save_event(
        _meeting("gone", datetime(2026, 11, 23, 10, 30, tzinfo=UTC), extra="STATUS:CANCELLED\n")
    )
    cfg = CalDavSinkConfig(
        **_conn(dav_user),
        busy_calendars=("work",),
    )
    sink = CalDavSink("dav", cfg)
    busy = sink.busy(NOW, NOW + timedelta(days=2))
    assert busy == [
        (datetime(2026, 11, 23, 9, 0, tzinfo=UTC), datetime(2026, 11, 23, 10, 0, tzinfo=UTC)),
        (datetime(2026, 11, 23, 9, 30, tzinfo=UTC), datetime(2026, 11, 23, 10, 30, tzinfo=UTC)),
    ]
    store = Store.open("sqlite://")
    assert reconcile(sink, FINDINGS[:2], CONFIG, store, NOW) == {"create": 2}
    starts = sorted(e.start for e in sink.list_own())
    assert starts == [
        datetime(2026, 11, 23, 10, 30, tzinfo=UTC),
        datetime(2026, 11, 23, 10, 45, tzinfo=UTC),
    ]
    store.close()
    sink.close()


def test_unreachable_server_is_one_short_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from kithkeep.errors import ConnectError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("KK_TEST_DAV_PW", "pw")
    url = f"http://127.0.0.1:{port}/"
    src = CalDavSource(
        "dav", CalDavSourceConfig(url=url, username="u", password_env="KK_TEST_DAV_PW"), UTC
    )
    with pytest.raises(ConnectError) as info:
        src.check()
    assert info.value.format_message() == "source dav: cannot reach the server: Connection refused"
    sink = CalDavSink("dav", CalDavSinkConfig(url=url, username="u", password_env="KK_TEST_DAV_PW"))
    with pytest.raises(SinkError, match=r"^sink dav: cannot reach the server: Connection refused$"):
        sink.list_own()
