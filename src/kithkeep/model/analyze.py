"""Analysis: raw records -> people -> interactions -> per-person statistics.

Derived data only: the result can always be recomputed from the store's raw
tables and the user's decisions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise

import sqlalchemy as sa

from kithkeep.config import AnalysisConfig
from kithkeep.decisions import DecisionRecord
from kithkeep.model.identity import bulk_reason, is_role_address, normalize
from kithkeep.model.stats import PendingMessage, PersonStats
from kithkeep.records import EventRecord, MessageRecord
from kithkeep.schema import DerivedPerson
from kithkeep.store import Store

log = logging.getLogger(__name__)

OUT_WEIGHT = 1.5  # writing to someone says more about a tie than receiving from them
IN_WEIGHT = 1.0
INNER_STRENGTH = 20.0
CLOSE_STRENGTH = 8.0


@dataclass(frozen=True)
class Interaction:
    """One message or meeting between the user and one person."""

    address: str
    date: datetime
    direction: str  # "in" | "out" | "meeting"
    direct: bool  # the person (out) or the user (in) was in To, not only Cc
    message_id: str
    subject: str
    recipients: int
    answered_flag: bool = False


@dataclass
class Analysis:
    me: frozenset[str]
    people: list[PersonStats]
    skipped_bulk: int = 0
    skipped_mass: int = 0
    skipped_undated: int = 0
    list_addresses: frozenset[str] = field(default_factory=frozenset)


def person_id(addresses: Iterable[str]) -> str:
    """A stable id from the person's smallest address."""
    return "p" + hashlib.sha256(min(addresses).encode()).hexdigest()[:10]


def unique_messages(messages: Iterable[MessageRecord]) -> list[MessageRecord]:
    """One record per message: the same Message-ID (or X-GM-MSGID) in several folders counts once.

    Flags are united across copies (``\\Answered`` on any copy counts), and a
    copy in the sent folder marks the message as sent.
    """
    by_key: dict[str, MessageRecord] = {}
    for m in messages:
        key = f"gm:{m.gm_msgid}" if m.gm_msgid else m.message_id
        prev = by_key.get(key)
        if prev is None:
            by_key[key] = m
        else:
            by_key[key] = MessageRecord(
                **{
                    **{s: getattr(prev, s) for s in MessageRecord.__slots__},
                    "flags": prev.flags | m.flags,
                    "in_sent_folder": prev.in_sent_folder or m.in_sent_folder,
                }
            )
    return list(by_key.values())


def find_me(
    configured: Iterable[str], messages: Iterable[MessageRecord], extra: Iterable[str]
) -> frozenset[str]:
    """The user's addresses: configured ones, account logins, the From of sent mail."""
    me = {normalize(a) for a in configured} | {normalize(a) for a in extra if "@" in a}
    for m in messages:
        if m.in_sent_folder and m.from_:
            me.add(normalize(m.from_[0].email))
    return frozenset(me)


def list_addresses(messages: Iterable[MessageRecord]) -> frozenset[str]:
    """List addresses learnt from List-Post: the user's posts to a list are not personal."""
    out: set[str] = set()
    for m in messages:
        if m.list_post and "mailto:" in m.list_post.lower():
            addr = m.list_post.lower().split("mailto:", 1)[1].split(">", 1)[0].split("?", 1)[0]
            if "@" in addr:
                out.add(normalize(addr))
    return frozenset(out)


