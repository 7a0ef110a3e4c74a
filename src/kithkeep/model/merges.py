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
import re
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
# Mailbox names too common to say two addresses are one person: first names and
# words of roles and desks (the same "maria@" at two domains is two people).
_COMMON_NAMES = frozenset(
    [
        "aaron",
        "adam",
        "adrian",
        "alex",
        "alexander",
        "alice",
        "amanda",
        "amy",
        "ana",
        "andrea",
        "andreas",
        "andrew",
        "angela",
        "anna",
        "anne",
        "anthony",
        "antonio",
        "barbara",
        "ben",
        "benjamin",
        "bernd",
        "brian",
        "carlos",
        "carmen",
        "caroline",
        "carol",
        "charles",
        "chris",
        "christian",
        "christina",
        "christine",
        "claudia",
        "daniel",
        "david",
        "diana",
        "elena",
        "elizabeth",
        "emily",
        "emma",
        "eric",
        "eva",
        "felix",
        "frank",
        "gabriel",
        "george",
        "hannah",
        "hans",
        "helen",
        "henry",
        "isabel",
        "jack",
        "james",
        "jan",
        "jane",
        "jennifer",
        "jessica",
        "john",
        "jonas",
        "jose",
        "joseph",
        "juan",
        "julia",
        "julian",
        "karen",
        "katharina",
        "kevin",
        "klaus",
        "laura",
        "lisa",
        "luca",
        "lucas",
        "manuel",
        "marco",
        "maria",
        "marie",
        "mario",
        "mark",
        "markus",
        "martin",
        "mary",
        "matthew",
        "max",
        "michael",
        "michelle",
        "nicole",
        "oliver",
        "patrick",
        "paul",
        "peter",
        "philipp",
        "pierre",
        "rachel",
        "richard",
        "robert",
        "sandra",
        "sarah",
        "sebastian",
        "simon",
        "sophie",
        "stefan",
        "stephanie",
        "steven",
        "susan",
        "thomas",
        "tim",
        "tobias",
        "tom",
        "victoria",
        "william",
        "admin",
        "contact",
        "enquiries",
        "hello",
        "help",
        "info",
        "mail",
        "office",
        "sales",
        "service",
        "support",
        "team",
        "webmaster",
    ]
)
_SEPARATORS_RE = re.compile(r"[._\-]+")


def _mailbox_key(local: str) -> str:
    """A local part without its separators and +tag: ``j.doyle+x`` -> ``jdoyle``."""
    return _SEPARATORS_RE.sub("", local.split("+", 1)[0])


def _mailbox_names(p: PersonStats) -> dict[str, str]:
    """Local parts distinctive enough to suggest a match across domains: long enough,
    not a common first name or a role word (``ana.silva``, ``jdoyle``), by their key
    without separators."""
    out: dict[str, str] = {}
    for a in p.addresses:
        local = a.rpartition("@")[0].split("+", 1)[0]
        key = _mailbox_key(local)
        if len(key) >= _MIN_LOCAL and local not in _COMMON_NAMES and key not in _COMMON_NAMES:
            out.setdefault(key, local)
    return out


def _name_parts(name: str) -> tuple[str, str] | None:
    """(first name, last name) of a display name ("Berg, Anne K." -> ("anne", "berg"))."""
    words = [w for w in fold_name(name).replace(".", " ").split() if len(w) > 1]
    if len(words) < 2:
        return None
    return words[0], words[-1]


def _initials_surname(local: str) -> tuple[str, str] | None:
    """(initials, surname) of a local part with separators: ``anne.berg`` -> ("a", "berg"),
    ``a.k.berg`` -> ("ak", "berg"); None for one that has none."""
    parts = [x for x in _SEPARATORS_RE.split(local.split("+", 1)[0]) if x]
    if len(parts) < 2 or len(parts[-1]) < 3:
        return None
    return "".join(x[0] for x in parts[:-1]), parts[-1]


