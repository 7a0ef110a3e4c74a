"""Crash anywhere: kill the process at every commit point, start again, compare.

Like isync's test that exits at step N and resumes: a sync (the demo Maildir
on SQLite and PostgreSQL, and a Dovecot IMAP mailbox) and a reminder
reconcile (an .ics file sink, and a folder sink where every create, update and
delete is one durable write, like CalDAV) run in a child process that dies by
SIGKILL at kill point N, for every N:

- sync, ``after-batch``: the source dies right before yielding batch N+1,
  i.e. after batch N was committed;
- sync, ``in-transaction``: the store dies inside the transaction of batch
  N+1, after its statements were executed and before the commit;
- reconcile, ``write``: after the Nth durable sink write;
- reconcile, ``plan``: between plan and apply;
- reconcile, ``commit``: inside the transaction that records what was written.

Then a normal run, and the final state must equal an uninterrupted run's: the
same message rows and checkpoints and the same people statistics from
``analyze``; the same reminder events (no duplicate UID) and reminder state.
Right after each crash the store must hold exactly the first N batches (never
half of one).

Reconcile is also a Hypothesis state machine: random desired sets, the user
moving and deleting reminders, and crashes at any sink write or between plan
and apply (simulated in-process: nothing after the kill point persists).

Children are forked (no new interpreter: a hundred kill points stay fast)
and kill themselves with SIGKILL, so nothing is flushed or closed on the way
out; a few kill points also run in a fresh ``python -c`` interpreter.
The number of kill points exercised is printed at the end (``-s``) and kept in
``KILL_POINTS``.
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
import sqlalchemy as sa
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kithkeep import reminders
from kithkeep.config import AnalysisConfig, Config, parse_config
from kithkeep.connectors.ics import KEY_PROP, IcsSink
from kithkeep.connectors.imap import ImapConfig, ImapSource
from kithkeep.connectors.maildir import MaildirConfig, MaildirSource
from kithkeep.demo import ME, build_mailbox
from kithkeep.errors import SinkRefused
from kithkeep.interfaces import MailSource, Reminder, ReminderSink, SinkEvent, SyncContext
from kithkeep.model.analyze import analyze
from kithkeep.records import MailBatch, MessageRecord
from kithkeep.rules.base import Finding
from kithkeep.schema import Base, ReminderState
from kithkeep.store import Store
from kithkeep.sync import sync_source
from tests.fixtures.dovecot import DovecotServer, ImapUser
from tests.fixtures.postgres import PostgresServer
from tests.helpers import REPO, write_maildir_message

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
KILL_POINTS: Counter[str] = Counter()


def die() -> None:
    """Die the hard way: no flush, no close, no atexit."""
    os.kill(os.getpid(), signal.SIGKILL)


def in_child(fn: Callable[[], None]) -> int:
    """Run ``fn`` in a forked child; its exit code, or minus the signal that killed it."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns into pytest
        code = 0
        try:
            fn()
        except BaseException:
            traceback.print_exc()
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


# ================================================================== sync


class DyingStore(Store):
    """A store that dies inside its Nth transaction, after the statements, before COMMIT."""

    die_in: int | None = None
    transactions = 0

    def _dying(self) -> bool:
        n = self.transactions
        self.transactions += 1
        return n == self.die_in

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.sessions.begin() as session:
            yield session
            if self._dying():
                session.flush()
                die()


class DyingSource(MailSource):
    """Wraps a source; dies right before yielding batch ``die_before`` (0-based).

    With ``after_records``, dies instead right after the first batch that held
    records was committed.
    """

    def __init__(self, inner: MailSource, die_before: int, *, after_records: bool = False) -> None:
        super().__init__(inner.name)
        self.inner = inner
        self.die_before = die_before
        self.after_records = after_records

    def sync(self, ctx: SyncContext) -> Iterator[MailBatch]:
        n = -1
        stored = False
        for n, batch in enumerate(self.inner.sync(ctx)):
            if n == self.die_before or (self.after_records and stored):
                self.die_once_committed(ctx)
            stored = bool(batch.records)
            yield batch
        if n + 1 == self.die_before:  # after the last batch was committed
            self.die_once_committed(ctx)

    @staticmethod
    def die_once_committed(ctx: SyncContext) -> None:
        # sync_source commits each batch before the source goes on, so this
        # kill point is "after the batches so far were committed" (a kill
        # with a commit in flight is the in-transaction mode); reading the
        # checkpoints would also wait for a store that committed elsewhere
        ctx.checkpoints()
        die()

    def close(self) -> None:
        self.inner.close()


@dataclass(frozen=True)
class Snapshot:
    messages: dict[tuple[str, str, str], MessageRecord]
    checkpoints: dict[str, dict[str, Any]]
    people: list[dict[str, Any]]