def interactions_from_messages(
    messages: list[MessageRecord], me: frozenset[str], cfg: AnalysisConfig, lists: frozenset[str]
) -> tuple[list[Interaction], Counter[str], dict[str, Counter[str]]]:
    """Direction and counterpart of each personal message; noise is dropped and counted."""
    skipped: Counter[str] = Counter()
    names: dict[str, Counter[str]] = defaultdict(Counter)
    out: list[Interaction] = []

    def is_person(addr: str) -> bool:
        return (
            addr not in me and addr not in lists and not is_role_address(addr, cfg.role_local_parts)
        )

    for m in messages:
        date = m.effective_date
        if date is None:
            skipped["undated"] += 1
            continue
        if bulk_reason(m):
            skipped["bulk"] += 1
            continue
        recipients = (*m.to, *m.cc, *m.bcc)
        if len(recipients) > cfg.max_recipients:
            skipped["mass"] += 1
            continue
        sender = normalize(m.from_[0].email) if m.from_ else None
        to_norm = {normalize(a.email) for a in m.to}
        if sender in me or (sender is None and m.in_sent_folder):
            for a in recipients:
                addr = normalize(a.email)
                if not is_person(addr):
                    continue
                if a.name:
                    names[addr][a.name] += 1
                out.append(
                    Interaction(
                        addr, date, "out", addr in to_norm, m.message_id, m.subject, len(recipients)
                    )
                )
        elif sender is not None and is_person(sender):
            if m.from_[0].name:
                names[sender][m.from_[0].name] += 1
            out.append(
                Interaction(
                    sender,
                    date,
                    "in",
                    bool(to_norm & me),
                    m.message_id,
                    m.subject,
                    len(recipients),
                    answered_flag="\\Answered" in m.flags,
                )
            )
    return out, skipped, names


def interactions_from_events(
    events: Iterable[EventRecord], me: frozenset[str], cfg: AnalysisConfig, now: datetime
) -> list[Interaction]:
    """Meetings that count: both attended, not cancelled or declined, small, ended, not ours."""
    out: list[Interaction] = []
    for e in events:
        if e.own or e.status.upper() == "CANCELLED" or e.end > now:
            continue
        people = [a for a in e.attendees if a.cutype.upper() in ("INDIVIDUAL", "UNKNOWN")]
        if len(people) > cfg.max_meeting_size:
            continue
        mine = [a for a in people if normalize(a.email) in me]
        organizer_is_me = bool(e.organizer and normalize(e.organizer) in me)
        if not mine and not organizer_is_me:
            continue
        if (e.my_status or "").upper() == "DECLINED" or any(
            a.partstat.upper() == "DECLINED" for a in mine
        ):
            continue
        for a in people:
            addr = normalize(a.email)
            if addr in me or a.partstat.upper() == "DECLINED" or is_role_address(addr):
                continue
            out.append(
                Interaction(
                    addr,
                    e.end,
                    "meeting",
                    True,
                    f"event:{e.uid}:{e.recurrence_id}",
                    e.summary,
                    len(people),
                )
            )
    return out


def _strength(
    items: list[Interaction], half_life_days: float, now: datetime
) -> tuple[float, float]:
    """(today's decayed strength, peak strength over the relationship's history)."""
    s = 0.0
    peak = 0.0
    prev: datetime | None = None
    for it in items:
        if prev is not None:
            s *= 0.5 ** ((it.date - prev).total_seconds() / 86400 / half_life_days)
        s += OUT_WEIGHT if it.direction == "out" else IN_WEIGHT
        peak = max(peak, s)
        prev = it.date
    if prev is not None:
        s *= 0.5 ** (max(0.0, (now - prev).total_seconds()) / 86400 / half_life_days)
    return s, peak


def _tier(peak: float) -> str:
    if peak >= INNER_STRENGTH:
        return "inner"
    if peak >= CLOSE_STRENGTH:
        return "close"
    return "wider"


