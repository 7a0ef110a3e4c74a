"""unanswered: the user's last messages to someone went unanswered.

Don't be pushy: the suggestion is to give them room, there is no reminder,
and the engine suppresses ``neglected`` for this person until they write
(which ends the streak).
"""

from __future__ import annotations

from datetime import datetime

from kithkeep.config import UnansweredConfig
from kithkeep.model.stats import PersonStats
from kithkeep.rules.base import Finding, display_name

NAME = "unanswered"
REMINDS = False


def evaluate(p: PersonStats, now: datetime, cfg: UnansweredConfig) -> Finding | None:
    if not cfg.enabled or p.ignored or p.last_out is None:
        return None
    # someone who never wrote at all is not a relationship that went quiet
    if p.messages_in == 0 or p.unanswered_streak < cfg.min_streak:
        return None
    who = display_name(p.name, p.addresses)
    # dates, not "days ago": a stored finding must not go stale while nothing happens
    heard = f"; you last heard from them on {p.last_in:%Y-%m-%d}" if p.last_in else ""
    return Finding(
        rule=NAME,
        person_id=p.person_id,
        person_name=who,
        severity=min(45, 25 + 5 * (p.unanswered_streak - cfg.min_streak)),
        due=p.last_out,
        title=f"Give {who} room",
        summary=f"your last {p.unanswered_streak} messages unanswered",
        explanation=(
            f"Your last {p.unanswered_streak} messages to {who} went unanswered "
            f"(threshold {cfg.min_streak}); your latest was on {p.last_out:%Y-%m-%d}"
            f"{heard}. No reconnect reminders until they write."
        ),
        suggestion=(
            "Give them room: don't send another nudge. If you write again, make it "
            "something for them that needs no answer."
        ),
        evidence={
            "unanswered_streak": p.unanswered_streak,
            "min_streak": cfg.min_streak,
            "last_out": p.last_out.isoformat(),
            "last_in": p.last_in.isoformat() if p.last_in else None,
            "suppresses": ["neglected"],
        },
        remind=REMINDS,
        # the episode ends when they write: a dismissal holds until then
        episode=f"since-{p.last_in:%Y-%m-%d}" if p.last_in else "since-never",
        last_contact=p.last_contact,
    )
