"""Analysis: raw records -> people -> interactions -> per-person statistics.

Derived data only: the result can always be recomputed from the store's raw
tables, the contacts file and the user's decisions, so a full rebuild is the
only update path. It is made fast instead of incremental (see
``bench/analyze.py``): :mod:`kithkeep.model.messages` reads plain rows and
never builds :class:`MessageRecord` objects; :mod:`kithkeep.model.person`
computes one person's statistics; this module ties the steps together and
saves the result.

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
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from kithkeep.config import AnalysisConfig
from kithkeep.model.identity import is_noreply, is_role_address, normalize
from kithkeep.model.merges import Identity, build_identity
from kithkeep.model.messages import (
    MESSAGE_ID,
    RECIPIENTS,
    SENDER,
    SENDER_NAME,
    SENT,
    TS,
    Msg,
    Prelude,
    msgs_from_records,
    read_msgs,
    unique,
)
from kithkeep.model.person import (
    IN,
    MEETING,
    OUT,
    Item,
    PersonContext,
    meetings_from_events,
    person_stats,
)
from kithkeep.model.stats import PersonStats
from kithkeep.model.vcard import Card, load_contacts
from kithkeep.records import DecisionRecord, EventRecord, MessageRecord
from kithkeep.schema import DerivedPerson
from kithkeep.store import Store

log = logging.getLogger(__name__)


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


# ------------------------------------------------------------- the pipeline


def _timelines(
    msgs: list[Msg],
    max_recipients: int,
    lists: set[str],
    me: frozenset[str],
    person_of: dict[str, str],
    who: Callable[[str], str],
    targets_of: dict[int, tuple[tuple[str, bool], ...]],
    rc_uses: dict[int, list[Any]],
    pairs: dict[tuple[str, str], int],
    items_by: dict[str, list[Item]],
) -> tuple[int, int]:
    """Every person's time line: each message's contacts appended to ``items_by`` (by
    the root address of the person), the names senders used counted in ``pairs``.
    Returns how many messages were mass mail and how many went to or came from a list.

    ``person_of`` is the cache behind ``who``;
    ``targets_of`` and ``rc_uses`` are filled for the sent mail, by id() of its
    Recipients object (alive in msgs throughout): the people it goes to with "in To",
    and [the object, how many messages carry it].
    """
    mass = listed = 0
    for idx, m in enumerate(msgs):
        rc = m[RECIPIENTS]
        if len(rc.every) > max_recipients:
            mass += 1
            continue
        sender = m[SENDER]
        if lists and (sender in lists or not lists.isdisjoint(rc.every)):
            listed += 1
            continue
        if sender in me or (sender is None and m[SENT]):
            # The people a message goes to depend on its recipients alone, and messages
            # share one Recipients object per distinct header (messages.py): work them
            # out once per object, and count the object's uses for the names afterwards.
            key = id(rc)
            targets = targets_of.get(key)
            if targets is None:
                # one contact per person, even when two of their addresses are on the message
                direct_of: dict[str, bool] = {}
                for addr, _name in rc.all:
                    r = person_of.get(addr)
                    if r is None:
                        r = who(addr)
                    if r:
                        direct_of[r] = direct_of.get(r, False) or addr in rc.to
                targets = targets_of[key] = tuple(direct_of.items())
                rc_uses[key] = [rc, 0]
            rc_uses[key][1] += 1
            for r, direct in targets:
                items_by[r].append((m[TS], OUT, idx, direct))
        elif sender is not None:
            r = person_of.get(sender)
            if r is None:
                r = who(sender)
            if r:
                pair = (sender, m[SENDER_NAME])
                pairs[pair] = pairs.get(pair, 0) + 1
                items_by[r].append((m[TS], IN, idx, not me.isdisjoint(rc.to)))
    return mass, listed


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

    # (address, display name) -> uses; summed per person after the loop (few distinct pairs)
    pairs: dict[tuple[str, str], int] = {}

    # address -> the root of its person, or "" when it is not a person (asked once per address)
    person_of: dict[str, str] = {}

    def who(addr: str) -> str:
        r = person_of[addr] = root(addr) if is_person(addr) else ""
        return r

    # sent mail, by id() of its Recipients object (alive in msgs throughout): the people
    # it goes to with "in To", and [the object, how many messages carry it]
    targets_of: dict[int, tuple[tuple[str, bool], ...]] = {}
    rc_uses: dict[int, list[Any]] = {}

    mass, listed = _timelines(
        msgs, max_recipients, lists, me, person_of, who, targets_of, rc_uses, pairs, items_by
    )

    for rc, n in rc_uses.values():
        for addr, name in rc.all:
            if person_of[addr]:
                pairs[addr, name] = pairs.get((addr, name), 0) + n

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

    by_id = {m[MESSAGE_ID]: i for i, m in enumerate(msgs)}
    ctx = PersonContext(msgs, [mt for mt, _ in meetings], by_id, me, cfg, now)
    people: list[PersonStats] = []
    card_names = identity.card_names
    decided = identity.ignored or identity.tiers
    for r, items in items_by.items():
        uses = uses_by[r]
        # (most people have one address and one name: no sort, no key function)
        addresses = (
            tuple(uses) if len(uses) == 1 else tuple(sorted(uses, key=lambda a: (-uses[a], a)))
        )
        name = ""
        if card_names:
            name = card_names.get(r) or next(
                (card_names[a] for a in addresses if a in card_names), ""
            )
        header_names = names_by.get(r)
        if not name and header_names:
            if len(header_names) == 1:
                name = next(iter(header_names))
            else:
                name = min(header_names.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        stats = person_stats(person_id(addresses), name, addresses, items, ctx)
        people.append(_apply_decisions(stats, identity) if decided else stats)
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


def _read_and_analyze(
    store: Store,
    cfg: AnalysisConfig,
    configured_me: Iterable[str],
    now: datetime,
    extra_me: Iterable[str],
    decisions: Sequence[DecisionRecord],
) -> Analysis:
    msgs, pre = read_msgs(store)
    return analyze_msgs(
        msgs,
        pre,
        list(store.iter_events()),
        cfg,
        configured_me,
        now,
        extra_me,
        decisions=decisions,
        cards=load_contacts(cfg.contacts_file),
    )


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
        # the messages die when _read_and_analyze returns, still inside the pause: the
        # collection that follows re-enabling scans what analysis kept (the people), not
        # the hundred thousand messages it was built from
        result = _read_and_analyze(store, cfg, configured_me, now, extra, decisions)
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
        (
            p.person_id,
            p.name,
            json.dumps(list(p.addresses)),
            p.is_tie,
            p.tier,
            p.strength,
            p.last_contact,
            p.stored_json(),
        )
        for p in result.people
    ]
    store.replace_people(
        rows, {"me": json.dumps(sorted(result.me)), "analyzed_at": now.isoformat()}
    )


def load_people(store: Store) -> list[PersonStats]:
    with store.engine.connect() as c:
        rows = c.execute(
            sa.select(DerivedPerson.stats_json).order_by(
                DerivedPerson.strength.desc(), DerivedPerson.id
            )
        )
        return [PersonStats.from_json(json.loads(r[0])) for r in rows]
