"""Analysis: raw records -> people -> interactions -> per-person statistics.

Derived data only: the result can always be recomputed from the store's raw
tables, the contacts file and the user's decisions, so a full rebuild is the
only update path. It is made fast instead of incremental (see
``bench/analyze.py``): the store path reads the needed columns as plain rows
and never builds :class:`MessageRecord` objects, and address lists are parsed
once per distinct header value.

Steps:

1. **One message, one record**: copies under several folders or labels (the
   same Message-ID or X-GM-MSGID) count once; ``\\Answered`` on any copy counts.
2. **Me**: configured addresses, addresses sources report (account logins,
   calendar owners), the From of sent mail, and the cards of the contacts file
   that hold one of those.
3. **Noise**: bulk and automatic mail, mass mail (more than ``max_recipients``),
   list traffic (a list address learnt from List-Post and List-Id among the
   sender or recipients: the user's own posts to a list are not personal),
   role, no-reply and resource addresses.
4. **People**: normalized addresses grouped by the contacts file and the user's
   merges (:mod:`kithkeep.model.merges`).
5. **Statistics** per person from the time line of messages and meetings.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise
from operator import attrgetter
from typing import Any

import sqlalchemy as sa

from kithkeep.config import AnalysisConfig
from kithkeep.decisions import DecisionRecord
from kithkeep.model.identity import (
    bulk_reason,
    is_noreply,
    is_resource,
    is_role_address,
    list_id_address,
    mailto_address,
    normalize,
)
from kithkeep.model.merges import Identity, build_identity
from kithkeep.model.stats import Initiation, PendingMessage, PersonStats
from kithkeep.model.threads import ancestor_ids, find_parent, is_reply_subject
from kithkeep.model.vcard import Card, load_contacts
from kithkeep.records import EventRecord, MessageRecord
from kithkeep.schema import Base, DerivedPerson
from kithkeep.store import Store

log = logging.getLogger(__name__)

MESSAGES: sa.Table = Base.metadata.tables["messages"]

# Writing to someone says more about a tie than receiving from them; a meeting more still.
OUT_WEIGHT = 1.5
IN_WEIGHT = 1.0
MEETING_WEIGHT = 2.0
DAY = 86400.0
# Contact within a day of the previous one continues the same exchange.
EXCHANGE_GAP = DAY
# A reply dated this much before its parent is clock skew; more is a broken link.
SKEW = 3600.0
KEEP_INITIATIONS = 20
MONTHS = 24

IN, OUT, MEETING = 0, 1, 2

Addrs = tuple[tuple[str, str], ...]  # ((normalized address, display name), ...)


@dataclass(frozen=True, slots=True)
class Recipients:
    """To, Cc and Bcc of a message, normalized; shared by all messages with the same headers."""

    all: Addrs  # To, then Cc, then Bcc
    to: frozenset[str]
    every: frozenset[str]


@dataclass(slots=True)
class Msg:
    """What analysis needs of one (de-duplicated) personal message.

    ``raw_date`` and ``raw_refs`` stay as the store gave them until a statistic
    needs them: most messages never have their date printed or their
    References walked.
    """

    key: str
    ts: float
    raw_date: datetime | str
    sender: str | None
    sender_name: str
    rc: Recipients
    message_id: str
    in_reply_to: str | None
    raw_refs: tuple[str, ...] | str
    subject: str
    answered: bool
    linked: bool  # has In-Reply-To or References
    sent: bool
    thrid: int | None
    loc: tuple[str, str, str]

    @property
    def date(self) -> datetime:
        d = self.raw_date
        # records carry aware dates; the store gives text (SQLite) or naive UTC (PostgreSQL)
        return d if isinstance(d, datetime) and d.tzinfo is not None else _as_utc(d)

    @property
    def references(self) -> tuple[str, ...]:
        r = self.raw_refs
        if isinstance(r, str):
            try:
                r = tuple(json.loads(r)) if r and r != "[]" else ()
            except ValueError:
                r = ()
            self.raw_refs = r
        return r


@dataclass
class Prelude:
    """Facts about all messages, bulk included, learnt before the personal ones are read."""

    sent_from: set[str] = field(default_factory=set)  # the From of sent mail
    lists: set[str] = field(default_factory=set)  # list addresses (List-Post, List-Id)
    bulk: int = 0  # bulk and automatic messages (copies counted once)
    undated: int = 0


@dataclass(frozen=True, slots=True)
class Meeting:
    key: str
    date: datetime
    summary: str
    size: int


@dataclass
class Analysis:
    me: frozenset[str]
    people: list[PersonStats]
    skipped_bulk: int = 0
    skipped_mass: int = 0
    skipped_undated: int = 0
    list_addresses: frozenset[str] = field(default_factory=frozenset)
    skipped_list: int = 0
    duplicates: int = 0
    messages: int = 0
    meetings: int = 0


def person_id(addresses: Iterable[str]) -> str:
    """A stable id from the person's smallest address."""
    return "p" + hashlib.sha256(min(addresses).encode()).hexdigest()[:10]