def snapshot(url: str, source: str) -> Snapshot:
    with Store.open(url) as store:
        msgs = list(store.iter_messages())
        checkpoints = store.checkpoints(source)
    analysis = analyze(msgs, [], AnalysisConfig(), [ME[1]], NOW)
    return Snapshot(
        {(m.account, m.folder, m.uid): m for m in msgs},
        checkpoints,
        [p.to_json() for p in analysis.people],
    )


Progress = tuple[frozenset[tuple[str, str, str, frozenset[str]]], dict[str, dict[str, Any]]]


def progress_of(store: Store, source: str) -> Progress:
    """Which messages the store holds with which flags, and the source's checkpoints."""
    held = frozenset((m.account, m.folder, m.uid, m.flags) for m in store.iter_messages())
    return held, store.checkpoints(source)


def counts(url: str, source: str) -> Progress:
    with Store.open(url) as store:
        return progress_of(store, source)


@dataclass
class Reference:
    """An uninterrupted sync, and the store after each of its batches."""

    final: Snapshot
    after: list[Progress]  # [i]: the store after i batches

    @property
    def batches(self) -> int:
        return len(self.after) - 1


class RecordingStore(Store):
    """Remembers message counts and checkpoints after each committed batch."""

    after: list[Progress]

    def apply_mail_batch(self, batch: MailBatch, account: str) -> None:
        super().apply_mail_batch(batch, account)
        self.after.append(progress_of(self, account))


def reference_run(url: str, make_source: Callable[[], MailSource]) -> Reference:
    store = RecordingStore(Store.open(url).engine)
    src = make_source()
    store.after = [progress_of(store, src.name)]
    try:
        sync_source(store, src)
    finally:
        src.close()
        store.close()
    ref = Reference(snapshot(url, src.name), store.after)
    assert ref.batches >= 5, "too few batches for the kill points to mean much"
    return ref


def crash_sync(url: str, make_source: Callable[[], MailSource], mode: str, n: int) -> int:
    """Sync in a child that dies at kill point ``n`` of ``mode``; the child's status."""

    def child() -> None:
        store = DyingStore(Store.open(url).engine)
        src = make_source()
        if mode == "after-batch":
            src = DyingSource(src, n)
        elif mode == "after-records":
            src = DyingSource(src, -1, after_records=True)
        else:
            store.die_in = n
        sync_source(store, src)

    return in_child(child)


def check_kill_points(
    label: str,
    new_url: Callable[[], str],
    make_source: Callable[[], MailSource],
    modes: Sequence[str] = ("after-batch", "in-transaction"),
    same_checkpoints: Callable[[dict[str, Any], dict[str, Any]], bool] = operator.eq,
) -> None:
    ref = reference_run(new_url(), make_source)
    name = make_source().name
    plan = [("after-batch", n) for n in range(ref.batches + 1) if "after-batch" in modes] + [
        ("in-transaction", n) for n in range(ref.batches) if "in-transaction" in modes
    ]
    for mode, n in plan:
        url = new_url()
        status = crash_sync(url, make_source, mode, n)
        assert status == -signal.SIGKILL, (mode, n, status)
        KILL_POINTS[f"sync {label} {mode}"] += 1
        # right after the crash: exactly the first n batches, never half of one
        assert counts(url, name) == ref.after[n], (mode, n)
        # then a normal run converges to the uninterrupted result
        with Store.open(url) as store:
            src = make_source()
            try:
                sync_source(store, src)
            finally:
                src.close()
        got = snapshot(url, name)
        assert got.messages == ref.final.messages, (mode, n)
        assert same_checkpoints(got.checkpoints, ref.final.checkpoints), (
            mode,
            n,
            got.checkpoints,
            ref.final.checkpoints,
        )
        assert got.people == ref.final.people, (mode, n)


def check_crash_after_every_first_commit(
    new_url: Callable[[], str], make_source: Callable[[], MailSource]
) -> None:
    """Crash after the first batch with records of every run: each restart makes progress."""
    ref = reference_run(new_url(), make_source)
    url = new_url()
    runs = 0
    while True:
        runs += 1
        assert runs <= ref.batches + 1, "a restart made no progress"
        status = crash_sync(url, make_source, "after-records", 0)
        if status == 0:
            break
        assert status == -signal.SIGKILL
        KILL_POINTS["sync repeated crashes"] += 1
    assert snapshot(url, make_source().name) == ref.final


@pytest.fixture(scope="module")
def demo_maildir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "Mail"
    n = build_mailbox(root, NOW)
    assert n > 500
    return root


def maildir_source(root: Path, chunk_size: int = 60) -> Callable[[], MailSource]:
    return lambda: MaildirSource("mail", MaildirConfig(path=str(root), chunk_size=chunk_size))


def sqlite_urls(tmp_path: Path) -> Callable[[], str]:
    """Fresh stores, each a copy of one migrated store (migrating each is slower)."""
    template = tmp_path / "template.sqlite3"
    Store.open(f"sqlite:///{template}").close()
    assert not template.with_name(template.name + "-wal").exists()
    counter = itertools.count()

    def new() -> str:
        path = tmp_path / f"k{next(counter)}.sqlite3"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    return new


