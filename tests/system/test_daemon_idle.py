"""IMAP IDLE: the daemon reacts to new inbox mail within seconds, not at the interval.

End to end, ``kithkeep daemon`` runs as a subprocess against the Dovecot
fixture (which advertises IDLE) with a 30-minute interval, so anything that
arrives in the store after the first sync came through IDLE. The helpers of
tests/test_daemon.py start the daemon and read its store. ``wait_for_mail``
is also tested directly against Dovecot.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kithkeep.connectors.imap import ImapConfig, ImapSource, _Conn
from kithkeep.connectors.maildir import MaildirConfig, MaildirSource
from tests.fixtures.dovecot import ImapUser
from tests.helpers import write_maildir_message
from tests.system.test_daemon import (
    PW_ENV,
    DaemonProcess,
    NotifySocket,
    append,
    message,
    message_ids,
    wait_until,
    write_config,
)

# long enough that nothing after the first sync can be the schedule's doing
INTERVAL = 30.0


def write_idle_config(path: Path, user: ImapUser, *, db: Path, idle: bool, extra: str = "") -> None:
    write_config(path, user, db=db, interval=INTERVAL, extra=extra)
    text = path.read_text()
    # idle goes into [sources.mail], right after its last option
    path.write_text(text.replace("timeout = 10\n", f"timeout = 10\nidle = {str(idle).lower()}\n"))


def stored(db: Path, message_id: str) -> Callable[[], bool]:
    return lambda: message_id in message_ids(db)


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    s = NotifySocket()
    yield s
    s.close()


@pytest.fixture
def daemons() -> Iterator[list[DaemonProcess]]:
    started: list[DaemonProcess] = []
    yield started
    for d in started:
        d.kill()


def start(
    cfg: Path, user: ImapUser, notify: NotifySocket, daemons: list[DaemonProcess]
) -> DaemonProcess:
    d = DaemonProcess(cfg, notify, {PW_ENV: user.password})
    daemons.append(d)
    notify.wait_for(lambda m: "READY" in m)
    return d


# ------------------------------------------------------------ the daemon


def test_idle_syncs_new_mail_within_seconds_and_stops_promptly(
    tmp_path: Path, imap_user: ImapUser, notify: NotifySocket, daemons: list[DaemonProcess]
) -> None:
    db, cfg = tmp_path / "kk.sqlite3", tmp_path / "config.toml"
    write_idle_config(cfg, imap_user, db=db, idle=True)
    append(imap_user, [message(1)])
    d = start(cfg, imap_user, notify, daemons)
    wait_until(lambda: message_ids(db) == ["m1@example.com"], what="first sync")
    d.wait_log("waiting for new inbox mail with IMAP IDLE")
    d.wait_log("analyzed")
    notify.wait_for(lambda m: "IDLE: mail" in m.get("STATUS", ""))

    for n in (2, 3):  # twice: the IDLE connection keeps watching after a sync
        mark = len(d.log())
        t0 = time.monotonic()
        append(imap_user, [message(n)])
        wait_until(stored(db, f"m{n}@example.com"), timeout=10, what="IDLE sync")
        assert time.monotonic() - t0 < 10
        d.wait_log("source mail: new mail (IMAP IDLE); syncing now", after=mark)
        d.wait_log("analyzed", after=mark)  # the analysis runs after the early sync too

    # SIGTERM while idling: exit 0 quickly, the IDLE connection does not hold it up
    rc, took = d.stop()
    assert rc == 0, d.log()
    assert took < 5
    log = d.log()
    assert "Traceback" not in log
    assert imap_user.password not in log


def test_without_idle_new_mail_waits_for_the_interval(
    tmp_path: Path, imap_user: ImapUser, notify: NotifySocket, daemons: list[DaemonProcess]
) -> None:
    db, cfg = tmp_path / "kk.sqlite3", tmp_path / "config.toml"
    write_idle_config(cfg, imap_user, db=db, idle=False)
    append(imap_user, [message(1)])
    d = start(cfg, imap_user, notify, daemons)
    wait_until(lambda: message_ids(db) == ["m1@example.com"], what="first sync")
    d.wait_log("analyzed")
    append(imap_user, [message(2)])
    time.sleep(6)  # an IDLE daemon has it by now (see above)
    assert message_ids(db) == ["m1@example.com"]
    assert "IDLE" not in d.log()
    rc, took = d.stop()
    assert rc == 0 and took < 10


def test_sighup_starts_keeps_and_stops_idle_with_the_config(
    tmp_path: Path, imap_user: ImapUser, notify: NotifySocket, daemons: list[DaemonProcess]
) -> None:
    db, cfg = tmp_path / "kk.sqlite3", tmp_path / "config.toml"
    write_idle_config(cfg, imap_user, db=db, idle=False)
    d = start(cfg, imap_user, notify, daemons)
    d.wait_log("reminders: no change")
    assert "IMAP IDLE" not in d.log()

    # idle switched on: the reload starts the IDLE thread
    mark = len(d.log())
    write_idle_config(cfg, imap_user, db=db, idle=True)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("config reloaded", after=mark)
    d.wait_log("waiting for new inbox mail with IMAP IDLE", after=mark)
    d.wait_log("reminders: no change", after=mark)  # the changed source syncs at once
    time.sleep(0.5)  # let the new thread get into IDLE
    append(imap_user, [message(5)])
    wait_until(lambda: "m5@example.com" in message_ids(db), timeout=10, what="IDLE after reload")

    # a reload that leaves the source as it was keeps its IDLE connection watching
    mark = len(d.log())
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("config reloaded", after=mark)
    append(imap_user, [message(6)])
    wait_until(lambda: "m6@example.com" in message_ids(db), timeout=10, what="IDLE, 2nd reload")
    assert "waiting for new inbox mail" not in d.log()[mark:]

    # idle switched off again: the thread ends, new mail waits for the interval
    mark = len(d.log())
    write_idle_config(cfg, imap_user, db=db, idle=False)
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("config reloaded", after=mark)
    d.wait_log("reminders: no change", after=mark)
    # the status line no longer names an IDLE watcher
    notify.wait_for(lambda m: m.get("STATUS", "").startswith("idle;") and "IDLE" not in m["STATUS"])
    append(imap_user, [message(7)])
    time.sleep(4)
    assert "m7@example.com" not in message_ids(db)

    rc, took = d.stop()
    assert rc == 0 and took < 5, d.log()
    assert "Traceback" not in d.log()


def test_signal_storm_while_idling(
    tmp_path: Path, imap_user: ImapUser, notify: NotifySocket, daemons: list[DaemonProcess]
) -> None:
    """Many SIGHUPs: the handlers take no lock, so the loop never hangs on its own wait.

    (With threading.Event, a handler's set() could block for good on the lock
    that the interrupted main thread held inside Event.wait().)
    """
    db, cfg = tmp_path / "kk.sqlite3", tmp_path / "config.toml"
    write_idle_config(cfg, imap_user, db=db, idle=True)
    d = start(cfg, imap_user, notify, daemons)
    d.wait_log("reminders: no change")
    for i in range(150):
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.002 * (i % 4))
    mark = len(d.log())
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("config reloaded", after=mark, timeout=15)
    append(imap_user, [message(8)])
    wait_until(lambda: "m8@example.com" in message_ids(db), timeout=10, what="IDLE after storm")
    rc, took = d.stop()
    assert rc == 0 and took < 5, d.log()


def test_failing_idle_connection_does_not_stop_the_daemon(
    tmp_path: Path, notify: NotifySocket, daemons: list[DaemonProcess]
) -> None:
    """IDLE on a server that is down: logged and retried; the other source keeps syncing."""
    box = tmp_path / "Mail"
    write_maildir_message(box, "k1", message(1, tag="local"))
    db, cfg = tmp_path / "kk.sqlite3", tmp_path / "config.toml"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    cfg.write_text(
        f"""\
