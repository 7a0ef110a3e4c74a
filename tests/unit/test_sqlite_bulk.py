"""The compiled bulk SQLite writer (kithkeep/_sqlitebulk.c, kithkeep/sqlite_bulk.py).

It must store exactly what the stdlib sqlite3 module stores, commit all of a
transaction or none of it, report SQLite's errors as sqlite3's own exception
classes, and release the GIL while SQLite works (the reason it exists).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kithkeep import sqlite_bulk
from kithkeep.errors import StoreError
from kithkeep.records import Checkpoint, FlagUpdate, MailBatch, MessageRecord
from kithkeep.rowcodec import message_values
from kithkeep.store import Store

pytestmark = pytest.mark.skipif(not sqlite_bulk.COMPILED, reason="_sqlitebulk not built")

TABLE = "CREATE TABLE t (id INTEGER PRIMARY KEY, a, b, c, d TEXT NOT NULL UNIQUE)"
INSERT = "INSERT INTO t (a, b, c, d) VALUES (?, ?, ?, ?)"

VALUES: list[tuple[Any, ...]] = [
    (None, True, False, "ascii"),
    (0, -1, 2**63 - 1, "Chloé García"),
    (-(2**63), 1.5, float("-inf"), "emoji 🎉 and CJK 漢字"),
    ("", "\x00inner\x00nul", "tab\tnewline\n", "a" * 100_000),
    (3.25, "line\r\nbreak", None, "\u200b zero width"),
]


def new_db(path: Path) -> Path:
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA journal_mode=WAL")
        c.execute(TABLE)
    return path


def rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as c:
        return c.execute("SELECT id, a, typeof(a), b, typeof(b), c, typeof(c), d FROM t").fetchall()


def test_stores_what_sqlite3_stores(tmp_path: Path) -> None:
    ours, theirs = new_db(tmp_path / "ours.db"), new_db(tmp_path / "theirs.db")
    writer = sqlite_bulk.BulkWriter(ours)
    writer.run([(INSERT, VALUES)])
    writer.close()
    with sqlite3.connect(theirs) as c:
        c.executemany(INSERT, VALUES)
    assert rows(ours) == rows(theirs)
    assert len(rows(ours)) == len(VALUES)


def test_every_step_or_none(tmp_path: Path) -> None:
    db = new_db(tmp_path / "k.db")
    writer = sqlite_bulk.BulkWriter(db)
    writer.run([(INSERT, [(1, 2, 3, "x")])])
    steps = [
        ("DELETE FROM t", [()]),
        (INSERT, [(1, 1, 1, "y"), (2, 2, 2, "z")]),
        (INSERT, [(3, 3, 3, "x"), (4, 4, 4, "x")]),  # the second "x" violates UNIQUE
    ]
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE constraint failed") as info:
        writer.run(steps)
    assert info.value.sqlite_errorcode == 2067  # SQLITE_CONSTRAINT_UNIQUE
    assert [r[-1] for r in rows(db)] == ["x"]  # the DELETE and the first rows rolled back
    # the connection is usable afterwards
    writer.run([("DELETE FROM t", [()]), (INSERT, [(5, 5, 5, "w")])])
    assert [r[-1] for r in rows(db)] == ["w"]
    writer.close()


def test_bad_values_are_refused_before_any_sql(tmp_path: Path) -> None:
    db = new_db(tmp_path / "k.db")
    writer = sqlite_bulk.BulkWriter(db)
    before = [("DELETE FROM t", [()])]
    with pytest.raises(TypeError, match="row 1, column 2: cannot store a bytes"):
        writer.run([*before, (INSERT, [(1, 2, 3, "a"), (1, 2, b"x", "b")])])
    with pytest.raises(OverflowError):
        writer.run([(INSERT, [(2**63, 0, 0, "c")])])
    with pytest.raises(ValueError, match="row 1: expected a tuple of 4 values"):
        writer.run([(INSERT, [(1, 2, 3, "a"), (1, 2, 3)])])
    with pytest.raises(ValueError, match="statement 0 takes 4 values, its rows have 3"):
        writer.run([(INSERT, [(1, 2, 3)])])
    with pytest.raises(UnicodeEncodeError, match="surrogates not allowed"):
        writer.run([(INSERT, [(1, 2, 3, "\udcff")])])
    with pytest.raises(sqlite3.OperationalError, match="no such table: nowhere"):
        writer.run([(INSERT, [(1, 2, 3, "d")]), ("INSERT INTO nowhere VALUES (?)", [(1,)])])
    assert rows(db) == []
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.run([(INSERT, [(1, 2, 3, "e")])])


def test_an_exception_before_commit_rolls_back(tmp_path: Path) -> None:
    db = new_db(tmp_path / "k.db")
    writer = sqlite_bulk.BulkWriter(db)
    seen: list[int] = []

    def before_commit() -> None:
        # inside the transaction: another connection sees nothing yet
        seen.append(len(rows(db)))
        raise KeyError("stop")

    with pytest.raises(KeyError, match="stop"):
        writer.run([(INSERT, [(1, 2, 3, "a")])], before_commit)
    assert seen == [0]
    assert rows(db) == []
    writer.run([(INSERT, [(1, 2, 3, "a")])], lambda: seen.append(len(rows(db))))
    assert seen == [0, 0] and len(rows(db)) == 1
    writer.close()


def test_the_gil_is_released_while_sqlite_waits(tmp_path: Path) -> None:
    """A bulk transaction waiting for a lock held by this thread: it can only succeed
    if this thread runs Python while the other one is inside the C call."""
    db = new_db(tmp_path / "k.db")
    writer = sqlite_bulk.BulkWriter(db, busy_timeout_ms=20_000)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    errors: list[BaseException] = []
    started = threading.Event()

    def write() -> None:
        started.set()
        try:
            writer.run([(INSERT, [(1, 2, 3, "a")])])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=write)
    t0 = time.monotonic()
    thread.start()
    started.wait()
    time.sleep(0.3)  # the writer is now in SQLite's busy wait
    holder.execute("COMMIT")  # needs the GIL: runs only if the writer released it
    released_after = time.monotonic() - t0
    thread.join()
    holder.close()
    assert errors == []
    assert released_after < 10, "the lock was released only after the writer's busy timeout"
    assert len(rows(db)) == 1
    writer.close()


def test_a_locked_database_is_a_clear_store_error(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'k.sqlite3'}")
    holder = sqlite3.connect(tmp_path / "k.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    bulk = store._bulk_writer()
    assert bulk is not None
    bulk.close()
    store._bulk = sqlite_bulk.BulkWriter(tmp_path / "k.sqlite3", busy_timeout_ms=50)
    rec = MessageRecord("acct", "INBOX", "1", "m@x", datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(StoreError, match=r"cannot store mail of acct in .*: database is locked"):
        store.apply_mail_batch(MailBatch(records=[rec]), "acct")
    holder.execute("ROLLBACK")
    holder.close()
    store.apply_mail_batch(MailBatch(records=[rec]), "acct")
    assert [m.uid for m in store.iter_messages()] == ["1"]
    store.close()


def batches() -> list[MailBatch]:
    def rec(uid: str, **kw: Any) -> MessageRecord:
        base: dict[str, Any] = {
            "account": "acct",
            "folder": "INBOX",
            "uid": uid,
            "message_id": f"{uid}@x",
            "date": datetime(2024, 1, int(uid) % 27 + 1, 8, tzinfo=UTC),
        }
        return MessageRecord(**{**base, **kw})

    cp = Checkpoint("acct", "INBOX", {"uidvalidity": 1, "uid": 3})
    return [
        MailBatch(records=[rec("1"), rec("2"), rec("3", list_unsubscribe=True)], checkpoint=cp),
        # raw rows (as the IMAP connector gives them), and a row twice: the last copy wins
        MailBatch(
            rows=[
                message_values(rec("4"), lambda d: d.isoformat(" ")[:19] + ".000000"),
                message_values(rec("5", subject="first"), lambda d: None),
                message_values(rec("5", subject="second"), lambda d: None),
            ]
        ),
        MailBatch(flag_updates=[FlagUpdate("INBOX", "2", frozenset({"\\Seen", "\\Answered"}))]),
        MailBatch(
            records=[rec("9", folder="Sent", in_sent_folder=True, gm_msgid=2**62)],
            replace_folder="INBOX",
            checkpoint=Checkpoint("acct", "INBOX", {"uidvalidity": 2, "uid": 0}),
        ),
    ]


def table(path: Path, name: str, skip: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as c:
        cols = [r[1] for r in c.execute(f"PRAGMA table_info({name})") if r[1] not in skip]
        typed = ", ".join(f"{col}, typeof({col})" for col in cols)
        return c.execute(f"SELECT {typed} FROM {name} ORDER BY 1, 2, 3").fetchall()


def test_mail_batches_store_the_same_with_and_without_the_bulk_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = Store.open(f"sqlite:///{tmp_path / 'fast.sqlite3'}")
    slow = Store.open(f"sqlite:///{tmp_path / 'slow.sqlite3'}")
    monkeypatch.setattr(slow, "_bulk_writer", lambda: None)
    for i, batch in enumerate(batches()):
        fast.apply_mail_batch(batch, "acct")
        slow.apply_mail_batch(batch, "acct")
        got, want = (
            table(tmp_path / "fast.sqlite3", "messages"),
            table(tmp_path / "slow.sqlite3", "messages"),
        )
        assert got == want, i
        assert fast.checkpoints("acct") == slow.checkpoints("acct")
    assert fast._bulk is not None  # the fast store did use it
    assert [m.uid for m in fast.iter_messages()] == ["9"]
    skip = ("updated_at",)  # a time stamp of each commit
    assert table(tmp_path / "fast.sqlite3", "sync_state", skip) == table(
        tmp_path / "slow.sqlite3", "sync_state", skip
    )
    with sqlite3.connect(tmp_path / "fast.sqlite3") as c:
        (stamp,) = c.execute("SELECT updated_at FROM sync_state").fetchone()
    age = datetime.now(UTC) - datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    assert 0 <= age.total_seconds() < 60  # naive UTC, as UTCDateTime stores it
    fast.close()
    slow.close()


def test_only_plain_sqlite_files_get_a_bulk_writer(tmp_path: Path) -> None:
    memory = Store.open("sqlite://")
    assert memory._bulk_writer() is None
    memory.close()
    relative = Store.open(f"sqlite:///{tmp_path / 'a' / '..' / 'k.sqlite3'}")
    bulk = relative._bulk_writer()
    assert bulk is not None and bulk is relative._bulk_writer()  # opened once
    assert sqlite_bulk.sqlite_file(relative.engine) == tmp_path / "k.sqlite3"
    relative.close()
    assert relative._bulk is None  # closed with the store


def test_a_bulk_writer_that_cannot_open_falls_back_to_sqlite3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(_engine: object) -> None:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr("kithkeep.store.bulk_writer", refuse)
    store = Store.open(f"sqlite:///{tmp_path / 'k.sqlite3'}")
    for batch in batches()[:2]:
        store.apply_mail_batch(batch, "acct")
    assert sorted(m.uid for m in store.iter_messages()) == ["1", "2", "3", "4", "5"]
    assert "writing mail through sqlite3: cannot open" in caplog.text
    assert "unable to open database file" in caplog.text
    store.close()