@pytest.fixture
def postgres_urls(postgres_server: PostgresServer) -> Iterator[Callable[[], str]]:
    """One migrated database, emptied for each use (creating databases costs disk time)."""
    url = postgres_server.new_database()
    Store.open(url).close()
    engine = sa.create_engine(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)

    def new() -> str:
        with engine.begin() as c:
            c.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY"))
        return url

    yield new
    engine.dispose()


def test_maildir_sync_killed_at_every_batch_sqlite(tmp_path: Path, demo_maildir: Path) -> None:
    check_kill_points("maildir/sqlite", sqlite_urls(tmp_path), maildir_source(demo_maildir))


def test_maildir_sync_killed_at_every_batch_postgresql(
    postgres_urls: Callable[[], str], demo_maildir: Path
) -> None:
    """On PostgreSQL the kill that matters is inside a transaction: the server must roll
    back what the dead connection had executed. (After a commit both backends are alike.)"""
    check_kill_points(
        "maildir/postgresql", postgres_urls, maildir_source(demo_maildir), ["in-transaction"]
    )


def test_incremental_maildir_sync_killed_at_every_batch(tmp_path: Path, demo_maildir: Path) -> None:
    """A second sync after flag changes and new mail: FlagUpdates are in the batches too."""
    root = tmp_path / "Mail"
    shutil.copytree(demo_maildir, root)
    make = maildir_source(root, chunk_size=30)
    first = sqlite_urls(tmp_path / "first")
    synced = first()
    with Store.open(synced) as store:
        sync_source(store, make())
    # the user answered and flagged mail, unflagged sent mail, and new mail arrived
    changed = 0
    for folder in (root / "cur", root / ".Sent" / "cur"):
        for i, path in enumerate(sorted(folder.iterdir())):
            if i % 4 == 0:
                key, _, flags = path.name.partition(":2,")
                new = "" if folder.parent.name == ".Sent" else "".join(sorted(set(flags + "RF")))
                path.rename(path.with_name(f"{key}:2,{new}"))
                changed += 1
    for i in range(90):
        write_maildir_message(
            root,
            f"1800000000.N{i}.crash",
            f"From: Friend {i % 7} <friend{i % 7}@example.net>\r\nTo: {ME[1]}\r\n"
            f"Subject: new {i}\r\nDate: Sat, 21 Nov 2026 {i % 24:02d}:00:00 +0000\r\n"
            f"Message-ID: <new{i}@example.net>\r\n\r\n".encode(),
            folder="Sent" if i % 3 == 0 else "",
        )
    assert changed > 150
    template = Path(synced.removeprefix("sqlite:///"))
    counter = itertools.count()

    def new_url() -> str:
        path = tmp_path / f"inc{next(counter)}.sqlite3"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    check_kill_points("maildir-incremental/sqlite", new_url, make)


def test_maildir_sync_crashing_after_each_first_commit(tmp_path: Path, demo_maildir: Path) -> None:
    check_crash_after_every_first_commit(sqlite_urls(tmp_path), maildir_source(demo_maildir))


CHILD = r"""
import os, signal, sys
from contextlib import contextmanager
from kithkeep.connectors.maildir import MaildirConfig, MaildirSource
from kithkeep.store import Store
from kithkeep.sync import sync_source

url, root, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def die_in_transaction(store):
    store.count += 1
    if mode == "in-transaction" and store.count == n + 1:
        os._exit(137)

class DyingStore(Store):
    count = 0
    @contextmanager
    def transaction(self):
        with self.sessions.begin() as session:
            yield session
            session.flush()
            die_in_transaction(self)

class DyingSource(MaildirSource):
    def sync(self, ctx):
        for i, batch in enumerate(super().sync(ctx)):
            if mode == "after-batch" and i == n:
                ctx.checkpoints()  # waits for the commits in flight
                os._exit(137)
            yield batch

store = DyingStore.open(url)
sync_source(store, DyingSource("mail", MaildirConfig(path=root, chunk_size=60)))
"""


@pytest.mark.parametrize(("mode", "n"), [("after-batch", 3), ("in-transaction", 3)])
def test_a_fresh_interpreter_exiting_mid_sync(
    tmp_path: Path, demo_maildir: Path, mode: str, n: int
) -> None:
    """The same with ``python -c`` and ``os._exit(137)``, as a user's process would die."""
    make = maildir_source(demo_maildir)
    ref = reference_run(f"sqlite:///{tmp_path / 'ref.sqlite3'}", make)
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(demo_maildir), mode, str(n)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 137, proc.stderr
    KILL_POINTS[f"sync python -c {mode}"] += 1
    assert counts(url, "mail") == ref.after[n]
    with Store.open(url) as store:
        sync_source(store, make())
    assert snapshot(url, "mail") == ref.final


# ------------------------------------------------------------------ IMAP


