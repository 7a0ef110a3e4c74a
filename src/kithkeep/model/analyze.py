"""Analysis: raw records -> people -> interactions -> per-person statistics.

Derived data only: everything here can be recomputed from the store's raw
tables, the contacts file and the user's decisions. A person's statistics
depend only on the messages and meetings that name one of their addresses
(and on a few facts every person shares: the user's addresses, the mailing
lists, who is one person, the config), so they are computed one person at a
time (:func:`person_from_pool`). :mod:`kithkeep.model.refresh` keeps the
stored statistics up to date from the store, recomputing only the people a
change touches; :func:`analyze` computes everyone from records in memory.

Steps for one person:

1. **One message, one record**: copies under several folders or labels (the
   same Message-ID or X-GM-MSGID) count once; ``\\Answered`` on any copy counts.
2. **Noise**: bulk and automatic mail (left out before), mass mail (more
   than ``max_recipients``), list traffic (a list address learnt from
   List-Post and List-Id among the sender or recipients: the user's own posts
   to a list are not personal), role, no-reply and resource addresses.
3. **Contacts**: the user's messages to them (OUT, one per message even when
   two of their addresses are on it), theirs to the user (IN), meetings.
4. **Statistics** from that time line (:mod:`kithkeep.model.person`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from kithkeep.config import AnalysisConfig
from kithkeep.model.automation import machine_verdict
from kithkeep.model.identity import bulk_reason, is_noreply, is_role_address, normalize
from kithkeep.model.me import me_decisions
from kithkeep.model.meetings import MetMeeting, meetings_from_events
from kithkeep.model.merges import Identity, build_identity
from kithkeep.model.messages import (
    AddrParser,
    MessageView,
    Recipients,
    references_of,
    unique,
    views_from_records,
)
from kithkeep.model.person import (
    DAY,
    IN,
    INFERRED,
    MEETING,
    OUT,
    Item,
    PersonContext,
    person_stats,
)
from kithkeep.model.stats import PersonStats
from kithkeep.model.threads import is_reply_subject
from kithkeep.model.vcard import Card
from kithkeep.records import DecisionRecord, EventRecord, MessageRecord


@dataclass
class Analysis:
    """The people and what was left out, with the kind of cycle that produced it."""

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
    # "full", "incremental" or "none" (nothing had changed), and how many people it computed
    kind: str = "full"
    recomputed: int = 0
    # everyone stored, and the ties among them (people may hold only some of them)
    people_total: int = 0
    ties_total: int = 0


def person_id(addresses: Iterable[str]) -> str:
    """A stable id from the person's smallest address."""
    return "p" + hashlib.sha256(min(addresses).encode()).hexdigest()[:10]


def user_identity(
    configured: Iterable[str],
    known: Iterable[str],
    decisions: Sequence[DecisionRecord],
    cards: Sequence[Card],
    now: datetime,
) -> tuple[frozenset[str], Identity]:
    """The user's addresses and who is one person.

    The user's addresses are the configured ones, those sources know (account
    logins, calendar owners), those the user added (``kithkeep me add``) and the
    other addresses of a contacts card that holds one of them, less those the
    user removed. Nothing else is the user's without being said: the other
    senders found in a sent folder (an assistant, a delegate) are people.
    """
    added, removed = me_decisions(decisions)
    base = {normalize(a) for a in configured} | {normalize(a) for a in known if "@" in a}
    base = (base | added) - removed
    identity = build_identity(decisions, cards, base, now)
    return frozenset((base | identity.more_me) - removed), identity


