"""One person's statistics from their time line of messages and meetings.

The time line is a list of :class:`Item`, kind ``IN``, ``OUT`` or ``MEETING``,
whose ``ref`` points into the person's own messages or meetings
(:class:`PersonContext`). Everything here is a pure function of the time
line, those messages and meetings, and the config. Nothing depends on the
clock: the two figures that do (today's decayed strength and the counts of
the last 24 months) are kept in a clock-free form and worked out for a given
day by :meth:`PersonStats.at`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import pairwise
from typing import NamedTuple

from kithkeep.config import AnalysisConfig
from kithkeep.model.meetings import Meeting
from kithkeep.model.messages import MessageView, references_of
from kithkeep.model.stats import Initiation, PendingMessage, PersonStats, month_index
from kithkeep.model.threads import find_parent, is_reply_subject

# the Message-ID prefix of an inbound message inferred from the user's reply to it
INFERRED = "inferred:"
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
# The rhythm of meetings is that of the most recent ones: a weekly 1:1 that began last
# month is regular now whatever happened years ago. At most this many gaps count.
MEETING_RHYTHM_GAPS = 4

IN, OUT, MEETING = 0, 1, 2
_WEIGHTS = (IN_WEIGHT, OUT_WEIGHT, MEETING_WEIGHT)  # by kind


class Item(NamedTuple):
    """A contact on a person's time line."""

    ts: float
    kind: int  # IN, OUT or MEETING
    ref: int  # index into the person's messages (IN, OUT) or meetings (MEETING)
    direct: bool  # in To (messages); always True for meetings


@dataclass
class OpenInitiation:
    """An opening of an exchange, while the time line is walked."""

    kind: int
    ref: int
    gap: float | None  # seconds since the previous contact of any kind
    answered: bool = False


class Walk(NamedTuple):
    """What walking a time line gives, for :func:`person_stats` to sum up."""

    counts: list[int]  # by kind
    direct_counts: list[int]  # by kind
    last_ts: list[float]  # by kind
    last_ref: list[int | None]  # by kind
    replied: set[int]  # messages the other side replied to
    latencies: tuple[list[float], list[float]]  # by the replying side: IN, OUT
    replies: list[int]  # by side
    starts: list[float]  # the starts of exchanges
    initiations: list[OpenInitiation]
    has_parent: set[int]  # messages that reply to one of the other side
    meeting_refs: list[int]  # the person's meetings, oldest first


@dataclass
class PersonContext:
    """One person's messages (de-duplicated, in canonical order) and meetings, the config."""

    msgs: list[MessageView]
    meetings: list[Meeting]
    cfg: AnalysisConfig
    by_id: dict[str, int] = field(default_factory=dict)
    # known ancestors by message index, resolved when first needed
    known_ancestors: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.by_id:
            self.by_id = {m.message_id: i for i, m in enumerate(self.msgs)}

    def ancestors(self, i: int) -> tuple[int, ...]:
        """Indexes of the known messages message ``i`` replies to: In-Reply-To, then
        References from the newest back (repeats left in: find_parent skips them)."""
        got = self.known_ancestors.get(i)
        if got is not None:
            return got
        m = self.msgs[i]
        get = self.by_id.get
        found = []
        if m.in_reply_to:
            j = get(m.in_reply_to)
            if j is not None:
                found.append(j)
        for ref in reversed(references_of(m)):
            j = get(ref)
            if j is not None:
                found.append(j)
        got = self.known_ancestors[i] = tuple(found)
        return got


@lru_cache(maxsize=1 << 16)
def _reply_subject(subject: str) -> bool:
    # subjects repeat along threads, and the pattern is long
    return is_reply_subject(subject)


def _median(values: list[float]) -> float | None:
    n = len(values)
    if not n:
        return None
    v = sorted(values)
    mid = n // 2
    return float(v[mid]) if n % 2 else (v[mid - 1] + v[mid]) / 2