def _imap_message(i: int, sent: bool) -> bytes:
    people = [f"friend{k}@example.net" for k in range(8)]
    other = people[i % len(people)]
    frm, to = (ME[1], other) if sent else (other, ME[1])
    day = NOW - timedelta(days=400 - i % 400, hours=i % 24)
    return (
        f"From: {frm}\r\nTo: {to}\r\nSubject: note {i}\r\n"
        f"Date: {day.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
        f"Message-ID: <imap{i}.{int(sent)}@example.net>\r\n\r\nbody {i}\r\n"
    ).encode()


@pytest.fixture(scope="module")
def imap_mailbox(dovecot_server: DovecotServer) -> ImapUser:
    from imapclient import IMAPClient

    user = dovecot_server.add_user()
    c = IMAPClient(user.host, user.port, ssl=False, timeout=30)
    c.login(user.username, user.password)
    try:
        for i in range(240):
            c.append("INBOX", _imap_message(i, False), flags=(b"\\Seen",) if i % 3 else ())
        for i in range(60):
            c.append("Sent", _imap_message(i, True), flags=(b"\\Seen",))
    finally:
        c.logout()
    return user


def imap_source(user: ImapUser, chunk_size: int = 25) -> Callable[[], MailSource]:
    env = "KK_TEST_CRASH_IMAP_PW_" + user.username.split("@")[0].upper()
    os.environ[env] = user.password

    def make() -> MailSource:
        cfg = ImapConfig(
            host=user.host,
            port=user.port,
            tls="none",
            allow_plaintext=True,
            username=user.username,
            password_env=env,
            chunk_size=chunk_size,
            timeout=10,
        )
        src = ImapSource("imap", cfg)
        src._sleep = lambda _s: None
        return src

    return make


def test_imap_sync_killed_at_every_batch(tmp_path: Path, imap_mailbox: ImapUser) -> None:
    check_kill_points("imap/sqlite", sqlite_urls(tmp_path), imap_source(imap_mailbox))


def test_incremental_imap_sync_killed_at_every_batch(
    tmp_path: Path, dovecot_server: DovecotServer
) -> None:
    """A second IMAP sync after flag changes (CONDSTORE) and new mail, killed at every batch."""
    from imapclient import IMAPClient

    user = dovecot_server.add_user()
    c = IMAPClient(user.host, user.port, ssl=False, timeout=30)
    c.login(user.username, user.password)
    try:
        for i in range(120):
            c.append("INBOX", _imap_message(i, False), flags=(b"\\Seen",))
        for i in range(40):
            c.append("Sent", _imap_message(i, True), flags=(b"\\Seen",))
        make = imap_source(user, chunk_size=10)
        first = sqlite_urls(tmp_path / "first")
        synced = first()
        with Store.open(synced) as store:
            sync_source(store, make())
            assert sum(1 for _ in store.iter_messages()) == 160
        # the user answers and flags mail, and new mail arrives
        c.select_folder("INBOX")
        uids = sorted(c.search("ALL"))
        c.add_flags(uids[::4], [b"\\Answered"])
        c.add_flags(uids[1::5], [b"\\Flagged"])
        c.remove_flags(uids[2::6], [b"\\Seen"])
        for i in range(120, 190):
            c.append("INBOX", _imap_message(i, False))
        for i in range(40, 60):
            c.append("Sent", _imap_message(i, True), flags=(b"\\Seen",))
    finally:
        c.logout()
    template = Path(synced.removeprefix("sqlite:///"))
    counter = itertools.count()

    def new_url() -> str:
        path = tmp_path / f"inc{next(counter)}.sqlite3"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    check_kill_points("imap-incremental/sqlite", new_url, make)


def test_imap_rescan_after_a_new_uidvalidity_killed_at_every_batch(
    tmp_path: Path, dovecot_server: DovecotServer
) -> None:
    """A folder recreated on the server (new UIDVALIDITY) is rescanned: its first batch
    replaces the folder's records; a kill anywhere in the rescan must not lose or mix."""
    from imapclient import IMAPClient

    user = dovecot_server.add_user()
    c = IMAPClient(user.host, user.port, ssl=False, timeout=30)
    c.login(user.username, user.password)
    try:
        for i in range(20):
            c.append("INBOX", _imap_message(i, False), flags=(b"\\Seen",))
        for i in range(100, 160):
            c.append("Archive", _imap_message(i, False), flags=(b"\\Seen",))
        make = imap_source(user, chunk_size=10)
        synced = sqlite_urls(tmp_path / "first")()
        with Store.open(synced) as store:
            sync_source(store, make())
            before = store.checkpoints("imap")["Archive"]["uidvalidity"]
        c.delete_folder("Archive")
        c.create_folder("Archive")
        for i in range(200, 245):
            c.append("Archive", _imap_message(i, False), flags=(b"\\Seen",))
        c.select_folder("Archive")
        assert c.folder_status("Archive", ["UIDVALIDITY"])[b"UIDVALIDITY"] != before
    finally:
        c.logout()
    template = Path(synced.removeprefix("sqlite:///"))
    counter = itertools.count()

    def new_url() -> str:
        path = tmp_path / f"uv{next(counter)}.sqlite3"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"

    check_kill_points("imap-new-uidvalidity/sqlite", new_url, make)
    url = new_url()
    with Store.open(url) as store:
        sync_source(store, make())
    archive = [m for k, m in snapshot(url, "imap").messages.items() if k[1] == "Archive"]
    # the old folder's records were replaced by the new folder's, not added to
    assert sorted(m.message_id for m in archive) == sorted(
        f"imap{i}.0@example.net" for i in range(200, 245)
    )