@dataclass
class Setting:
    """What every person's statistics share: the config, the user's addresses, the
    mailing lists, who is one person, and the clock (for which meetings have ended)."""

    cfg: AnalysisConfig
    me: frozenset[str]
    lists: frozenset[str]
    identity: Identity
    now: datetime
    _person: dict[str, bool] = field(default_factory=dict, repr=False)
    # the people a sent message's recipients are, by its recipients (most repeat)
    _targets: dict[Recipients, tuple[tuple[str, bool], ...]] = field(
        default_factory=dict, repr=False
    )

    def is_person(self, addr: str) -> bool:
        ok = self._person.get(addr)
        if ok is None:
            ok = self._person[addr] = (
                addr not in self.me
                and addr not in self.lists
                and "@" in addr
                and not is_noreply(addr)
                and (
                    addr in self.identity.named
                    or not is_role_address(addr, self.cfg.role_local_parts)
                )
            )
        return ok

    def root(self, addr: str) -> str:
        return self.identity.root(addr)

    def members(self, root: str) -> frozenset[str]:
        """Every address of the person whose root address is ``root`` (none when
        ``root`` belongs to another person's group)."""
        if self.identity.root(root) != root:
            return frozenset()
        return self.identity.members(root)

    def contacts(self, m: MessageView) -> tuple[tuple[str, int, bool], ...] | str:
        """The people a message is contact with, as (root, IN or OUT, direct); or why
        it is contact with nobody: "mass" or "list" (other messages: an empty tuple)."""
        rc = m.recipients
        if len(rc.every) > self.cfg.max_recipients:
            return "mass"
        sender = m.sender
        lists = self.lists
        if lists and (sender in lists or not lists.isdisjoint(rc.every)):
            return "list"
        me = self.me
        if sender in me or (sender is None and m.sent):
            targets = self._targets.get(rc)
            if targets is None:
                # one contact per person, even when two of their addresses are on it
                direct_of: dict[str, bool] = {}
                for addr, _name in rc.all:
                    if self.is_person(addr):
                        r = self.root(addr)
                        direct_of[r] = direct_of.get(r, False) or addr in rc.to
                targets = self._targets[rc] = tuple(direct_of.items())
            return tuple((r, OUT, direct) for r, direct in targets)
        if sender is None or not self.is_person(sender):
            return ()
        if m.sent and me.isdisjoint(rc.every):
            # someone else's mail in the user's sent folder (an assistant, a delegate):
            # theirs to third parties, not contact with the user
            return ()
        return ((self.root(sender), IN, not me.isdisjoint(rc.to)),)


@dataclass
class Timeline:
    """One person's contacts: their messages (de-duplicated, in canonical order) and
    meetings, the time line over both, and the (address, name) pairs they were named by."""

    msgs: list[MessageView]
    meetings: list[MetMeeting]
    items: list[Item]
    pairs: dict[tuple[str, str], int]


def timeline_of(
    root: str,
    views: Iterable[MessageView],
    meetings: Sequence[MetMeeting],
    setting: Setting,
) -> Timeline:
    """The contacts with the person whose root address is ``root``, from every message
    that names one of their addresses (any copy, any order) and the meetings with them
    (in the order they ended)."""
    members = setting.members(root)
    msgs, _ = unique(views)
    ids = {m.message_id for m in msgs}
    silence = setting.cfg.silence_days * DAY
    last_in = -math.inf
    items: list[Item] = []
    inferred: list[MessageView] = []
    pairs: dict[tuple[str, str], int] = {}
    for i, m in enumerate(msgs):
        found = setting.contacts(m)
        if isinstance(found, str):
            continue
        for r, kind, direct in found:
            if r != root:
                continue
            if kind == IN:
                last_in = m.ts
            elif direct and replies_to_missing(m, members, ids, last_in, silence):
                # they wrote: the user's reply to them says so, though the original is
                # not here (deleted, read on a phone, another folder)
                inferred.append(inferred_original(m, next(iter(m.recipients.to & members))))
                items.append(Item(inferred[-1].ts, IN, len(msgs) + len(inferred) - 1, True))
            items.append(Item(m.ts, kind, i, direct))
            if kind == IN:
                pair = (m.sender or "", m.sender_name)
                pairs[pair] = pairs.get(pair, 0) + 1
            else:
                for addr, name in m.recipients.all:
                    if addr in members and setting.is_person(addr):
                        pairs[addr, name] = pairs.get((addr, name), 0) + 1
    msgs.extend(inferred)
    mine: list[MetMeeting] = []
    for mt in meetings:
        named = [(a, n) for a, n in mt.met if a in members]
        if not named:
            continue
        items.append(Item(mt.meeting.date.timestamp(), MEETING, len(mine), True))
        mine.append(mt)
        for pair in named:
            pairs[pair] = pairs.get(pair, 0) + 1
    return Timeline(msgs, mine, items, pairs)