def _same_initials(a: PersonStats, b: PersonStats) -> str | None:
    """Why two people at one domain may be one: the same surname and first initial in
    their mailbox names (``anne.berg`` / ``a.k.berg`` / ``aberg``), and a display name
    that agrees (its first name starts with that initial, its last name is that surname)."""
    for x in a.addresses:
        for y in b.addresses:
            lx, _, dx = x.rpartition("@")
            ly, _, dy = y.rpartition("@")
            if dx != dy:
                continue
            sx, sy = _initials_surname(lx), _initials_surname(ly)
            if sx is None and sy is not None:
                # "aberg": one or two initials glued to the other's surname
                head = _mailbox_key(lx)
                if head.endswith(sy[1]) and 1 <= len(head) - len(sy[1]) <= 2:
                    sx = (head[: len(head) - len(sy[1])], sy[1])
            elif sy is None and sx is not None:
                head = _mailbox_key(ly)
                if head.endswith(sx[1]) and 1 <= len(head) - len(sx[1]) <= 2:
                    sy = (head[: len(head) - len(sx[1])], sx[1])
            if sx is None or sy is None or sx[1] != sy[1] or sx[0][0] != sy[0][0]:
                continue
            initial, surname = sx[0][0], sx[1]
            for name in (a.name, b.name):
                parts = _name_parts(name)
                if parts and parts[0].startswith(initial) and parts[1] == surname:
                    return (
                        f"{x} and {y}: the same surname and first initial at {dx}, "
                        f"and the name {name!r} agrees"
                    )
    return None


def suggest_merges(
    people: Sequence[PersonStats], decisions: Sequence[DecisionRecord] = ()
) -> list[MergeSuggestion]:
    """Candidate merges among people who both exchanged mail with the user.

    Reasons, strongest first: the same full name (accents, case and "Last,
    First" order ignored; one-word names are too common to count); the same
    distinctive mailbox name at two domains (``ana.silva``, ``jdoyle``; with
    or without separators, at least five letters, not a common first name or
    a role word), with no conflicting names; at one domain, the same surname
    and first initial (``anne.berg`` / ``a.k.berg`` / ``aberg``) when a
    display name agrees. Pairs the user separated with ``unmerge`` are left out.
    """
    separated = separated_pairs(decisions)
    talked = [
        p
        for p in people
        if (p.messages_in + p.messages_out) > 0 and not p.ignored and not p.automated
    ]
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
    for same in by_name.values():
        for i, a in enumerate(same):
            for b in same[i + 1 :]:
                add(a, b, f"same full name {a.name!r} on two addresses that both exchanged mail")

    by_box: dict[str, list[tuple[PersonStats, str]]] = defaultdict(list)
    for p in talked:
        for key, local in _mailbox_names(p).items():
            by_box[key].append((p, local))
    for group in by_box.values():
        for i, (a, la) in enumerate(group):
            for b, lb in group[i + 1 :]:
                fa, fb = fold_name(a.name), fold_name(b.name)
                if fa and fb and fa != fb:
                    continue
                box = repr(la) if la == lb else f"{la!r} / {lb!r}"
                add(a, b, f"same mailbox name {box} at two domains, both exchanged mail")

    for a, b in _colleague_pairs(talked):
        why = _same_initials(a, b)
        if why is not None:
            add(a, b, why)
    return out


def _colleague_pairs(people: Sequence[PersonStats]) -> list[tuple[PersonStats, PersonStats]]:
    """The pairs :func:`_same_initials` may match, in the order of ``people``.

    Not every pair of colleagues: a domain such as gmail.com holds thousands of
    people, and 20,000 correspondents made that 100 million pairs (two minutes).
    A match needs a mailbox name with separators (``anne.berg``: surname and
    first initial) at the domain of another with the same surname and initial,
    with separators too or glued (``aberg``, ``akberg``: one or two initials,
    then the surname), so only people who share such a key are paired.
    """
    # key -> (people whose mailbox name has separators, people whose name may be glued)
    buckets: dict[tuple[str, str, str], tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for i, p in enumerate(people):
        for address in p.addresses:
            local, _, domain = address.rpartition("@")
            parts = _initials_surname(local)
            if parts is not None:
                buckets[(domain, parts[1], parts[0][0])][0].append(i)
                continue
            head = _mailbox_key(local)
            for k in (1, 2):
                if len(head) - k >= 3:
                    buckets[(domain, head[k:], head[0])][1].append(i)
    pairs: set[tuple[int, int]] = set()
    for separated, glued in buckets.values():
        for i in separated:
            pairs.update((min(i, j), max(i, j)) for j in (*separated, *glued) if j != i)
    return [(people[i], people[j]) for i, j in sorted(pairs)]