def person_stats(
    pid: str,
    name: str,
    addresses: tuple[str, ...],
    items: list[Interaction],
    cfg: AnalysisConfig,
    now: datetime,
) -> PersonStats:
    """Statistics of one person from their interactions (any order)."""
    items = sorted(items, key=lambda i: (i.date, i.direction, i.message_id))
    msgs = [i for i in items if i.direction != "meeting"]
    ins = [i for i in msgs if i.direction == "in"]
    outs = [i for i in msgs if i.direction == "out"]
    meetings = [i for i in items if i.direction == "meeting"]
    days = sorted({i.date.date() for i in items})
    gaps = [(b - a).days for a, b in pairwise(days)]
    cadence = float(statistics.median(gaps)) if gaps else None
    streak = 0
    for i in reversed(msgs):
        if i.direction == "in":
            break
        streak += 1
    pending = None
    last_out = outs[-1].date if outs else None
    for i in reversed(ins):
        if i.direct and not i.answered_flag and (last_out is None or last_out < i.date):
            pending = PendingMessage(i.message_id, i.date, i.subject, i.recipients)
            break
    both_ways = bool(ins) and bool(outs)
    strength, peak = _strength(msgs, cfg.half_life_days, now) if both_ways else (0.0, 0.0)
    is_tie = len(ins) >= cfg.min_messages_each_way and len(outs) >= cfg.min_messages_each_way
    return PersonStats(
        person_id=pid,
        name=name,
        addresses=addresses,
        first_contact=items[0].date if items else None,
        last_contact=items[-1].date if items else None,
        last_in=ins[-1].date if ins else None,
        last_out=last_out,
        last_meeting=meetings[-1].date if meetings else None,
        last_meeting_size=meetings[-1].recipients if meetings else None,
        messages_in=len(ins),
        messages_out=len(outs),
        messages_in_direct=sum(1 for i in ins if i.direct),
        messages_in_cc=sum(1 for i in ins if not i.direct),
        meetings=len(meetings),
        cadence_days=cadence,
        unanswered_streak=streak,
        pending_inbound=pending,
        strength=round(strength, 3),
        peak_strength=round(peak, 3),
        tier=_tier(peak) if is_tie else None,
        tier_source="strength" if is_tie else None,
        is_tie=is_tie,
    )


def analyze(
    messages: list[MessageRecord],
    events: list[EventRecord],
    cfg: AnalysisConfig,
    configured_me: Iterable[str],
    now: datetime,
    extra_me: Iterable[str] = (),
) -> Analysis:
    """Everything derived from raw records: the user's addresses and each person's statistics."""
    msgs = unique_messages(messages)
    me = find_me(configured_me, msgs, extra_me)
    lists = list_addresses(msgs)
    inter, skipped, names = interactions_from_messages(msgs, me, cfg, lists)
    inter += interactions_from_events(events, me, cfg, now)
    by_addr: dict[str, list[Interaction]] = defaultdict(list)
    for i in inter:
        by_addr[i.address].append(i)
    people = []
    for addr, items in by_addr.items():
        addresses = (addr,)
        name = names[addr].most_common(1)[0][0] if names.get(addr) else ""
        people.append(person_stats(person_id(addresses), name, addresses, items, cfg, now))
    people.sort(key=lambda p: (-(p.strength), p.person_id))
    return Analysis(
        me=me,
        people=people,
        skipped_bulk=skipped["bulk"],
        skipped_mass=skipped["mass"],
        skipped_undated=skipped["undated"],
        list_addresses=lists,
    )


def analyze_store(
    store: Store,
    cfg: AnalysisConfig,
    configured_me: Iterable[str],
    now: datetime | None = None,
    extra_me: Iterable[str] = (),
    *,
    decisions: Sequence[DecisionRecord] = (),
) -> Analysis:
    """Analyze everything in the store and replace the derived people table.

    ``decisions`` (merges, ignore, tier) shape who is who; not applied yet.
    """
    now = now or datetime.now(UTC)
    result = analyze(
        list(store.iter_messages()), list(store.iter_events()), cfg, configured_me, now, extra_me
    )
    rows = [
        {
            "id": p.person_id,
            "name": p.name,
            "addresses_json": json.dumps(list(p.addresses)),
            "is_tie": p.is_tie,
            "tier": p.tier,
            "strength": p.strength,
            "last_contact": p.last_contact,
            "stats_json": json.dumps(p.to_json(), ensure_ascii=False),
        }
        for p in result.people
    ]
    with store.transaction() as s:
        s.execute(sa.delete(DerivedPerson))
        if rows:
            s.execute(sa.insert(DerivedPerson), rows)
        store.set_meta(s, "me", json.dumps(sorted(result.me)))
        store.set_meta(s, "analyzed_at", now.isoformat())
    log.info(
        "analyzed %d people (%d ties); skipped %d bulk, %d mass, %d undated messages",
        len(result.people),
        sum(p.is_tie for p in result.people),
        result.skipped_bulk,
        result.skipped_mass,
        result.skipped_undated,
    )
    return result


def load_people(store: Store) -> list[PersonStats]:
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(DerivedPerson.stats_json).order_by(DerivedPerson.strength.desc())
        )
        return [PersonStats.from_json(json.loads(r[0])) for r in rows]