def replies_to_missing(
    m: MessageView, members: frozenset[str], ids: set[str], last_in: float, silence: float
) -> bool:
    """Whether the user's message ``m`` answers a message of this person's that is not
    here: it is addressed to them alone (every To address is theirs) and either its
    In-Reply-To (else its newest Reference) names a message kithkeep does not have, or it
    carries no such header but a reply prefix, with nothing from them in the last
    ``silence`` seconds."""
    if not m.recipients.to or not m.recipients.to <= members:
        return False
    parent = m.in_reply_to or next(iter(reversed(references_of(m))), None)
    if parent:
        return parent not in ids
    return m.ts - last_in > silence and is_reply_subject(m.subject)


def inferred_original(m: MessageView, address: str) -> MessageView:
    """The message of theirs the user's reply ``m`` answers, as far as it can be known:
    from ``address``, just before the reply, answered by it."""
    return m._replace(
        ts=round(m.ts - 0.001, 3),
        key=INFERRED + m.key,
        date=m.date - timedelta(milliseconds=1),
        message_id=INFERRED + m.message_id,
        sender=address,
        sender_name="",
        recipients=Recipients((), frozenset(), frozenset()),
        in_reply_to=None,
        references=(),
        answered=True,
        sent=False,
    )


def person_from_pool(
    root: str,
    views: Iterable[MessageView],
    meetings: Sequence[MetMeeting],
    setting: Setting,
) -> PersonStats | None:
    """The statistics of the person whose root address is ``root`` (see
    :func:`timeline_of`); None when nothing counts as contact with them. Clock-free, as
    stored (``strength`` and ``monthly`` unset): :meth:`PersonStats.at` gives them for a
    day (a full rebuild computes thousands of people and stores none of the two)."""
    t = timeline_of(root, views, meetings, setting)
    if not t.items:
        return None
    uses: dict[str, int] = {}
    names: dict[str, int] = {}
    for (addr, name), n in t.pairs.items():
        uses[addr] = uses.get(addr, 0) + n
        if name:
            names[name] = names.get(name, 0) + n
    addresses = tuple(sorted(uses, key=lambda a: (-uses[a], a)))
    identity = setting.identity
    name = identity.card_names.get(root) or next(
        (identity.card_names[a] for a in addresses if a in identity.card_names), ""
    )
    if not name and names:
        name = min(names.items(), key=lambda kv: (-kv[1], kv[0]))[0]
    ctx = PersonContext(t.msgs, [mt.meeting for mt in t.meetings], setting.cfg)
    stats = person_stats(person_id(addresses), name, addresses, t.items, ctx)
    if not identity.named.intersection(addresses):  # the user's word settles it
        inbound = [t.msgs[it.ref] for it in t.items if it.kind == IN]
        # bulk-shaped: the user named as no recipient, and part of no conversation
        shaped = [setting.me.isdisjoint(m.recipients.every) and not m.linked for m in inbound]
        verdict = machine_verdict(
            addresses,
            [m.signals for m in inbound],
            answered_or_met=bool(stats.messages_out or stats.meetings),
            bulk_shaped=sum(shaped),
        )
        if verdict is not None:
            stats = replace(
                stats,
                automated=verdict.kind,
                automated_reason=verdict.reason,
                is_tie=False,
                tier=None,
                tier_source=None,
            )
    return apply_decisions(stats, identity)


