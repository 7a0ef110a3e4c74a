"""meeting_followup: a small meeting ended and no message went to them since.

Follow up while it is fresh: from ``after_days`` after the meeting until
``expire_days``. Only small meetings (``max_attendees``, the user included)
count; analysis already drops cancelled, declined and not yet ended ones,
rooms, and kithkeep's own events. The explanation and evidence do not
depend on the clock: they are the reminder's text.

A follow-up belongs to a meeting that stands alone. A meeting that is part of
a regular series with the person (a weekly 1:1, a monthly check-in) needs
none: the next occurrence is the follow-up, and a reminder after each one
would be noise the user learns to ignore. The model tells two kinds of
series apart, and each can be turned off:

* ``skip_recurring``: the last meeting is an occurrence of a recurring
  calendar event (its recurrence id is set);
* ``regular_days``: separate events that still form a rhythm: the median gap
  between the recent meetings with the person (``meeting_cadence_days``, at
  least three meetings) and the gap from the previous meeting to the last one
  are both at most ``regular_days``. The second condition keeps the first
  meeting after a series has long ended a fresh one, worth a follow-up.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kithkeep.config import MeetingFollowupConfig
from kithkeep.model.stats import PersonStats
from kithkeep.rules.base import TICK, Finding, after_days, days_between, display_name, earliest

NAME = "meeting_followup"
REMINDS = True


def _in_series(p: PersonStats, met: datetime, cfg: MeetingFollowupConfig) -> bool:
    """The last meeting is one of a regular series with the person (see the module doc)."""
    if cfg.skip_recurring and p.last_meeting_recurring:
        return True
    if cfg.regular_days <= 0 or p.meeting_cadence_days is None or p.previous_meeting is None:
        return False
    return (
        p.meeting_cadence_days <= cfg.regular_days
        and days_between(p.previous_meeting, met) <= cfg.regular_days
    )


def evaluate(p: PersonStats, now: datetime, cfg: MeetingFollowupConfig) -> Finding | None:
    met = p.last_meeting
    if not cfg.enabled or p.ignored or met is None:
        return None
    size = p.last_meeting_size
    if size is None or size > cfg.max_attendees:
        return None
    if p.last_out is not None and p.last_out >= met:
        return None
    if _in_series(p, met, cfg):
        return None
    since = days_between(met, now)
    if since < cfg.after_days or since > cfg.expire_days:
        return None
    who = display_name(p.name, p.addresses)
    # fresher is more useful: the severity fades over the follow-up window
    window = max(cfg.expire_days - cfg.after_days, 1.0)
    severity = int(65 - 20 * (since - cfg.after_days) / window)
    return Finding(
        rule=NAME,
        person_id=p.person_id,
        person_name=who,
        severity=severity,
        due=met + timedelta(days=cfg.after_days),
        title=f"Follow up with {who} after your meeting",
        summary=f"met {since:.0f} days ago ({size} people), no message since",
        explanation=(
            f"You met {who} on {met:%Y-%m-%d} ({size} attendees, at most "
            f"{cfg.max_attendees} count as small) and sent nothing since; a follow-up "
            f"is suggested from {cfg.after_days:g} to {cfg.expire_days:g} days after, "
            f"until {met + timedelta(days=cfg.expire_days):%Y-%m-%d}."
        ),
        suggestion=(
            "Follow up while it is fresh: thank them, recap what you agreed, send what you offered."
        ),
        evidence={
            "meeting_end": met.isoformat(),
            "meeting_title": p.last_meeting_title,  # for the reminder's text
            "attendees": size,
            "max_attendees": cfg.max_attendees,
            "after_days": cfg.after_days,
            "expire_days": cfg.expire_days,
            "last_out": p.last_out.isoformat() if p.last_out else None,
        },
        remind=REMINDS,
        episode=met.astimezone(UTC).strftime("%Y-%m-%dT%H%MZ"),
        last_contact=p.last_contact,
    )


def next_change(p: PersonStats, now: datetime, cfg: MeetingFollowupConfig) -> datetime | None:
    """The first moment after ``now`` when :func:`evaluate` gives another verdict or
    severity, with nothing but the clock changing (None: never)."""
    met = p.last_meeting
    if not cfg.enabled or p.ignored or met is None:
        return None
    size = p.last_meeting_size
    if size is None or size > cfg.max_attendees:
        return None
    if (p.last_out is not None and p.last_out >= met) or _in_series(p, met, cfg):
        return None
    since = days_between(met, now)
    if since < cfg.after_days:
        return met + timedelta(days=cfg.after_days)
    expiry = after_days(met, cfg.expire_days)
    if now >= expiry:
        return None
    # the severity steps down by one each time 1/20 of the window passes
    window = max(cfg.expire_days - cfg.after_days, 1.0)
    step = int(65 - 20 * (since - cfg.after_days) / window)
    lowered = None
    for k in (step, step - 1):
        at = met + timedelta(days=cfg.after_days + (65 - k) * window / 20)
        if at > now:
            lowered = at + TICK
            break
    return earliest(lowered, expiry)