# ------------------------------------------------------------------ input


class _AddrParser:
    """Address lists parsed and normalized once per distinct value (most values repeat)."""

    def __init__(self) -> None:
        self.json_cache: dict[str, Addrs] = {"[]": ()}
        self.rc_cache: dict[Any, Recipients] = {}
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

    def recipients_json(self, to: str, cc: str, bcc: str) -> Recipients:
        key: Any = to if cc == "[]" and bcc == "[]" else (to, cc, bcc)
        got = self.rc_cache.get(key)
        if got is None:
            got = self.rc_cache[key] = _recipients(
                self.from_json(to), self.from_json(cc), self.from_json(bcc)
            )
        return got

    def from_records(self, addrs: Iterable[Any]) -> Addrs:
        return tuple((self.norm(a.email), a.name) for a in addrs if a.email)


def _recipients(to: Addrs, cc: Addrs, bcc: Addrs) -> Recipients:
    to_set = frozenset(a for a, _ in to)
    every = to_set.union(a for a, _ in cc).union(a for a, _ in bcc)
    return Recipients((*to, *cc, *bcc), to_set, every)


def _list_addrs(list_post: str | None, list_id: str | None) -> list[str]:
    return [a for a in (mailto_address(list_post), list_id_address(list_id)) if a]


def _as_utc(value: Any) -> datetime:
    """A stored date as aware UTC: SQLite gives text, PostgreSQL naive datetimes."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def msgs_from_records(messages: Iterable[MessageRecord]) -> tuple[list[Msg], Prelude]:
    """Personal messages (bulk left out and counted) and the prelude, from records."""
    parser = _AddrParser()
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
            Msg(
                key,
                _ms(date),
                date,
                frm[0][0] if frm else None,
                frm[0][1] if frm else "",
                _recipients(
                    parser.from_records(m.to),
                    parser.from_records(m.cc),
                    parser.from_records(m.bcc),
                ),
                m.message_id,
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


def _ms(d: datetime) -> float:
    """Seconds since the epoch, to the millisecond: the same value from SQL and from Python."""
    return round(d.timestamp(), 3)


def _epoch(dialect: str, col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """Seconds since the epoch computed by the database (parsing dates in Python costs more
    than the whole SELECT); None for databases without a known function, then Python does it."""
    if dialect == "sqlite":
        return sa.func.round((sa.func.julianday(col) - 2440587.5) * 86400.0, 3)
    if dialect == "postgresql":
        return sa.cast(sa.func.round(sa.cast(sa.extract("epoch", col), sa.Numeric), 3), sa.Float)
    return sa.null()


def read_msgs(store: Store) -> tuple[list[Msg], Prelude]:
    """Personal messages of the store and the prelude, read as plain rows.

    Bulk mail is left out in SQL; the facts analysis needs from it (the user's
    sent From, list addresses, how much there was) come from small DISTINCT
    and COUNT queries.
    """
    c = MESSAGES.c
    parser = _AddrParser()
    pre = Prelude()
    personal = _personal_clause()
    date = sa.func.coalesce(c.date, c.internal_date)
    with store.engine.connect() as conn:
        for (from_text,) in _driver_rows(
            conn, sa.select(c.from_json).distinct().where(c.in_sent_folder)
        ):
            frm = parser.from_json(from_text)
            if frm:
                pre.sent_from.add(frm[0][0])
        for list_post, list_id in _driver_rows(
            conn,
            sa.select(c.list_post, c.list_id)
            .distinct()
            .where(sa.or_(c.list_post.is_not(None), c.list_id.is_not(None))),
        ):
            pre.lists.update(_list_addrs(list_post, list_id))
        key = sa.func.coalesce(sa.cast(c.gm_msgid, sa.String), c.message_id)
        pre.bulk = int(
            _driver_rows(conn, sa.select(sa.func.count(sa.distinct(key))).where(sa.not_(personal)))[
                0
            ][0]
        )
        rows = _driver_rows(
            conn,
            sa.select(
                c.account,
                c.folder,
                c.uid,
                c.message_id,
                date,
                _epoch(conn.dialect.name, date),
                c.from_json,
                c.to_json,
                c.cc_json,
                c.bcc_json,
                c.in_reply_to,
                c.references_json,
                c.subject,
                c.flags.contains("\\Answered", autoescape=True),
                c.gm_msgid,
                c.gm_thrid,
                c.in_sent_folder,
            ).where(personal),
        )
    from_json = parser.from_json
    recipients = parser.recipients_json
    out: list[Msg] = []
    append = out.append
    for (
        account,
        folder,
        uid,
        message_id,
        date,
        ts,
        from_text,
        to_text,
        cc_text,
        bcc_text,
        irt,
        refs,
        subject,
        answered,
        gm_msgid,
        gm_thrid,
        in_sent,
    ) in rows:
        if date is None:
            pre.undated += 1
            continue
        frm = from_json(from_text)
        append(
            Msg(
                f"gm:{gm_msgid}" if gm_msgid else message_id,
                float(ts) if ts is not None else _ms(_as_utc(date)),
                date,
                frm[0][0] if frm else None,
                frm[0][1] if frm else "",
                recipients(to_text, cc_text, bcc_text),
                message_id,
                irt,
                refs,
                subject or "",
                bool(answered),
                bool(irt) or (refs is not None and refs not in {"[]", ""}),
                bool(in_sent),
                gm_thrid,
                (account, folder, uid),
            )
        )
    return out, pre


_ORDER = attrgetter("ts", "key")


def unique(msgs: Iterable[Msg]) -> tuple[list[Msg], int]:
    """One Msg per message key, whatever order the copies come in; and the copies dropped.

    The kept copy is the sent-folder one (it alone has Bcc), else the first
    location in sort order; flags and the sent marker are united over copies.
    """
    by_key: dict[str, Msg] = {}
    dups = 0
    for m in msgs:
        prev = by_key.get(m.key)
        if prev is None:
            by_key[m.key] = m
            continue
        dups += 1
        keep, other = (m, prev) if (m.sent, prev.loc) > (prev.sent, m.loc) else (prev, m)
        keep.answered = keep.answered or other.answered
        keep.sent = keep.sent or other.sent
        by_key[m.key] = keep
    # a canonical order: message indexes break ties between equal dates the same way
    # whatever order the messages arrived in
    return sorted(by_key.values(), key=_ORDER), dups


# ------------------------------------------------------------- the pipeline


def analyze_msgs(
    raw: Iterable[Msg],
    pre: Prelude,
    events: Iterable[EventRecord],
    cfg: AnalysisConfig,
    configured_me: Iterable[str],
    now: datetime,
    extra_me: Iterable[str] = (),
    *,
    decisions: Sequence[DecisionRecord] = (),
    cards: Sequence[Card] = (),
) -> Analysis:
    msgs, dups = unique(raw)
    me_set = {normalize(a) for a in configured_me} | {normalize(a) for a in extra_me if "@" in a}
    me_set |= pre.sent_from
    lists = set(pre.lists)
    identity = build_identity(decisions, cards, me_set, now)
    me = frozenset(me_set | identity.more_me)
    lists -= me
    roles = frozenset(cfg.role_local_parts)
    person_cache: dict[str, bool] = {}

    def is_person(addr: str) -> bool:
        ok = person_cache.get(addr)
        if ok is None:
            ok = person_cache[addr] = (
                addr not in me
                and addr not in lists
                and "@" in addr
                and not is_noreply(addr)
                and (addr in identity.named or not is_role_address(addr, roles))
            )
        return ok

    # per person (the root address of their group): contacts, display names, address uses
    items_by: dict[str, list[tuple[float, int, int, bool]]] = defaultdict(list)
    names_by: dict[str, dict[str, int]] = defaultdict(dict)
    uses_by: dict[str, dict[str, int]] = defaultdict(dict)
    root = identity.root
    max_recipients = cfg.max_recipients
    mass = listed = 0

    # (address, display name) -> uses; summed per person after the loop (few distinct pairs)
    pairs: dict[tuple[str, str], int] = {}

    for idx, m in enumerate(msgs):
        rc = m.rc
        if len(rc.every) > max_recipients:
            mass += 1
            continue
        sender = m.sender
        if lists and (sender in lists or not lists.isdisjoint(rc.every)):
            listed += 1
            continue
        if sender in me or (sender is None and m.sent):
            # one contact per person, even when two of their addresses are on the message
            targets: dict[str, bool] = {}
            for addr, name in rc.all:
                if is_person(addr):
                    r = root(addr)
                    pairs[addr, name] = pairs.get((addr, name), 0) + 1
                    targets[r] = targets.get(r, False) or addr in rc.to
            for r, direct in targets.items():
                items_by[r].append((m.ts, OUT, idx, direct))
        elif sender is not None and is_person(sender):
            r = root(sender)
            pair = (sender, m.sender_name)
            pairs[pair] = pairs.get(pair, 0) + 1
            items_by[r].append((m.ts, IN, idx, not me.isdisjoint(rc.to)))

    meetings = meetings_from_events(events, me, cfg, now, is_person)
    for ref, (meeting, addrs) in enumerate(meetings):
        met: set[str] = set()
        for addr, name in addrs:
            r = root(addr)
            pairs[addr, name] = pairs.get((addr, name), 0) + 1
            if r not in met:
                met.add(r)
                items_by[r].append((meeting.date.timestamp(), MEETING, ref, True))

    for (addr, name), n in pairs.items():
        r = root(addr)
        uses = uses_by[r]
        uses[addr] = uses.get(addr, 0) + n
        if name:
            names = names_by[r]
            names[name] = names.get(name, 0) + n

    by_id = {m.message_id: i for i, m in enumerate(msgs)}
    ctx = _Context(msgs, [mt for mt, _ in meetings], by_id, me, cfg, now)
    people: list[PersonStats] = []
    for r, items in items_by.items():
        uses = uses_by[r]
        addresses = tuple(sorted(uses, key=lambda a: (-uses[a], a)))
        name = identity.card_names.get(r) or next(
            (identity.card_names[a] for a in addresses if a in identity.card_names), ""
        )
        header_names = names_by.get(r)
        if not name and header_names:
            name = min(header_names.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        stats = person_stats(person_id(addresses), name, addresses, items, ctx)
        people.append(_apply_decisions(stats, identity))
    people.sort(key=lambda p: (-p.strength, p.person_id))
    return Analysis(
        me=me,
        people=people,
        skipped_bulk=pre.bulk,
        skipped_mass=mass,
        skipped_undated=pre.undated,
        skipped_list=listed,
        list_addresses=frozenset(lists),
        duplicates=dups,
        messages=len(msgs),
        meetings=len(meetings),
    )


def meetings_from_events(
    events: Iterable[EventRecord],
    me: frozenset[str],
    cfg: AnalysisConfig,
    now: datetime,
    is_person: Any,
) -> list[tuple[Meeting, list[tuple[str, str]]]]:
    """Meetings that count, with the people met.

    Both attended (an attendee who declined did not meet), not cancelled, not
    declined by the user, at most ``max_meeting_size`` people, already ended,
    and not one of kithkeep's own reminder events. Rooms and resources are not
    people and do not count towards the size.
    """
    out: list[tuple[Meeting, list[tuple[str, str]]]] = []
    seen: set[tuple[str, str]] = set()
    for e in events:
        if e.own or e.status.upper() == "CANCELLED" or e.end > now:
            continue
        key = (e.uid, e.recurrence_id)
        if key in seen:  # the same occurrence in two calendars
            continue
        attendees: dict[str, tuple[str, str]] = {}
        for a in e.attendees:
            addr = normalize(a.email)
            if a.cutype.upper() in ("ROOM", "RESOURCE") or is_resource(addr) or "@" not in addr:
                continue
            attendees[addr] = (a.name, a.partstat.upper())
        if e.organizer:
            org = normalize(e.organizer)
            if "@" in org and not is_resource(org):
                attendees.setdefault(org, ("", "ACCEPTED"))
        mine = [st for addr, (_, st) in attendees.items() if addr in me]
        my_status = (e.my_status or "").upper()
        if not mine and not my_status:
            continue  # a calendar the user reads but is not part of
        if my_status == "DECLINED" or any(st == "DECLINED" for st in mine):
            continue
        if len(attendees) > cfg.max_meeting_size:
            continue
        met = [
            (addr, name)
            for addr, (name, st) in attendees.items()
            if addr not in me and st != "DECLINED" and is_person(addr)
        ]
        if not met:
            continue
        seen.add(key)
        out.append(
            (
                Meeting(f"event:{e.uid}:{e.recurrence_id}", e.end, e.summary, len(attendees)),
                met,
            )
        )
    out.sort(key=lambda mt: (mt[0].date, mt[0].key))
    return out


@dataclass
class _Context:
    msgs: list[Msg]
    meetings: list[Meeting]
    by_id: dict[str, int]
    me: frozenset[str]
    cfg: AnalysisConfig
    now: datetime


def _parents(msgs: list[Msg]) -> Callable[[int], Iterator[str]]:
    def parents_of(i: int) -> Iterator[str]:
        # In-Reply-To alone settles most replies: References are parsed only when it does not
        m = msgs[i]
        if m.in_reply_to:
            yield m.in_reply_to
        yield from ancestor_ids(None, m.references)

    return parents_of


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def person_stats(
    pid: str,
    name: str,
    addresses: tuple[str, ...],
    items: list[tuple[float, int, int, bool]],
    ctx: _Context,
) -> PersonStats:
    """Statistics of one person from their time line (any order)."""
    msgs = ctx.msgs
    by_id = ctx.by_id
    cfg = ctx.cfg
    silence = cfg.silence_days * DAY
    items = sorted(items)  # by time, then kind and index: the same order whatever came first
    in_refs = {ref for _, kind, ref, _ in items if kind == IN}
    out_refs = {ref for _, kind, ref, _ in items if kind == OUT}
    # (in_refs and out_refs hold message indexes; a meeting's ref indexes ctx.meetings)
    parents_of = _parents(msgs)

    neg = -math.inf
    last_ts = [neg, neg, neg]  # by kind
    last_ref: list[int | None] = [None, None, None]  # the last contact by kind
    last_any = neg
    thread_last: dict[tuple[int, int], int] = {}
    replied: set[int] = set()  # messages the other side replied to
    latencies: tuple[list[float], list[float]] = ([], [])  # by the replying side: IN, OUT
    replies = [0, 0]
    counts = [0, 0, 0]
    direct_counts = [0, 0, 0]
    starts: list[float] = []
    # initiations: [kind, ref, gap seconds or None, answered]
    inits: list[list[Any]] = []
    open_init: list[list[Any] | None] = [None, None]  # by side: its latest initiation, unanswered
    parent_of: dict[int, int] = {}

    def accept_in(j: int) -> bool:
        return j in in_refs

    def accept_out(j: int) -> bool:
        return j in out_refs

    for ts, kind, ref, direct in items:
        counts[kind] += 1
        direct_counts[kind] += direct
        parent: int | None = None
        parent_ts = 0.0
        if kind == MEETING:
            # a meeting answers both sides' open initiations
            for side in (IN, OUT):
                o = open_init[side]
                if o is not None:
                    o[3] = True
                    open_init[side] = None
        else:
            m = msgs[ref]
            other = OUT if kind == IN else IN
            if m.linked:
                parent = by_id.get(m.in_reply_to) if m.in_reply_to else None
                if parent is None or parent not in (out_refs if kind == IN else in_refs):
                    parent = find_parent(
                        ref, parents_of, by_id, accept_out if kind == IN else accept_in
                    )
            elif m.thrid is not None:
                parent = thread_last.get((m.thrid, other))
            elif ts - last_ts[other] <= silence and is_reply_subject(m.subject):
                parent = last_ref[other]
            if parent is not None:
                parent_ts = msgs[parent].ts
                if parent_ts > ts + SKEW:
                    parent = None  # dated after its reply: a broken link, not a reply
                else:
                    parent_of[ref] = parent
                    replies[kind] += 1
                    if parent not in replied:
                        replied.add(parent)
                        latencies[kind].append(max(0.0, ts - parent_ts))
            if m.thrid is not None:
                thread_last[(m.thrid, kind)] = ref
            opens = (
                parent is None and last_ts[other] < ts - silence and last_ts[MEETING] < ts - silence
            )
            # a response answers the other side's open initiation; an opening of one's own
            # after a long silence does not (an asker who never replies is not answering)
            o = open_init[other]
            if o is not None:
                o[3] = o[3] or not opens
                open_init[other] = None
            if opens:
                init = [kind, ref, ts - last_any if last_any > neg else None, False]
                inits.append(init)
                open_init[kind] = init
        if ts - last_any >= EXCHANGE_GAP and (parent is None or ts - parent_ts > silence):
            starts.append(ts)
        last_ts[kind] = ts
        last_ref[kind] = ref
        last_any = ts

    answered_count = [0, 0]
    for entry in inits:
        init_side: int = entry[0]
        init_ref: int = entry[1]
        if init_ref in replied or (init_side == IN and msgs[init_ref].answered):
            entry[3] = True
        answered_count[init_side] += bool(entry[3])
    initiations = tuple(
        Initiation(
            date=msgs[ref].date,
            side="me" if kind == OUT else "them",
            subject=msgs[ref].subject,
            answered=answered,
            gap_days=round(gap / DAY, 1) if gap is not None else None,
        )
        for kind, ref, gap, answered in inits[-KEEP_INITIATIONS:]
    )
    inits_me = sum(1 for it in inits if it[0] == OUT)
    inits_them = len(inits) - inits_me

    streak = 0
    for it in reversed(items):  # the user's messages since the person last wrote
        if it[1] == IN:
            break
        if it[1] == OUT:
            streak += 1

    pending = None
    last_out_ts = last_ts[OUT]
    for ts, kind, ref, direct in reversed(items):
        if kind != IN or not direct:
            continue
        m = msgs[ref]
        if not (m.answered or last_out_ts >= ts or ref in replied):
            pending = PendingMessage(
                m.message_id, m.date, m.subject, len(m.rc.every), is_reply=ref in parent_of
            )
        break

    gaps = [(b - a) / DAY for a, b in pairwise(starts)]
    cadence = _median(gaps)
    strength, peak = _strength(items, cfg.half_life_days, ctx.now.timestamp())
    if not ((counts[IN] and counts[OUT]) or counts[MEETING]):
        strength, peak = 0.0, 0.0  # contact both ways is required
    n_in, n_out = counts[IN], counts[OUT]
    is_tie = n_in >= cfg.min_messages_each_way and n_out >= cfg.min_messages_each_way
    lat_me_h = _median(latencies[OUT])
    lat_them_h = _median(latencies[IN])

    def date_of(it: tuple[float, int, int, bool]) -> datetime:
        return ctx.meetings[it[2]].date if it[1] == MEETING else msgs[it[2]].date

    last_meet = last_ref[MEETING]

    def last_date(kind: int) -> datetime | None:
        ref = last_ref[kind]
        if ref is None:
            return None
        return ctx.meetings[ref].date if kind == MEETING else msgs[ref].date

    return PersonStats(
        person_id=pid,
        name=name,
        addresses=addresses,
        first_contact=date_of(items[0]) if items else None,
        last_contact=date_of(items[-1]) if items else None,
        last_in=last_date(IN),
        last_out=last_date(OUT),
        last_meeting=last_date(MEETING),
        last_meeting_size=ctx.meetings[last_meet].size if last_meet is not None else None,
        messages_in=n_in,
        messages_out=n_out,
        messages_in_direct=direct_counts[IN],
        messages_in_cc=n_in - direct_counts[IN],
        messages_out_direct=direct_counts[OUT],
        messages_out_cc=n_out - direct_counts[OUT],
        meetings=counts[MEETING],
        initiations_me=inits_me,
        initiations_them=inits_them,
        initiations_me_answered=answered_count[OUT],
        initiations_them_answered=answered_count[IN],
        reply_rate_me=round(answered_count[IN] / inits_them, 3) if inits_them else None,
        reply_rate_them=round(answered_count[OUT] / inits_me, 3) if inits_me else None,
        median_reply_hours_me=round(lat_me_h / 3600, 2) if lat_me_h is not None else None,
        median_reply_hours_them=round(lat_them_h / 3600, 2) if lat_them_h is not None else None,
        replies_me=replies[OUT],
        replies_them=replies[IN],
        cadence_days=round(cadence, 1) if cadence is not None else None,
        exchanges=len(starts),
        unanswered_streak=streak,
        pending_inbound=pending,
        strength=round(strength, 3),
        peak_strength=round(peak, 3),
        tier=_tier(peak, cfg) if is_tie else None,
        tier_source="strength" if is_tie else None,
        is_tie=is_tie,
        initiations=initiations,
        monthly=_monthly(items, ctx.now),
    )


def _strength(
    items: list[tuple[float, int, int, bool]], half_life_days: float, now_ts: float
) -> tuple[float, float]:
    """(today's decayed strength, its peak over the relationship's history).

    Each day with contact adds the weights of the kinds of contact it had (out,
    in, meeting), once each: a day-long burst of thirty messages is one busy
    day, not a lifetime of friendship.
    """
    weights = (IN_WEIGHT, OUT_WEIGHT, MEETING_WEIGHT)
    s = 0.0
    peak = 0.0
    prev: int | None = None
    kinds_today = [False, False, False]
    for ts, kind, _ref, _direct in items:  # sorted by time
        day = int(ts // DAY)
        if day != prev:
            if prev is not None:
                s *= 0.5 ** ((day - prev) / half_life_days)
            kinds_today = [False, False, False]
            prev = day
        if not kinds_today[kind]:
            kinds_today[kind] = True
            s += weights[kind]
            peak = max(peak, s)
    if prev is not None:
        s *= 0.5 ** (max(0.0, now_ts / DAY - (prev + 1)) / half_life_days)
    return s, peak


def _tier(peak: float, cfg: AnalysisConfig) -> str:
    if peak >= cfg.inner_strength:
        return "inner"
    if peak >= cfg.close_strength:
        return "close"
    return "wider"


def _monthly(items: list[tuple[float, int, int, bool]], now: datetime) -> tuple[int, ...]:
    counts = [0] * MONTHS
    this_month = now.year * 12 + now.month - 1
    first = this_month - MONTHS + 1
    start_ts = datetime(first // 12, first % 12 + 1, 1, tzinfo=UTC).timestamp()
    for ts, _kind, _ref, _direct in items:
        if ts < start_ts:
            continue
        d = datetime.fromtimestamp(ts, UTC)
        idx = d.year * 12 + d.month - 1 - first
        if 0 <= idx < MONTHS:
            counts[idx] += 1
    return tuple(counts)


def _apply_decisions(p: PersonStats, identity: Identity) -> PersonStats:
    """``ignore``: never a tie. ``tier``: the user's tier, and a tie."""
    if any(a in identity.ignored for a in p.addresses):
        return replace(p, ignored=True, is_tie=False, tier=None, tier_source=None)
    tiers = [identity.tiers[a] for a in p.addresses if a in identity.tiers]
    if tiers:
        return replace(p, tier=max(tiers)[1], tier_source="user", is_tie=True)
    return p