def test_imap_checkpoint_after_a_kill_before_the_last_empty_batch(
    tmp_path: Path, dovecot_server: DovecotServer
) -> None:
    from imapclient import IMAPClient

    user = dovecot_server.add_user()
    c = IMAPClient(user.host, user.port, ssl=False, timeout=30)
    c.login(user.username, user.password)
    try:
        for i in range(30):  # three full chunks of 10, then an empty last batch
            c.append("INBOX", _imap_message(i, False), flags=(b"\\Seen",))
    finally:
        c.logout()
    make = imap_source(user, chunk_size=10)
    urls = sqlite_urls(tmp_path)
    ref_url = urls()
    with Store.open(ref_url) as store:
        sync_source(store, make())
    url = urls()
    assert crash_sync(url, make, "after-batch", 3) == -signal.SIGKILL
    with Store.open(url) as store:
        sync_source(store, make())
    assert snapshot(url, "imap").checkpoints == snapshot(ref_url, "imap").checkpoints


# ============================================================= reminders


class FolderSink(ReminderSink):
    """Reminder events as one JSON file each in a folder; every write is durable at once.

    Like a CalDAV or Google calendar (and unlike the .ics sink, which writes
    once at flush), so a crash can fall between any two writes. A create
    always adds a new file, even for a UID already there: a duplicate is
    visible, not hidden.
    """

    def __init__(self, name: str, root: Path, on_write: Callable[[], None]) -> None:
        super().__init__(name)
        self.root = root
        self.on_write = on_write
        root.mkdir(parents=True, exist_ok=True)

    def _events(self) -> list[tuple[Path, dict[str, str]]]:
        return [(p, json.loads(p.read_text())) for p in sorted(self.root.glob("*.json"))]

    def _write(self, path: Path, data: dict[str, str]) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, path)
        self.on_write()

    @staticmethod
    def _event(path: Path, d: dict[str, str]) -> SinkEvent:
        return SinkEvent(
            key=d["key"],
            uid=d["uid"],
            start=datetime.fromisoformat(d["start"]),
            end=datetime.fromisoformat(d["end"]),
            title=d["title"],
            description=d["description"],
            etag=path.name,
        )

    def list_own(self) -> list[SinkEvent]:
        return [self._event(p, d) for p, d in self._events()]

    @staticmethod
    def _data(r: Reminder) -> dict[str, str]:
        return {
            "key": r.key,
            "uid": r.uid,
            "start": r.start.isoformat(),
            "end": r.end.isoformat(),
            "title": r.title,
            "description": r.description,
        }

    def create(self, reminder: Reminder) -> SinkEvent:
        n = 1 + max((int(p.stem) for p, _ in self._events()), default=0)
        path = self.root / f"{n:06d}.json"
        self._write(path, self._data(reminder))
        return self._event(path, self._data(reminder))

    def update(self, current: SinkEvent, reminder: Reminder) -> SinkEvent:
        assert current.etag is not None
        path = self.root / current.etag
        self._write(path, self._data(reminder))
        return self._event(path, self._data(reminder))

    def delete(self, current: SinkEvent) -> None:
        assert current.etag is not None
        (self.root / current.etag).unlink()
        self.on_write()


def finding(n: int, *, title: str = "", explanation: str = "") -> Finding:
    return Finding(
        rule="neglected",
        person_id=f"p{n:010d}",
        person_name=f"Person {n}",
        severity=90 - n,
        due=NOW + timedelta(days=n % 3),
        title=title or f"Reconnect with Person {n}",
        explanation=explanation or f"No contact for {30 + n} days",
        suggestion="Send them something useful",
        evidence={"days_silent": 30 + n},
        episode=f"2026-10-{n:02d}",
    )


# Three runs: the first creates six reminders; the second updates two,
# deletes two (resolved) and creates two; the third has nothing to do.
PHASES: list[list[Finding]] = [
    [finding(n) for n in range(1, 7)],
    [
        finding(1),
        finding(2, title="Reconnect with Person 2 (it has been a while)"),
        finding(5),
        finding(6, explanation="No contact for 99 days"),
        finding(7),
        finding(8),
    ],
    [
        finding(1),
        finding(2, title="Reconnect with Person 2 (it has been a while)"),
        finding(5),
        finding(6, explanation="No contact for 99 days"),
        finding(7),
        finding(8),
    ],
]