def walk(items: Sequence[Item], ctx: PersonContext) -> Walk:
    """The time line walked, oldest first (``items`` sorted): what happened between the
    two sides."""
    msgs = ctx.msgs
    silence = ctx.cfg.silence_days * DAY
    # the person's messages by side (IN, OUT), as message indexes
    refs_of = (
        {it.ref for it in items if it.kind == IN},
        {it.ref for it in items if it.kind == OUT},
    )
    neg = -math.inf
    w = Walk(
        counts=[0, 0, 0],
        direct_counts=[0, 0, 0],
        last_ts=[neg, neg, neg],
        last_ref=[None, None, None],
        replied=set(),
        latencies=([], []),
        replies=[0, 0],
        starts=[],
        initiations=[],
        has_parent=set(),
        meeting_refs=[],
    )
    last_any = neg
    # the walk's lists and sets as locals: the loop reads them for every item
    counts, direct_counts, last_ts, last_ref = w.counts, w.direct_counts, w.last_ts, w.last_ref
    replied, has_parent, replies, latencies = w.replied, w.has_parent, w.replies, w.latencies
    by_id = ctx.by_id
    thread_last: dict[tuple[int, int], int] = {}
    # by side: its latest initiation while unanswered
    open_init: list[OpenInitiation | None] = [None, None]

    for ts, kind, ref, direct in items:
        counts[kind] += 1
        direct_counts[kind] += direct
        parent: int | None = None
        parent_ts = 0.0
        if kind == MEETING:
            w.meeting_refs.append(ref)
            # a meeting answers both sides' open initiations
            for side in (IN, OUT):
                o = open_init[side]
                if o is not None:
                    o.answered = True
                    open_init[side] = None
        else:
            m = msgs[ref]
            other = kind ^ 1  # IN <-> OUT
            if m.linked:
                accept = refs_of[other]
                if irt := m.in_reply_to:
                    parent = by_id.get(irt)
                if parent is None or parent not in accept:
                    parent = find_parent(ref, ctx.ancestors, accept)
            elif m.thread is not None:
                parent = thread_last.get((m.thread, other))
            elif ts - last_ts[other] <= silence and _reply_subject(m.subject):
                parent = last_ref[other]
            if parent is not None:
                parent_ts = msgs[parent].ts
                if parent_ts > ts + SKEW:
                    parent = None  # dated after its reply: a broken link, not a reply
                else:
                    has_parent.add(ref)
                    replies[kind] += 1
                    if parent not in replied:
                        replied.add(parent)
                        # an inferred original has no date of its own: no latency
                        if not msgs[parent].message_id.startswith(INFERRED):
                            latencies[kind].append(max(0.0, ts - parent_ts))
            if m.thread is not None:
                thread_last[(m.thread, kind)] = ref
            since = ts - silence
            opens = parent is None and last_ts[other] < since and last_ts[MEETING] < since
            # a response answers the other side's open initiation; an opening of one's own
            # after a long silence does not (an asker who never replies is not answering)
            o = open_init[other]
            if o is not None:
                o.answered = o.answered or not opens
                open_init[other] = None
            if opens:
                init = OpenInitiation(kind, ref, ts - last_any if last_any > neg else None)
                w.initiations.append(init)
                open_init[kind] = init
        # the first contact starts an exchange, even one that replies to a message
        # dated the same instant (and so walked after it)
        if last_any == neg or (
            ts - last_any >= EXCHANGE_GAP and (parent is None or ts - parent_ts > silence)
        ):
            w.starts.append(ts)
        last_ts[kind] = ts
        last_ref[kind] = ref
        last_any = ts
    return w


