"""The background service: `kithkeep daemon` as a subprocess against a real Dovecot.

The test binds the sd_notify socket itself (abstract namespace) and reads the
datagrams the daemon sends; the store is read from the test with SQLite while
the daemon runs (WAL). Smaller pieces (notifier, watchdog, lock, backoff) are
tested directly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from kithkeep.daemon.lock import StoreLock, lock_path
from kithkeep.daemon.notify import Notifier, Watchdog, watchdog_interval
from kithkeep.daemon.status import backoff_delay
from kithkeep.errors import LockedError
from kithkeep.logsetup import JournalFormatter, setup_logging, stderr_is_journal
from kithkeep.schema import Base
from kithkeep.secrets import MASK, remember
from kithkeep.store import Store
from tests.fixtures.dovecot import DovecotServer, ImapUser
from tests.helpers import write_maildir_message

PW_ENV = "KK_TEST_DAEMON_PASSWORD"


# ---------------------------------------------------------------- helpers


def message(i: int, *, tag: str = "m") -> bytes:
    return (
        f"From: Alice Example <alice@example.com>\r\n"
        f"To: Sam <me@example.org>\r\n"
        f"Subject: message {i}\r\n"
        f"Date: Mon, 1 Jan 2024 10:{i % 60:02d}:00 +0000\r\n"
        f"Message-ID: <{tag}{i}@example.com>\r\n"
        f"\r\n"
        f"body {i}\r\n"
    ).encode()


def append(user: ImapUser, msgs: list[bytes]) -> None:
    from imapclient import IMAPClient

    c = IMAPClient(user.host, user.port, ssl=False, timeout=10)
    try:
        c.login(user.username, user.password)
        for m in msgs:
            c.append("INBOX", m)
    finally:
        c.logout()


class NotifySocket:
    """A datagram socket like systemd's, in the abstract namespace (no path limit).

    A thread reads it all the time, as systemd does: a queue left full would
    make the daemon drop messages.
    """

    def __init__(self) -> None:
        self.name = f"@kk-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.messages: list[dict[str, str]] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            if not data:
                return
            lines = data.decode().splitlines()
            fields = dict(line.split("=", 1) for line in lines if "=" in line)
            with self._cond:
                self.messages.append(fields)
                self._cond.notify_all()

    def wait_for(
        self, pred: Callable[[dict[str, str]], bool], timeout: float = 20.0, *, after: int = 0
    ) -> dict[str, str]:
        """The first message (already received or arriving, from index ``after``) that matches."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.messages[after:]:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no matching sd_notify message; got {self.messages[-10:]}"
                    )
                self._cond.wait(left)

    def index(self, message: dict[str, str]) -> int:
        with self._cond:
            return next(i for i, m in enumerate(self.messages) if m is message)

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(2)


class DaemonProcess:
    def __init__(self, config: Path, notify: NotifySocket | None, env: dict[str, str]) -> None:
        self.log_path = config.parent / f"daemon-{uuid.uuid4().hex[:6]}.log"
        self._log: IO[bytes] = self.log_path.open("wb")
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("WATCHDOG_", "JOURNAL"))
        }
        full_env.update(env)
        if notify is not None:
            full_env["NOTIFY_SOCKET"] = notify.name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kithkeep", "--config", str(config), "daemon"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=full_env,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 20.0, *, after: int = 0) -> int:
        """Wait until ``text`` is in the log (past offset ``after``); its offset."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pos = self.log().find(text, after)
            if pos >= 0:
                return pos
            assert self.proc.poll() is None, f"daemon exited: {self.log()}"
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not in the daemon log:\n{self.log()}")

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> tuple[int, float]:
        """SIGTERM (or ``sig``); the exit code and how long it took."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        return rc, time.monotonic() - t0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


