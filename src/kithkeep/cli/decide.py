"""The user's decisions, as the commands and ``review -i`` store them.

One place for each decision, so that a snooze typed in ``review -i`` is the
same row as one from ``kithkeep snooze``. Every function returns the
decision as stored (``--json`` prints it), and every kind is undone the same
way (:func:`undo`), which returns what it deactivated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from kithkeep.decisions import dismissal_value, parse_span_days
from kithkeep.errors import UsageError
from kithkeep.model.stats import PersonStats
from kithkeep.records import DecisionRecord
from kithkeep.rules.base import Finding
from kithkeep.store import Store


def decision_json(d: DecisionRecord, *, active: bool = True) -> dict[str, Any]:
    """A decision as ``--json`` prints it (see docs/json.md)."""
    return {
        "id": d.id,
        "kind": d.kind,
        "person": d.person,
        "rule": d.rule,
        "until": d.until.isoformat() if d.until else None,
        "value": d.value,
        "note": d.note,
        "created_at": d.created_at.isoformat(),
        "active": active,
    }


def who(p: PersonStats) -> str:
    return f"{p.name or p.addresses[0]} ({p.person_id})"


def primary(p: PersonStats) -> str:
    if not p.addresses:
        raise UsageError(f"{p.person_id} has no address to attach a decision to")
    return p.addresses[0]


def span_days(text: str) -> float:
    try:
        return parse_span_days(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def parse_when(text: str, tz: tzinfo) -> datetime:
    """A date (start of that day) or date and time, in the user's time zone."""
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=tz).astimezone(UTC)
        except ValueError:
            continue
    raise UsageError(f"{text!r} is not a date like 2026-12-24 or 2026-12-24T09:00")


def until_from(text: str, tz: tzinfo, now: datetime) -> datetime:
    """``2w`` (a span from now) or ``2026-12-24`` (a date): when a snooze ends."""
    try:
        return now + timedelta(days=parse_span_days(text))
    except ValueError:
        pass
    try:
        return parse_when(text, tz)
    except UsageError:
        raise UsageError(f"{text!r} is neither a span like 2w nor a date like 2026-12-24") from None


def stored(store: Store, decision_id: int) -> DecisionRecord:
    return next(d for d in store.active_decisions() if d.id == decision_id)


def undo(
    store: Store, kind: str, addresses: Iterable[str], rule: str | None = None
) -> list[DecisionRecord]:
    """Deactivate the active decisions of ``kind`` about any of ``addresses`` (only
    those about ``rule``, when given) and return them."""
    wanted = set(addresses)
    found = [
        d
        for d in store.active_decisions()
        if d.kind == kind and d.person in wanted and (rule is None or d.rule == rule)
    ]
    if found:
        store.deactivate_decisions([d.id for d in found])
    return found


def snooze(
    store: Store, p: PersonStats, until: datetime, rule: str | None, now: datetime
) -> DecisionRecord:
    if until <= now:
        raise UsageError(f"{until:%Y-%m-%d %H:%M} is in the past")
    did = store.add_decision("snooze", primary(p), rule=rule, until=until, now=now, supersede=True)
    return stored(store, did)


def dismiss(
    store: Store,
    p: PersonStats,
    findings: Sequence[Finding],
    rule: str | None,
    now: datetime,
) -> DecisionRecord:
    """Dismiss until new evidence: the episodes of ``p``'s findings (of ``rule``) now."""
    episodes: dict[str, list[str]] = {}
    for f in findings:
        if f.person_id == p.person_id and (rule is None or f.rule == rule):
            episodes.setdefault(f.rule, []).append(f.episode)
    did = store.add_decision(
        "dismiss",
        primary(p),
        rule=rule,
        value=dismissal_value(episodes, p.last_contact),
        now=now,
        supersede=True,
    )
    return stored(store, did)


def done(
    store: Store, p: PersonStats, at: datetime, note: str | None, now: datetime
) -> DecisionRecord:
    if at > now:
        raise UsageError("the contact cannot be in the future")
    did = store.add_decision("done", primary(p), value=at.isoformat(), note=note, now=now)
    return stored(store, did)


def ignore(store: Store, p: PersonStats, now: datetime) -> DecisionRecord:
    return stored(store, store.add_decision("ignore", primary(p), now=now, supersede=True))


def cadence(store: Store, p: PersonStats, days: float, now: datetime) -> DecisionRecord:
    did = store.add_decision("cadence", primary(p), value=f"{days:g}", now=now, supersede=True)
    return stored(store, did)


def tier(store: Store, p: PersonStats, name: str, now: datetime) -> DecisionRecord:
    return stored(
        store, store.add_decision("tier", primary(p), value=name, now=now, supersede=True)
    )


def inactive(decisions: Iterable[DecisionRecord]) -> list[dict[str, Any]]:
    return [decision_json(d, active=False) for d in decisions]
