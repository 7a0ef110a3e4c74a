"""Messages as analysis reads them: one plain tuple per message, from the store or records.

The store path reads plain rows from the database driver and never builds
:class:`MessageRecord` objects: it is most of what a full rebuild costs (see
``bench/analyze.py``). The rows *are* the messages: the SELECT computes each
field of :data:`Msg` in order, so reading builds no object of its own per
message. Bulk mail is left out in SQL, and the few facts analysis needs from
it (the user's sent From, list addresses, how much there was) come from small
DISTINCT and COUNT queries. Both paths give the same :data:`Msg` values,
which a property test checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import compress
from operator import eq, itemgetter
from typing import Any, Final, NamedTuple

import sqlalchemy as sa

from kithkeep.model.identity import bulk_reason, list_id_address, mailto_address, normalize
from kithkeep.records import Address, MessageRecord
from kithkeep.schema import Base
from kithkeep.store import Store

MESSAGES: sa.Table = Base.metadata.tables["messages"]

Addrs = tuple[tuple[str, str], ...]  # ((normalized address, display name), ...)


class Recipients(NamedTuple):
    """To, Cc and Bcc of a message, normalized; shared by all messages with the same headers.

    (A named tuple: one is built per distinct header, tens of thousands of them, and
    a frozen dataclass's __init__ cost twice the rest of decoding one.)
    """

    all: Addrs  # To, then Cc, then Bcc
    to: frozenset[str]
    every: frozenset[str]


# What analysis needs of one (de-duplicated) personal message: a plain tuple, fields at the
# indexes below, built with one tuple display per row; a dataclass instance cost twice the
# rest of reading a row. The address lists hold objects shared by every message with the
# same header (the parser decodes each distinct text once), and the date and References stay
# as the store gave them until needed: most messages never have their References walked or
# their date printed.
Msg = tuple[
    float,  # seconds since the epoch, to the millisecond
    str,  # key: copies of one message share it (the Gmail message id, else the Message-ID)
    Any,  # date: text (SQLite), naive UTC (PostgreSQL) or aware (records); see msg_date
    str,  # Message-ID
    str | None,  # the sender's normalized address (None without one)
    str,  # the sender's display name
    "Recipients",
    str | None,  # In-Reply-To
    Any,  # References: JSON text (store, see refs_from_json) or a tuple (records)
    str,  # subject
    Any,  # answered: \Answered on a copy (0/1 from SQLite: used as a truth value only)
    Any,  # linked: has In-Reply-To or References (a truth value)
    Any,  # sent: in a sent folder (a truth value)
    int | None,  # Gmail thread id
    # where this copy is, to choose among copies the same way every time:
    # (account, folder, uid) for records, the row id in the store
    Any,
]
TS: Final = 0
KEY: Final = 1
DATE: Final = 2
MESSAGE_ID: Final = 3
SENDER: Final = 4
SENDER_NAME: Final = 5
RECIPIENTS: Final = 6
IN_REPLY_TO: Final = 7
REFERENCES: Final = 8
SUBJECT: Final = 9
ANSWERED: Final = 10
LINKED: Final = 11
SENT: Final = 12
THRID: Final = 13
LOC: Final = 14


def msg_date(m: Msg) -> datetime:
    """The message's date as aware UTC."""
    d = m[DATE]
    # records carry aware dates; the store gives text (SQLite) or naive UTC (PostgreSQL)
    if type(d) is str:
        try:  # _utc_text's fast parse, without the call: statistics ask for every date
            return datetime.fromisoformat(d + "+00:00")
        except ValueError:
            return _utc_text(d)
    return d if isinstance(d, datetime) and d.tzinfo is not None else _as_utc(d)


class AddrParser:
    """Address lists parsed and normalized once per distinct value (most values repeat)."""

    def __init__(self) -> None:
        self.json_cache: dict[str, Addrs] = {"[]": ()}
        self.rc_cache: dict[str, Recipients] = {}
        self.sender_cache: dict[str, tuple[str | None, str]] = {}
        self.norm_cache: dict[str, str] = {}

    def norm(self, email: str) -> str:
        n = self.norm_cache.get(email)
        if n is None:
            n = self.norm_cache[email] = normalize(email)
        return n

    def from_json(self, text: str | None) -> Addrs:
        if not text:
            return ()
        got = self.json_cache.get(text)
        if got is None:
            try:
                got = tuple((self.norm(e), n) for n, e in json.loads(text) if e)
            except (ValueError, TypeError):
                got = ()
            self.json_cache[text] = got
        return got

    def recipients_text(self, text: str) -> Recipients:
        """To, Cc and Bcc JSON joined by newlines (JSON text never holds a raw newline)."""
        got = self.rc_cache.get(text)
        if got is None:
            to, _, rest = (text or "").partition("\n")
            cc, _, bcc = rest.partition("\n")
            got = self.rc_cache[text] = _recipients(
                self.from_json(to), self.from_json(cc), self.from_json(bcc)
            )
        return got

    def sender_text(self, text: str) -> tuple[str | None, str]:
        """The normalized address and the display name of a From header's JSON."""
        got = self.sender_cache.get(text)
        if got is None:
            frm = self.from_json(text)
            got = self.sender_cache[text] = (frm[0][0], frm[0][1]) if frm else (None, "")
        return got

    def from_records(self, addrs: Iterable[Address]) -> Addrs:
        return tuple((self.norm(a.email), a.name) for a in addrs if a.email)


@dataclass
class Prelude:
    """Facts about all messages, bulk included, learnt before the personal ones are read."""

    sent_from: set[str] = field(default_factory=set)  # the From of sent mail
    lists: set[str] = field(default_factory=set)  # list addresses (List-Post, List-Id)
    bulk: int = 0  # bulk and automatic messages (copies counted once)
    undated: int = 0


def _recipients(to: Addrs, cc: Addrs, bcc: Addrs) -> Recipients:
    to_set = frozenset([a for a, _ in to])
    if not cc and not bcc:  # most messages
        return Recipients(to, to_set, to_set)
    everyone = (*to, *cc, *bcc)
    return Recipients(everyone, to_set, frozenset([a for a, _ in everyone]))


def refs_from_json(text: str) -> tuple[str, ...]:
    """Stored References JSON as a tuple (empty when it is not valid JSON).

    The store writes ``["a","b"]`` when there is nothing to escape: such text is
    split instead of decoded, which costs a fraction of ``json.loads`` (a thread's
    References run to dozens of ids). The split is taken only when it must give
    what decoding gives: no backslash, no control character (which JSON rejects),
    and no quote besides the separators'; anything else is decoded.
    """
    if not text or text == "[]":
        return ()
    if (
        len(text) >= 4
        and text.startswith('["')
        and text.endswith('"]')
        and "\\" not in text
        and text.isprintable()
    ):
        inner = text[2:-2]
        parts = inner.split('","')
        if inner.count('"') == 2 * (len(parts) - 1):
            return tuple(parts)
    try:
        return tuple(json.loads(text))
    except ValueError:
        return ()


def _list_addrs(list_post: str | None, list_id: str | None) -> list[str]:
    return [a for a in (mailto_address(list_post), list_id_address(list_id)) if a]


def _utc_text(text: str) -> datetime:
    """SQLite's text of a naive UTC date as aware UTC.

    Parsing the text with ``+00:00`` appended gives the same value (tzinfo the
    ``UTC`` singleton) several times faster than ``fromisoformat(...).replace(
    tzinfo=UTC)``, whose keyword call dominates: statistics turn tens of thousands
    of stored dates into datetimes. Text that carries its own offset fails the fast
    parse and takes the general path.
    """
    try:
        return datetime.fromisoformat(text + "+00:00")
    except ValueError:
        return _as_utc(datetime.fromisoformat(text))


def _as_utc(value: Any) -> datetime:
    """A stored date as aware UTC: SQLite gives text, PostgreSQL naive datetimes."""
    if isinstance(value, str):
        return _utc_text(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def msgs_from_records(messages: Iterable[MessageRecord]) -> tuple[list[Msg], Prelude]:
    """Personal messages (bulk left out and counted) and the prelude, from records."""
    parser = AddrParser()
    pre = Prelude()
    bulk_keys: set[str] = set()
    out: list[Msg] = []
    for m in messages:
        key = f"gm:{m.gm_msgid}" if m.gm_msgid else m.message_id
        if m.in_sent_folder and m.from_:
            pre.sent_from.add(parser.norm(m.from_[0].email))
        if m.list_post or m.list_id:
            pre.lists.update(_list_addrs(m.list_post, m.list_id))
        if bulk_reason(m) is not None:
            bulk_keys.add(key)
            continue
        date = m.effective_date
        if date is None:
            pre.undated += 1
            continue
        frm = parser.from_records(m.from_[:1])
        out.append(
            (
                _ms(date),
                key,
                date,
                m.message_id,
                frm[0][0] if frm else None,
                frm[0][1] if frm else "",
                _recipients(
                    parser.from_records(m.to),
                    parser.from_records(m.cc),
                    parser.from_records(m.bcc),
                ),
                m.in_reply_to,
                m.references,
                m.subject,
                "\\Answered" in m.flags,
                bool(m.in_reply_to or m.references),
                m.in_sent_folder,
                m.gm_thrid,
                (m.account, m.folder, m.uid),
            )
        )
    pre.bulk = len(bulk_keys)
    return out, pre


_BULK_PRECEDENCE = ("bulk", "list", "junk")


def _personal_clause() -> sa.ColumnElement[bool]:
    """SQL for "not bulk": the same test as :func:`identity.bulk_reason`."""
    c = MESSAGES.c
    return sa.and_(
        c.list_id.is_(None),
        sa.not_(c.list_unsubscribe),
        sa.or_(c.precedence.is_(None), c.precedence.not_in(_BULK_PRECEDENCE)),
        sa.or_(c.auto_submitted.is_(None), c.auto_submitted == "no"),
    )


def _driver_rows(conn: sa.Connection, stmt: sa.Select[Any]) -> list[Any]:
    """Rows as the database driver returns them (tuples), without SQLAlchemy's per-value
    processing, which costs more than everything else in reading."""
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _driver_chunks(
    conn: sa.Connection, stmt: sa.Select[Any], size: int = 2000
) -> Iterator[list[Any]]:
    """Like :func:`_driver_rows`, a chunk of rows at a time: each chunk's tuples are freed
    while the next is read, so their memory is reused instead of the whole result being
    held, and freed, at once."""
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        while chunk := cursor.fetchmany(size):
            yield chunk
    finally:
        cursor.close()


def _ms(d: datetime) -> float:
    """Seconds since the epoch, to the millisecond: the same value from SQL and from Python."""
    return round(d.timestamp(), 3)


def _epoch(dialect: str, col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any] | None:
    """Seconds since the epoch computed by the database (parsing dates in Python costs more
    than the whole SELECT); None for databases without a known function, then Python does it."""
    if dialect == "sqlite":
        return sa.func.round((sa.func.julianday(col) - 2440587.5) * 86400.0, 3)
    if dialect == "postgresql":
        return sa.cast(sa.func.round(sa.cast(sa.extract("epoch", col), sa.Numeric), 3), sa.Float)
    return None


def read_msgs(store: Store) -> tuple[list[Msg], Prelude]:
    """Personal messages of the store and the prelude, read as plain rows.

    Two passes over the table: the bulk mail, of which only the few facts
    analysis needs are read (the user's sent From, list addresses, how many
    messages), and the personal mail, whose rows give the same facts on the way.
    """
    c = MESSAGES.c
    parser = AddrParser()
    pre = Prelude()
    personal = _personal_clause()
    date = sa.func.coalesce(c.date, c.internal_date)
    sent_from = pre.sent_from
    with store.engine.connect() as conn:
        bulk_keys: set[str] = set()
        for gm_msgid, message_id, in_sent, from_text, list_post, list_id in _driver_rows(
            conn,
            sa.select(
                c.gm_msgid, c.message_id, c.in_sent_folder, c.from_json, c.list_post, c.list_id
            ).where(sa.not_(personal)),
        ):
            # copies counted once, by the key SQL's coalesce(CAST(gm_msgid), message_id) gave
            bulk_keys.add(str(gm_msgid) if gm_msgid is not None else message_id)
            if in_sent:
                address = parser.sender_text(from_text)[0]
                if address is not None:
                    sent_from.add(address)
            if list_post or list_id:
                pre.lists.update(_list_addrs(list_post, list_id))
        pre.bulk = len(bulk_keys)
        epoch = _epoch(conn.dialect.name, date)
        # (the columns in the order _messages_from_rows reads them)
        chunks = _driver_chunks(
            conn,
            sa.select(
                sa.null() if epoch is None else epoch,
                c.gm_msgid,
                date,
                c.message_id,
                c.from_json,
                # one value for the three lists: one cache lookup per message
                c.to_json + "\n" + c.cc_json + "\n" + c.bcc_json,
                c.in_reply_to,
                c.references_json,
                sa.func.coalesce(c.subject, ""),
                c.flags.contains("\\Answered", autoescape=True),
                sa.or_(c.in_reply_to.is_not(None), c.references_json.not_in(["[]", ""])),
                c.in_sent_folder,
                c.gm_thrid,
                c.id,
                c.list_post,  # (personal mail has no List-Id)
            ).where(personal),
        )
        out: list[Msg] = []
        list_posts: list[str] = []
        for rows in chunks:
            pre.undated += _messages_from_rows(
                rows,
                out,
                parser.sender_cache,
                parser.sender_text,
                parser.rc_cache,
                parser.recipients_text,
                sent_from,
                list_posts,
            )
        for list_post in list_posts:
            pre.lists.update(_list_addrs(list_post, None))
    if epoch is None:  # a database without a known epoch function: Python works it out
        out = [(_ms(_as_utc(m[DATE])), *m[1:]) for m in out]
    return out, pre


def _messages_from_rows(
    rows: list[Any],
    out: list[Msg],
    sender_cache: dict[str, tuple[str | None, str]],
    sender_text: Callable[[str], tuple[str | None, str]],
    rc_cache: dict[str, Recipients],
    recipients: Callable[[str], Recipients],
    sent_from: set[str],
    list_posts: list[str],
) -> int:
    """Rows of read_msgs' personal SELECT appended to ``out`` as :data:`Msg` tuples; the
    user's sent From addresses added to ``sent_from``, List-Post values to ``list_posts``.
    Returns how many rows had no date (they are left out). ``sender_cache`` and
    ``rc_cache`` are the caches behind ``sender_text`` and ``recipients``: most values
    repeat, and a dict lookup is much cheaper than the method call that would make it
    ."""
    undated = 0
    append = out.append
    for (
        ts,
        gm_msgid,
        date,
        message_id,
        from_text,
        rcpt_text,
        irt,
        refs,
        subject,
        answered,
        linked,
        in_sent,
        gm_thrid,
        row_id,
        list_post,
    ) in rows:
        sender = sender_cache.get(from_text)
        if sender is None:
            sender = sender_text(from_text)
        if in_sent and sender[0] is not None:
            sent_from.add(sender[0])
        if list_post:
            list_posts.append(list_post)
        if date is None:
            undated += 1
            continue
        rc = rc_cache.get(rcpt_text)
        if rc is None:
            rc = recipients(rcpt_text)
        # the From and recipients' texts are not kept: the shared objects stand in
        append(
            (
                ts,
                f"gm:{gm_msgid}" if gm_msgid else message_id,
                date,
                message_id,
                sender[0],
                sender[1],
                rc,
                irt,
                refs,
                subject,
                answered,
                linked,
                in_sent,
                gm_thrid,
                row_id,
            )
        )
    return undated


_TS = itemgetter(TS)
_KEY = itemgetter(KEY)


def unique(msgs: Iterable[Msg]) -> tuple[list[Msg], int]:
    """One Msg per message key, whatever order the copies come in; and the copies dropped.

    The kept copy is the sent-folder one (it alone has Bcc), else the first
    location in sort order; flags and the sent marker are united over copies.
    """
    by_key: dict[str, Msg] = {}
    dups = 0
    for m in msgs:
        key = m[KEY]
        prev = by_key.get(key)
        if prev is None:
            by_key[key] = m
            continue
        dups += 1
        keep, other = (m, prev) if (m[SENT], prev[LOC]) > (prev[SENT], m[LOC]) else (prev, m)
        answered = keep[ANSWERED] or other[ANSWERED]
        sent = keep[SENT] or other[SENT]
        if answered is not keep[ANSWERED] or sent is not keep[SENT]:
            keep = (*keep[:ANSWERED], answered, keep[LINKED], sent, *keep[SENT + 1 :])
        by_key[key] = keep
    return _canonical_order(list(by_key.values())), dups


def _canonical_order(msgs: list[Msg]) -> list[Msg]:
    """By date, then key: message indexes break ties between equal dates the same way
    whatever order the messages arrived in.

    Sorted by the date alone, then each run of equal dates by key: a sort on
    (date, key) pairs builds a tuple per message and costs several times more,
    and equal dates are rare.
    """
    msgs.sort(key=_TS)
    ts = [m[TS] for m in msgs]
    # positions i where the date equals the next one's, found without a Python-level loop
    tied = list(compress(range(len(ts) - 1), map(eq, ts, ts[1:])))
    k = 0
    while k < len(tied):
        first = last = tied[k]  # the run of equal dates is msgs[first : last + 2]
        while k + 1 < len(tied) and tied[k + 1] == last + 1:
            k += 1
            last += 1
        msgs[first : last + 2] = sorted(msgs[first : last + 2], key=_KEY)
        k += 1
    return msgs
