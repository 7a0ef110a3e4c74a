"""neglected: a two-way tie whose silence exceeds its cadence.

The cadence is the larger of the tier's cadence and ``rhythm_multiple`` times
the person's own usual gap: a tie who talks yearly is not neglected after 70
days; one who talks every two weeks is after six. A cadence the user set
(``kithkeep cadence PERSON 30d``) replaces both.

The explanation and evidence hold dates, counts and thresholds but nothing
that depends on the clock (the days of silence are only in the one-line
summary): they become the reminder's text, which must not change from one
run to the next while the episode lasts.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kithkeep.config import NeglectedConfig
from kithkeep.model.stats import PersonStats
from kithkeep.rules.base import TICK, Finding, after_days, days_between, display_name

NAME = "neglected"
REMINDS = True


def tier_days(cfg: NeglectedConfig, tier: str | None) -> int:
    return {"inner": cfg.inner_days, "close": cfg.close_days}.get(tier or "", cfg.wider_days)


def evaluate(
    p: PersonStats,
    now: datetime,
    cfg: NeglectedConfig,
    *,
    cadence_override: float | None = None,
) -> Finding | None:
    if not cfg.enabled or not p.is_tie or p.ignored or p.last_contact is None:
        return None
    base = tier_days(cfg, p.tier)
    rhythm = cfg.rhythm_multiple * p.cadence_days if p.cadence_days else 0.0
    if cadence_override is not None and cadence_override > 0:
        cadence = float(cadence_override)
        basis = f"the cadence you set, {cadence:g} days"
    else:
        cadence = max(float(base), rhythm)
        basis = (
            f"{cfg.rhythm_multiple:g} x your usual gap of {p.cadence_days:g} days"
            if rhythm > base
            else f"the {p.tier or 'wider'} tier's {base} days"
        )
    source = "user" if cadence_override else ("rhythm" if rhythm > base else "tier")
    silence = days_between(p.last_contact, now)
    if silence <= cadence:
        return None
    overdue = silence / cadence
    severity = min(100, int(40 + 20 * (overdue - 1)) + (15 if p.tier == "inner" else 0))
    who = display_name(p.name, p.addresses)
    due = p.last_contact + timedelta(days=cadence)
    return Finding(
        rule=NAME,
        person_id=p.person_id,
        person_name=who,
        severity=severity,
        due=due,
        title=f"Reconnect with {who}",
        summary=f"silent {silence:.0f} days; cadence {cadence:.0f}",
        explanation=(
            f"Last contact {p.last_contact:%Y-%m-%d}; the cadence for this tie is "
            f"{cadence:.0f} days ({basis}), so it was due {due:%Y-%m-%d}. "
            f"{p.messages_out} messages out, {p.messages_in} in."
        ),
        suggestion=(
            "Reconnect by offering something useful: an article, an intro, news they would want."
        ),
        evidence={
            "cadence_days": round(cadence, 1),
            "cadence_source": source,
            "tier": p.tier,
            "tier_days": base,
            "personal_cadence_days": p.cadence_days,
            "rhythm_multiple": cfg.rhythm_multiple,
            "cadence_override_days": cadence_override,
            "last_contact": p.last_contact.isoformat(),
            "due": due.isoformat(),
            "messages_out": p.messages_out,
            "messages_in": p.messages_in,
            # the last exchange, for the reminder's text and a link to the message
            "last_kind": p.last_kind,
            "last_subject": p.last_subject,
            "last_message_id": p.last_message_id,
        },
        remind=REMINDS,
        episode=p.last_contact.date().isoformat(),
        last_contact=p.last_contact,
    )


def next_change(
    p: PersonStats,
    now: datetime,
    cfg: NeglectedConfig,
    *,
    cadence_override: float | None = None,
) -> datetime | None:
    """The first moment after ``now`` when :func:`evaluate` gives another verdict or
    severity, with nothing but the clock changing (None: never)."""
    if not cfg.enabled or not p.is_tie or p.ignored or p.last_contact is None:
        return None
    base = tier_days(cfg, p.tier)
    rhythm = cfg.rhythm_multiple * p.cadence_days if p.cadence_days else 0.0
    cadence = (
        float(cadence_override)
        if cadence_override is not None and cadence_override > 0
        else max(float(base), rhythm)
    )
    silence = days_between(p.last_contact, now)
    if silence <= cadence:
        return after_days(p.last_contact, cadence)
    # the severity steps up by one each time the overdue share grows by 1/20
    bonus = 15 if p.tier == "inner" else 0
    step = int(40 + 20 * (silence / cadence - 1))
    if step + bonus >= 100:
        return None
    for k in (step + 1, step + 2):
        at = p.last_contact + timedelta(days=cadence * (1 + (k - 40) / 20))
        if at > now:
            return at + TICK
    return None
