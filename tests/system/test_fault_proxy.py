"""Fault injection: IMAP and CalDAV through a proxy that drops and stalls connections.

tests/faultproxy.py sits between kithkeep and the real server (Dovecot,
Radicale). Per connection it may drop the link or hold the bytes of one
direction for longer than the client's timeout, at a random byte offset
(seeded: a failure replays with the same faults). Repeated runs go through it
while the server side changes between runs; each run must either complete or
fail with one clear line (a KithkeepError). A last run without faults must
then leave exactly what a fault-free reference run leaves: nothing lost,
nothing twice.

The number of injected faults is printed (``pytest -s`` shows it) and
asserted to be substantial, so the test cannot pass by injecting none.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from caldav.davclient import DAVClient
from imapclient import IMAPClient

from kithkeep.connectors.caldav_dav import (
    CalDavSink,
    CalDavSinkConfig,
    CalDavSource,
    CalDavSourceConfig,
)
from kithkeep.connectors.imap import ImapConfig, ImapSource
from kithkeep.errors import AuthError, ConnectError, KithkeepError
from kithkeep.reminders import load_state, reconcile
from kithkeep.rules.base import Finding
from kithkeep.store import Store
from kithkeep.sync import sync_source
from tests.contract.sink_contract import CONFIG, NOW, finding
from tests.faultproxy import Fault, FaultProxy
from tests.fixtures.dovecot import ImapUser
from tests.fixtures.radicale import RadicaleUser

PW_ENV = "KK_TEST_FAULT_PW"
IMAP_TIMEOUT = 1.0
DAV_TIMEOUT = 1.5
# the runs without faults (the last one, the reference) must not trip on a slow machine
CLEAN_TIMEOUT = 10.0
SEED = 20261122

# every fault that fired, per part (printed at the end of each test)
INJECTED: dict[str, dict[str, int]] = {}


# ---------------------------------------------------------------- helpers


def _open_store(path: Path) -> Store:
    return Store.open(f"sqlite:///{path}")


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    faulty = _open_store(tmp_path / "faulty.sqlite3")
    ref = _open_store(tmp_path / "ref.sqlite3")
    yield faulty, ref
    faulty.close()
    ref.close()


def _table(store: Store, sql: str) -> list[tuple[Any, ...]]:
    db = str(store.engine.url.database)
    con = sqlite3.connect(db)
    try:
        return sorted(con.execute(sql).fetchall(), key=repr)
    finally:
        con.close()


def _attempt(run: Any, errors: list[str]) -> bool:
    """Run once; True if it completed. Only a one-line KithkeepError may escape it."""
    try:
        run()
    except KithkeepError as exc:
        text = exc.format_message()
        assert "\n" not in text and text.strip(), repr(text)
        errors.append(text)
        return False
    return True


def _report(part: str, proxy: FaultProxy, runs: int, failed: list[str]) -> None:
    INJECTED[part] = proxy.counts()
    total = sum(INJECTED[part].values())
    print(
        f"\n{part}: {total} faults injected over {proxy.connections} connections "
        f"in {runs} runs ({len(failed)} failed cleanly): {INJECTED[part]}"
    )
    for line in sorted(set(failed)):
        print(f"  {line}")


# ------------------------------------------------------------------- IMAP


def _message(i: int) -> bytes:
    return (
        f"From: Person {i % 7} <p{i % 7}@example.com>\r\n"
        f"To: me@example.org\r\n"
        f"Subject: message {i}\r\n"
        f"Date: Mon, 1 Jan 2024 10:{i % 60:02d}:00 +0000\r\n"
        f"Message-ID: <f{i}@example.com>\r\n"
        f"References: <f{max(0, i - 1)}@example.com>\r\n"
        f"\r\n"
        f"body {i}\r\n"
    ).encode()


def _admin(user: ImapUser) -> IMAPClient:
    c = IMAPClient(user.host, user.port, ssl=False, timeout=10)
    c.login(user.username, user.password)
    return c


def _append(user: ImapUser, folder: str, numbers: range) -> None:
    c = _admin(user)
    try:
        for i in numbers:
            c.append(folder, _message(i))
    finally:
        c.logout()


def _imap_source(user: ImapUser, port: int, **opts: Any) -> ImapSource:
    cfg = ImapConfig(
        host=user.host,
        port=port,
        tls="none",
        allow_plaintext=True,
        username=user.username,
        password_env=PW_ENV,
        timeout=IMAP_TIMEOUT,
        chunk_size=9,
        max_retries=2,
    )
    src = ImapSource("mail", replace(cfg, **opts))
    src._sleep = lambda _s: None  # backoff is not what is tested here
    return src


def _mail_state(store: Store) -> dict[str, Any]:
    return {
        "messages": sorted(repr(m) for m in store.iter_messages()),
        "rows": _table(store, "SELECT account, folder, uid, message_id, flags FROM messages"),
        "checkpoints": store.checkpoints("mail"),
    }


@pytest.mark.slow
def test_imap_sync_through_drops_and_stalls_converges(
    imap_user: ImapUser,
    stores: tuple[Store, Store],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faulty, ref = stores
    monkeypatch.setenv(PW_ENV, imap_user.password)
    _append(imap_user, "INBOX", range(120))
    _append(imap_user, "Sent", range(500, 520))
    _append(imap_user, "Archive", range(700, 710))

    proxy = FaultProxy(
        (imap_user.host, imap_user.port),
        seed=SEED,
        rate=0.6,
        stall_seconds=IMAP_TIMEOUT + 1.5,
        max_up=700,
        max_down=45_000,
    )
    failed: list[str] = []
    runs = completed = 0
    try:
        for rnd in range(18):
            # the mailbox changes between runs: new mail and flag changes
            if rnd in (4, 8, 11):
                _append(imap_user, "INBOX", range(1000 + 10 * rnd, 1010 + 10 * rnd))
                c = _admin(imap_user)
                c.select_folder("INBOX")
                c.add_flags([rnd, rnd + 1, rnd + 40], [b"\\Answered"])
                c.logout()
            src = _imap_source(imap_user, proxy.port)
            runs += 1
            completed += _attempt(lambda src=src: sync_source(faulty, src), failed)
            src.close()
        # the faults end: one clean run through the same proxy
        proxy.enabled = False
        src = _imap_source(imap_user, proxy.port, timeout=CLEAN_TIMEOUT)
        sync_source(faulty, src)
        src.close()
    finally:
        proxy.close()
    _report("imap", proxy, runs, failed)

    # the reference: one fault-free run, straight to Dovecot, into a fresh store
    src = _imap_source(imap_user, imap_user.port, timeout=CLEAN_TIMEOUT)
    sync_source(ref, src)
    src.close()

    want = _mail_state(ref)
    got = _mail_state(faulty)
    assert len(want["rows"]) == 120 + 20 + 10 + 30
    assert got["rows"] == want["rows"]  # nothing lost, nothing twice, flags current
    assert got["messages"] == want["messages"]
    assert got["checkpoints"] == want["checkpoints"]
    assert sum(proxy.counts().values()) >= 8, proxy.counts()
    assert completed >= 1 and failed, (completed, failed)  # both outcomes were exercised


def test_link_dropped_during_login_is_not_a_refused_login(
    imap_user: ImapUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PW_ENV, imap_user.password)
    # the client sends "TAG0 CAPABILITY" (18 bytes), then LOGIN: cut the link
    # in the middle of the LOGIN command
    with FaultProxy(
        (imap_user.host, imap_user.port), seed=0, rate=0.0, script=[Fault("drop", "up", 28)]
    ) as proxy:
        src = _imap_source(imap_user, proxy.port, max_retries=0)
        with pytest.raises(KithkeepError) as info:
            src.check()
        src.close()
        assert proxy.injected == [Fault("drop", "up", 28)]
    assert not isinstance(info.value, AuthError), info.value.format_message()
    assert isinstance(info.value, ConnectError)


def test_link_dropped_during_relogin_is_retried(
    imap_user: ImapUser, stores: tuple[Store, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    faulty, _ref = stores
    monkeypatch.setenv(PW_ENV, imap_user.password)
    _append(imap_user, "INBOX", range(120))
    script = [Fault("drop", "down", 15_000), Fault("drop", "up", 28)]
    with FaultProxy((imap_user.host, imap_user.port), seed=0, rate=0.0, script=script) as proxy:
        src = _imap_source(imap_user, proxy.port, max_retries=2)
        try:
            result = sync_source(faulty, src)
        finally:
            src.close()
        assert proxy.injected == script
    assert proxy.connections == 3
    assert len(list(faulty.iter_messages())) == 120
    assert result.records == 120


# ----------------------------------------------------------------- CalDAV

_EVENT = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:kithkeep-fault-test\r
BEGIN:VEVENT\r
UID:{uid}\r
DTSTAMP:20260101T000000Z\r
DTSTART:{start:%Y%m%dT%H%M%SZ}\r
DTEND:{end:%Y%m%dT%H%M%SZ}\r
SUMMARY:{summary}\r
ORGANIZER:mailto:me@example.org\r
ATTENDEE;CN=Guest {n};PARTSTAT=ACCEPTED:mailto:guest{n}@example.org\r
{extra}END:VEVENT\r
END:VCALENDAR\r
"""