def reminder_config() -> Config:
    return parse_config(
        {"general": {"timezone": "Europe/Berlin"}, "reminders": {"max_per_day": 2}}, None
    )


@dataclass
class Hooks:
    """Kill switches for one child run; ``writes`` counts durable sink writes."""

    die_at_write: int | None = None
    die_at_plan: int | None = None  # phase index
    writes: int = 0

    def wrote(self) -> None:
        self.writes += 1
        if self.writes == self.die_at_write:
            die()


def make_sink(kind: str, root: Path, hooks: Hooks) -> ReminderSink:
    if kind == "folder":
        return FolderSink("reminders", root / "sink", hooks.wrote)

    class CountingIcsSink(IcsSink):
        def flush(self) -> None:
            dirty = self._dirty
            super().flush()
            if dirty:
                hooks.wrote()

    root.mkdir(parents=True, exist_ok=True)  # the .ics sink never creates its folder
    return CountingIcsSink("reminders", root / "reminders.ics")


def run_phases(
    kind: str, root: Path, url: str, phases: Sequence[int], hooks: Hooks, die_in_tx: int | None
) -> None:
    """Reconcile the given phases in order; a marker file records each finished phase."""
    config = reminder_config()
    store = DyingStore(Store.open(url).engine)
    store.die_in = die_in_tx
    real_apply = reminders.apply

    for phase in phases:

        def apply(
            sink: ReminderSink, actions: Sequence[reminders.Action], st: Store, _p: int = phase
        ) -> dict[str, int]:
            if hooks.die_at_plan == _p:
                die()
            return real_apply(sink, actions, st)

        reminders.apply = apply  # type: ignore[assignment]
        try:
            sink = make_sink(kind, root, hooks)
            reminders.reconcile(sink, PHASES[phase], config, store, NOW)
            sink.close()
        finally:
            reminders.apply = real_apply
        (root / f"phase-{phase}.done").touch()
    store.close()


def sink_state(kind: str, root: Path) -> list[tuple[str, str, str, str, str, str]]:
    """The reminder events in the sink: (uid, key, start, end, title, description)."""
    if kind == "folder":
        return sorted(
            (e.uid, e.key, e.start.isoformat(), e.end.isoformat(), e.title, e.description)
            for e in FolderSink("x", root / "sink", lambda: None).list_own()
        )
    path = root / "reminders.ics"
    if not path.exists():
        return []
    cal: Any = icalendar.Calendar.from_ical(path.read_bytes())
    return sorted(
        (
            str(e["UID"]),
            str(e[KEY_PROP]),
            e["DTSTART"].dt.isoformat(),
            e["DTEND"].dt.isoformat(),
            str(e["SUMMARY"]),
            str(e["DESCRIPTION"]),
        )
        for e in cal.walk("VEVENT")
    )


def store_state(url: str) -> list[tuple[Any, ...]]:
    with Store.open(url) as store, store.engine.connect() as c:
        return sorted(
            (r.sink, r.key, r.uid, r.start, r.end, r.status, r.content_hash)
            for r in c.execute(sa.select(ReminderState))
        )


def count_points(kind: str, tmp: Path) -> tuple[int, int]:
    """Durable sink writes and recording transactions of an uninterrupted run."""
    hooks = Hooks()
    url = f"sqlite:///{tmp / 'count.sqlite3'}"
    transactions = 0
    real = DyingStore.transaction

    @contextmanager
    def counting(self: DyingStore) -> Iterator[Any]:
        nonlocal transactions
        with real(self) as s:
            yield s
        transactions += 1

    DyingStore.transaction = counting  # type: ignore[method-assign]
    try:
        run_phases(kind, tmp / "count", url, range(len(PHASES)), hooks, None)
    finally:
        DyingStore.transaction = real  # type: ignore[method-assign]
    return hooks.writes, transactions


@pytest.mark.parametrize("kind", ["folder", "ics"])
def test_reconcile_killed_at_every_write_plan_and_commit(tmp_path: Path, kind: str) -> None:
    ref_root = tmp_path / "ref"
    ref_url = f"sqlite:///{tmp_path / 'ref.sqlite3'}"
    run_phases(kind, ref_root, ref_url, range(len(PHASES)), Hooks(), None)
    want_sink = sink_state(kind, ref_root)
    want_store = store_state(ref_url)
    # the reference did something in every phase worth crashing in
    assert len(want_sink) == 6
    assert {t for _uid, _k, _s, _e, t, _d in want_sink} >= {
        "Reconnect with Person 2 (it has been a while)",
        "Reconnect with Person 8",
    }
    assert all(r[5] == "written" for r in want_store) and len(want_store) == 6

    writes, transactions = count_points(kind, tmp_path)
    assert writes >= (2 if kind == "ics" else 12)
    points: list[tuple[str, int]] = (
        [("write", w) for w in range(1, writes + 1)]
        + [("plan", p) for p in range(len(PHASES))]
        + [("commit", t) for t in range(transactions)]
    )
    for i, (point, n) in enumerate(points):
        root = tmp_path / f"run{i}"
        url = f"sqlite:///{tmp_path / f'run{i}.sqlite3'}"
        hooks = Hooks(
            die_at_write=n if point == "write" else None,
            die_at_plan=n if point == "plan" else None,
        )
        status = in_child(
            functools.partial(
                run_phases,
                kind,
                root,
                url,
                range(len(PHASES)),
                hooks,
                n if point == "commit" else None,
            )
        )
        assert status == -signal.SIGKILL, (point, n, status)
        KILL_POINTS[f"reconcile {kind} {point}"] += 1
        # a normal run of every phase that had not finished
        left = [p for p in range(len(PHASES)) if not (root / f"phase-{p}.done").exists()]
        assert left, (point, n)
        run_phases(kind, root, url, left, Hooks(), None)
        got_sink = sink_state(kind, root)
        uids = [e[0] for e in got_sink]
        assert len(uids) == len(set(uids)), f"duplicate UID after a kill at {point} {n}"
        assert got_sink == want_sink, (point, n)
        assert store_state(url) == want_store, (point, n)


