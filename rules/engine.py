"""The rules engine: run every enabled rule over every person, apply the
user's decisions, then budget reminders.

Order of work for each person:

1. decisions that change the facts: ``ignore`` drops the person, ``done``
   counts as a two-way contact at its time, ``tier`` sets the tier (the model
   applies it too; here it is a no-op then), ``cadence`` overrides
   ``neglected``'s cadence;
2. every rule evaluates the adjusted statistics;
3. ``unanswered`` suppresses ``neglected`` (don't be pushy);
4. ``snooze`` and ``dismiss`` set the status of what is left (and so does a
   reminder the user deleted from the calendar: dismissed): such findings
   stay visible in ``kithkeep review --all`` but never become reminders.

Finally the open findings that want a reminder share ``max_per_week``
places. The budget is sticky: a finding whose reminder is already in the
calendar keeps its place while it stays open, and the places left go to the
others by severity. Severities drift from day to day (a silence grows, a
meeting's follow-up fades); ranking afresh on every run would swap two
findings near the cut, and the calendar would see a reminder deleted and
another created, back and forth. A written reminder gives up its place only
when its finding resolves, is snoozed or dismissed (or the budget shrinks
below the written ones: then the most severe of them stay).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from kithkeep.config import RemindersConfig, RulesConfig
from kithkeep.decisions import DecisionIndex, PersonDecisions
from kithkeep.model.stats import TIERS, PersonStats
from kithkeep.records import DecisionRecord
from kithkeep.rules import meeting_followup, neglected, one_way_ask, reply_owed, unanswered
from kithkeep.rules.base import Finding, earliest

RULE_NAMES: tuple[str, ...] = (
    neglected.NAME,
    reply_owed.NAME,
    meeting_followup.NAME,
    unanswered.NAME,
    one_way_ask.NAME,
)
# rules whose findings may become calendar reminders (the others are review only)
REMINDING: frozenset[str] = frozenset(
    m.NAME for m in (neglected, reply_owed, meeting_followup, unanswered, one_way_ask) if m.REMINDS
)


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def apply_facts(p: PersonStats, d: PersonDecisions) -> PersonStats:
    """The statistics as the user's decisions say they are.

    ``done`` means contact happened outside mail at that time, both ways: it
    is the last contact, answers a pending message, ends an unanswered streak
    and follows up a meeting before it.
    """
    if d.tier in TIERS and p.tier_source != "user":
        p = replace(p, tier=d.tier, tier_source="user", is_tie=True)
    at = d.done_at
    if at is None:
        return p
    pending = p.pending_inbound
    return replace(
        p,
        last_contact=_later(p.last_contact, at),
        last_in=_later(p.last_in, at),
        last_out=_later(p.last_out, at),
        pending_inbound=pending if pending is not None and pending.date > at else None,
        unanswered_streak=(
            p.unanswered_streak if p.last_out is not None and p.last_out > at else 0
        ),
    )


def evaluate_person(
    p: PersonStats, now: datetime, cfg: RulesConfig, *, cadence_override: float | None = None
) -> list[Finding]:
    """Every rule's finding for one person, with ``unanswered`` suppressing ``neglected``."""
    found = [
        neglected.evaluate(p, now, cfg.neglected, cadence_override=cadence_override),
        reply_owed.evaluate(p, now, cfg.reply_owed),
        meeting_followup.evaluate(p, now, cfg.meeting_followup),
        unanswered.evaluate(p, now, cfg.unanswered),
        one_way_ask.evaluate(p, now, cfg.one_way_ask),
    ]
    out = [f for f in found if f is not None]
    if any(f.rule == unanswered.NAME for f in out):
        out = [f for f in out if f.rule != neglected.NAME]
    return out


