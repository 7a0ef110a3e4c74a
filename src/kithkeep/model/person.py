"""One person's statistics from their time line of messages and meetings.

The time line is a list of ``(timestamp, kind, index, direct)`` items, kind
``IN``, ``OUT`` or ``MEETING``; the index points into the analysis' message
or meeting list. Everything here is a pure function of the time line, the
messages, the config and the clock.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from kithkeep.config import AnalysisConfig
from kithkeep.model.identity import is_resource, normalize
from kithkeep.model.messages import (
    ANSWERED,
    IN_REPLY_TO,
    LINKED,
    MESSAGE_ID,
    RECIPIENTS,
    REFERENCES,
    SUBJECT,
    THRID,
    TS,
    Msg,
    msg_date,
    refs_from_json,
)
from kithkeep.model.stats import Initiation, PendingMessage, PersonStats
from kithkeep.model.threads import find_parent, is_reply_subject
from kithkeep.records import EventRecord

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
# The rhythm of meetings is that of the most recent ones: a weekly 1:1 that began last
# month is regular now whatever happened years ago. At most this many gaps count.
MEETING_RHYTHM_GAPS = 4

IN, OUT, MEETING = 0, 1, 2
_WEIGHTS = (IN_WEIGHT, OUT_WEIGHT, MEETING_WEIGHT)  # by kind

# A contact on a person's time line: (timestamp, kind, message or meeting index, direct).
Item = tuple[float, int, int, bool]
# What walking a time line gives (see _walk).
Walk = tuple[
    list[int],
    list[int],
    list[float],
    list[int | None],
    set[int],
    tuple[list[float], list[float]],
    list[int],
    list[float],
    list[list[Any]],
    set[int],
    list[int],
]


@dataclass(frozen=True, slots=True)
class Meeting:
    key: str
    date: datetime
    summary: str
    # None: unknown (the server cut the attendee list); such meetings do not count
    size: int | None
    # an occurrence of a recurring calendar series (the event has a recurrence id)
    recurring: bool = False


def meetings_from_events(
    events: Iterable[EventRecord],
    me: frozenset[str],
    cfg: AnalysisConfig,
    now: datetime,
    is_person: Callable[[str], bool],
    *,
    unknown_size: bool = False,
) -> list[tuple[Meeting, list[tuple[str, str]]]]:
    """Meetings that count, with the people met.

    Both attended (an attendee who declined did not meet), not cancelled, not
    declined by the user, at most ``max_meeting_size`` people, already ended,
    and not one of kithkeep's own reminder events. Rooms and resources are not
    people and do not count towards the size. A meeting whose attendee list
    the server cut (``attendees_omitted``) has an unknown size, so it is not
    known to be small and does not count; with ``unknown_size`` only those are
    returned (their size None), for ``show`` to say why they did not count.
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
        if e.attendees_omitted != unknown_size:
            continue
        if not e.attendees_omitted and len(attendees) > cfg.max_meeting_size:
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
                Meeting(
                    f"event:{e.uid}:{e.recurrence_id}",
                    e.end,
                    e.summary,
                    None if e.attendees_omitted else len(attendees),
                    recurring=bool(e.recurrence_id),
                ),
                met,
            )
        )
    out.sort(key=lambda mt: (mt[0].date, mt[0].key))
    return out


@dataclass
class PersonContext:
    """What every person's statistics share: the messages, meetings, thread index, config, clock."""

    msgs: list[Msg]
    meetings: list[Meeting]
    by_id: dict[str, int]
    me: frozenset[str]
    cfg: AnalysisConfig
    now: datetime
    month_bounds: list[float] = field(default_factory=list)
    now_ts: float = 0.0

    # known ancestors by message index, resolved when first needed and shared by everyone
    # the message is with: the References of a thread are parsed once, not once per walk
    known_ancestors: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False)
    # subject -> it has a reply prefix: subjects repeat along threads, the pattern is long
    reply_subjects: dict[str, bool] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.month_bounds = self.month_bounds or month_starts(self.now)
        self.now_ts = self.now.timestamp()

    def reply_subject(self, subject: str) -> bool:
        got = self.reply_subjects.get(subject)
        if got is None:
            got = self.reply_subjects[subject] = is_reply_subject(subject)
        return got