def write_config(
    path: Path,
    user: ImapUser,
    *,
    db: Path,
    interval: float = 0.02,
    chunk_size: int = 5,
    extra: str = "",
) -> None:
    path.write_text(
        f"""\
[general]
me = ["me@example.org"]
database = "sqlite:///{db}"
timezone = "UTC"

[daemon]
interval_minutes = {interval}

[sources.mail]
type = "imap"
host = "{user.host}"
port = {user.port}
tls = "none"
allow_plaintext = true
username = "{user.username}"
password_env = "{PW_ENV}"
chunk_size = {chunk_size}
timeout = 10

[sinks.reminders]
type = "ics"
path = "{path.parent / "reminders.ics"}"

[reminders]
sink = "reminders"
{extra}""",
        encoding="utf-8",
    )


def db_query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the daemon's store from outside, as another process (WAL allows it)."""
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # not migrated yet
            return []
        raise
    finally:
        con.close()


def message_ids(db: Path) -> list[str]:
    return [r[0] for r in db_query(db, "SELECT message_id FROM messages")]


def wait_until(pred: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def kk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kithkeep", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


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


# ------------------------------------------------------ the service, end to end


def test_daemon_lifecycle_against_dovecot(
    tmp_path: Path,
    imap_user: ImapUser,
    notify: NotifySocket,
    daemons: list[DaemonProcess],
) -> None:
    db = tmp_path / "kk.sqlite3"
    cfg = tmp_path / "config.toml"
    write_config(cfg, imap_user, db=db)
    append(imap_user, [message(i) for i in range(12)])
    env = {PW_ENV: imap_user.password, "WATCHDOG_USEC": "400000"}
    d = DaemonProcess(cfg, notify, env)
    daemons.append(d)

    # READY comes first, before any sync progress
    ready = notify.wait_for(lambda m: "READY" in m)
    assert ready["READY"] == "1"
    assert notify.messages[0] is ready
    # a sync happens
    wait_until(lambda: len(message_ids(db)) == 12, what="first sync")
    notify.wait_for(lambda m: m.get("STATUS", "").startswith("syncing mail"))
    notify.wait_for(lambda m: m.get("STATUS", "").startswith("idle; next sync"))
    # WATCHDOG_USEC=0.4 s: pings at half of it, from the start
    notify.wait_for(lambda m: m.get("WATCHDOG") == "1", timeout=5)
    d.wait_log("analyzed")  # then analysis, judging and the reminders sink

    # new mail appears after the next cycle
    append(imap_user, [message(100), message(101)])
    wait_until(lambda: "m101@example.com" in message_ids(db), what="next cycle")
    assert len(message_ids(db)) == 14

    # status shows the source with its last success and next run, and the running daemon
    st = kk("--config", str(cfg), "status", "--json", env={**os.environ, PW_ENV: "x"})
    assert st.returncode == 0, st.stderr
    status = json.loads(st.stdout)
    assert status["daemon"] == {"running": True, "pid": d.proc.pid}
    (mail,) = [s for s in status["sources"] if s["name"] == "mail"]
    assert mail["last_success"] and mail["next_run"] and mail["failures"] == 0
    (sink,) = [s for s in status["sources"] if s["kind"] == "sink"]
    assert sink["name"] == "reminders" and sink["last_success"]

    # a second instance on the same store is refused with one line, exit 1
    second = kk("--config", str(cfg), "daemon", env={**os.environ, PW_ENV: "x"})
    assert second.returncode == 1
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert "already running" in lines[0] and str(d.proc.pid) in lines[0]

    # SIGHUP with a changed config: a new source is synced at once
    extra = tmp_path / "extra-mail"
    write_maildir_message(extra, "k1", message(1, tag="extra"))
    write_config(
        cfg,
        imap_user,
        db=db,
        extra=f'\n[sources.extra]\ntype = "maildir"\npath = "{extra}"\n',
    )
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("config reloaded")
    wait_until(lambda: "extra1@example.com" in message_ids(db), what="the new source")
    notify.wait_for(lambda m: m.get("RELOADING") == "1")

    # SIGHUP with a broken config: refused, the old one (both sources) keeps working
    mark = len(d.log())
    cfg.write_text(cfg.read_text().replace("interval_minutes = 0.02", "interval_minutes = 'soon'"))
    d.proc.send_signal(signal.SIGHUP)
    d.wait_log("config reload refused, keeping the previous config", after=mark)
    assert "[daemon]: interval_minutes must be number" in d.log()[mark:]  # and why
    append(imap_user, [message(102)])
    write_maildir_message(extra, "k2", message(2, tag="extra"))
    wait_until(
        lambda: {"m102@example.com", "extra2@example.com"} <= set(message_ids(db)),
        what="sync with the old config after a refused reload",
    )
    assert d.proc.poll() is None

    # SIGTERM: exit 0 in time, STOPPING sent, nothing half-written
    rc, took = d.stop()
    assert rc == 0, d.log()
    assert took < 10
    notify.wait_for(lambda m: m.get("STOPPING") == "1", timeout=2)
    assert db_query(db, "PRAGMA integrity_check") == [("ok",)]
    ids = message_ids(db)
    assert len(ids) == len(set(ids)) == 17
    assert not list(tmp_path.glob(".reminders.ics.*"))  # no temp file of an atomic write
    assert "Traceback" not in d.log()
    assert imap_user.password not in d.log()


def test_sigterm_mid_sync_commits_the_chunk_and_resumes(
    tmp_path: Path,
    dovecot_server: DovecotServer,
    imap_user: ImapUser,
    notify: NotifySocket,
    daemons: list[DaemonProcess],
) -> None:
    """SIGTERM during a long first sync: exit 0 at once, and what was committed is whole."""
    total = 1500
    for i in range(total):  # straight into the Maildir: fast, and Dovecot indexes it at SELECT
        write_maildir_message(imap_user.maildir, f"{i:05d}.kk", message(i))
    dovecot_server.chown_tree(imap_user.home)
    db = tmp_path / "kk.sqlite3"
    cfg = tmp_path / "config.toml"
    write_config(cfg, imap_user, db=db, chunk_size=1, interval=60)
    env = {PW_ENV: imap_user.password}
    d = DaemonProcess(cfg, notify, {**env, "WATCHDOG_USEC": "200000"})
    daemons.append(d)

    notify.wait_for(lambda m: "READY" in m)
    syncing = notify.wait_for(lambda m: m.get("STATUS", "").startswith("syncing mail: INBOX"))
    # the long first sync does not starve the watchdog
    notify.wait_for(lambda m: m.get("WATCHDOG") == "1", timeout=2, after=notify.index(syncing))
    rc, took = d.stop()
    assert rc == 0, d.log()
    assert took < 10
    assert "SIGTERM: finishing the current chunk" in d.log()

    # stopped mid-sync, and the checkpoint matches exactly what was committed
    stored = db_query(db, "SELECT CAST(uid AS INTEGER) FROM messages WHERE folder = 'INBOX'")
    uids = sorted(u for (u,) in stored)
    assert 0 < len(uids) < total, "the sync finished before SIGTERM: make it longer"
    (state,) = db_query(db, "SELECT state_json FROM sync_state WHERE scope = 'INBOX'")
    assert json.loads(state[0])["uid"] == uids[-1]
    assert uids == list(range(1, len(uids) + 1))
    # never marked a success: the interrupted source is due again at start
    assert db_query(db, "SELECT last_success FROM source_status WHERE source = 'mail'") in (
        [],
        [(None,)],
    )

    # a restart resumes from the checkpoint: everything, nothing twice (bigger
    # chunks now: the resume is not what is timed here)
    write_config(cfg, imap_user, db=db, chunk_size=500, interval=60)
    d2 = DaemonProcess(cfg, None, env)
    daemons.append(d2)
    wait_until(lambda: len(message_ids(db)) >= total, timeout=60, what="resumed sync")
    d2.wait_log("analyzed")
    rc, _ = d2.stop()
    assert rc == 0
    ids = message_ids(db)
    assert len(ids) == len(set(ids)) == total


def test_failing_source_backs_off_without_stopping_the_others(
    tmp_path: Path, notify: NotifySocket, daemons: list[DaemonProcess]
) -> None:
    """An IMAP source whose server is down, next to a working Maildir."""
    box = tmp_path / "Mail"
    write_maildir_message(box, "k1", message(1, tag="local"))
    db = tmp_path / "kk.sqlite3"
    cfg = tmp_path / "config.toml"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    cfg.write_text(
        f"""\
[general]
database = "sqlite:///{db}"
[daemon]
interval_minutes = 0.01
max_backoff_minutes = 0.05
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
"""
    )
    d = DaemonProcess(cfg, notify, {PW_ENV: "pw-secret-value"})
    daemons.append(d)
    d.wait_log("source down: 3 failure(s) in a row", timeout=30)
    rows = dict(db_query(db, "SELECT source, failures FROM source_status WHERE kind='source'"))
    assert rows["down"] >= 3 and rows["local"] == 0
    # the working source kept its own schedule and keeps syncing
    write_maildir_message(box, "k2", message(2, tag="local"))
    wait_until(lambda: "local2@example.com" in message_ids(db), what="the healthy source")
    notify.wait_for(lambda m: "failing: down" in m.get("STATUS", ""))
    # backing off: the failing source is tried less and less often than the healthy one
    d.wait_log("source down: 4 failure(s) in a row", timeout=30)
    log_text = d.log()
    assert log_text.count("synced local:") > log_text.count("source down failed") + 1
    (err,) = db_query(db, "SELECT last_error FROM source_status WHERE source='down'")
    assert err[0] and "pw-secret-value" not in err[0]
    st = kk("--config", str(cfg), "status")
    assert st.returncode == 0, st.stderr
    assert "down" in st.stdout and "running" in st.stdout
    assert "down: last error " in st.stdout  # under the table, whole
    rc, took = d.stop(sig=signal.SIGINT)  # Ctrl-C in a terminal: the same graceful stop
    assert rc == 0 and took < 10
    assert "SIGINT: finishing the current chunk" in d.log()
    assert "pw-secret-value" not in d.log()


def test_broken_config_at_start_exits_2_before_ready(
    tmp_path: Path, notify: NotifySocket, daemons: list[DaemonProcess]
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[daemon]\ninterval_minutes = 0\n")
    d = DaemonProcess(cfg, notify, {})
    daemons.append(d)
    assert d.proc.wait(30) == 2
    assert "[daemon]: interval_minutes must be positive" in d.log()
    assert all("READY" not in m for m in notify.messages)


def test_status_before_the_daemon_ever_ran(tmp_path: Path) -> None:
    box = tmp_path / "Mail"
    write_maildir_message(box, "k1", message(1))
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[general]\ndatabase = "sqlite:///{tmp_path / "kk.sqlite3"}"\n'
        f'[sources.local]\ntype = "maildir"\npath = "{box}"\n'
    )
    res = kk("--config", str(cfg), "status", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["daemon"] == {"running": False, "pid": None}
    assert out["sources"] == [
        {
            "name": "local",
            "kind": "source",
            "type": "maildir",
            "last_success": None,
            "last_error": None,
            "last_error_at": None,
            "failures": 0,
            "next_run": None,
        }
    ]
    human = kk("--config", str(cfg), "status")
    assert human.returncode == 0, human.stderr
    assert "not running" in human.stdout and "never" in human.stdout


# --------------------------------------------------------------- the pieces


def test_notifier_path_and_abstract_sockets(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(str(path))
    abstract = NotifySocket()
    try:
        n = Notifier({"NOTIFY_SOCKET": str(path)})
        assert n.ready(status="hello")
        srv.settimeout(2)
        assert srv.recv(100) == b"READY=1\nSTATUS=hello"
        n.close()
        a = Notifier({"NOTIFY_SOCKET": abstract.name})
        assert a.stopping()
        assert abstract.wait_for(lambda m: True, timeout=2) == {"STOPPING": "1"}
        a.close()
    finally:
        srv.close()
        abstract.close()
    quiet = Notifier({})
    assert not quiet.enabled and not quiet.ready()
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert not gone.status("x")  # systemd gone: the service goes on


def test_watchdog_interval_from_environment() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "3000000"}) == 3.0
    # meant for another process (our parent): not ours to answer
    assert watchdog_interval({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}) is None
    mine = {"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(mine) == 3.0


def test_watchdog_stops_pinging_when_the_loop_stalls() -> None:
    sock = NotifySocket()
    now = [0.0]
    wd = Watchdog(Notifier({"NOTIFY_SOCKET": sock.name}), 0.1, stall_limit=10, clock=lambda: now[0])
    try:
        wd.start()
        for _ in range(4):
            sock.wait_for(lambda m: m.get("WATCHDOG") == "1", timeout=2)
            sock.clear()
        now[0] = 11.0  # no beat for longer than the stall limit
        time.sleep(0.2)
        sock.clear()
        with pytest.raises(AssertionError):
            sock.wait_for(lambda m: True, timeout=0.4)
        wd.beat()  # alive again: pings resume
        sock.wait_for(lambda m: m.get("WATCHDOG") == "1", timeout=2)
    finally:
        wd.stop()
        sock.close()


def test_backoff_doubles_up_to_the_cap() -> None:
    i, cap = timedelta(minutes=15), timedelta(hours=4)
    assert backoff_delay(0, i, cap) == i
    assert [backoff_delay(n, i, cap) / i for n in range(1, 7)] == [1, 2, 4, 8, 16, 16]
    assert backoff_delay(500, i, cap) == cap
    # a cap below the interval never makes a failing source run more often
    assert backoff_delay(3, i, timedelta(minutes=1)) == i


def test_lock_is_exclusive_per_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kk.sqlite3'}"
    assert lock_path(url) == tmp_path / "kk.sqlite3.lock"
    assert lock_path("sqlite:///:memory:") is None
    pg = lock_path("postgresql+psycopg://me:hunter22@db/kk", state_dir=tmp_path)
    assert pg is not None and pg.parent == tmp_path and "hunter22" not in pg.name
    # the password does not make it another store
    assert pg == lock_path("postgresql+psycopg://me:other@db/kk", state_dir=tmp_path)

    first = StoreLock(url)
    assert first.held_by() is None
    first.acquire()
    try:
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
            StoreLock(url).acquire()
        assert StoreLock(url).held_by() == os.getpid()
    finally:
        first.release()
    with StoreLock(url):  # free again
        pass


def test_migration_matches_the_schema(tmp_path: Path) -> None:
    """Migration 0002 (source_status) creates exactly what schema.py declares."""
    store = Store.open(f"sqlite:///{tmp_path / 'kk.sqlite3'}")
    try:
        with store.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diffs == []
    finally:
        store.close()


def test_journal_lines_have_priority_and_no_timestamp(tmp_path: Path) -> None:
    import logging

    out = tmp_path / "stderr"
    with out.open("w") as fh:
        st = os.fstat(fh.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert stderr_is_journal(env, fh.fileno())
        assert not stderr_is_journal(env, 0)  # inherited variable, another stream
        assert not stderr_is_journal({}, fh.fileno())
    rec = logging.LogRecord("kithkeep.x", logging.ERROR, __file__, 1, "boom %s", ("now",), None)
    assert JournalFormatter("%(levelname)s %(name)s: %(message)s").format(rec) == (
        "<3>ERROR kithkeep.x: boom now"
    )


def test_logs_mask_registered_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    secret = remember("hunter2-daemon-secret")
    root = logging.getLogger()
    level = root.level
    setup_logging(level=logging.INFO)
    try:
        logging.getLogger("kithkeep.test").warning("login with %s failed", secret)
    finally:
        for h in [h for h in root.handlers if getattr(h, "_kithkeep", False)]:
            root.removeHandler(h)
        root.setLevel(level)
    err = capsys.readouterr().err
    assert secret not in err and MASK in err