def apply_status(
    f: Finding,
    p: PersonStats,
    d: PersonDecisions,
    now: datetime,
    deleted_reminders: Collection[str] = (),
) -> Finding:
    """Snoozed or dismissed findings keep their content but lose the reminder.

    A reminder the user deleted from the calendar dismisses its finding: the
    sink will not write it again, so it must not take a place in the budget.
    """
    until = d.snoozed_until(f.rule, now)
    if until is not None:
        return replace(
            f, status="snoozed", status_note=f"until {until:%Y-%m-%d %H:%M}", remind=False
        )
    if d.dismissed(f.rule, f.episode, p.last_contact):
        return replace(f, status="dismissed", status_note="until new evidence", remind=False)
    if f.key in deleted_reminders:
        return replace(f, status="dismissed", status_note="you deleted its reminder", remind=False)
    return f


def judge_person(
    p: PersonStats,
    now: datetime,
    cfg: RulesConfig,
    d: PersonDecisions,
    deleted_reminders: Collection[str] = (),
) -> list[Finding]:
    if d.ignored or p.ignored:
        return []
    adjusted = apply_facts(p, d)
    found = evaluate_person(adjusted, now, cfg, cadence_override=d.cadence_days)
    return [apply_status(f, adjusted, d, now, deleted_reminders) for f in found]


def rejudge_at(
    p: PersonStats, now: datetime, cfg: RulesConfig, d: PersonDecisions
) -> datetime | None:
    """The first moment after ``now`` when :func:`judge_person` may give other findings
    (another rule, severity or status) with nothing but the clock changing; None when
    the clock alone never changes them. A person is judged again only then, or when
    their statistics or decisions change: the daemon's cycles cost nothing for the
    people nothing happens to."""
    if d.ignored or p.ignored:
        return None
    adjusted = apply_facts(p, d)
    return earliest(
        neglected.next_change(adjusted, now, cfg.neglected, cadence_override=d.cadence_days),
        reply_owed.next_change(adjusted, now, cfg.reply_owed),
        meeting_followup.next_change(adjusted, now, cfg.meeting_followup),
        # unanswered and one_way_ask depend on the statistics alone
        *(until for _rule, until in d.snoozes if until > now),
    )


def budget(
    findings: list[Finding], max_reminders: int, written: Collection[str] = frozenset()
) -> list[Finding]:
    """Highest severity first; open findings beyond the budget keep no reminder.

    ``written``: keys of findings whose reminder is already in the calendar; those
    still open take their places first (sticky, see the module doc), the most
    severe first should there be more of them than places.
    """
    findings = sorted(findings, key=lambda f: (-f.severity, f.due, f.person_id, f.rule))
    wants = [f.remind and f.status == "open" for f in findings]
    places: set[int] = set()  # indexes into findings that keep their reminder
    for i, f in enumerate(findings):
        if len(places) >= max_reminders:
            break
        if wants[i] and f.key in written:
            places.add(i)
    for i in range(len(findings)):
        if len(places) >= max_reminders:
            break
        if wants[i]:
            places.add(i)
    return [
        replace(f, remind=False, over_budget=True) if wants[i] and i not in places else f
        for i, f in enumerate(findings)
    ]


def judge(
    people: Iterable[PersonStats],
    now: datetime,
    cfg: RulesConfig,
    reminders: RemindersConfig,
    decisions: Sequence[DecisionRecord] = (),
    *,
    deleted_reminders: Collection[str] = frozenset(),
    written_reminders: Collection[str] = frozenset(),
) -> list[Finding]:
    """All findings (every status), highest severity first.

    Only open findings keep ``remind``, and of those only ``max_per_week``:
    first those in ``written_reminders`` (finding keys whose reminder is in the
    calendar: they keep their place), then the most severe of the others.
    ``deleted_reminders``: finding keys whose reminder the user deleted from
    the calendar (they count as dismissed).
    """
    index = DecisionIndex.build(decisions)
    deleted = frozenset(deleted_reminders)
    findings = [
        f for p in people for f in judge_person(p, now, cfg, index.for_person(p.addresses), deleted)
    ]
    return budget(findings, reminders.max_per_week, frozenset(written_reminders))
