"""The IMAP bulk-sync fast paths give exactly what the general paths give.

- the buffered FETCH reader (imap_fetch.RawSession.uid_fetch) over responses
  cut at every possible place, in the usual shape and in odd ones;
- the fixed-width INTERNALDATE parse against the general one;
- the cached address parsing against the uncached one;
- apply_mail_batch's raw SQLite upsert against SQLAlchemy's own binding:
  the same stored values, byte for byte, and the same records read back.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from kithkeep.connectors.imap_fetch import FetchItem, RawSession, parse_internaldate
from kithkeep.headers import (
    parse_addresses,
    parse_addresses_fast,
    parse_header_block,
    parse_header_block_fast,
    record_from_headers,
    record_from_headers_fast,
)
from kithkeep.records import Address, Checkpoint, MailBatch, MessageRecord
from kithkeep.store import MESSAGES, Store, message_from_row, message_row

HEADER = (
    b"BODY[HEADER.FIELDS (FROM TO CC BCC DATE MESSAGE-ID IN-REPLY-TO REFERENCES SUBJECT "
    b"LIST-ID LIST-POST LIST-UNSUBSCRIBE PRECEDENCE AUTO-SUBMITTED)]"
)


class _Pieces:
    """A socket file that hands out the data in pieces of the given sizes."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.data = data
        self.pos = 0
        self.sizes = sizes or [1 << 20]
        self.i = 0

    def read1(self, n: int) -> bytes:
        size = min(n, self.sizes[self.i % len(self.sizes)])
        self.i += 1
        out = self.data[self.pos : self.pos + size]
        self.pos += len(out)
        return out


class _FakeImap:
    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.file = _Pieces(data, sizes)
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)


def _msg(seq: int, uid: int, header: bytes, flags: bytes = b"\\Seen") -> bytes:
    return (
        b'* %d FETCH (UID %d FLAGS (%s) INTERNALDATE "0%d-Jan-2024 10:00:0%d +0000" %s {%d}\r\n'
        % (seq, uid, flags, 1 + seq % 9, seq % 10, HEADER, len(header))
        + header
        + b")\r\n"
    )


def _stream() -> tuple[bytes, list[tuple[int, frozenset[str], datetime | None, bytes | None]]]:
    h1 = b"From: A <a@example.org>\r\nSubject: one\r\n\r\n"
    h2 = b"From: B <b@example.org>\r\nSubject: {5}\r\n\r\n"  # braces inside the literal
    h3 = b"Subject: three\r\n\r\n"
    parts = [
        _msg(1, 11, h1),
        b"* 3 EXISTS\r\n",
        _msg(2, 12, h2, b"\\Seen \\Recent"),
        # unsolicited flag change, no UID and no header
        b"* 1 FETCH (FLAGS (\\Answered))\r\n",
        # another order, with MODSEQ: the general path
        b'* 3 FETCH (UID 13 MODSEQ (7) INTERNALDATE "05-Feb-2024 01:02:03 -0100" '
        b"FLAGS () " + HEADER + b" {%d}\r\n" % len(h3) + h3 + b")\r\n",
        # the header as a quoted string, and as NIL
        b'* 4 FETCH (UID 14 FLAGS () INTERNALDATE "01-Jan-2024 00:00:00 +0000" '
        + HEADER
        + b' "Subject: q\\"x\\r\\n")\r\n',
        b'* 5 FETCH (UID 15 FLAGS () INTERNALDATE "01-Jan-2024 00:00:00 +0000" '
        + HEADER
        + b" NIL)\r\n",
        # an item after the literal
        b'* 6 FETCH (UID 16 FLAGS () INTERNALDATE "01-Jan-2024 00:00:00 +0000" '
        + HEADER
        + b" {%d}\r\n" % len(h1)
        + h1
        + b" X-GM-THRID 99)\r\n",
        b"kk1 OK Fetch completed.\r\n",
    ]
    expected = [
        (11, frozenset({"\\Seen"}), datetime(2024, 1, 2, 10, 0, 1, tzinfo=UTC), h1),
        (12, frozenset({"\\Seen"}), datetime(2024, 1, 3, 10, 0, 2, tzinfo=UTC), h2),
        (0, frozenset({"\\Answered"}), None, None),
        (13, frozenset(), datetime(2024, 2, 5, 2, 2, 3, tzinfo=UTC), h3),
        (14, frozenset(), datetime(2024, 1, 1, tzinfo=UTC), b'Subject: q"xrn'),
        (15, frozenset(), datetime(2024, 1, 1, tzinfo=UTC), None),
        (16, frozenset(), datetime(2024, 1, 1, tzinfo=UTC), h1),
    ]
    return b"".join(parts), expected