def ancestors_of(
    i: int,
    msgs: list[Msg],
    by_id: dict[str, int],
    known: dict[int, tuple[int, ...]],
    refs_from_json: Callable[[str], Sequence[str]],
) -> tuple[int, ...]:
    """Indexes of the known messages message ``i`` replies to: In-Reply-To, then
    References from the newest back (repeats left in: find_parent skips them).
    Worked out once per message and kept in ``known``, shared by everyone the message
    is with: the References of a thread are parsed once, not once per walk."""
    got = known.get(i)
    if got is not None:
        return got
    m = msgs[i]
    get = by_id.get
    found = []
    irt = m[IN_REPLY_TO]
    if irt:
        j = get(irt)
        if j is not None:
            found.append(j)
    # In-Reply-To alone settles most replies: References are parsed only for a walk.
    # (A loop rather than comprehensions: most messages carry one or two.)
    refs = m[REFERENCES]
    for ref in reversed(refs_from_json(refs) if type(refs) is str else refs):
        j = get(ref)
        if j is not None:
            found.append(j)
    got = known[i] = tuple(found)
    return got


def _median(values: list[float]) -> float | None:
    """The median (statistics.median's definition, without its generality: it is called
    three times per person)."""
    n = len(values)
    if not n:
        return None
    v = sorted(values)
    mid = n // 2
    return float(v[mid]) if n % 2 else (v[mid - 1] + v[mid]) / 2


def _walk(
    items: list[Item],
    msgs: list[Msg],
    by_id: dict[str, int],
    known: dict[int, tuple[int, ...]],
    refs_from_json: Callable[[str], Sequence[str]],
    subjects: dict[str, bool],
    reply_subject: Callable[[str], bool],
    silence: float,
) -> Walk:
    """The time line walked, oldest first (``items`` sorted): what happened between the
    two sides, for person_stats to sum up. ``known`` holds the messages' ancestors
    (see ancestors_of); ``subjects`` is the cache behind ``reply_subject``.

    Returns counts and direct counts by kind, the last timestamp and index by kind,
    the messages the other side replied to, reply latencies by the replying side,
    replies by side, the starts of exchanges, the initiations (``[kind, index, gap
    seconds or None, answered]``), the messages with a parent, and the meetings.
    """
    del subjects  # reply_subject uses it itself

    def ancestors(i: int) -> tuple[int, ...]:
        return ancestors_of(i, msgs, by_id, known, refs_from_json)

    # the person's messages by side (IN, OUT), as message indexes; a meeting's ref indexes
    # ctx.meetings
    refs_of = (
        {ref for _, kind, ref, _ in items if kind == IN},
        {ref for _, kind, ref, _ in items if kind == OUT},
    )

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
    has_parent: set[int] = set()
    meeting_refs: list[int] = []  # the person's meetings, oldest first

    for ts, kind, ref, direct in items:
        counts[kind] += 1
        direct_counts[kind] += direct
        parent: int | None = None
        if kind == MEETING:
            meeting_refs.append(ref)
            # a meeting answers both sides' open initiations
            for side in (IN, OUT):
                o = open_init[side]
                if o is not None:
                    o[3] = True
                    open_init[side] = None
        else:
            m = msgs[ref]
            other = kind ^ 1  # IN <-> OUT
            thrid = m[THRID]
            if m[LINKED]:
                accept = refs_of[other]
                irt = m[IN_REPLY_TO]
                if irt:
                    parent = by_id.get(irt)
                if parent is None or parent not in accept:
                    parent = find_parent(ref, ancestors, accept)
            elif thrid is not None:
                parent = thread_last.get((thrid, other))
            elif ts - last_ts[other] <= silence and reply_subject(m[SUBJECT]):
                parent = last_ref[other]
            if parent is not None:
                parent_ts = msgs[parent][TS]
                if parent_ts > ts + SKEW:
                    parent = None  # dated after its reply: a broken link, not a reply
                else:
                    has_parent.add(ref)
                    replies[kind] += 1
                    if parent not in replied:
                        replied.add(parent)
                        latencies[kind].append(max(0.0, ts - parent_ts))
            if thrid is not None:
                thread_last[(thrid, kind)] = ref
            since = ts - silence
            opens = parent is None and last_ts[other] < since and last_ts[MEETING] < since
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
    return (
        counts,
        direct_counts,
        last_ts,
        last_ref,
        replied,
        latencies,
        replies,
        starts,
        inits,
        has_parent,
        meeting_refs,
    )


