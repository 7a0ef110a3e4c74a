"""Which addresses are one person, and what the user decided about people.

Merges are conservative and explainable. Addresses are joined only by

* the user: ``merge`` decisions (``person`` = one address, ``value`` = the other),
  undone by ``unmerge`` decisions (the address leaves its group, also a vCard
  group, and is never suggested again with the other address);
* the contacts file: every card's addresses are one person;
* normalization (case; Gmail dots and ``+tags``), in :mod:`identity`.

Everything else is a *suggestion* (:func:`suggest_merges`) that the user may
accept with ``kithkeep merge``. The user's own addresses never join a person;
a card that holds one of them holds more addresses of the user.

``ignore`` and ``tier`` decisions are collected here too, by address: a
person matches a decision when the decision's address is one of theirs.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

from kithkeep.model.identity import fold_name, normalize
from kithkeep.model.stats import TIERS, PersonStats
from kithkeep.model.vcard import Card
from kithkeep.records import DecisionRecord

log = logging.getLogger(__name__)


class UnionFind:
    """Address groups; the root of a group is its smallest address (deterministic)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, a: str) -> str:
        parent = self.parent
        root = a
        while parent.get(root, root) != root:
            root = parent[root]
        while a != root:  # path compression keeps later finds O(1)
            nxt = parent.get(a, a)
            parent[a] = root
            a = nxt
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.parent.setdefault(ra, ra)


@dataclass
class Identity:
    """Grouping and per-address decisions, ready for analysis."""

    groups: UnionFind = field(default_factory=UnionFind)
    # vCard names by group member (the name of the user's contact wins over header names)
    card_names: dict[str, str] = field(default_factory=dict)
    # addresses the user's own card lists
    more_me: frozenset[str] = frozenset()
    ignored: frozenset[str] = frozenset()
    # address -> (decision id, tier): the newest decision of a person wins
    tiers: dict[str, tuple[int, str]] = field(default_factory=dict)
    # addresses the user named in a merge or tier decision: people even if they look like roles
    named: frozenset[str] = frozenset()
    # address pairs the user separated (never suggested again)
    separated: frozenset[tuple[str, str]] = frozenset()
    _members: dict[str, frozenset[str]] | None = field(default=None, repr=False, compare=False)

    def root(self, address: str) -> str:
        return self.groups.find(address) if address in self.groups.parent else address

    def members(self, root: str) -> frozenset[str]:
        """Every address whose root is ``root`` (``root`` itself included)."""
        if self._members is None:
            groups: dict[str, set[str]] = {}
            for a in self.groups.parent:
                groups.setdefault(self.groups.find(a), set()).add(a)
            self._members = {r: frozenset(g | {r}) for r, g in groups.items()}
        return self._members.get(root) or frozenset((root,))

    def summary(self) -> dict[str, object]:
        """What the statistics depend on, as plain JSON: the groups of more than one
        address, the contacts-file names, and the ignore and tier decisions in force."""
        self.members("")  # fills _members
        assert self._members is not None
        return {
            "groups": sorted(sorted(g) for g in self._members.values() if len(g) > 1),
            "names": dict(sorted(self.card_names.items())),
            "ignored": sorted(self.ignored),
            "tiers": {a: t for a, (_, t) in sorted(self.tiers.items())},
            "named": sorted(self.named),
        }


def _active(d: DecisionRecord, now: datetime) -> bool:
    return d.until is None or d.until > now


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def separated_pairs(decisions: Sequence[DecisionRecord]) -> frozenset[tuple[str, str]]:
    """Address pairs the user separated with ``unmerge`` (and did not merge again since)."""
    pairs: set[tuple[str, str]] = set()
    for d in sorted(decisions, key=lambda d: d.id):
        if d.kind in ("merge", "unmerge") and d.value:
            pair = _pair(normalize(d.person), normalize(d.value))
            if d.kind == "unmerge":
                pairs.add(pair)
            else:
                pairs.discard(pair)
    return frozenset(pairs)