def apply_decisions(p: PersonStats, identity: Identity) -> PersonStats:
    """``ignore``: never a tie. ``tier``: the user's tier, and a tie."""
    if any(a in identity.ignored for a in p.addresses):
        return replace(p, ignored=True, is_tie=False, tier=None, tier_source=None)
    tiers = [identity.tiers[a] for a in p.addresses if a in identity.tiers]
    if tiers:
        return replace(p, tier=max(tiers)[1], tier_source="user", is_tie=True)
    return p


def by_strength(people: Iterable[PersonStats]) -> list[PersonStats]:
    """Strongest first (ties by id): the order every listing shows."""
    return sorted(people, key=lambda p: (-p.strength, p.person_id))


# --------------------------------------------------------------- from records


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
    """Everyone's statistics from records in memory (tests, and what the store path
    must equal): the same per-person computation as the store's."""
    me, identity = user_identity(configured_me, extra_me, decisions, cards, now)
    parser = AddrParser()
    personal: list[MessageRecord] = []
    bulk_keys: set[str] = set()
    lists: set[str] = set()
    for m in messages:
        lists.update(list_addresses_of(m.list_post, m.list_id))
        if bulk_reason(m) is not None:
            bulk_keys.add(f"gm:{m.gm_msgid}" if m.gm_msgid else m.message_id)
        else:
            personal.append(m)
    views, undated = views_from_records(personal, parser)
    setting = Setting(cfg, me, frozenset(lists - me), identity, now)

    # every message and meeting under each address it names, as the store's index has them
    by_address: dict[str, list[MessageView]] = {}
    for v in views:
        for addr in addresses_of_view(v) - me:
            by_address.setdefault(addr, []).append(v)
    events = list(events)
    met = meetings_from_events(events, me, cfg, now, setting.is_person)
    meetings_by: dict[str, list[MetMeeting]] = {}
    for mt in met:
        for addr, _ in mt.met:
            meetings_by.setdefault(addr, []).append(mt)

    roots = {setting.root(a) for a in (*by_address, *meetings_by)}
    people: list[PersonStats] = []
    for root in sorted(roots):
        members = setting.members(root)
        if not any(setting.is_person(a) for a in members):
            continue
        pool = {id(v): v for a in members for v in by_address.get(a, ())}
        mts = {mt.meeting.key: mt for a in members for mt in meetings_by.get(a, ())}
        p = person_from_pool(root, pool.values(), sorted(mts.values(), key=_meeting_order), setting)
        if p is not None:
            people.append(p.at(now, cfg.half_life_days))

    unique_msgs, dups = unique(views)
    mass = listed = 0
    for v in unique_msgs:
        found = setting.contacts(v)
        mass += found == "mass"
        listed += found == "list"
    ranked = by_strength(people)
    return Analysis(
        me=me,
        people=ranked,
        people_total=len(ranked),
        ties_total=sum(p.is_tie for p in ranked),
        skipped_bulk=len(bulk_keys),
        skipped_mass=mass,
        skipped_undated=undated,
        list_addresses=setting.lists,
        skipped_list=listed,
        duplicates=dups,
        messages=len(unique_msgs),
        meetings=len(met),
    )


def _meeting_order(mt: MetMeeting) -> tuple[datetime, str]:
    return (mt.meeting.date, mt.meeting.key)


def addresses_of_view(v: MessageView) -> set[str]:
    """Every normalized address a message names (From, To, Cc, Bcc)."""
    out = {a for a, _ in v.recipients.all}
    if v.sender:
        out.add(v.sender)
    return out


def list_addresses_of(list_post: str | None, list_id: str | None) -> list[str]:
    """The list addresses a message's List-Post and List-Id name."""
    from kithkeep.model.identity import list_id_address, mailto_address

    return [a for a in (mailto_address(list_post), list_id_address(list_id)) if a]
