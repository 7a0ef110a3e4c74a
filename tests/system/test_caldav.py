"""CalDAV against real servers: the sink contract, conditional writes, the source, discovery.

The contract, the source and the writes run on Radicale and Xandikos
(``dav_user``); discovery and UIDs on Cyrus too, whose two ways differ from
theirs (see tests/fixtures/cyrus.py). Errors without a server are at the end,
against small HTTP doubles.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
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


# ---------------------------------------------------------------- discovery, every server


@pytest.fixture(params=["radicale", "xandikos", "cyrus"])
def any_dav_user(request: pytest.FixtureRequest) -> DavUser:
    """An account on each CalDAV server of the suite, Cyrus included, in turn."""
    if request.param == "cyrus":
        user: DavUser = request.getfixturevalue("cyrus_user")
        return user
    if request.param == "xandikos":
        user = request.getfixturevalue("xandikos_user")
        return user
    r = request.getfixturevalue("radicale_user")
    return DavUser("radicale", r.url, r.username, r.password)


def _root(user: DavUser) -> str:
    return user.url.split("/", 3)[0] + "//" + user.url.split("/", 3)[2] + "/"


def test_discovery_from_the_root_url_finds_the_calendars(
    any_dav_user: DavUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KK_TEST_DAV_PW", any_dav_user.password)
    _client(any_dav_user).principal().make_calendar(name="work")
    cfg = CalDavSourceConfig(**{**_conn(any_dav_user), "url": _root(any_dav_user)})
    src = CalDavSource("dav", cfg, UTC)
    assert "work" in [s.name for s in src.check()]
    src.close()


def test_an_empty_discovery_is_an_error(dav_user: DavUser, monkeypatch: pytest.MonkeyPatch) -> None:
    from kithkeep.errors import SourceError

    monkeypatch.setenv("KK_TEST_DAV_PW", dav_user.password)
    src = CalDavSource("dav", CalDavSourceConfig(**_conn(dav_user)), UTC)
    with pytest.raises(SourceError, match=r"^source dav: found no calendars at "):
        src.check()
    src.close()


def test_cyrus_needs_the_credentials_up_front(
    cyrus_user: DavUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kithkeep.errors import SourceError

    monkeypatch.setenv("KK_TEST_DAV_PW", cyrus_user.password)
    # waiting for a challenge: Cyrus answers the anonymous PROPFIND with
    # <d:unauthenticated/>, the client takes the URL for the principal and finds
    # nothing; that was "ok, no calendars" and "0 new" before, now an error
    waiting = CalDavSource("dav", CalDavSourceConfig(**_conn(cyrus_user), auth="auto"), UTC)
    with pytest.raises(SourceError, match="found no calendars at"):
        waiting.check()
    waiting.close()
    # the default sends them with the first request: the default calendar is found
    src = CalDavSource("dav", CalDavSourceConfig(**_conn(cyrus_user)), UTC)
    assert [s.name for s in src.check()] == ["personal"]
    src.close()


# ---------------------------------------------------------------- UIDs, one account


def _two_sinks(user: DavUser) -> tuple[CalDavSink, CalDavSink]:
    return (
        CalDavSink("dav", CalDavSinkConfig(**_conn(user), calendar="kithkeep")),
        CalDavSink("dav", CalDavSinkConfig(**_conn(user), calendar="kithkeep-laptop")),
    )


def test_two_stores_write_reminders_into_two_calendars_of_one_account(
    any_dav_user: DavUser, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kithkeep.reminders import reconcile, reminder_uid
    from tests.contract.sink_contract import CONFIG, FINDINGS

    monkeypatch.setenv("KK_TEST_DAV_PW", any_dav_user.password)
    uids = []
    for n, sink in enumerate(_two_sinks(any_dav_user)):
        store = Store.open(f"sqlite:///{tmp_path / f'kk{n}.sqlite3'}")
        assert reconcile(sink, FINDINGS, CONFIG, store, NOW) == {"create": 3}
        assert reconcile(sink, FINDINGS, CONFIG, store, NOW) == {}
        own = sink.list_own()
        assert [e.key for e in own] == sorted(f.key for f in FINDINGS)
        assert {e.uid for e in own} == {reminder_uid(f.key, sink.identity()) for f in FINDINGS}
        uids.append({e.uid for e in own})
        store.close()
        sink.close()
    assert not uids[0] & uids[1]


def test_cyrus_names_a_uid_taken_in_another_calendar(
    cyrus_user: DavUser, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import hashlib

    from kithkeep.reminders import reconcile
    from tests.contract.sink_contract import CONFIG, FINDINGS

    monkeypatch.setenv("KK_TEST_DAV_PW", cyrus_user.password)
    # UIDs from the key alone, as before: the second calendar's writes are refused,
    # and the message says why (it used to say "refused the credentials")
    monkeypatch.setattr(
        "kithkeep.reminders.reminder_uid",
        lambda key, _sink: "kithkeep-" + hashlib.sha256(key.encode()).hexdigest()[:32],
    )
    first, second = _two_sinks(cyrus_user)
    assert reconcile(first, FINDINGS[:1], CONFIG, Store.open("sqlite://"), NOW) == {"create": 1}
    with pytest.raises(SinkError) as info:
        reconcile(second, FINDINGS[:1], CONFIG, Store.open("sqlite://"), NOW)
    assert info.value.format_message() == (
        "sink dav: the server refused the event because its UID is already used in "
        "another calendar of the account"
    )
    first.close()
    second.close()


# ---------------------------------------------------------------- floating times


def test_floating_busy_time_is_in_the_users_zone(
    dav_user: DavUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kithkeep.config import Config, GeneralConfig, RemindersConfig
    from kithkeep.reminders import reconcile
    from tests.contract.sink_contract import FINDINGS

    monkeypatch.setenv("KK_TEST_DAV_PW", dav_user.password)
    work = _client(dav_user).principal().make_calendar(name="work")
    # Monday 09:30-12:00 with no time zone: in Berlin that is 08:30-11:00 UTC
    work.save_event(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:test\r\nBEGIN:VEVENT\r\nUID:block\r\n"
        "DTSTAMP:20260101T000000Z\r\nDTSTART:20261123T093000\r\nDTEND:20261123T120000\r\n"
        "SUMMARY:Deep work\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    config = Config(
        general=GeneralConfig(timezone="Europe/Berlin"),
        reminders=RemindersConfig(working_hours="09:30-17:00"),
    )
    cfg = CalDavSinkConfig(**_conn(dav_user), busy_calendars=("work",))
    sink = CalDavSink.from_config("dav", cfg, config)
    assert sink.busy(NOW, NOW + timedelta(days=1)) == [
        (datetime(2026, 11, 23, 8, 30, tzinfo=UTC), datetime(2026, 11, 23, 11, 0, tzinfo=UTC))
    ]
    assert reconcile(sink, FINDINGS[:2], config, Store.open("sqlite://"), NOW) == {"create": 2}
    # the first free slots are 12:00 and 12:15 local, after the block (read as UTC,
    # the block was 10:30-13:00 local and the first reminder went to 09:30, inside it)
    assert sorted(e.start for e in sink.list_own()) == [
        datetime(2026, 11, 23, 11, 0, tzinfo=UTC),
        datetime(2026, 11, 23, 11, 15, tzinfo=UTC),
    ]
    sink.close()


# ---------------------------------------------------------------- errors, HTTP doubles


@contextlib.contextmanager
def _http_double(answer: bytes | None) -> Iterator[tuple[str, list[bytes]]]:
    """A server on 127.0.0.1 that reads each request and sends ``answer`` as it is
    (then closes), or nothing at all (``None``: it keeps the connection open)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    seen: list[bytes] = []
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.settimeout(5)
            data = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                while length and len(body) < int(length.group(1)):
                    body += conn.recv(65536)
            seen.append(data)
            if answer is None:
                held.append(conn)
                continue
            with contextlib.suppress(OSError):
                conn.sendall(answer)
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/", seen
    finally:
        stop.set()
        t.join(5)
        for c in held:
            c.close()
        srv.close()