def person_stats(
    pid: str,
    name: str,
    addresses: tuple[str, ...],
    items: list[tuple[float, int, int, bool]],
    ctx: PersonContext,
) -> PersonStats:
    """Statistics of one person from their time line (any order)."""
    msgs = ctx.msgs
    cfg = ctx.cfg
    items = sorted(items)  # by time, then kind and index: the same order whatever came first
    (
        counts,
        direct_counts,
        last_ts,
        last_ref,
        replied,
        latencies,
        replies,
        starts,
        inits,
        has_parent,
        meeting_refs,
    ) = _walk(
        items,
        msgs,
        ctx.by_id,
        ctx.known_ancestors,
        refs_from_json,
        ctx.reply_subjects,
        ctx.reply_subject,
        cfg.silence_days * DAY,
    )

    answered_count = [0, 0]
    inits_me = 0
    for entry in inits:
        init_side: int = entry[0]
        init_ref: int = entry[1]
        if init_ref in replied or (init_side == IN and msgs[init_ref][ANSWERED]):
            entry[3] = True
        answered_count[init_side] += entry[3]
        inits_me += init_side == OUT
    inits_them = len(inits) - inits_me
    initiations = tuple(
        [
            Initiation(
                msg_date(msgs[ref]),
                "me" if kind == OUT else "them",
                msgs[ref][SUBJECT],
                answered,
                round(gap / DAY, 1) if gap is not None else None,
            )
            for kind, ref, gap, answered in inits[-KEEP_INITIATIONS:]
        ]
    )
    # the user's messages to them (in To) since they last wrote; being copied on someone
    # else's thread asks nothing of them
    streak = 0
    for it in reversed(items):
        if it[1] == IN:
            break
        if it[1] == OUT and it[3]:
            streak += 1

    pending = None
    last_out_ts = last_ts[OUT]
    for ts, kind, ref, direct in reversed(items):
        if kind != IN or not direct:
            continue
        m = msgs[ref]
        if not (m[ANSWERED] or last_out_ts >= ts or ref in replied):
            pending = PendingMessage(
                m[MESSAGE_ID],
                msg_date(m),
                m[SUBJECT],
                len(m[RECIPIENTS].every),
                is_reply=ref in has_parent,
            )
        break

    gaps = [(b - a) / DAY for a, b in pairwise(starts)]
    cadence = _median(gaps)
    strength, peak = _strength(items, cfg.half_life_days, ctx.now_ts, _WEIGHTS)
    if not ((counts[IN] and counts[OUT]) or counts[MEETING]):
        strength, peak = 0.0, 0.0  # contact both ways is required
    n_in, n_out = counts[IN], counts[OUT]
    is_tie = n_in >= cfg.min_messages_each_way and n_out >= cfg.min_messages_each_way
    lat_me_h = _median(latencies[OUT])
    lat_them_h = _median(latencies[IN])

    def date_of(it: tuple[float, int, int, bool]) -> datetime:
        return ctx.meetings[it[2]].date if it[1] == MEETING else msg_date(msgs[it[2]])

    last_meet = last_ref[MEETING]
    # ---- issue 18 (reminder texts): the last exchange and the last meeting's title,
    # passed to PersonStats below (last_kind ... last_meeting_title). Carry this over.
    last_kind = last_subject = last_message_id = last_meeting_title = ""
    if items:
        _, kind_of_last, ref_of_last, _ = items[-1]
        if kind_of_last == MEETING:
            last_kind, last_subject = "meeting", ctx.meetings[ref_of_last].summary
        else:
            last_msg = msgs[ref_of_last]
            last_kind = "in" if kind_of_last == IN else "out"
            last_subject, last_message_id = last_msg[SUBJECT] or "", last_msg[MESSAGE_ID] or ""
    if last_meet is not None:
        last_meeting_title = ctx.meetings[last_meet].summary
    # ---- end of issue 18
    meeting_times = [ctx.meetings[r].date.timestamp() for r in meeting_refs]
    # the recent rhythm of meetings: needs two gaps at least (three meetings), since one
    # gap says nothing about a series
    recent_gaps = [(b - a) / DAY for a, b in pairwise(meeting_times[-MEETING_RHYTHM_GAPS - 1 :])]
    meeting_cadence = _median(recent_gaps) if len(recent_gaps) >= 2 else None

    def last_date(kind: int) -> datetime | None:
        ref = last_ref[kind]
        if ref is None:
            return None
        return ctx.meetings[ref].date if kind == MEETING else msg_date(msgs[ref])

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
        previous_meeting=(ctx.meetings[meeting_refs[-2]].date if len(meeting_refs) >= 2 else None),
        meeting_cadence_days=(round(meeting_cadence, 1) if meeting_cadence is not None else None),
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
        monthly=_monthly(items, ctx.month_bounds),
        last_kind=last_kind,  # issue 18, see above
        last_subject=last_subject,
        last_message_id=last_message_id,
        last_meeting_title=last_meeting_title,
    )


