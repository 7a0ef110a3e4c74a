"""Keeping the stored statistics up to date, at a cost proportional to what changed.

The store counts every batch of mail or events it commits (``seq``); the
analysis remembers up to which count it has read, and what else its results
depended on (the user's addresses, the mailing lists, who is one person, the
config). A cycle then:

1. files the messages and events written since under their addresses (the
   derived index), and notes the addresses they name or named;
2. adds the addresses of records deleted since (``changed_addresses``), of
   meetings that ended since the last cycle, of newly learnt mailing lists
   (and everyone who wrote with them), and of people whose grouping, tier or
   ignore decision changed;
3. recomputes exactly the people with one of those addresses, from the
   messages and meetings filed under their addresses, and stores them.

Nothing changed: nothing is read but the counter. The user's addresses or the
config changed, or the statistics' meaning did (``MODEL_VERSION``): a full
rebuild, which reads the messages in two streams and holds one person's at a
time. ``kithkeep rebuild`` asks for one; a property test holds every
incremental result equal to a full rebuild's, value for value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kithkeep.config import AnalysisConfig
from kithkeep.model.analyze import (
    Analysis,
    Setting,
    by_strength,
    list_addresses_of,
    person_from_pool,
    user_identity,
)
from kithkeep.model.identity import bulk_reason_of, plumbing_reason
from kithkeep.model.meetings import MetMeeting, attendee_addresses, meetings_from_events
from kithkeep.model.messages import AddrParser, MessageView, effective_date, plausible
from kithkeep.model.stats import PersonStats
from kithkeep.model.vcard import Card
from kithkeep.records import DecisionRecord, EventRecord, MessageFacts, StoredMessage
from kithkeep.store import EVENT, MESSAGE, PersonRow, Store

log = logging.getLogger(__name__)

# Bump when the statistics change meaning: the next cycle rebuilds them in full.
# 2: automated senders, placeholder dates, inferred replies, header signals (#17).
# 3: role local parts with separators (post_master) and "staff".
MODEL_VERSION = 3
STATE_KEY = "analysis_state"
# People computed between two writes of a full rebuild.
BATCH = 500
# With more people to recompute than this share of everyone, a full rebuild is cheaper.
FULL_SHARE = 0.5


@dataclass
class State:
    """What the stored statistics were computed from (meta ``analysis_state``)."""

    version: int
    seq: int  # the store's change counter, read up to here
    config: str  # fingerprint of the analysis config
    me: list[str]
    known: list[str]  # the user's addresses the sources told (logins, calendar owners)
    lists: list[str]
    identity: dict[str, Any]
    at: str  # the clock of the cycle (ISO)
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, store: Store) -> State | None:
        text = store.get_meta(STATE_KEY)
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError):
            return None

    def dump(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)


def config_fingerprint(cfg: AnalysisConfig) -> str:
    data = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)
    return hashlib.sha256(f"{MODEL_VERSION}:{data}".encode()).hexdigest()[:16]


def _personal(f: MessageFacts) -> bool:
    """The test of identity.bulk_reason and views' dates, on a stored row's facts."""
    return (
        effective_date(f.date, f.internal_date) is not None
        and bulk_reason_of(f.list_id, f.list_unsubscribe, f.precedence, f.auto_submitted) is None
        and plumbing_reason(f.subject, f.signals.split() if f.signals else ()) is None
    )


@dataclass
class _Filing:
    """Files stored messages under their addresses, learning lists and mass mail on
    the way (one pass over the messages)."""

    parser: AddrParser
    me: frozenset[str]
    max_recipients: int
    lists: set[str] = field(default_factory=set)
    mass: set[str] = field(default_factory=set)  # keys of personal messages to too many
    # messages whose Date is a placeholder or in the future (when they arrived stands in)
    implausible: int = 0
    _sets: dict[str, frozenset[str]] = field(default_factory=dict)

    def addresses(self, text: str) -> frozenset[str]:
        got = self._sets.get(text)
        if got is None:
            if len(self._sets) >= AddrParser.LIMIT:
                self._sets.clear()
            got = self._sets[text] = frozenset(a for a, _ in self.parser.from_json(text))
        return got

    def entries(self, facts: Sequence[MessageFacts]) -> list[tuple[str, int]]:
        """Index entries of stored messages: each personal one under its addresses
        (the user's left out); the list addresses of every one are learnt."""
        out: list[tuple[str, int]] = []
        me = self.me
        for f in facts:
            if f.list_post or f.list_id:
                self.lists.update(list_addresses_of(f.list_post, f.list_id))
            if f.date is not None and not plausible(f.date, f.internal_date):
                self.implausible += 1
            if not _personal(f):
                continue
            rcpt = self.addresses(f.to_json)
            if f.cc_json != "[]" or f.bcc_json != "[]":
                rcpt = rcpt | self.addresses(f.cc_json) | self.addresses(f.bcc_json)
            if len(rcpt) > self.max_recipients:
                self.mass.add(f"gm:{f.gm_msgid}" if f.gm_msgid else f.message_id)
            every = rcpt | self.addresses(f.from_json)
            out.extend((a, f.id) for a in every if a not in me and "@" in a)
        return out


def _event_entries(
    events: Sequence[tuple[int, EventRecord]], me: frozenset[str]
) -> list[tuple[str, int]]:
    return [(a, ref) for ref, e in events for a in sorted(attendee_addresses(e) - me)]


def _old_root(summary: dict[str, Any]) -> dict[str, str]:
    """address -> root, in a stored identity summary's groups."""
    return {a: min(g) for g in summary.get("groups", ()) for a in g}


def identity_changes(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """Addresses whose grouping, contacts-file name, ignore or tier decision changed."""
    out: set[str] = set()
    before = {frozenset(g) for g in old.get("groups", ())}
    after = {frozenset(g) for g in new.get("groups", ())}
    for g in before ^ after:
        out |= g
    for key in ("names", "tiers"):
        a, b = old.get(key, {}), new.get(key, {})
        out |= {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    for key in ("ignored", "named"):
        out |= set(old.get(key, ())) ^ set(new.get(key, ()))
    return out


def _row(root: str, p: PersonStats) -> PersonRow:
    return PersonRow(
        root=root,
        id=p.person_id,
        name=p.name,
        addresses_json=json.dumps(list(p.addresses)),
        is_tie=p.is_tie,
        tier=p.tier,
        strength=p.strength_base,
        last_contact=p.last_contact,
        stats_json=p.stored_json(),
    )


class _People:
    """Computes people from the messages and events filed under their addresses."""

    def __init__(self, store: Store, setting: Setting) -> None:
        self.store = store
        self.setting = setting
        self.parser = AddrParser()

    def views(self, rows: Iterable[StoredMessage]) -> list[MessageView]:
        view = self.parser.view
        return [v for v in map(view, rows) if v is not None]

    def meetings(self, events: Iterable[EventRecord]) -> list[MetMeeting]:
        s = self.setting
        return meetings_from_events(events, s.me, s.cfg, s.now, s.is_person)

    def compute(self, roots: Iterable[str]) -> dict[str, PersonStats | None]:
        """The people of ``roots`` (None: not a person, or no contact)."""
        s = self.setting
        roots = sorted(set(roots))
        out: dict[str, PersonStats | None] = dict.fromkeys(roots)
        wanted = [r for r in roots if any(s.is_person(a) for a in s.members(r))]
        for i in range(0, len(wanted), BATCH):
            part = wanted[i : i + BATCH]
            addresses = {a for r in part for a in s.members(r)}
            by_address: dict[str, dict[int, StoredMessage]] = {}
            for addr, row in self.store.messages_of(addresses):
                by_address.setdefault(addr, {})[row.id] = row
            events = self.store.events_of(addresses)
            for r in part:
                members = s.members(r)
                rows = {k: v for a in members for k, v in by_address.get(a, {}).items()}
                mine = [e for e in events if not attendee_addresses(e).isdisjoint(members)]
                out[r] = person_from_pool(r, self.views(rows.values()), self.meetings(mine), s)
        return out


@dataclass
class Cycle:
    """What one analysis cycle did."""

    kind: str  # "full", "incremental" or "none"
    seconds: float
    people: int  # people recomputed
    removed: int  # people gone
    messages: int  # messages (re)filed
    events: int


def refresh(
    store: Store,
    cfg: AnalysisConfig,
    configured_me: Iterable[str],
    now: datetime,
    known_me: Iterable[str] | None = None,
    *,
    decisions: Sequence[DecisionRecord] = (),
    cards: Sequence[Card] = (),
    full: bool = False,
) -> Cycle:
    """Bring the stored statistics up to date with the store (see the module doc).

    ``known_me``: the user's addresses the sources know (logins, calendar
    owners); None keeps those of the last cycle (the CLI re-analyzes after a
    decision without connecting to any source).
    """
    started = time.perf_counter()
    state = State.load(store)
    if known_me is None:
        known_me = state.known if state is not None else ()
    known = sorted({a.strip().lower() for a in known_me if "@" in a})
    me, identity = user_identity(configured_me, known, decisions, cards, now)
    fingerprint = config_fingerprint(cfg)
    if (
        full
        or state is None
        or state.version != MODEL_VERSION
        or state.config != fingerprint
        or set(state.me) != me
    ):
        return _rebuild(store, cfg, me, known, identity, now, fingerprint, started)

    seq = store.change_seq()
    summary = identity.summary()
    filing = _Filing(AddrParser(), me, cfg.max_recipients, set(state.lists))
    lists = filing.lists
    dirty: set[str] = set()
    reindex: list[tuple[int, Sequence[int], Sequence[tuple[str, int]]]] = []
    n_messages = n_events = 0
    if seq != state.seq:
        for facts in store.changed_messages(state.seq):
            refs = [f.id for f in facts]
            entries = filing.entries(facts)
            dirty |= store.indexed_addresses(MESSAGE, refs)
            dirty.update(a for a, _ in entries)
            reindex.append((MESSAGE, refs, entries))
            n_messages += len(refs)
        events = store.changed_events(state.seq)
        if events:
            entries = _event_entries(events, me)
            refs = [ref for ref, _ in events]
            dirty |= store.indexed_addresses(EVENT, refs)
            dirty.update(a for a, _ in entries)
            reindex.append((EVENT, refs, entries))
            n_events = len(events)
    # meetings that ended since the last cycle count from now on
    for e in store.events_ended(datetime.fromisoformat(state.at), now):
        dirty |= attendee_addresses(e)
    changed = store.changed_addresses()
    dirty |= changed
    lists -= me
    new_lists = lists - set(state.lists)
    if new_lists:
        # their traffic is no longer personal: everyone who wrote with them is affected
        dirty |= new_lists | store.addresses_with(new_lists)
    dirty |= identity_changes(state.identity, summary)
    dirty -= me

    setting = Setting(cfg, me, frozenset(lists), identity, now)
    old_root = _old_root(state.identity)
    roots = {setting.root(a) for a in dirty} | {old_root.get(a, a) for a in dirty}
    kind = "incremental" if roots or reindex else "none"
    computed: dict[str, PersonStats | None] = {}
    if roots:
        if len(roots) > FULL_SHARE * max(state.counts.get("people", 0), 1000):
            return _rebuild(store, cfg, me, known, identity, now, fingerprint, started)
        # the index as it will be once this cycle is stored: the people are read from it
        store.save_analysis(reindex=reindex)
        reindex = []
        computed = _People(store, setting).compute(roots)
    people = [(r, p) for r, p in computed.items() if p is not None]
    counts = dict(state.counts)  # the people are re-counted at the next full rebuild
    new_state = State(
        MODEL_VERSION, seq, fingerprint, sorted(me), known, sorted(lists), summary,
        now.isoformat(), counts,
    )  # fmt: skip
    store.save_analysis(
        reindex=reindex,
        people=[_row(r, p) for r, p in people],
        remove_roots=[r for r, p in computed.items() if p is None],
        judge_at=now,
        clear_changed=sorted(changed),
        meta={STATE_KEY: new_state.dump(), **_meta(me, now)},
    )
    return Cycle(
        kind,
        time.perf_counter() - started,
        len(people),
        sum(p is None for p in computed.values()),
        n_messages,
        n_events,
    )


def _meta(me: frozenset[str], now: datetime) -> dict[str, str | None]:
    return {"me": json.dumps(sorted(me)), "analyzed_at": now.isoformat()}


def _rebuild(
    store: Store,
    cfg: AnalysisConfig,
    me: frozenset[str],
    known: list[str],
    identity: Any,
    now: datetime,
    fingerprint: str,
    started: float,
) -> Cycle:
    """Everything again, streaming: one pass files every message and event under its
    addresses, a second reads the index by address and computes one person at a time."""
    store.reset_analysis(STATE_KEY)
    seq = store.change_seq()
    filing = _Filing(AddrParser(), me, cfg.max_recipients)
    n_messages = 0
    for facts in store.changed_messages(-1):
        store.save_analysis(reindex=[(MESSAGE, [], filing.entries(facts))])
        n_messages += len(facts)
    events = store.changed_events(-1)
    store.save_analysis(reindex=[(EVENT, [], _event_entries(events, me))])
    lists = filing.lists - me
    setting = Setting(cfg, me, frozenset(lists), identity, now)
    people = _People(store, setting)

    # the meetings of everyone, by address: calendars are small beside mailboxes
    meetings_by: dict[str, list[MetMeeting]] = {}
    met = people.meetings(e for _, e in events)
    for mt in met:
        for addr, _ in mt.met:
            meetings_by.setdefault(addr, []).append(mt)

    grouped = {a for g in identity.summary()["groups"] for a in g}
    rows: list[PersonRow] = []
    count = 0

    def flush(force: bool = False) -> None:
        nonlocal rows
        if rows and (force or len(rows) >= BATCH):
            store.save_analysis(people=rows, judge_at=now)
            rows = []

    def add(root: str, p: PersonStats | None) -> None:
        nonlocal count
        if p is not None:
            rows.append(_row(root, p))
            count += 1
            flush()

    seen: set[str] = set()
    for addr, stored in store.all_indexed_messages():
        seen.add(addr)
        if addr in grouped or not setting.is_person(addr):
            continue
        views = people.views(stored)
        add(addr, person_from_pool(addr, views, meetings_by.get(addr, []), setting))
    for addr in sorted(set(meetings_by) - seen - grouped):
        if setting.is_person(addr):
            add(addr, person_from_pool(addr, [], meetings_by[addr], setting))
    groups = sorted({setting.root(a) for a in grouped})
    for root, p in people.compute(groups).items():
        add(root, p)
    flush(force=True)

    counts = {"people": count, **store.mail_counts(), **_noise_counts(store, setting, filing.mass)}
    counts["meetings"] = len(met)
    counts["implausible_dates"] = filing.implausible
    state = State(
        MODEL_VERSION, seq, fingerprint, sorted(me), known, sorted(lists),
        identity.summary(), now.isoformat(), counts,
    )  # fmt: skip
    store.save_analysis(meta={STATE_KEY: state.dump(), **_meta(me, now)})
    return Cycle("full", time.perf_counter() - started, count, 0, n_messages, len(events))


def _noise_counts(store: Store, setting: Setting, mass: set[str]) -> dict[str, int]:
    """How many personal messages went to too many people (``mass``: their keys) or to
    or from a mailing list (copies once; mass mail not counted again as list mail)."""
    listed = {
        f"gm:{row.gm_msgid}" if row.gm_msgid else row.message_id
        for _addr, row in store.messages_of(setting.lists)
    }
    return {"mass": len(mass), "list": len(listed - mass)}


def stored_people(store: Store, now: datetime, half_life_days: float) -> list[PersonStats]:
    """Everyone as stored, as of ``now``, strongest first."""
    return by_strength(
        PersonStats.from_stored(text, now, half_life_days) for _, text in store.people_json()
    )


def analysis_of(store: Store, cycle: Cycle, people: list[PersonStats] | None = None) -> Analysis:
    """The :class:`Analysis` a cycle leaves: the people (when given; their numbers
    otherwise), and the counts of the last full rebuild."""
    state = State.load(store)
    counts = state.counts if state else {}
    total, ties = store.people_counts()
    return Analysis(
        me=frozenset(state.me if state else ()),
        people=people or [],
        people_total=total,
        ties_total=ties,
        skipped_bulk=counts.get("bulk", 0),
        skipped_mass=counts.get("mass", 0),
        skipped_list=counts.get("list", 0),
        skipped_undated=counts.get("undated", 0),
        duplicates=counts.get("duplicates", 0),
        messages=counts.get("messages", 0),
        meetings=counts.get("meetings", 0),
        list_addresses=frozenset(state.lists if state else ()),
        kind=cycle.kind,
        recomputed=cycle.people,
    )


def analyze_store(
    store: Store,
    cfg: AnalysisConfig,
    configured_me: Iterable[str],
    now: datetime,
    known_me: Iterable[str] | None = None,
    *,
    decisions: Sequence[DecisionRecord] = (),
    cards: Sequence[Card] | None = None,
    full: bool = False,
) -> Analysis:
    """:func:`refresh`, then everyone as stored (for tests: the CLI reads people one by one)."""
    if cards is None:
        from kithkeep.model.vcard import load_contacts

        cards = load_contacts(cfg.contacts_file)
    cycle = refresh(
        store, cfg, configured_me, now, known_me, decisions=decisions, cards=cards, full=full
    )
    return analysis_of(store, cycle, stored_people(store, now, cfg.half_life_days))


def setting_of(
    store: Store,
    cfg: AnalysisConfig,
    configured_me: Iterable[str],
    now: datetime,
    *,
    decisions: Sequence[DecisionRecord] = (),
    cards: Sequence[Card] = (),
) -> Setting:
    """The shared facts of the stored analysis (the user's addresses, the lists, who
    is one person), for reading one person's contacts again (``kithkeep show``)."""
    state = State.load(store)
    known = state.known if state else []
    me, identity = user_identity(configured_me, known, decisions, cards, now)
    lists = frozenset(state.lists) - me if state else frozenset()
    return Setting(cfg, me, lists, identity, now)