def test_the_state_hash_matches_the_sink_after_a_kill_during_an_update(tmp_path: Path) -> None:
    ref_url = f"sqlite:///{tmp_path / 'ref.sqlite3'}"
    run_phases("folder", tmp_path / "ref", ref_url, range(len(PHASES)), Hooks(), None)
    url = f"sqlite:///{tmp_path / 'k.sqlite3'}"
    run_phases("folder", tmp_path / "k", url, [0], Hooks(), None)
    # phase 1 starts with the update of Person 2's reminder: die right after that write
    hooks = Hooks(die_at_write=1)
    status = in_child(
        functools.partial(run_phases, "folder", tmp_path / "k", url, [1], hooks, None)
    )
    assert status == -signal.SIGKILL
    run_phases("folder", tmp_path / "k", url, [1, 2], Hooks(), None)
    assert sink_state("folder", tmp_path / "k") == sink_state("folder", tmp_path / "ref")
    assert store_state(url) == store_state(ref_url)


# ============================================ reconcile as a state machine


class Crash(BaseException):
    """A simulated SIGKILL inside the test process: nothing after it may persist."""


class CrashableStore(Store):
    """Every transaction opened while ``dead`` rolls back (the process is gone)."""

    dead = False

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self.sessions.begin() as session:
            yield session
            if self.dead:
                raise Crash  # rolls the transaction back


POOL = [finding(n) for n in range(1, 9)]
RETITLED = {f.key: replace(f, title=f.title + " (again)") for f in POOL}


