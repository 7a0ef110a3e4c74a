"""Find a person from what the user typed: an id, an address or a name."""

from __future__ import annotations

from collections.abc import Sequence

from kithkeep.errors import UsageError
from kithkeep.model.identity import normalize
from kithkeep.model.stats import PersonStats


def resolve_person(people: Sequence[PersonStats], query: str) -> PersonStats:
    """The one person ``query`` names; a clear error when none or several match.

    Tried in order: exact id, address (normalized), full name, then a unique
    case-insensitive substring of the name or an address.
    """
    q = query.strip()
    for p in people:
        if p.person_id == q:
            return p
    if "@" in q:
        addr = normalize(q)
        for p in people:
            if addr in p.addresses:
                return p
    low = q.lower()
    exact = [p for p in people if p.name.lower() == low]
    if len(exact) == 1:
        return exact[0]
    partial = exact or [
        p for p in people if low in p.name.lower() or any(low in a for a in p.addresses)
    ]
    if len(partial) == 1:
        return partial[0]
    if not partial:
        raise UsageError(
            f"no person matches {query!r}",
            hint="see `kithkeep people` for names, addresses and ids",
        )
    names = ", ".join(f"{p.name or p.addresses[0]} ({p.person_id})" for p in partial[:5])
    raise UsageError(
        f"{query!r} matches {len(partial)} people: {names}", hint="use an id or address"
    )
