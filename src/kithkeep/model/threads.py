"""Reply links: which earlier message of the other side a message answers.

Sources of a link, in order of trust: In-Reply-To, then References from the
newest back, then (for a message that carries neither) the Gmail thread id,
and last a reply prefix in the subject ("Re:", "AW:", "SV:", ...) for clients
that drop the headers. A References chain can loop or miss its root in real
mail: nothing here recurses without a visited set and a depth cap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

# Reply prefixes of common clients and languages (Re, Aw/Antw, Sv, Vs, Odp, Ynt, 回复, 答复).
REPLY_PREFIX_RE = re.compile(
    r"^\s*(?:\[[^\]]{1,40}\]\s*)?(?:re|aw|antw|antwort|sv|vs|odp|ynt|r|rif|res|回复|答复|回覆)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:\uff1a]",
    re.IGNORECASE,
)
# How far a reply link is followed up a thread whose nearest ancestors are not the other side's.
MAX_DEPTH = 12


def is_reply_subject(subject: str) -> bool:
    return bool(REPLY_PREFIX_RE.match(subject))


def ancestor_ids(in_reply_to: str | None, references: Sequence[str]) -> list[str]:
    """Ancestor Message-IDs, nearest first, without repeats."""
    out: list[str] = []
    if in_reply_to:
        out.append(in_reply_to)
    for ref in reversed(references):
        if ref not in out:
            out.append(ref)
    return out


def find_parent(
    start: int,
    parents_of: Callable[[int], Iterable[str]],
    by_id: Mapping[str, int],
    accept: Callable[[int], bool],
) -> int | None:
    """The nearest ancestor of message ``start`` that ``accept`` takes, or None.

    ``parents_of(i)`` gives a message's ancestor ids nearest first; when none of
    them is accepted, the search goes on from the nearest known ancestor's own
    headers (a reply that only carries In-Reply-To), at most ``MAX_DEPTH``
    steps and never through the same message twice, so loops end.
    """
    seen = {start}
    current = start
    for _ in range(MAX_DEPTH):
        nearest_known: int | None = None
        for mid in parents_of(current):
            j = by_id.get(mid)
            if j is None or j in seen:
                continue
            if accept(j):
                return j
            if nearest_known is None:
                nearest_known = j
            seen.add(j)
        if nearest_known is None:
            return None
        current = nearest_known
    return None