def _response(status: str, body: bytes = b"", headers: str = "") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}Connection: close\r\n"
    return head.encode() + b"\r\n" + body


def _checked(url: str, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> str:
    from kithkeep.errors import KithkeepError

    monkeypatch.setenv("KK_TEST_DAV_PW", "pw")
    src = CalDavSource(
        "dav", CalDavSourceConfig(url=url, username="u", password_env="KK_TEST_DAV_PW", **kw), UTC
    )
    with pytest.raises(KithkeepError) as info:
        src.check()
    src.close()
    return f"{type(info.value).__name__}: {info.value.format_message()}"


DAV_ERROR = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:" '
    b'xmlns:C="urn:ietf:params:xml:ns:caldav">{}</D:error>\n'
)


def test_each_refusal_names_its_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    # 401: the credentials (and they went with the first request)
    challenge = 'WWW-Authenticate: Basic realm="dav"\r\n'
    with _http_double(_response("401 Unauthorized", b"no", challenge)) as (url, seen):
        assert _checked(url, monkeypatch) == (
            "AuthError: source dav: the server refused the credentials (check username and "
            'password source; a server that only takes Digest needs auth = "digest")'
        )
    assert b"Authorization: Basic dTpwdw==" in seen[0]  # u:pw
    # a plain 403: access, not the credentials
    with _http_double(_response("403 Forbidden")) as (url, _seen):
        assert _checked(url, monkeypatch) == (
            "SourceError: source dav: the server denied access (HTTP 403) "
            "(check the account's access to this calendar)"
        )
    # a 403 that explains itself (RFC 4918 section 16): its precondition, in words
    body = DAV_ERROR.replace(b"{}", b"<D:need-privileges/>")
    xml = "Content-Type: application/xml; charset=utf-8\r\n"
    with _http_double(_response("403 Forbidden", body, xml)) as (url, _seen):
        assert _checked(url, monkeypatch) == (
            "SourceError: source dav: the account lacks the privileges this needs on the calendar"
        )
    body = DAV_ERROR.replace(b"{}", b"<C:some-new-precondition/>")
    with _http_double(_response("403 Forbidden", body, xml)) as (url, _seen):
        assert _checked(url, monkeypatch) == (
            "SourceError: source dav: the server refused the request "
            "(HTTP 403, precondition some-new-precondition)"
        )


