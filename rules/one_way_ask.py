"""one_way_ask: one side writes mostly after long silences, mostly to ask.

Judged in both directions from the person's recent initiations (messages
that opened an exchange). A side is a one-way asker when it has opened at
least ``min_initiations`` exchanges, most of them after ``long_silence_days``
of silence and most of them asks (the subject matches ``ask_patterns``, in
several languages), and it rarely answered the other side's openings.

For them: suggest proposing a real conversation. For the user: give before
the next ask. Review only: never a reminder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from kithkeep.config import OneWayAskConfig
from kithkeep.model.stats import Initiation, PersonStats
from kithkeep.rules.base import Finding, display_name

NAME = "one_way_ask"
REMINDS = False
SIDES = ("me", "them")


@lru_cache(maxsize=8)
def _compile(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def is_ask(subject: str, patterns: tuple[str, ...]) -> bool:
    rx = _compile(patterns)
    return bool(rx and rx.search(subject))


def answered_in_exchange(inits: Sequence[Initiation], k: int) -> bool:
    """Whether the other side answered initiation ``k`` before the next exchange.

    The model marks an initiation answered when the other side wrote before
    this side's next opening, even if that was months later and to ask
    something new. When the next opening is the other side's and nothing at
    all happened in between (its gap equals the time since ``k``), it opened
    a new exchange rather than answering.
    """
    it = inits[k]
    if not it.answered:
        return False
    if k + 1 < len(inits):
        nxt = inits[k + 1]
        since = (nxt.date - it.date).total_seconds() / 86400
        if nxt.side != it.side and nxt.gap_days is not None and abs(nxt.gap_days - since) < 0.1:
            return False
    return True


def side_numbers(
    inits: Sequence[Initiation], side: str, cfg: OneWayAskConfig
) -> dict[str, float | int | None]:
    """The evidence for one side: counts and shares of its openings, and how it answered."""
    own = [i for i in inits if i.side == side]
    other = [k for k, i in enumerate(inits) if i.side != side]
    # the very first message of a relationship has no silence before it to judge
    gapped = [i for i in own if i.gap_days is not None]
    after_silence = sum(1 for i in gapped if (i.gap_days or 0) >= cfg.long_silence_days)
    asks = sum(1 for i in own if is_ask(i.subject, cfg.ask_patterns))
    answered = sum(1 for k in other if answered_in_exchange(inits, k))
    return {
        "initiations": len(own),
        "after_long_silence": after_silence,
        "silence_share": round(after_silence / len(gapped), 2) if gapped else None,
        "asks": asks,
        "ask_share": round(asks / len(own), 2) if own else None,
        "other_initiations": len(other),
        "answered_other": answered,
        "answer_rate": round(answered / len(other), 2) if other else None,
    }


def _is_one_way(n: dict[str, float | int | None], cfg: OneWayAskConfig) -> bool:
    inits = n["initiations"] or 0
    silence = n["silence_share"]
    asks = n["ask_share"]
    if inits < cfg.min_initiations or silence is None or asks is None:
        return False
    if silence < cfg.min_silence_share or asks < cfg.min_ask_share:
        return False
    if (n["other_initiations"] or 0) < cfg.min_other_initiations:
        return True
    rate = n["answer_rate"]
    return rate is not None and rate <= cfg.max_answer_rate


def evaluate(p: PersonStats, now: datetime, cfg: OneWayAskConfig) -> Finding | None:
    """The stronger of the two directions, or None. ``now`` is unused: it is a pattern."""
    if not cfg.enabled or p.ignored or not p.initiations:
        return None
    who = display_name(p.name, p.addresses)
    for side in ("them", "me"):
        n = side_numbers(p.initiations, side, cfg)
        if not _is_one_way(n, cfg):
            continue
        latest = max(i.date for i in p.initiations if i.side == side)
        thresholds = {
            "min_initiations": cfg.min_initiations,
            "long_silence_days": cfg.long_silence_days,
            "min_silence_share": cfg.min_silence_share,
            "min_ask_share": cfg.min_ask_share,
            "max_answer_rate": cfg.max_answer_rate,
            "min_other_initiations": cfg.min_other_initiations,
        }
        answer = (
            f"answered {n['answered_other']} of {n['other_initiations']} openings from "
            + ("you" if side == "them" else "them")
            if n["other_initiations"]
            else ("you never open" if side == "them" else "they never open")
        )
        their = "their" if side == "them" else "your"
        shares = (
            f"{n['after_long_silence']} of {their} {n['initiations']} openings came after "
            f"{cfg.long_silence_days}+ days of silence, {n['asks']} were asks, {answer}"
        )
        if side == "them":
            title = f"{who} mostly writes to ask"
            summary = f"writes after long silences to ask ({n['asks']}/{n['initiations']})"
            explanation = f"{who}: {shares}."
            suggestion = (
                "Propose a real conversation: next time they ask, help if you can and "
                "suggest a call or a coffee, not only the favor."
            )
        else:
            title = f"Give before your next ask to {who}"
            summary = f"you write after long silences to ask ({n['asks']}/{n['initiations']})"
            explanation = f"You, to {who}: {shares}."
            suggestion = (
                "Give before your next ask: share something useful to them, or answer "
                "what they send, before you need something."
            )
        return Finding(
            rule=NAME,
            person_id=p.person_id,
            person_name=who,
            severity=30 if side == "me" else 25,
            due=latest,
            title=title,
            summary=summary,
            explanation=explanation,
            suggestion=suggestion,
            evidence={"side": side, **n, **thresholds},
            remind=REMINDS,
            episode=f"{side}-{latest:%Y-%m-%d}",
            last_contact=p.last_contact,
        )
    return None
