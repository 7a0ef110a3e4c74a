"""Messages as analysis reads them: one :class:`MessageView` per stored copy.

A view holds what the statistics need of a message, with the address lists
normalized once per distinct header (most From and To values repeat, so
:class:`AddrParser` decodes each distinct text once and every message with
that text shares the result). Views come from the store's rows
(:meth:`AddrParser.view`) or from records (:func:`views_from_records`); both
give the same values, which a property test checks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import compress
from operator import attrgetter, eq
from typing import NamedTuple

from kithkeep.model.identity import normalize
from kithkeep.records import Address, MessageRecord, StoredMessage

Addrs = tuple[tuple[str, str], ...]  # ((normalized address, display name), ...)


class Recipients(NamedTuple):
    """To, Cc and Bcc of a message, normalized; shared by all messages with the same headers."""

    all: Addrs  # To, then Cc, then Bcc
    to: frozenset[str]
    every: frozenset[str]


class MessageView(NamedTuple):
    """One copy of a personal message, as the statistics read it."""

    ts: float  # seconds since the epoch, to the millisecond
    key: str  # copies of one message share it: the Gmail message id, else the Message-ID
    date: datetime  # aware UTC: the Date header, else INTERNALDATE
    message_id: str
    sender: str | None  # normalized From (None without one)
    sender_name: str
    recipients: Recipients
    in_reply_to: str | None
    # the stored JSON text until a thread walk needs the list (see references_of):
    # In-Reply-To settles most replies, and parsing every message's References costs
    references: str | tuple[str, ...]
    subject: str
    answered: bool  # \\Answered on this copy (or, once de-duplicated, on any copy)
    sent: bool  # in a sent folder (this copy, or any copy once de-duplicated)
    thread: int | None  # Gmail's thread id
    location: int | tuple[str, str, str]  # the store's row id, or (account, folder, uid)
    # what machines' headers said of it (kithkeep.headers.SIGNALS)
    signals: frozenset[str] = frozenset()

    @property
    def linked(self) -> bool:
        """It carries In-Reply-To or References."""
        return bool(self.in_reply_to) or self.references not in ("", "[]", ())


# Dates before this are placeholders of mail clients (1970-01-01, 1980-01-01), not
# when a message was written; a Date more than FUTURE_SLACK after the message
# arrived (INTERNALDATE, the file's time) is one too.
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=7)


def plausible(date: datetime | None, received: datetime | None) -> bool:
    """Whether a Date header can be when the message was written."""
    if date is None or date < EARLIEST:
        return False
    return received is None or date <= received + FUTURE_SLACK


def effective_date(date: datetime | None, received: datetime | None) -> datetime | None:
    """When a message was written: the Date header when plausible, else when it arrived
    (INTERNALDATE, the file's time) when that is, else None (left out, counted)."""
    if plausible(date, received):
        return date
    if received is not None and received >= EARLIEST:
        return received
    return None


def references_of(m: MessageView) -> tuple[str, ...]:
    refs = m.references
    return refs if isinstance(refs, tuple) else refs_from_json(refs)


def refs_from_json(text: str) -> tuple[str, ...]:
    """Stored References JSON as a tuple (empty when it is not a valid list of strings)."""
    if not text or text == "[]":
        return ()
    try:
        value = json.loads(text)
    except ValueError:
        return ()
    if not isinstance(value, list):
        return ()
    return tuple(v for v in value if isinstance(v, str))


def _ms(d: datetime) -> float:
    """Seconds since the epoch, to the millisecond."""
    ts = d.timestamp()
    # whole seconds (every Date header) are exact already: round() is the dearer half
    return round(ts, 3) if d.microsecond else ts


def _recipients(to: Addrs, cc: Addrs, bcc: Addrs) -> Recipients:
    to_set = frozenset([a for a, _ in to])
    if not cc and not bcc:  # most messages
        return Recipients(to, to_set, to_set)
    everyone = (*to, *cc, *bcc)
    return Recipients(everyone, to_set, frozenset([a for a, _ in everyone]))


class AddrParser:
    """Address lists parsed and normalized once per distinct value (most values repeat)."""

    # entries each cache keeps at most: a full rebuild of a large store must not
    # hold every distinct address list it ever read
    LIMIT = 100_000

    def __init__(self) -> None:
        self._json: dict[str, Addrs] = {"[]": ()}
        self._recipients: dict[tuple[str, str, str], Recipients] = {}
        self._norm: dict[str, str] = {}
        self._flags: dict[str, bool] = {}
        self._signals: dict[str, frozenset[str]] = {"": frozenset()}

    def norm(self, email: str) -> str:
        n = self._norm.get(email)
        if n is None:
            if len(self._norm) >= self.LIMIT:
                self._norm.clear()
            n = self._norm[email] = normalize(email)
        return n

    def from_json(self, text: str | None) -> Addrs:
        """A stored address list (``[[name, email], ...]``), normalized."""
        if not text:
            return ()
        got = self._json.get(text)
        if got is None:
            try:
                got = tuple((self.norm(e), n) for n, e in json.loads(text) if e)
            except (ValueError, TypeError):
                got = ()
            if len(self._json) >= self.LIMIT:
                self._json.clear()
            self._json[text] = got
        return got

    def recipients(self, to: str, cc: str, bcc: str) -> Recipients:
        key = (to, cc, bcc)
        got = self._recipients.get(key)
        if got is None:
            if len(self._recipients) >= self.LIMIT:
                self._recipients.clear()
            got = self._recipients[key] = _recipients(
                self.from_json(to), self.from_json(cc), self.from_json(bcc)
            )
        return got

    def answered(self, flags: str) -> bool:
        """``\\Answered`` among a stored flags text (few distinct texts: cached)."""
        got = self._flags.get(flags)
        if got is None:
            got = self._flags[flags] = "\\Answered" in flags.split()
        return got

    def signals(self, text: str) -> frozenset[str]:
        """A stored signal words text as a set (few distinct texts: cached)."""
        got = self._signals.get(text)
        if got is None:
            got = self._signals[text] = frozenset(text.split())
        return got

    def from_records(self, addrs: Iterable[Address]) -> Addrs:
        return tuple((self.norm(a.email), a.name) for a in addrs if a.email)

    def view(self, row: StoredMessage) -> MessageView | None:
        """The view of a stored row (None when it has no plausible date)."""
        # one unpacking: reading fifteen fields by name costs more than the rest
        (ref, gm_msgid, message_id, sent_date, received, from_json, to_json, cc_json,
         bcc_json, in_reply_to, references_json, subject, flags, in_sent_folder, gm_thrid,
         signals) = row  # fmt: skip
        date = effective_date(sent_date, received)
        if date is None:
            return None
        frm = self.from_json(from_json)
        return MessageView(
            _ms(date),
            f"gm:{gm_msgid}" if gm_msgid else message_id,
            date,
            message_id,
            frm[0][0] if frm else None,
            frm[0][1] if frm else "",
            self.recipients(to_json, cc_json, bcc_json),
            in_reply_to,
            references_json,
            subject or "",
            self.answered(flags),
            bool(in_sent_folder),
            gm_thrid,
            ref,
            self.signals(signals),
        )

    def record_view(self, m: MessageRecord) -> MessageView | None:
        """The view of a record (None when it has no plausible date)."""
        date = effective_date(
            m.date.astimezone(UTC) if m.date else None,
            m.internal_date.astimezone(UTC) if m.internal_date else None,
        )
        if date is None:
            return None
        frm = self.from_records(m.from_[:1])
        return MessageView(
            _ms(date),
            f"gm:{m.gm_msgid}" if m.gm_msgid else m.message_id,
            date.astimezone(UTC),
            m.message_id,
            frm[0][0] if frm else None,
            frm[0][1] if frm else "",
            _recipients(self.from_records(m.to), self.from_records(m.cc), self.from_records(m.bcc)),
            m.in_reply_to,
            m.references,
            m.subject,
            "\\Answered" in m.flags,
            m.in_sent_folder,
            m.gm_thrid,
            (m.account, m.folder, m.uid),
            m.signals,
        )


def unique(msgs: Iterable[MessageView]) -> tuple[list[MessageView], int]:
    """One view per message key, whatever order the copies come in; and the copies dropped.

    The kept copy is the sent-folder one (it alone has Bcc), else the first
    location in sort order; flags and the sent marker are united over copies.
    """
    by_key: dict[str, MessageView] = {}
    dups = 0
    for m in msgs:
        prev = by_key.get(m.key)
        if prev is None:
            by_key[m.key] = m
            continue
        dups += 1
        keep, other = (m, prev) if (m.sent, prev.location) > (prev.sent, m.location) else (prev, m)
        answered = keep.answered or other.answered
        sent = keep.sent or other.sent
        if answered != keep.answered or sent != keep.sent:
            keep = keep._replace(answered=answered, sent=sent)
        by_key[m.key] = keep
    return canonical_order(list(by_key.values())), dups


_TS = attrgetter("ts")
_KEY = attrgetter("key")


def canonical_order(msgs: list[MessageView]) -> list[MessageView]:
    """By date, then key: positions break ties between equal dates the same way
    whatever order the messages arrived in (sorted by the date alone, then each run
    of equal dates by key: equal dates are rare)."""
    msgs.sort(key=_TS)
    ts = [m.ts for m in msgs]
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


def views_from_records(
    messages: Iterable[MessageRecord], parser: AddrParser
) -> tuple[list[MessageView], int]:
    """Views of the dated records, and how many had no date."""
    out: list[MessageView] = []
    undated = 0
    for m in messages:
        v = parser.record_view(m)
        if v is None:
            undated += 1
        else:
            out.append(v)
    return out, undated
