"""reply_owed: a direct, personal message from a tie is still unanswered.

Personal means the user was in To (not only Cc), there were at most
``max_recipients`` recipients, and it was not bulk or list mail (analysis
already leaves those out). A reply anywhere, the ``\\Answered`` flag, or a
meeting after the message all count as answered. A message that replies to
the user's own usually closes the exchange, so it counts only with
``include_replies``. After ``expire_days`` the moment has passed and
``neglected`` takes over.

Like every reminding rule, the explanation and evidence do not depend on
the clock, so the reminder's text stays the same while the message waits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from kithkeep.config import ReplyOwedConfig
from kithkeep.model.stats import PersonStats
from kithkeep.rules.base import (
    TICK,
    Finding,
    after_days,
    days_between,
    display_name,
    earliest,
    short_hash,
)

NAME = "reply_owed"
REMINDS = True


def evaluate(p: PersonStats, now: datetime, cfg: ReplyOwedConfig) -> Finding | None:
    msg = p.pending_inbound
    if not cfg.enabled or not p.is_tie or p.ignored or msg is None:
        return None
    if msg.recipients > cfg.max_recipients:
        return None
    if msg.is_reply and not cfg.include_replies:
        return None
    # contact since the message means it was dealt with, by mail or in person
    for later in (p.last_out, p.last_meeting):
        if later is not None and later >= msg.date:
            return None
    waited = days_between(msg.date, now)
    if waited < cfg.after_days:
        return None
    if cfg.expire_days and waited > cfg.expire_days:
        return None
    overdue = waited - cfg.after_days
    # a reply to the user's own message is less pressing than a new question
    severity = min(90, int(60 + 3 * overdue)) - (10 if msg.is_reply else 0)
    who = display_name(p.name, p.addresses)
    subject = msg.subject or "(no subject)"
    return Finding(
        rule=NAME,
        person_id=p.person_id,
        person_name=who,
        severity=severity,
        due=msg.date + timedelta(days=cfg.after_days),
        title=f"Reply to {who}: {subject}",
        summary=f"wrote {waited:.0f} days ago, not answered",
        explanation=(
            f"{who} wrote to you directly on {msg.date:%Y-%m-%d} ({subject!r}, "
            f"{msg.recipients} recipient{'s' if msg.recipients != 1 else ''}) and has no "
            f"reply yet; a reply is due after {cfg.after_days:g} days."
        ),
        suggestion="Reply, even briefly: say when you will get back properly.",
        evidence={
            "message_date": msg.date.isoformat(),
            "subject": subject,
            "message_id": msg.message_id,  # for a link to it in the reminder
            "recipients": msg.recipients,
            "max_recipients": cfg.max_recipients,
            "after_days": cfg.after_days,
            "expire_days": cfg.expire_days,
            "is_reply": msg.is_reply,
            "include_replies": cfg.include_replies,
        },
        remind=REMINDS,
        episode="m" + short_hash(msg.message_id),
        last_contact=p.last_contact,
    )


def next_change(p: PersonStats, now: datetime, cfg: ReplyOwedConfig) -> datetime | None:
    """The first moment after ``now`` when :func:`evaluate` gives another verdict or
    severity, with nothing but the clock changing (None: never)."""
    msg = p.pending_inbound
    if not cfg.enabled or not p.is_tie or p.ignored or msg is None:
        return None
    if msg.recipients > cfg.max_recipients or (msg.is_reply and not cfg.include_replies):
        return None
    if any(later is not None and later >= msg.date for later in (p.last_out, p.last_meeting)):
        return None
    waited = days_between(msg.date, now)
    expiry = after_days(msg.date, cfg.expire_days) if cfg.expire_days else None
    if expiry is not None and now >= expiry:
        return None
    if waited < cfg.after_days:
        return msg.date + timedelta(days=cfg.after_days)
    # the severity steps up by one every third of a day overdue, up to 90
    step = int(60 + 3 * (waited - cfg.after_days))
    if step >= 90:
        return expiry
    raised = None
    for k in (step + 1, step + 2):
        at = msg.date + timedelta(days=cfg.after_days + (k - 60) / 3)
        if at > now:
            raised = at + TICK
            break
    return earliest(raised, expiry)