[general]
database = "sqlite:///{db}"
[daemon]
interval_minutes = 0.01
[sources.local]
type = "maildir"
path = "{box}"
[sources.down]
type = "imap"
host = "127.0.0.1"
port = {dead_port}
tls = "none"
allow_plaintext = true
username = "me@example.org"
password_env = "{PW_ENV}"
timeout = 2
max_retries = 0
idle = true
"""
    )
    d = DaemonProcess(cfg, notify, {PW_ENV: "pw-idle-secret"})
    daemons.append(d)
    d.wait_log("source down: IDLE connection failed", timeout=20)
    write_maildir_message(box, "k2", message(2, tag="local"))
    wait_until(lambda: "local2@example.com" in message_ids(db), what="the healthy source")
    assert d.proc.poll() is None
    rc, took = d.stop()
    assert rc == 0 and took < 10, d.log()
    assert "pw-idle-secret" not in d.log()
    assert "Traceback" not in d.log()


# ------------------------------------------------------ wait_for_mail itself


def imap_source(user: ImapUser, monkeypatch: pytest.MonkeyPatch) -> ImapSource:
    monkeypatch.setenv(PW_ENV, user.password)
    cfg = ImapConfig(
        host=user.host,
        port=user.port,
        username=user.username,
        tls="none",
        allow_plaintext=True,
        password_env=PW_ENV,
        timeout=10,
        idle=True,
    )
    return ImapSource("mail", cfg)


def test_wait_for_mail_against_dovecot(
    imap_user: ImapUser, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    src = imap_source(imap_user, monkeypatch)
    try:
        # nothing new: False after the timeout, not before
        t0 = time.monotonic()
        assert src.wait_for_mail(1.5) is False
        assert 1.4 <= time.monotonic() - t0 < 5
        assert src._idle_conn is not None  # IDLE keeps running between calls

        # new mail while no call was waiting: reported by the next call, at once
        append(imap_user, [message(1)])
        t0 = time.monotonic()
        assert src.wait_for_mail(10) is True
        assert time.monotonic() - t0 < 5

        # new mail during a call: it returns as soon as the server says EXISTS
        timer = threading.Timer(0.5, append, (imap_user, [message(2)]))
        timer.start()
        t0 = time.monotonic()
        try:
            assert src.wait_for_mail(10) is True
        finally:
            timer.join()
        assert time.monotonic() - t0 < 5

        # a stop request ends the wait within a poll
        t0 = time.monotonic()
        assert src.wait_for_mail(30, lambda: time.monotonic() - t0 > 0.3) is False
        assert time.monotonic() - t0 < 3

        # IDLE is re-issued when due (RFC 2177: at least every 29 minutes)
        src.idle_renew = 0.3
        assert src.wait_for_mail(1.5) is False
        append(imap_user, [message(3)])
        assert src.wait_for_mail(10) is True
        src.idle_renew = 25 * 60.0

        # the connection drops: reconnected quietly, and mail that came in the
        # meantime is noticed by UIDNEXT
        caplog.set_level(logging.INFO, logger="kithkeep")
        assert src._idle_conn is not None
        src._idle_conn.client.socket().shutdown(socket.SHUT_RDWR)
        append(imap_user, [message(4)])
        assert src.wait_for_mail(10) is True
        assert "IDLE connection lost" in caplog.text
        assert imap_user.password not in caplog.text
        assert src.wait_for_mail(0.5) is False  # and it keeps watching
    finally:
        src.close()
    assert src._idle_conn is None


def test_wait_for_mail_without_idle_returns_at_once(
    imap_user: ImapUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = imap_source(imap_user, monkeypatch)
    logins: list[_Conn] = []
    real_connect = src.connect

    def connect_without_idle() -> _Conn:
        conn = real_connect()
        conn.caps.discard("IDLE")  # as if the server did not offer it
        logins.append(conn)
        return conn

    monkeypatch.setattr(src, "connect", connect_without_idle)
    try:
        t0 = time.monotonic()
        assert src.wait_for_mail(10) is False
        assert src.wait_for_mail(10) is False
        assert time.monotonic() - t0 < 3
        assert len(logins) == 1  # asked once, remembered
    finally:
        src.close()


def test_other_mail_sources_do_not_wait(tmp_path: Path) -> None:
    src = MaildirSource("local", MaildirConfig(path=str(tmp_path)))
    t0 = time.monotonic()
    assert src.wait_for_mail(10) is False
    assert time.monotonic() - t0 < 1