def _shape(it: FetchItem) -> tuple[int, frozenset[str] | None, datetime | None, bytes | None]:
    return (it.uid, it.flags, it.internal_date, it.header)


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 64, 1 << 20])
def test_fetch_stream_cut_anywhere_gives_the_same_items(piece: int) -> None:
    data, expected = _stream()
    raw = RawSession(_FakeImap(data, [piece]))  # type: ignore[arg-type]
    items = [_shape(it) for it in raw.uid_fetch("1:*", "UID FLAGS INTERNALDATE")]
    assert items == expected
    assert not raw.dirty


def test_fetch_stream_random_cuts_and_a_following_command() -> None:
    data, expected = _stream()
    rng = random.Random(5)
    for _ in range(50):
        sizes = [rng.randint(1, 120) for _ in range(40)]
        fake = _FakeImap(data + b"* OK still here\r\nkk2 OK NOOP done\r\n", sizes)
        raw = RawSession(fake)  # type: ignore[arg-type]
        assert [_shape(it) for it in raw.uid_fetch("1:*", "X")] == expected
        done = raw.simple(b"NOOP")  # bytes read ahead are not lost
        assert done.status == "OK" and done.untagged == [b"* OK still here\r\n"]


def test_fetch_stream_eof_is_connection_lost() -> None:
    from kithkeep.connectors.imap_fetch import ConnectionLost

    data, _ = _stream()
    raw = RawSession(_FakeImap(data[: len(data) // 2], [100]))  # type: ignore[arg-type]
    with pytest.raises(ConnectionLost):
        list(raw.uid_fetch("1:*", "X"))


def _internaldate_general(value: bytes) -> datetime | None:
    # the general branch alone: a value the fast branch does not take
    return parse_internaldate(b" " + value + b" ") if value else None


def test_fixed_width_internaldate_matches_the_general_parse() -> None:
    rng = random.Random(3)
    months = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct"]
    for _ in range(3000):
        v = b"%02d-%s-%04d %02d:%02d:%02d +0000" % (
            rng.randint(0, 32),
            rng.choice([*months, b"Xyz"]),
            rng.randint(1, 9999),
            rng.randint(0, 25),
            rng.randint(0, 61),
            rng.randint(0, 61),
        )
        if rng.random() < 0.2:
            v = v.replace(b"0", b" ", 1)
        assert parse_internaldate(v) == _internaldate_general(v), v


def test_cached_address_parsing_matches_the_general_parser() -> None:
    values = [
        "Ana <ana@example.org>",
        "ana@example.org, Ben <Ben@Example.org>",
        '"Rivera, Sam" <sam@example.org>',
        "=?utf-8?q?Ch=C3=A9?= <che@example.org>",
        "undisclosed-recipients:;",
        " , ana@example.org,,",
        "Ana <ana@example.org>",
    ]
    for _ in range(3):  # cold, then from the caches
        for v in values:
            fast = parse_addresses_fast([v])
            assert fast == parse_addresses([v]), v
            assert parse_addresses_fast([v]) is fast  # a repeated value: the same tuple
        assert parse_addresses_fast(values) == parse_addresses(values)


def test_fast_record_equals_reference_record() -> None:
    raw = (
        b"Date: Mon, 1 Jan 2024 10:00:00 +0100\r\n"
        b"From: Ana <ana@example.org>\r\n"
        b"To: Me <me@example.org>\r\n"
        b"Message-ID: <X@Y>\r\n"
        b"References: <a@b> <A@B> <c@d>\r\n"
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
        b"List-Id: L <l.example.org>\r\nPrecedence: Bulk\r\n\r\n"
    )
    kw: dict[str, Any] = {"account": "a", "folder": "INBOX", "uid": "7", "in_sent_folder": True}
    assert record_from_headers_fast(raw, **kw) == record_from_headers(raw, **kw)
    assert parse_header_block_fast(raw) == parse_header_block(raw)


def _records() -> list[MessageRecord]:
    tz = timezone(timedelta(hours=-7, minutes=-30))
    return [
        MessageRecord(
            account="acc",
            folder="INBOX",
            uid=str(i),
            message_id=f"m{i}@x" + ("y" * 600 if i == 3 else ""),
            date=[
                datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
                datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=tz),
                None,
                datetime(5, 6, 7, 8, 9, 10, 11, tzinfo=timezone(timedelta(0))),
            ][i % 4],
            internal_date=datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) if i % 2 else None,
            from_=(Address('Ana "A" \\ B', "ana@example.org"),) if i % 2 else (),
            to=(Address("Ché\x01", "x@y"), Address("", "z@y")),
            cc=(Address("Ben", "ben@example.org"),),
            in_reply_to="r@x" * (i % 3),
            references=("a@b", 'q"@x', "\\@y") if i % 2 else ("a@b",),
            subject=f"subject {i} ✓",
            list_id="l" if i % 2 else None,
            list_unsubscribe=bool(i % 2),
            precedence="bulk" if i % 3 else None,
            flags=frozenset({"\\Seen", "\\Answered"}) if i % 2 else frozenset(),
            gm_msgid=2**62 + i if i % 2 else None,
            in_sent_folder=bool(i % 2),
            parse_errors=("date", "to") if i % 2 else (),
        )
        for i in range(8)
    ]


def _stored(path: Path) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(path)
    try:
        cols = ", ".join(c.name for c in MESSAGES.c if c.name != "id")
        return con.execute(f"SELECT {cols} FROM messages ORDER BY id").fetchall()
    finally:
        con.close()


def test_sqlite_fast_upsert_stores_what_sqlalchemy_stores(tmp_path: Path) -> None:
    recs = _records()
    fast = Store.open(f"sqlite:///{tmp_path / 'fast.sqlite3'}")
    slow = Store.open(f"sqlite:///{tmp_path / 'slow.sqlite3'}")
    cp = Checkpoint("acc", "INBOX", {"uid": 8})
    fast.apply_mail_batch(MailBatch(records=recs, checkpoint=cp), "acc")
    with slow.transaction() as s:  # SQLAlchemy's own binding of the same rows
        slow._upsert(s, MESSAGES, [message_row(r) for r in recs], ["account", "folder", "uid"])
        slow._save_checkpoint(s, cp)
    assert _stored(tmp_path / "fast.sqlite3") == _stored(tmp_path / "slow.sqlite3")
    # read back through SQLAlchemy: the records, dates as aware UTC
    back = list(fast.iter_messages())
    expect = [message_from_row(type("R", (), message_row(r))) for r in recs]
    assert [b.date for b in back] == [r.date for r in recs]
    assert [b.internal_date for b in back] == [r.internal_date for r in recs]
    assert [b.from_ for b in back] == [r.from_ for r in recs]
    assert [b.references for b in back] == [r.references for r in recs]
    assert [b.message_id for b in back] == [e.message_id for e in expect]
    # an upsert of the same location replaces it; the last copy in a batch wins
    again = [recs[1], recs[1].__class__(**{**_fields(recs[1]), "subject": "new"})]
    fast.apply_mail_batch(MailBatch(records=again), "acc")
    assert [m.subject for m in fast.iter_messages() if m.uid == "1"] == ["new"]
    assert fast.checkpoints("acc") == {"INBOX": {"uid": 8}}
    fast.close()
    slow.close()


def _fields(r: MessageRecord) -> dict[str, Any]:
    return {name: getattr(r, name) for name in MessageRecord.__dataclass_fields__}


def test_sqlite_fast_upsert_rejects_naive_datetimes(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 's.sqlite3'}")
    bad = MessageRecord("acc", "INBOX", "1", "m@x", datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="naive datetime"):
        store.apply_mail_batch(MailBatch(records=[bad]), "acc")
    store.close()
    assert _stored(tmp_path / "s.sqlite3") == []


def test_positional_date_parse_matches_the_regex_one() -> None:
    from kithkeep.headers import _date_ascii, parse_date_fast

    rng = random.Random(1)
    days = ["Mon, ", "Tue,", "", "Mo1, ", "Mon ,", " Mon, ", "MON, ", "Xyz, "]
    taken = 0
    for _ in range(30000):
        v = "{}{} {} {} {}:{}:{} {}{}".format(
            rng.choice(days),
            rng.choice(["1", "01", "31", "0", "29", "30", "7 ", "123", "", " 3"]),
            rng.choice(["Jan", "feb", "MAR", "Xyz", "Dec", "Feb"]),
            rng.choice(["2024", "0001", "9999", "24", "2O24", "1900"]),
            rng.choice(["00", "23", "24", "07", "7 ", "-1"]),
            rng.choice(["00", "59", "60"]),
            rng.choice(["00", "59", "60", "5"]),
            rng.choice(["+", "-", "*"]),
            rng.choice(["0000", "0100", "1400", "2359", "99", "0060", "12 3"]),
        )
        if rng.random() < 0.1:
            v += rng.choice([" (CET)", "  ", "\r\n (x)", " x"])
        if rng.random() < 0.05:
            v = v.replace(" ", "  ", 1)
        results = []
        for parse in (_date_ascii, parse_date_fast):
            try:
                results.append(("ok", parse(v)))
            except Exception as exc:
                results.append(("error", type(exc)))
        assert results[0] == results[1], v
        taken += results[0][1] is not None and results[0][0] == "ok"
    assert taken > 1000