def _event(n: int, summary: str = "", extra: str = "") -> str:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=n)
    return _EVENT.format(
        uid=f"ev{n}",
        n=n,
        start=start,
        end=start + timedelta(hours=1),
        summary=summary or f"Meeting {n}",
        extra=extra,
    )


def _dav(user: RadicaleUser) -> Any:
    return DAVClient(url=user.url, username=user.username, password=user.password)


def _dav_source(user: RadicaleUser, url: str, timeout: float = DAV_TIMEOUT) -> CalDavSource:
    # a stall test needs the client to give up sooner than the default 60 s
    cfg = CalDavSourceConfig(url=url, username=user.username, password_env=PW_ENV, timeout=timeout)
    return CalDavSource("dav", cfg, UTC)


def _events_state(store: Store, base_url: str) -> dict[str, Any]:
    cps = {}
    for scope, state in store.checkpoints("dav").items():
        hrefs = {h.removeprefix(base_url): v for h, v in state.get("hrefs", {}).items()}
        cps[scope.removeprefix(base_url)] = {"sync_token": state.get("sync_token"), "hrefs": hrefs}
    return {
        "events": sorted(repr(e) for e in store.iter_events()),
        "rows": _table(store, "SELECT source, uid, recurrence_id, summary FROM events"),
        "checkpoints": cps,
    }