def _strength(
    items: list[Item],
    half_life_days: float,
    now_ts: float,
    weights: tuple[float, float, float],
) -> tuple[float, float]:
    """(today's decayed strength, its peak over the relationship's history).

    Each day with contact adds the weights of the kinds of contact it had (out,
    in, meeting), once each: a day-long burst of thirty messages is one busy
    day, not a lifetime of friendship.
    """
    s = 0.0
    peak = 0.0
    prev: float | None = None
    today = 0  # the kinds of contact the day had, as bits
    for ts, kind, _ref, _direct in items:  # sorted by time
        # a whole number of days as a float: the same arithmetic as int() gives, without
        # a call per contact
        day = ts // DAY
        if day != prev:
            if prev is not None:
                s *= 0.5 ** ((day - prev) / half_life_days)
            today = 0
            prev = day
        bit = 1 << kind
        if not today & bit:
            today |= bit
            s += weights[kind]
            if s > peak:  # noqa: PLR1730 (max() costs a call per day of contact)
                peak = s
    if prev is not None:
        s *= 0.5 ** (max(0.0, now_ts / DAY - (prev + 1)) / half_life_days)
    return s, peak


def _tier(peak: float, cfg: AnalysisConfig) -> str:
    if peak >= cfg.inner_strength:
        return "inner"
    if peak >= cfg.close_strength:
        return "close"
    return "wider"


def month_starts(now: datetime) -> list[float]:
    """Timestamps of the first instants of the last ``MONTHS`` months (UTC) and of the next."""
    this_month = now.year * 12 + now.month - 1
    return [
        datetime(m // 12, m % 12 + 1, 1, tzinfo=UTC).timestamp()
        for m in range(this_month - MONTHS + 1, this_month + 2)
    ]


def _monthly(items: list[Item], bounds: list[float]) -> tuple[int, ...]:
    """Contacts per month; ``bounds`` from :func:`month_starts` (computed once per analysis)."""
    counts = [0] * MONTHS
    # items are sorted by time: skip the older ones with one bisection
    for ts, _kind, _ref, _direct in items[bisect_left(items, (bounds[0],)) :]:
        idx = bisect_right(bounds, ts) - 1
        if 0 <= idx < MONTHS:
            counts[idx] += 1
    return tuple(counts)