def person_stats(
    pid: str,
    name: str,
    addresses: tuple[str, ...],
    items: list[Item],
    ctx: PersonContext,
) -> PersonStats:
    """Statistics of one person from their time line (any order), in the clock-free
    form that is stored: :meth:`PersonStats.at` gives today's strength and months."""
    msgs = ctx.msgs
    cfg = ctx.cfg
    items = sorted(items)  # by time, then kind and index: the same order whatever came first
    w = walk(items, ctx)

    answered_count = [0, 0]
    inits_me = 0
    for init in w.initiations:
        if init.ref in w.replied or (init.kind == IN and msgs[init.ref].answered):
            init.answered = True
        answered_count[init.kind] += init.answered
        inits_me += init.kind == OUT
    inits_them = len(w.initiations) - inits_me
    initiations = tuple(
        Initiation(
            msgs[i.ref].date,
            "me" if i.kind == OUT else "them",
            msgs[i.ref].subject,
            i.answered,
            round(i.gap / DAY, 1) if i.gap is not None else None,
        )
        for i in w.initiations[-KEEP_INITIATIONS:]
    )
    # the user's messages to them (in To) since they last wrote; being copied on someone
    # else's thread asks nothing of them
    streak = 0
    for it in reversed(items):
        if it.kind == IN:
            break
        if it.kind == OUT and it.direct:
            streak += 1

    pending = None
    last_out_ts = w.last_ts[OUT]
    for it in reversed(items):
        if it.kind != IN or not it.direct:
            continue
        m = msgs[it.ref]
        if not (m.answered or last_out_ts >= it.ts or it.ref in w.replied):
            pending = PendingMessage(
                m.message_id,
                m.date,
                m.subject,
                len(m.recipients.every),
                is_reply=it.ref in w.has_parent,
            )
        break

    cadence = _median([(b - a) / DAY for a, b in pairwise(w.starts)])
    strength_base, peak, strength_day = strength_history(items, cfg.half_life_days)
    n_in, n_out = w.counts[IN], w.counts[OUT]
    # inbound messages known only from the user's replies to them (see
    # analyze.inferred_original): contact for every purpose, counted apart; and the
    # contacts by month (one pass over the time line for both)
    inferred = 0
    months: dict[int, int] = {}
    meetings = ctx.meetings
    for _ts, kind, ref, _direct in items:
        if kind == MEETING:
            mi = month_index(meetings[ref].date)
        else:
            m = msgs[ref]
            inferred += kind == IN and m.message_id.startswith(INFERRED)
            mi = month_index(m.date)
        months[mi] = months.get(mi, 0) + 1
    if not ((n_in and n_out) or w.counts[MEETING]):
        strength_base, peak = 0.0, 0.0  # contact both ways is required
    is_tie = n_in >= cfg.min_messages_each_way and n_out >= cfg.min_messages_each_way
    lat_me_h = _median(w.latencies[OUT])
    lat_them_h = _median(w.latencies[IN])

    def date_of(it: Item) -> datetime:
        return ctx.meetings[it.ref].date if it.kind == MEETING else msgs[it.ref].date

    last_meet = w.last_ref[MEETING]
    # the last exchange and the last meeting's title: reminders name them (and link
    # to the message)
    last_kind = last_subject = last_message_id = last_meeting_title = ""
    if items:
        final = items[-1]
        if final.kind == MEETING:
            last_kind, last_subject = "meeting", ctx.meetings[final.ref].summary
        else:
            last_msg = msgs[final.ref]
            last_kind = "in" if final.kind == IN else "out"
            last_subject, last_message_id = last_msg.subject, last_msg.message_id
    if last_meet is not None:
        last_meeting_title = ctx.meetings[last_meet].summary
    meeting_times = [ctx.meetings[r].date.timestamp() for r in w.meeting_refs]
    # the recent rhythm of meetings: needs two gaps at least (three meetings), since one
    # gap says nothing about a series
    recent_gaps = [(b - a) / DAY for a, b in pairwise(meeting_times[-MEETING_RHYTHM_GAPS - 1 :])]
    meeting_cadence = _median(recent_gaps) if len(recent_gaps) >= 2 else None

    def last_date(kind: int) -> datetime | None:
        ref = w.last_ref[kind]
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
        last_meeting_recurring=last_meet is not None and ctx.meetings[last_meet].recurring,
        previous_meeting=(
            ctx.meetings[w.meeting_refs[-2]].date if len(w.meeting_refs) >= 2 else None
        ),
        meeting_cadence_days=(round(meeting_cadence, 1) if meeting_cadence is not None else None),
        messages_in=n_in - inferred,
        messages_in_inferred=inferred,
        messages_out=n_out,
        messages_in_direct=w.direct_counts[IN] - inferred,
        messages_in_cc=n_in - w.direct_counts[IN],
        messages_out_direct=w.direct_counts[OUT],
        messages_out_cc=n_out - w.direct_counts[OUT],
        meetings=w.counts[MEETING],
        initiations_me=inits_me,
        initiations_them=inits_them,
        initiations_me_answered=answered_count[OUT],
        initiations_them_answered=answered_count[IN],
        reply_rate_me=round(answered_count[IN] / inits_them, 3) if inits_them else None,
        reply_rate_them=round(answered_count[OUT] / inits_me, 3) if inits_me else None,
        median_reply_hours_me=round(lat_me_h / 3600, 2) if lat_me_h is not None else None,
        median_reply_hours_them=round(lat_them_h / 3600, 2) if lat_them_h is not None else None,
        replies_me=w.replies[OUT],
        replies_them=w.replies[IN],
        cadence_days=round(cadence, 1) if cadence is not None else None,
        exchanges=len(w.starts),
        unanswered_streak=streak,
        pending_inbound=pending,
        peak_strength=round(peak, 3),
        strength_base=strength_base,
        strength_day=strength_day,
        month_counts=tuple(sorted(months.items())),
        tier=_tier(peak, cfg) if is_tie else None,
        tier_source="strength" if is_tie else None,
        is_tie=is_tie,
        initiations=initiations,
        last_kind=last_kind,
        last_subject=last_subject,
        last_message_id=last_message_id,
        last_meeting_title=last_meeting_title,
    )


def strength_history(items: Sequence[Item], half_life_days: float) -> tuple[float, float, float]:
    """(the strength at the end of the last day with contact, its peak, that day).

    Each day with contact adds the weights of the kinds of contact it had (out,
    in, meeting), once each: a day-long burst of thirty messages is one busy
    day, not a lifetime of friendship. The strength halves every
    ``half_life_days``; :meth:`PersonStats.at` decays it to a given day.
    """
    s = 0.0
    peak = 0.0
    prev: float | None = None
    today = 0  # the kinds of contact the day had, as bits
    for ts, kind, _ref, _direct in items:  # sorted by time
        day = ts // DAY
        if day != prev:
            if prev is not None:
                s *= 0.5 ** ((day - prev) / half_life_days)
            today = 0
            prev = day
        bit = 1 << kind
        if not today & bit:
            today |= bit
            s += _WEIGHTS[kind]
            peak = max(peak, s)
    return s, peak, (prev if prev is not None else 0.0)


def _tier(peak: float, cfg: AnalysisConfig) -> str:
    if peak >= cfg.inner_strength:
        return "inner"
    if peak >= cfg.close_strength:
        return "close"
    return "wider"