@pytest.mark.slow
def test_caldav_source_through_drops_and_stalls_converges(
    radicale_user: RadicaleUser,
    stores: tuple[Store, Store],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faulty, ref = stores
    monkeypatch.setenv(PW_ENV, radicale_user.password)
    app = _dav(radicale_user)
    cal = app.principal().make_calendar(name="work")
    for n in range(1, 25):
        cal.save_event(_event(n))
    cal.save_event(_event(40, extra="RRULE:FREQ=WEEKLY;COUNT=4\r\n"))
    base = radicale_user.url.rstrip("/")
    host, port = base.removeprefix("http://").split(":")

    proxy = FaultProxy(
        (host, int(port)),
        seed=SEED + 1,
        rate=0.25,
        stall_seconds=DAV_TIMEOUT + 1.5,
        max_up=1000,
        max_down=4000,
    )
    failed: list[str] = []
    runs = completed = 0
    try:
        for rnd in range(14):
            if rnd in (3, 6, 8):  # add one, change one, delete one
                cal.save_event(_event(100 + rnd))
                obj = cal.event_by_uid(f"ev{rnd}")
                obj.icalendar_component["SUMMARY"] = f"Changed in round {rnd}"
                obj.save()
                cal.event_by_uid(f"ev{rnd + 10}").delete()
            # a run makes several connections: every other run is faulted lightly (the
            # credentials go with the first request, so a run makes fewer and smaller
            # requests than it did: a higher rate and lower offsets keep faults coming)
            proxy.rate = 0.4 if rnd % 2 else 0.05
            src = _dav_source(radicale_user, proxy.url)
            runs += 1
            completed += _attempt(lambda src=src: sync_source(faulty, src), failed)
            src.close()
        proxy.enabled = False
        src = _dav_source(radicale_user, proxy.url, CLEAN_TIMEOUT)
        sync_source(faulty, src)
        src.close()
    finally:
        proxy.close()
    _report("caldav source", proxy, runs, failed)

    src = _dav_source(radicale_user, radicale_user.url, CLEAN_TIMEOUT)
    sync_source(ref, src)
    src.close()

    want = _events_state(ref, base)
    got = _events_state(faulty, proxy.url.rstrip("/"))
    assert len(want["rows"]) == 24 + 4 + 3 - 3
    assert got["rows"] == want["rows"]
    assert got["events"] == want["events"]
    assert got["checkpoints"] == want["checkpoints"]
    assert sum(proxy.counts().values()) >= 4, proxy.counts()
    assert completed >= 1 and failed, (completed, failed)


def _sink(user: RadicaleUser, url: str, timeout: float = DAV_TIMEOUT) -> CalDavSink:
    cfg = CalDavSinkConfig(url=url, username=user.username, password_env=PW_ENV, timeout=timeout)
    return CalDavSink("dav", cfg)


def _phases() -> list[list[Finding]]:
    first = [finding(f"p-{i}", f"Person {i}") for i in range(8)]
    # later: two resolved (deleted), one explained differently (updated), two new
    second = [
        *first[2:5],
        finding("p-5", "Person 5", explanation="Silent for 200 days; the cadence is 30."),
        *first[6:],
        finding("p-8", "Person 8"),
        finding("p-9", "Person 9"),
    ]
    return [first, second]


def _sink_state(user: RadicaleUser, store: Store) -> dict[str, Any]:
    sink = _sink(user, user.url, CLEAN_TIMEOUT)
    try:
        own = sink.list_own()
    finally:
        sink.close()
    rows = load_state(store, "dav").values()
    # UIDs differ between the two accounts (they come from the calendar's path):
    # compared apart, each event's UID must be the one its row records
    events = sorted((e.key, e.start, e.end, e.title, e.description) for e in own)
    state = sorted((s.key, s.start, s.end, s.content_hash, s.status) for s in rows)
    written = {s.key: s.uid for s in rows if s.status == "written"}
    return {"events": events, "state": state, "uids": {e.key: e.uid for e in own} == written}


@pytest.mark.slow
def test_caldav_sink_reconcile_through_drops_and_stalls_converges(
    radicale_server: Any,
    stores: tuple[Store, Store],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    faulty, ref = stores
    user, ref_user = radicale_server.new_user(), radicale_server.new_user()
    # one password env for both users: the fixture gives each its own
    assert user.password != ref_user.password
    base = user.url.rstrip("/")
    host, port = base.removeprefix("http://").split(":")
    proxy = FaultProxy(
        (host, int(port)),
        seed=SEED + 2,
        rate=0.25,
        stall_seconds=DAV_TIMEOUT + 1.5,
        max_up=2500,
        max_down=8_000,
    )
    failed: list[str] = []
    runs = completed = 0
    try:
        for findings in _phases():
            monkeypatch.setenv(PW_ENV, user.password)
            for rnd in range(6):
                proxy.rate = 0.3 if rnd % 2 else 0.05
                sink = _sink(user, proxy.url)
                runs += 1
                completed += _attempt(
                    lambda sink=sink, f=findings: reconcile(sink, f, CONFIG, faulty, NOW), failed
                )
                sink.close()
            proxy.enabled = False
            sink = _sink(user, proxy.url, CLEAN_TIMEOUT)
            reconcile(sink, findings, CONFIG, faulty, NOW)
            sink.close()
            proxy.enabled = True
        # the reference: the same phases, fault-free, on another account
        monkeypatch.setenv(PW_ENV, ref_user.password)
        for findings in _phases():
            sink = _sink(ref_user, ref_user.url, CLEAN_TIMEOUT)
            reconcile(sink, findings, CONFIG, ref, NOW)
            sink.close()
        want = _sink_state(ref_user, ref)
        monkeypatch.setenv(PW_ENV, user.password)
        got = _sink_state(user, faulty)
    finally:
        proxy.close()
    _report("caldav sink", proxy, runs, failed)

    assert len(want["events"]) == 8
    assert got == want  # same reminders, same slots, no duplicate, same bookkeeping
    assert sum(proxy.counts().values()) >= 5, proxy.counts()
    assert completed >= 1 and failed, (completed, failed)