# ------------------------------------------------------------------ entry points


def analyze(
    messages: Iterable[MessageRecord],
    events: Iterable[EventRecord],
    cfg: AnalysisConfig,
    configured_me: Iterable[str],
    now: datetime,
    extra_me: Iterable[str] = (),
    *,
    decisions: Sequence[DecisionRecord] = (),
    cards: Sequence[Card] = (),
) -> Analysis:
    """Everything derived from raw records: the user's addresses and each person's statistics."""
    msgs, pre = msgs_from_records(messages)
    return analyze_msgs(
        msgs,
        pre,
        events,
        cfg,
        configured_me,
        now,
        extra_me,
        decisions=decisions,
        cards=cards,
    )


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while analysis allocates its many small,
    acyclic objects: its repeated full scans of the growing heap cost a third of the
    read. Reference counting still frees everything; the previous state is restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def analyze_store(
    store: Store,
    cfg: AnalysisConfig,
    configured_me: Iterable[str],
    now: datetime | None = None,
    extra_me: Iterable[str] = (),
    *,
    decisions: Sequence[DecisionRecord] = (),
    save: bool = True,
    previous_me: bool = False,
) -> Analysis:
    """Analyze everything in the store and replace the derived people table.

    ``extra_me`` are the addresses sources know to be the user's. With
    ``previous_me`` the user's addresses of the previous analysis are added:
    the CLI re-analyzes after a ``merge`` without connecting to any source.
    """
    now = now or datetime.now(UTC)
    extra = set(extra_me)
    if previous_me:
        previous = store.get_meta("me")
        if previous:
            extra = set(json.loads(previous))
    with _no_gc():
        msgs, pre = read_msgs(store)
        result = analyze_msgs(
            msgs,
            pre,
            list(store.iter_events()),
            cfg,
            configured_me,
            now,
            extra,
            decisions=decisions,
            cards=load_contacts(cfg.contacts_file),
        )
    if save:
        with _no_gc():
            save_people(store, result, now)
    log.info(
        "analyzed %d messages (%d copies), %d meetings: %d people (%d ties); "
        "skipped %d bulk, %d list, %d mass, %d undated",
        result.messages,
        result.duplicates,
        result.meetings,
        len(result.people),
        sum(p.is_tie for p in result.people),
        result.skipped_bulk,
        result.skipped_list,
        result.skipped_mass,
        result.skipped_undated,
    )
    return result


def save_people(store: Store, result: Analysis, now: datetime) -> None:
    rows = [
        {
            "id": p.person_id,
            "name": p.name,
            "addresses_json": json.dumps(list(p.addresses)),
            "is_tie": p.is_tie,
            "tier": p.tier,
            "strength": p.strength,
            "last_contact": p.last_contact,
            "stats_json": json.dumps(p.to_json(), ensure_ascii=False, separators=(",", ":")),
        }
        for p in result.people
    ]
    with store.transaction() as s:
        s.execute(sa.delete(DerivedPerson))
        if rows:
            s.execute(sa.insert(DerivedPerson), rows)
        store.set_meta(s, "me", json.dumps(sorted(result.me)))
        store.set_meta(s, "analyzed_at", now.isoformat())


def load_people(store: Store) -> list[PersonStats]:
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(DerivedPerson.stats_json).order_by(
                DerivedPerson.strength.desc(), DerivedPerson.id
            )
        )
        return [PersonStats.from_json(json.loads(r[0])) for r in rows]
