"""Find a person from what the user typed: an id, an address or a name.

Matching goes from the most to the least specific and stops at the first
level that matches anyone, so that a short name picks the person who has it
as a name rather than everyone whose name happens to contain it: "Ana" is
Ana Silva, not Hiro Tanaka. Names are compared without case and accents
("chloe" finds Chloé Martin).

1. the person's id;
2. an address (normalized as the store keeps them: case, Gmail's dots);
3. the whole name;
4. whole words of the name ("ana", "silva", "ana silva");
5. beginnings of words of the name ("chlo", "an sil");
6. whole words of an address ("ana.silva" or "okafor");
7. a part of the name or of an address.

One match at a level is the answer; several are an error that lists them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from kithkeep.errors import UsageError
from kithkeep.model.identity import normalize

_WORD = re.compile(r"[^\W_]+")


class Findable(Protocol):
    """What a person is found by: a stored person's statistics, or a directory entry."""

    @property
    def person_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def addresses(self) -> tuple[str, ...]: ...


P = TypeVar("P", bound=Findable)


def fold(text: str) -> str:
    """Lower case without accents: what a person types for a name on any keyboard."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def _all_in(query: list[str], target: list[str], match: Callable[[str, str], bool]) -> bool:
    """Every query word matches a different word of the target, in any order."""
    left = list(target)
    for q in query:
        hit = next((i for i, t in enumerate(left) if match(q, t)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True


def _levels(q: str) -> list[Callable[[Findable], bool]]:
    folded = fold(q)
    qwords = words(q)
    addr = normalize(q) if "@" in q else ""
    # each name and address folded once for all levels (20,000 people, seven levels)
    fold_ = functools.cache(fold)
    words_ = functools.cache(words)

    def eq(a: str, b: str) -> bool:
        return a == b

    def prefix(a: str, b: str) -> bool:
        return b.startswith(a)

    return [
        lambda p: p.person_id == q,
        lambda p: bool(addr) and addr in p.addresses,
        lambda p: bool(p.name) and fold_(p.name) == folded,
        lambda p: bool(qwords) and _all_in(qwords, words_(p.name), eq),
        lambda p: bool(qwords) and _all_in(qwords, words_(p.name), prefix),
        lambda p: bool(qwords) and any(_all_in(qwords, words_(a), eq) for a in p.addresses),
        lambda p: (
            bool(folded) and (folded in fold_(p.name) or any(folded in a for a in p.addresses))
        ),
    ]


def matches(people: Sequence[P], query: str) -> list[P]:
    """Everyone at the most specific level that matches anyone (see the module doc)."""
    q = query.strip()
    for level in _levels(q):
        found = [p for p in people if level(p)]
        if found:
            return found
    return []


def resolve_person(people: Sequence[P], query: str) -> P:
    """The one person ``query`` names; a clear error when none or several match."""
    found = matches(people, query)
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(
            f"no person matches {query!r}",
            hint="see `kithkeep people` for names, addresses and ids",
        )
    names = ", ".join(f"{p.name or p.addresses[0]} ({p.person_id})" for p in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    raise UsageError(
        f"{query!r} matches {len(found)} people: {names}{more}", hint="use an id or address"
    )