class ReconcileMachine(RuleBasedStateMachine):
    """Random desired sets, the user moving and deleting reminders, and crashes at any
    sink write or between plan and apply; invariants after every normal reconcile."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="kk-reconcile-"))
        self.store = CrashableStore(Store.open(f"sqlite:///{self.root / 'k.sqlite3'}").engine)
        self.config = reminder_config()
        self.desired: list[Finding] = []
        self.moved: dict[str, datetime] = {}  # key -> the start the user gave it
        self.die_at_write: int | None = None
        self.writes = 0
        self.user_deleted: set[str] = set()
        self.ever_deleted: set[str] = set()  # keys whose event the user deleted at some time

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def on_write(self) -> None:
        self.writes += 1
        if self.writes == self.die_at_write:
            self.store.dead = True
            raise Crash

    def sink(self) -> FolderSink:
        return FolderSink("reminders", self.root / "sink", self.on_write)

    def files(self) -> list[tuple[Path, dict[str, str]]]:
        return self.sink()._events()

    @rule(
        picks=st.lists(st.integers(0, len(POOL) - 1), unique=True, max_size=len(POOL)),
        retitle=st.lists(st.booleans(), min_size=len(POOL), max_size=len(POOL)),
    )
    def findings_change(self, picks: list[int], retitle: list[bool]) -> None:
        self.desired = [RETITLED[POOL[i].key] if retitle[i] else POOL[i] for i in sorted(picks)]

    @rule(data=st.data())
    def user_moves_a_reminder(self, data: st.DataObject) -> None:
        files = self.files()
        if not files:
            return
        path, d = data.draw(st.sampled_from(files))
        start = datetime.fromisoformat(d["start"]) + timedelta(days=data.draw(st.integers(1, 5)))
        end = start + (datetime.fromisoformat(d["end"]) - datetime.fromisoformat(d["start"]))
        path.write_text(
            json.dumps({**d, "start": start.isoformat(), "end": end.isoformat()}, sort_keys=True)
        )
        self.moved[d["key"]] = start

    @rule(data=st.data())
    def user_deletes_a_reminder(self, data: st.DataObject) -> None:
        files = self.files()
        if files:
            path, d = data.draw(st.sampled_from(files))
            recorded = reminders.load_state(self.store, "reminders").get(d["key"])
            path.unlink()
            self.moved.pop(d["key"], None)
            if recorded is not None and recorded.status == "written":
                self.user_deleted.add(d["key"])
            self.ever_deleted.add(d["key"])

    def completed(self) -> None:
        """After a reconcile that ran to the end: what the user deleted stays deleted."""
        state = reminders.load_state(self.store, "reminders")
        keys = {d["key"] for _p, d in self.files()}
        for k in self.user_deleted:
            if any(f.key == k for f in self.desired):
                assert state[k].status == "dismissed", k
                assert k not in keys, f"{k} was written again after the user deleted it"
        self.user_deleted.clear()
        # a reminder kithkeep deleted (resolved) and writes again later takes a new slot
        self.moved = {k: v for k, v in self.moved.items() if k in keys}

    @rule(at=st.integers(1, 6), between_plan_and_apply=st.booleans())
    def crash_during_reconcile(self, at: int, between_plan_and_apply: bool) -> None:
        self.writes = 0
        self.die_at_write = None if between_plan_and_apply else at
        real_apply = reminders.apply

        def dying_apply(
            sink: ReminderSink, actions: Sequence[reminders.Action], store: Store
        ) -> dict[str, int]:
            self.store.dead = True
            raise Crash

        if between_plan_and_apply:
            reminders.apply = dying_apply
        try:
            reminders.reconcile(self.sink(), self.desired, self.config, self.store, NOW)
            self.completed()  # fewer writes than the kill point: it ran to the end
        except Crash:
            KILL_POINTS["reconcile state machine"] += 1
        except SinkRefused:
            pass
        finally:
            reminders.apply = real_apply
            self.store.dead = False
            self.die_at_write = None

    @rule()
    def reconcile(self) -> None:
        self.die_at_write = None
        state_before = reminders.load_state(self.store, "reminders")
        try:
            reminders.reconcile(self.sink(), self.desired, self.config, self.store, NOW)
        except SinkRefused:
            # only when the sink shows none of what kithkeep recorded as written
            assert not self.files()
            assert any(s.status == "written" for s in state_before.values())
            reminders.reconcile(self.sink(), self.desired, self.config, self.store, NOW, force=True)
        self.completed()
        self.check_converged()
        # a second run right away changes nothing
        before = sorted((p.name, json.dumps(d)) for p, d in self.files())
        counts = reminders.reconcile(self.sink(), self.desired, self.config, self.store, NOW)
        assert set(counts) <= {"adopt"} and not counts.get("adopt"), counts
        assert sorted((p.name, json.dumps(d)) for p, d in self.files()) == before

    def check_converged(self) -> None:
        events = [d for _p, d in self.files()]
        keys = [d["key"] for d in events]
        state = reminders.load_state(self.store, "reminders")
        wanted = {f.key: f for f in self.desired}
        assert len(keys) == len(set(keys)), "two events for one reminder"
        assert set(keys) <= set(wanted), "a reminder that is no longer wanted"
        for k in wanted:
            # every wanted reminder is in the sink, or the user dismissed it by deleting it
            assert k in keys or (state.get(k) is not None and state[k].status == "dismissed"), k
        assert {k for k, s in state.items() if s.status == "written"} == set(keys)
        # (that only what the user deleted is ever dismissed does not hold after every
        # crash: see test_a_resolved_reminder_killed_mid_delete_is_not_dismissed_later)
        for d in events:
            assert d["title"] == wanted[d["key"]].title  # the text follows the finding
            if d["key"] in self.moved:  # the user's time is kept
                assert datetime.fromisoformat(d["start"]) == self.moved[d["key"]]

    @invariant()
    def never_a_duplicate(self) -> None:
        uids = [d["uid"] for _p, d in self.files()]
        assert len(uids) == len(set(uids)), "duplicate UID in the sink"


ReconcileMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None
)
test_reconcile_state_machine = ReconcileMachine.TestCase


def test_a_resolved_reminder_killed_mid_delete_is_not_dismissed_later() -> None:
    m = ReconcileMachine()
    try:
        m.desired = [POOL[0], POOL[1]]
        m.reconcile()
        m.desired = [POOL[1]]  # Person 1's finding resolves: its reminder is deleted...
        m.crash_during_reconcile(at=1, between_plan_and_apply=False)  # ...killed right after
        assert [d["key"] for _p, d in m.files()] == [POOL[1].key]
        m.desired = [POOL[0], POOL[1]]  # the same finding comes back
        m.reconcile()
        state = reminders.load_state(m.store, "reminders")
        assert state[POOL[0].key].status == "written"
        assert sorted(d["key"] for _p, d in m.files()) == [POOL[0].key, POOL[1].key]
    finally:
        m.teardown()


def test_report_the_kill_points() -> None:
    """Runs last in this module: print the figures for the README (pytest -s)."""
    total = sum(KILL_POINTS.values())
    print(f"\nkill points exercised: {total}")
    for k, v in sorted(KILL_POINTS.items()):
        print(f"  {k}: {v}")
    if not KILL_POINTS:
        pytest.skip("run with the whole module to count the kill points")
