"""The store: migrations on open, batches committed with their checkpoint."""

from __future__ import annotations

import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from kithkeep.errors import StoreError
from kithkeep.records import Address, Checkpoint, MailBatch, MessageRecord
from kithkeep.schema import Message
from kithkeep.store import Store, head_revision


def rec(uid: str, folder: str = "INBOX") -> MessageRecord:
    return MessageRecord(
        account="acct",
        folder=folder,
        uid=uid,
        message_id=f"{uid}@x",
        date=datetime(2026, 1, 1, tzinfo=UTC),
        from_=(Address("Ana", "ana@example.org"),),
        to=(Address("", "sam@example.org"),),
    )


def test_open_migrates_and_is_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'k.sqlite3'}"
    with Store.open(url) as store, store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        version = c.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        assert version == head_revision()
    with Store.open(url) as store:  # opening again is a no-op migration
        assert store.count(Message) == 0


def test_the_store_files_are_the_owners_alone(tmp_path: Path) -> None:
    """Created 0600 (SQLite gives its -wal and -shm the database's mode), and a store
    left readable by others is made so on open."""
    db = tmp_path / "k.sqlite3"
    with Store.open(f"sqlite:///{db}") as store:
        store.apply_mail_batch(MailBatch(records=[rec("1")]), "acct")
        files = [db, db.with_name("k.sqlite3-wal"), db.with_name("k.sqlite3-shm")]
        assert all(f.exists() for f in files)
        assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o600] * 3
    old = tmp_path / "old.sqlite3"
    sqlite3.connect(old).close()
    old.chmod(0o644)
    with Store.open(f"sqlite:///{old}"):
        assert stat.S_IMODE(old.stat().st_mode) == 0o600


def test_new_stores_get_16k_pages_and_old_ones_keep_theirs(tmp_path: Path) -> None:
    with Store.open(f"sqlite:///{tmp_path / 'new.sqlite3'}") as store, store.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA page_size").scalar() == 16384
    # a store made with 4 KiB pages (before 2026-12-01) stays as it is
    old = tmp_path / "old.sqlite3"
    with sqlite3.connect(old) as c:
        c.execute("PRAGMA page_size=4096")
        c.execute("CREATE TABLE kept (x)")
        c.execute("INSERT INTO kept VALUES (1)")
    with Store.open(f"sqlite:///{old}") as store:
        store.apply_mail_batch(MailBatch(records=[rec("1")]), "acct")
        assert store.count(Message) == 1
        with store.engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA page_size").scalar() == 4096
            assert c.exec_driver_sql("SELECT x FROM kept").scalar() == 1


def test_batch_and_checkpoint_commit_together(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'k.sqlite3'}")
    cp = Checkpoint("acct", "INBOX", {"uidvalidity": 1, "uidnext": 3})
    store.apply_mail_batch(MailBatch(records=[rec("1"), rec("2")], checkpoint=cp), "acct")
    assert store.checkpoints("acct") == {"INBOX": {"uidvalidity": 1, "uidnext": 3}}
    # the same batch again changes nothing (upsert by location)
    store.apply_mail_batch(MailBatch(records=[rec("1"), rec("2")], checkpoint=cp), "acct")
    assert store.count(Message) == 2

    # a failing batch leaves neither its records nor its checkpoint
    bad = MailBatch(
        records=[
            rec("3"),
            rec("4").__class__(**{**_fields(rec("4")), "date": datetime(2026, 1, 1)}),
        ],
        checkpoint=Checkpoint("acct", "INBOX", {"uidvalidity": 1, "uidnext": 5}),
    )
    with pytest.raises((ValueError, sa.exc.StatementError)):
        store.apply_mail_batch(bad, "acct")
    assert store.count(Message) == 2
    assert store.checkpoints("acct")["INBOX"]["uidnext"] == 3

    # replace_folder (new UIDVALIDITY) drops the folder's records in the same transaction
    store.apply_mail_batch(
        MailBatch(
            records=[rec("10")],
            replace_folder="INBOX",
            checkpoint=Checkpoint("acct", "INBOX", {"uidvalidity": 2, "uidnext": 11}),
        ),
        "acct",
    )
    assert sorted(m.uid for m in store.iter_messages()) == ["10"]
    store.close()


def _fields(r: MessageRecord) -> dict[str, object]:
    return {s: getattr(r, s) for s in MessageRecord.__slots__}


def test_unopenable_store_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open the store"):
        Store.open(f"sqlite:///{blocker / 'db.sqlite3'}")


def test_records_round_trip(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'k.sqlite3'}")
    r = MessageRecord(
        account="a",
        folder="Sent",
        uid="7",
        message_id="m@x",
        date=datetime(2026, 3, 1, 12, tzinfo=UTC),
        from_=(Address("Sam", "sam@x.org"),),
        to=(Address("Ana Ü", "ana@x.org"),),
        cc=(Address("", "ben@x.org"),),
        references=("a@x", "b@x"),
        subject="Grüße",
        flags=frozenset({"\\Seen", "\\Answered"}),
        in_sent_folder=True,
        parse_errors=("date",),
    )
    store.apply_mail_batch(MailBatch(records=[r]), "a")
    (back,) = store.iter_messages()
    assert back == r
    store.close()