def build_identity(
    decisions: Sequence[DecisionRecord],
    cards: Sequence[Card],
    me: Iterable[str],
    now: datetime,
) -> Identity:
    """Groups from decisions (applied in the order they were made) and the contacts file."""
    me_set = set(me)
    user_edges: list[tuple[str, str]] = []
    detached: set[str] = set()
    ignored: set[str] = set()
    tiers: dict[str, tuple[int, str]] = {}
    named: set[str] = set()
    for d in sorted(decisions, key=lambda d: d.id):
        person = normalize(d.person)
        value = normalize(d.value) if d.value else ""
        if d.kind == "merge" and value and "@" in value and value != person:
            user_edges.append((person, value))
            named.update((person, value))
            detached.discard(person)
            detached.discard(value)
        elif d.kind == "unmerge":
            user_edges = [e for e in user_edges if person not in e]
            detached.add(person)
        elif d.kind == "ignore" and _active(d, now):
            ignored.add(person)
        elif d.kind == "tier" and _active(d, now):
            tier = (d.value or "").strip().lower()
            if tier in TIERS:
                tiers[person] = (d.id, tier)
                named.add(person)
            else:
                log.warning("tier decision %d for %s has unknown tier %r", d.id, person, d.value)

    more_me: set[str] = set()
    card_names: dict[str, str] = {}
    uf = UnionFind()
    for card in cards:
        if me_set.intersection(card.emails):
            more_me.update(card.emails)
            continue
        members = [a for a in card.emails if a not in detached]
        for a in members:
            uf.find(a)
            if card.name:
                card_names.setdefault(a, card.name)
        for a, b in pairwise(members):
            uf.union(a, b)
    all_me = me_set | more_me
    for a, b in user_edges:
        if a in all_me or b in all_me:
            log.warning("merge of %s and %s ignored: one of them is the user's address", a, b)
            continue
        uf.union(a, b)
    return Identity(
        groups=uf,
        card_names=card_names,
        more_me=frozenset(more_me - me_set),
        ignored=frozenset(ignored),
        tiers=tiers,
        named=frozenset(named),
        separated=separated_pairs(decisions),
    )


# --------------------------------------------------------------- suggestions


@dataclass(frozen=True)
class MergeSuggestion:
    """Two people that may be one, and why."""

    a: PersonStats
    b: PersonStats
    reason: str

    def to_json(self) -> dict[str, object]:
        def who(p: PersonStats) -> dict[str, object]:
            return {"person_id": p.person_id, "name": p.name, "addresses": list(p.addresses)}

        return {
            "a": who(self.a),
            "b": who(self.b),
            "reason": self.reason,
            "command": f"kithkeep merge {self.a.addresses[0]} {self.b.addresses[0]}",
        }


def _separated(a: PersonStats, b: PersonStats, pairs: frozenset[tuple[str, str]]) -> bool:
    return any(_pair(x, y) in pairs for x in a.addresses for y in b.addresses)


_MIN_LOCAL = 5


def _mailbox_names(p: PersonStats) -> set[str]:
    """Local parts distinctive enough to suggest a match across domains (``ana.silva``)."""
    out = set()
    for a in p.addresses:
        local = a.rpartition("@")[0].split("+", 1)[0]
        if len(local) >= _MIN_LOCAL and any(c in local for c in "._-"):
            out.add(local.replace("_", ".").replace("-", "."))
    return out


def suggest_merges(
    people: Sequence[PersonStats], decisions: Sequence[DecisionRecord] = ()
) -> list[MergeSuggestion]:
    """Candidate merges among people who both exchanged mail with the user.

    Reasons, strongest first: the same full name (accents, case and "Last,
    First" order ignored; one-word names are too common to count); the same
    distinctive mailbox name (``ana.silva``) at two domains, with no
    conflicting names. Pairs the user separated with ``unmerge`` are left out.
    """
    separated = separated_pairs(decisions)
    talked = [p for p in people if (p.messages_in + p.messages_out) > 0 and not p.ignored]
    out: list[MergeSuggestion] = []
    seen: set[tuple[str, str]] = set()

    def add(a: PersonStats, b: PersonStats, reason: str) -> None:
        a, b = sorted((a, b), key=lambda p: (-(p.messages_in + p.messages_out), p.person_id))
        key = (a.person_id, b.person_id)
        if key in seen or _separated(a, b, separated):
            return
        seen.add(key)
        out.append(MergeSuggestion(a, b, reason))

    by_name: dict[str, list[PersonStats]] = defaultdict(list)
    for p in talked:
        folded = fold_name(p.name)
        if len(folded.split()) >= 2:
            by_name[folded].append(p)
    for group in by_name.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                add(a, b, f"same full name {a.name!r} on two addresses that both exchanged mail")

    by_box: dict[str, list[PersonStats]] = defaultdict(list)
    for p in talked:
        for box in _mailbox_names(p):
            by_box[box].append(p)
    for box, group in by_box.items():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                fa, fb = fold_name(a.name), fold_name(b.name)
                if fa and fb and fa != fb:
                    continue
                add(a, b, f"same mailbox name {box!r} at two domains, both exchanged mail")
    return out
