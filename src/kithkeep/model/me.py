"""Who is me: the user's addresses, where each came from, and what is proposed.

The user's addresses are the configured ones, the account logins and
calendar owners the sources report, the other addresses on a contacts card
that holds one of them, and what the user decided (``kithkeep me add`` /
``remove``). Nothing else becomes the user's silently. A sent folder tells
more: the address that sends most of a sent folder's mail is *proposed* as
the user's (an alias, an old address); a minority sender there (an
assistant, a delegate, a shared mailbox) is a person, never proposed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kithkeep.model.identity import normalize
from kithkeep.model.vcard import Card
from kithkeep.records import DecisionRecord

# A sent folder's sender is proposed when it sent more than this share of the
# folder's mail (and at least MIN_PROPOSED messages).
MAJORITY = 0.5
MIN_PROPOSED = 3


@dataclass(frozen=True)
class MyAddress:
    address: str
    sources: tuple[str, ...]  # "config", "account login", "calendar owner", "contacts card", "you"


@dataclass(frozen=True)
class Proposal:
    """An address that sends most of a sent folder's mail and is not yet the user's."""

    address: str
    account: str
    folder: str
    messages: int
    share: float  # of the folder's mail

    @property
    def reason(self) -> str:
        return (
            f"sends {self.messages} of the messages in {self.account}/{self.folder} "
            f"({self.share:.0%})"
        )


def me_decisions(decisions: Sequence[DecisionRecord]) -> tuple[set[str], set[str]]:
    """(added, removed) by the user's ``me`` decisions, the newest for an address winning."""
    state: dict[str, str] = {}
    for d in sorted(decisions, key=lambda d: d.id):
        if d.kind == "me" and d.value in ("add", "remove"):
            state[normalize(d.person)] = d.value
    return (
        {a for a, v in state.items() if v == "add"},
        {a for a, v in state.items() if v == "remove"},
    )


def my_addresses(
    configured: Iterable[str],
    known: Iterable[tuple[str, str]],
    decisions: Sequence[DecisionRecord],
    cards: Sequence[Card],
) -> list[MyAddress]:
    """Every address of the user's, with where it came from (``known``: (address,
    source) pairs the sources report: account logins, calendar owners)."""
    sources: dict[str, list[str]] = {}

    def add(address: str, source: str) -> None:
        if "@" in address:
            sources.setdefault(normalize(address), []).append(source)

    for a in configured:
        add(a, "config")
    for a, source in known:
        add(a, source)
    added, removed = me_decisions(decisions)
    for a in added:
        add(a, "you (kithkeep me add)")
    for card in cards:
        if any(normalize(e) in sources for e in card.emails):
            for e in card.emails:
                if normalize(e) not in sources:
                    add(e, "contacts card")
    return [
        MyAddress(a, tuple(dict.fromkeys(s)))
        for a, s in sorted(sources.items())
        if a not in removed
    ]


def proposals(
    senders: Iterable[tuple[str, str, str, int]], mine: Iterable[str], declined: Iterable[str]
) -> list[Proposal]:
    """Addresses to propose as the user's, from (account, folder, sender address,
    messages) counts of the sent folders; ``declined``: addresses the user removed."""
    totals: dict[tuple[str, str], int] = {}
    counts: dict[tuple[str, str, str], int] = {}
    for account, folder, sender, n in senders:
        totals[account, folder] = totals.get((account, folder), 0) + n
        key = (account, folder, normalize(sender))
        counts[key] = counts.get(key, 0) + n
    skip = {normalize(a) for a in mine} | {normalize(a) for a in declined}
    out: list[Proposal] = []
    for (account, folder, sender), n in sorted(counts.items()):
        share = n / totals[account, folder]
        if sender in skip or "@" not in sender or n < MIN_PROPOSED or share <= MAJORITY:
            continue
        out.append(Proposal(sender, account, folder, n, share))
    return out