def test_a_dropped_answer_and_a_timeout_are_said_as_such(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the answer starts, then the connection closes: not "cannot reach the server"
    cut = b"HTTP/1.1 207 Multi-Status\r\nContent-Length: 5000\r\n\r\n<?xml version='1.0'?><multi"
    with _http_double(cut) as (url, _seen):
        assert _checked(url, monkeypatch) == (
            "ConnectError: source dav: the connection was closed mid-response"
        )
    # no answer within the configured timeout
    with _http_double(None) as (url, _seen):
        started = time.monotonic()
        assert _checked(url, monkeypatch, timeout=1) == (
            "ConnectError: source dav: cannot reach the server: timed out"
        )
        assert time.monotonic() - started < 10


def test_auth_and_timeout_are_checked_with_the_config() -> None:
    from kithkeep.config import parse_config
    from kithkeep.connectors import registry
    from kithkeep.errors import ConfigError

    for section, options, message in (
        ("sources", {"auth": "ntlm"}, "auth must be one of basic, digest, auto, not 'ntlm'"),
        ("sinks", {"timeout": 0}, "timeout must be a positive number of seconds"),
    ):
        config = parse_config(
            {section: {"dav": {"type": "caldav", "url": "https://dav.example.org/", **options}}},
            None,
        )
        with pytest.raises(ConfigError, match=rf"\[{section}\.dav\]: {message}"):
            registry.validate(config)
