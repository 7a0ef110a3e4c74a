"""The contract every MailSource passes (like tests/contract/sink_contract.py).

A test module subclasses :class:`MailSourceContract` and provides:

- ``make_source(chunk_size)``: a source on the backing mailbox of this test;
  calling it again gives a fresh instance on the same mailbox (the next run);
- ``deliver(folder, raw, flags)``: a message arrives in a folder (as a mail
  client or the server would put it there, behind kithkeep's back);
- ``set_flags(folder, message_id, flags)``: the user's client changes the
  flags of a message (``\\Answered`` after a reply, ``\\Seen`` ...);
- ``remove(folder, message_id)``: the user deletes a message;

and says what the mailbox offers: ``INBOX`` (the folder new mail arrives
in), ``SENT`` (the folder the user's sent mail is in, or None when the source
cannot tell one), ``OTHER`` (a second ordinary folder, or None for a source
of one folder, such as an mbox file).

The cases go through the real store (SQLite) and kithkeep.sync, the way
``kithkeep sync`` runs a source: incremental positions, flags, the same
message in two folders, deleted messages, and resuming after a crash.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kithkeep.interfaces import MailSource
from kithkeep.records import MailBatch
from kithkeep.store import Store
from kithkeep.sync import StoreSyncContext, sync_source

ME = "me@example.org"


def message(
    n: int,
    *,
    frm: str = "Ana Silva <ana@example.com>",
    to: str = ME,
    subject: str | None = None,
    extra: str = "",
) -> bytes:
    """A plain message with a body that must never reach the store."""
    return (
        f"From: {frm}\r\n"
        f"To: {to}\r\n"
        f"Subject: {subject if subject is not None else f'message {n}'}\r\n"
        f"Date: Mon, 2 Nov 2026 10:{n % 60:02d}:00 +0100\r\n"
        f"Message-ID: <m{n}@example.com>\r\n"
        f"{extra}"
        f"\r\n"
        f"secret body {n}: never fetched, never stored\r\n"
    ).encode()


# (folder, message_id, flags, in_sent_folder) per stored message
Row = tuple[str, str, frozenset[str], bool]


class MailSourceContract:
    INBOX = "INBOX"
    SENT: str | None = "Sent"
    OTHER: str | None = "Archive"

    def make_source(self, chunk_size: int = 1000) -> MailSource:
        raise NotImplementedError

    def deliver(self, folder: str, raw: bytes, flags: frozenset[str] = frozenset()) -> None:
        raise NotImplementedError

    def set_flags(self, folder: str, message_id: str, flags: frozenset[str]) -> None:
        raise NotImplementedError

    def remove(self, folder: str, message_id: str) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------- helpers

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        s = Store.open(f"sqlite:///{tmp_path / 'contract.sqlite3'}")
        yield s
        s.close()

    def sync(self, store: Store, chunk_size: int = 1000) -> int:
        """One run, as ``kithkeep sync`` does it; returns how many records it stored."""
        source = self.make_source(chunk_size)
        try:
            return sync_source(store, source).records
        finally:
            source.close()

    @staticmethod
    def rows(store: Store) -> list[Row]:
        return sorted(
            (m.folder, m.message_id, m.flags, m.in_sent_folder) for m in store.iter_messages()
        )

    @staticmethod
    def by_id(store: Store) -> dict[tuple[str, str], Row]:
        return {(r[0], r[1]): r for r in MailSourceContract.rows(store)}

    # --------------------------------------------------------------- cases

    def test_first_sync_stores_every_message_once_headers_only(self, store: Store) -> None:
        for n in range(5):
            self.deliver(self.INBOX, message(n))
        assert self.sync(store) == 5
        got = list(store.iter_messages())
        assert sorted(m.message_id for m in got) == [f"m{n}@example.com" for n in range(5)]
        m0 = next(m for m in got if m.message_id == "m0@example.com")
        assert m0.folder == self.INBOX
        assert [a.email for a in m0.from_] == ["ana@example.com"]
        assert m0.from_[0].name == "Ana Silva"
        assert [a.email for a in m0.to] == [ME]
        assert m0.subject == "message 0"
        assert m0.date is not None and m0.date.isoformat() == "2026-11-02T09:00:00+00:00"
        assert not m0.in_sent_folder
        # no byte of a body anywhere in the store
        with store.engine.connect() as c:
            dump = "\n".join(
                str(v) for row in c.exec_driver_sql("SELECT * FROM messages") for v in row
            )
        assert "secret body" not in dump

    def test_what_machines_write_is_read_as_signals(self, store: Store) -> None:
        # the fields kithkeep fetches beyond the basic ones reach the store as signal
        # words (kithkeep.headers.SIGNALS); a plain message has none
        self.deliver(self.INBOX, message(1))
        self.deliver(
            self.INBOX,
            message(
                2,
                extra=(
                    "Content-Class: urn:content-classes:calendarmessage\r\n"
                    "Feedback-ID: 1:campaign:esp\r\n"
                    "Return-Path: <>\r\n"
                ),
            ),
        )
        self.sync(store)
        got = {m.message_id: m.signals for m in store.iter_messages()}
        assert got == {
            "m1@example.com": frozenset(),
            "m2@example.com": {"calendar", "feedback-id", "null-sender"},
        }

    def test_nothing_new_stores_nothing(self, store: Store) -> None:
        self.deliver(self.INBOX, message(1))
        self.sync(store)
        before = self.rows(store)
        assert self.sync(store) == 0
        assert self.rows(store) == before

    def test_only_new_mail_is_read_and_nothing_counts_twice(self, store: Store) -> None:
        for n in range(3):
            self.deliver(self.INBOX, message(n))
        self.sync(store)
        self.deliver(self.INBOX, message(10))
        self.deliver(self.INBOX, message(11))
        assert self.sync(store) == 2
        ids = [r[1] for r in self.rows(store)]
        assert len(ids) == len(set(ids)) == 5

    def test_flag_changes_reach_the_store(self, store: Store) -> None:
        self.deliver(self.INBOX, message(1))
        self.deliver(self.INBOX, message(2), frozenset({"\\Seen"}))
        self.sync(store)
        assert self.by_id(store)[self.INBOX, "m2@example.com"][2] == {"\\Seen"}
        assert "\\Answered" not in self.by_id(store)[self.INBOX, "m1@example.com"][2]
        self.set_flags(self.INBOX, "m1@example.com", frozenset({"\\Seen", "\\Answered"}))
        self.sync(store)
        rows = self.by_id(store)
        assert rows[self.INBOX, "m1@example.com"][2] == {"\\Seen", "\\Answered"}
        assert rows[self.INBOX, "m2@example.com"][2] == {"\\Seen"}
        assert len(rows) == 2

    def test_sent_mail_is_marked_as_sent(self, store: Store) -> None:
        if self.SENT is None:
            pytest.skip("this source has no sent folder of its own")
        self.deliver(self.INBOX, message(1))
        self.deliver(self.SENT, message(2, frm=f"Me <{ME}>", to="ana@example.com"))
        self.sync(store)
        rows = self.by_id(store)
        assert rows[self.SENT, "m2@example.com"][3] is True
        assert rows[self.INBOX, "m1@example.com"][3] is False

    def test_the_same_message_in_two_folders_is_kept_in_each(self, store: Store) -> None:
        if self.OTHER is None:
            pytest.skip("this source has one folder")
        self.deliver(self.INBOX, message(1))
        self.deliver(self.OTHER, message(1))
        self.sync(store)
        # one row per copy (the analysis counts the message once); a second run adds none
        assert [(r[0], r[1]) for r in self.rows(store)] == sorted(
            [(self.INBOX, "m1@example.com"), (self.OTHER, "m1@example.com")]
        )
        assert self.sync(store) == 0

    def test_deleted_messages_stay_in_the_history(self, store: Store) -> None:
        self.deliver(self.INBOX, message(1))
        self.deliver(self.INBOX, message(2))
        self.sync(store)
        self.remove(self.INBOX, "m1@example.com")
        self.deliver(self.INBOX, message(3))
        self.sync(store)
        assert [r[1] for r in self.rows(store)] == [f"m{n}@example.com" for n in (1, 2, 3)]

    def test_a_crash_between_batches_resumes_without_loss_or_double_count(
        self, store: Store, tmp_path: Path
    ) -> None:
        for n in range(9):
            self.deliver(self.INBOX, message(n))
        if self.OTHER is not None:
            self.deliver(self.OTHER, message(20))
        # the reference: one uninterrupted run
        reference = Store.open(f"sqlite:///{tmp_path / 'reference.sqlite3'}")
        try:
            self.sync(reference, chunk_size=2)
            expected = self.rows(reference)
        finally:
            reference.close()
        # a run that dies after committing its first batches: the generator is abandoned
        source = self.make_source(2)
        ctx = StoreSyncContext(store, source.name)
        committed = 0
        try:
            for batch in source.sync(ctx):
                store.apply_mail_batch(batch, source.name)
                committed += bool(_holds_mail(batch))
                if committed == 2:
                    break
        finally:
            source.close()
        assert 0 < len(self.rows(store)) < len(expected)
        # the next run carries on from the saved positions
        self.sync(store, chunk_size=2)
        assert self.rows(store) == expected
        assert self.sync(store, chunk_size=2) == 0


def _holds_mail(batch: MailBatch) -> int:
    return len(batch.records) + len(getattr(batch, "rows", ()))
