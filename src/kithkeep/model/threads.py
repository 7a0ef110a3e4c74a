"""Reply links: which earlier message of the other side a message answers.

Sources of a link, in order of trust: In-Reply-To, then References from the
newest back, then (for a message that carries neither) the Gmail thread id,
and last a reply prefix in the subject ("Re:", "AW:", "SV:", ...) for clients
that drop the headers. A References chain can loop or miss its root in real
mail: nothing here recurses without a visited set and a depth cap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Sequence

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


def find_parent(
    start: int,
    ancestors: Callable[[int], Sequence[int]],
    accept: Container[int],
) -> int | None:
    """The nearest ancestor of message ``start`` in ``accept``, or None.

    ``ancestors(i)`` gives the known ancestors of message ``i`` (its In-Reply-To,
    then its References from the newest back), nearest first; when none of them
    is accepted, the search goes on from the nearest one's own ancestors (a reply
    that only carries In-Reply-To), at most ``MAX_DEPTH`` steps and never through
    the same message twice, so loops end.
    """
    seen = {start}
    current = start
    for _ in range(MAX_DEPTH):
        nearest_known: int | None = None
        for j in ancestors(current):
            if j in seen:
                continue
            if j in accept:
                return j
            if nearest_known is None:
                nearest_known = j
            seen.add(j)
        if nearest_known is None:
            return None
        current = nearest_known
    return None
